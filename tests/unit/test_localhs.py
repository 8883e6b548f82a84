"""The loopback ports the local homeservers, services and tests listen on."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from communities_appservice.dev import localhs


def test_ports_are_drawn_below_the_ephemeral_range_and_never_twice() -> None:
    low = localhs._ephemeral_low()
    ports = [localhs.free_loopback_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(localhs._LOWEST_PORT <= port < low for port in ports)
    assert all(localhs.port_is_free(port) for port in ports)


def test_a_port_something_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((localhs.LOOPBACK, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        draws = iter([busy, busy, localhs._LOWEST_PORT + 7])

        class Draws:
            def randint(self, first: int, last: int) -> int:
                return next(draws)

        monkeypatch.setattr(localhs, "_draws", Draws())
        monkeypatch.setattr(localhs, "_ephemeral_low", lambda: 65535)
        monkeypatch.setattr(localhs, "_handed_out", set())
        if not localhs.port_is_free(localhs._LOWEST_PORT + 7):
            pytest.skip("the port this test draws is in use on this machine")
        assert localhs.free_loopback_port() == localhs._LOWEST_PORT + 7


def test_without_room_below_the_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wide = tmp_path / "ip_local_port_range"
    wide.write_text("1024\t65535\n")
    monkeypatch.setattr(localhs, "EPHEMERAL_PORTS", wide)
    assert localhs._ephemeral_low() == 1024
    port = localhs.free_loopback_port()
    assert localhs.port_is_free(port)


def test_an_unreadable_range_falls_back_to_linux_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(localhs, "EPHEMERAL_PORTS", tmp_path / "absent")
    assert localhs._ephemeral_low() == 32768
