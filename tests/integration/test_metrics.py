"""Metrics and probes of the running service against the real Synapse: what Prometheus
scrapes after a command, and the probes a deployment's health checks call."""

from __future__ import annotations

import aiohttp

from .harness import Stack


def _samples(text: str, name: str) -> dict[str, float]:
    """`name`'s samples in Prometheus text: label part (or "") -> value."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key.removeprefix(name)] = float(value)
    return found


async def test_a_scrape_after_a_command_shows_its_traffic(stack: Stack) -> None:
    owner = await stack.user("metrics")
    dm = await owner.dm_bot()
    reply = await owner.command(dm, "help")
    assert reply["body"]
    await stack.idle()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{stack.metrics_port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
        base = f"http://127.0.0.1:{stack.as_port}"
        for probe in ("/_matrix/mau/live", "/_matrix/mau/ready"):
            async with http.get(base + probe) as response:  # no token needed
                assert response.status == 200, probe
    accepted = _samples(text, "communities_transactions_total")
    assert accepted['{outcome="accepted"}'] >= 1
    handled = _samples(text, "communities_handler_seconds_count")
    assert sum(handled.values()) >= 1
    sends = _samples(text, "communities_homeserver_request_seconds_count")
    # The reply went out through one label for every room.
    send = '{endpoint="/_matrix/client/v3/rooms/{}/send/'
    assert any(key.startswith(send) and n >= 1 for key, n in sends.items()), sorted(sends)
    assert not any("!" in key or "@" in key for key in sends)  # no ids in labels
    assert set(_samples(text, "communities_inbox_events")) == {""}  # read at the scrape
    assert _samples(text, "communities_ready") == {"": 1.0}
