"""Who leads an active/standby pair: a PostgreSQL advisory lock, held on a connection of its
own for as long as the process leads.

The lock is the database's, not a row with a clock: when the leader's process dies, or its
connection does, PostgreSQL releases the lock at once and the standby's next try takes it.
The leader checks its connection every few seconds; a leader that lost it must stop acting
at once (the standby may already lead), so `watch` reports the loss and the process exits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]

log = logging.getLogger("communities.lease")
# What a lost database connection raises (PostgresError includes connection errors;
# InterfaceError is a connection asyncpg already closed).
_GONE = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
TRY_EVERY = 1.0  # seconds between a standby's tries
CHECK_EVERY = 2.0  # seconds between a leader's checks of its connection
CHECK_TIMEOUT = 5.0


def lock_key(appservice_id: str) -> int:
    """The lock's number: one per appservice id, so that two services sharing a database
    do not stand by for each other."""
    digest = hashlib.sha256(f"communities-appservice leader {appservice_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Lease:
    def __init__(self, url: str, appservice_id: str) -> None:
        self.url = url
        self.key = lock_key(appservice_id)
        self._conn: asyncpg.Connection | None = None
        self.leading = False

    async def acquire(self, every: float = TRY_EVERY) -> None:
        """Return once this process leads; until then, try every `every` seconds."""
        waited = False
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self.url, timeout=CHECK_TIMEOUT)
                if await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key):
                    self.leading = True
                    log.info("leading%s", " (took over)" if waited else "")
                    return
            except _GONE as e:
                log.warning("cannot reach the database for the lease: %s", type(e).__name__)
                await self._drop()
            if not waited:
                log.info("standing by: another instance leads")
                waited = True
            await asyncio.sleep(every)

    async def watch(self, lost: Callable[[], None], every: float = CHECK_EVERY) -> None:
        """While leading, check the lock's connection; call `lost` (once) when it is gone."""
        while self.leading:
            await asyncio.sleep(every)
            try:
                assert self._conn is not None
                await self._conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT)
            except (*_GONE, AssertionError) as e:
                self.leading = False
                log.critical("lost the lease's connection (%s): stopping", type(e).__name__)
                await self._drop()
                lost()

    async def release(self) -> None:
        self.leading = False
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), CHECK_TIMEOUT)
            except _GONE:
                conn.terminate()
