"""How the Matrix edge fails, and the one place that knows whether a failure may pass.

    MatrixError       the homeserver answered with an error: its errcode and HTTP status
    Transient         raised by us for "not yet, try again later" (a room still being made)

`is_transient` is the only judge of "try again later" in the package: an unreachable
homeserver, 5xx, 429, a database that is locked or gone for a moment. Everything else is a
refusal, and what asked for it is told so (or undone).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from mautrix.errors import MatrixConnectionError, MatrixRequestError

log = logging.getLogger("communities.matrix")
T = TypeVar("T")
# Seconds between the tries of a read that a command needs before it can answer.
PATIENCE = (0.5, 1.0, 2.0)


class MatrixError(Exception):
    """The homeserver refused a request."""

    def __init__(self, errcode: str, message: str, status: int) -> None:
        super().__init__(f"{errcode}: {message}")
        self.errcode = errcode
        self.status = status


class Transient(Exception):
    """Something that is not ready yet; trying again later may succeed."""


class RetryLater(Transient):
    """Some of an event's listeners failed for a transient reason: the event is tried again
    (the listeners that did their part are not run twice)."""


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed (an outage of the homeserver or the database),
    as opposed to a refusal."""
    if isinstance(error, MatrixError):
        return error.status >= 500 or error.status in (0, 429)
    if isinstance(error, MatrixRequestError):  # from mautrix's own calls (the encryption's)
        status = int(error.http_status or 0)
        return status >= 500 or status in (0, 429)
    return isinstance(
        error,
        (
            Transient,
            aiohttp.ClientError,
            MatrixConnectionError,
            OSError,
            asyncio.TimeoutError,
            sqlite3.OperationalError,  # "database is locked"
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
        ),
    )


def brief(error: BaseException) -> str:
    """A failure in a few words for a log line or a report: never a body or a token."""
    if isinstance(error, MatrixError):
        return f"{error.errcode} (HTTP {error.status})"
    return type(error).__name__


async def patiently(call: Callable[[], Awaitable[T]]) -> T:
    """`call`, tried again after each of the `PATIENCE` pauses while it fails for a transient
    reason (a few seconds in all); then its failure propagates. For what a command reads
    before it acts: an outage shorter than that is not its sender's problem."""
    for pause in PATIENCE:
        try:
            return await call()
        except Exception as e:
            if not is_transient(e):
                raise
            log.info("trying again in %.1fs: %s", pause, brief(e))
        await asyncio.sleep(pause)
    return await call()


async def persistently(
    what: str, call: Callable[[], Awaitable[T]], first: float = 1.0, most: float = 30.0
) -> T:
    """`call` until it succeeds: a transient failure is waited out with backoff (`first`
    seconds, doubling up to `most`), a refusal propagates. For start-up, which must not fail
    because the homeserver is away for a while."""
    delay = first
    while True:
        try:
            return await call()
        except Exception as e:
            if not is_transient(e):
                raise
            log.warning("%s failed (%s); retrying in %.0fs", what, brief(e), delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, most)
