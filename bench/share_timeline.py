"""Benchmark helper: the timeline of the bot's first encrypted send, from megolm_share.py.

Runs `megolm_share.py` with the same arguments and, during each of the bot's timed first
sends, records when every homeserver request and every stage of the key share (a part's
device lookup, its Olm sessions found or claimed and made, the room key Olm-encrypted, the
sessions saved, the to-device send) began and ended. Printed after each send: the
timeline (seconds from the call), then per kind the count and summed time, and how much of
the send had at least one request waiting on the homeserver: the rest of the wall time
the homeserver sat idle, waiting for the bot. The wrappers exist in this process only.

    python bench/share_timeline.py --members 1000 --sides bot,floor --rounds 1
"""

from __future__ import annotations

import functools
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import megolm_share  # type: ignore[import-not-found]  # bench/ is on sys.path
from mautrix.api import HTTPAPI

from communities_appservice.matrix.olm import OlmBatch

Span = tuple[float, float, str]
STAGES = {
    "devices_of": "devices of a part",
    "sessions_with": "Olm sessions of a part (read, claimed, made, stored)",
    "_new_sessions": "Olm sessions made (worker thread)",
    "encrypt_olm_many": "room key Olm-encrypted",
    "_save_sessions": "sessions saved",
    "send_to_devices": "to-device send of a part",
}


class Timeline:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.on = False

    def record(self, began: float, label: str) -> None:
        if self.on:
            self.spans.append((began, time.monotonic(), label))

    def wrap(self, owner: Any, name: str, label: str) -> None:
        func = getattr(owner, name)
        if name == "_new_sessions":  # a plain function, run in a worker thread

            @functools.wraps(func)
            def timed(*args: Any, **kwargs: Any) -> Any:
                began = time.monotonic()
                try:
                    return func(*args, **kwargs)
                finally:
                    self.record(began, label)

            setattr(owner, name, timed)
            return

        @functools.wraps(func)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            began = time.monotonic()
            try:
                return await func(*args, **kwargs)
            finally:
                self.record(began, label)

        setattr(owner, name, timed_async)

    def install(self) -> None:
        for name, label in STAGES.items():
            self.wrap(OlmBatch, name, label)
        request = HTTPAPI.request
        timeline = self

        async def requesting(api: HTTPAPI, method: Any, path: Any, *args: Any, **kw: Any) -> Any:
            began = time.monotonic()
            try:
                return await request(api, method, path, *args, **kw)
            finally:
                parts = str(path).split("/")
                kind = next((p for p in ("query", "claim", "sendToDevice") if p in parts), "")
                if not kind:
                    kind = "members" if parts[-1] == "members" else parts[-2] or "send"
                timeline.record(began, f"HTTP {method} {kind}")

        HTTPAPI.request = requesting  # type: ignore[method-assign]
        time_bot: Callable[..., Any] = megolm_share.time_bot

        async def timed_bot(*args: Any, **kwargs: Any) -> Any:
            self.spans, self.on = [], True
            began = time.monotonic()
            try:
                return await time_bot(*args, **kwargs)
            finally:
                self.on = False
                self.print(began, time.monotonic() - began)

        megolm_share.time_bot = timed_bot

    def print(self, began: float, wall: float) -> None:
        print(f"--- the bot's first send: {wall:.3f} s")
        print(f"{'from':>7} {'to':>7} {'took':>6}  what")
        for start, end, label in sorted(self.spans):
            print(f"{start - began:7.3f} {end - began:7.3f} {end - start:6.3f}  {label}")
        totals: dict[str, list[float]] = defaultdict(list)
        for start, end, label in self.spans:
            totals[label].append(end - start)
        for label, took in sorted(totals.items()):
            print(f"  {label:<56} ×{len(took):<3} {sum(took):6.3f} s")
        waiting = _union([(s, e) for s, e, label in self.spans if label.startswith("HTTP")])
        idle = wall - waiting
        print(f"  at least one request at the homeserver: {waiting:.3f} s of {wall:.3f} s"
              f" ({waiting / wall:.0%}); none outstanding: {idle:.3f} s")  # fmt: skip


def _union(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def main() -> None:
    Timeline().install()
    sys.argv = ["megolm_share.py", *sys.argv[1:]]
    megolm_share.main()


if __name__ == "__main__":
    main()
