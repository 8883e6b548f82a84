"""Throw-away databases for the suite: SQLite files, and PostgreSQL for its own pass.

`COMMUNITIES_TEST_DB=postgres` selects the pass; `COMMUNITIES_TEST_POSTGRES_URL` names the
server (default: the local one, database `test`, trust auth). Each fixture gets a fresh
database and drops it afterwards; an unreachable server fails the run loudly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from communities_appservice.db import Tables, create_database

POSTGRES_URL = os.environ.get(
    "COMMUNITIES_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)


def selected() -> bool:
    return os.environ.get("COMMUNITIES_TEST_DB") == "postgres"


async def create(prefix: str) -> tuple[str, str]:
    """A new database: its URL and its name."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as e:
        pytest.fail(f"COMMUNITIES_TEST_DB=postgres but PostgreSQL is unreachable: {e!r}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}", name


async def drop(name: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def backends() -> list[str]:
    """The databases a unit test module runs on: SQLite always, PostgreSQL when selected."""
    return ["sqlite", "postgres"] if selected() else ["sqlite"]


@asynccontextmanager
async def tables_on(backend: str, sqlite_dir: Path, prefix: str) -> AsyncIterator[Tables]:
    """Migrated tables on a fresh database of that backend, dropped afterwards."""
    pg_name = None
    if backend == "postgres":
        url, pg_name = await create(prefix)
        # the postgresql:// spelling exercises create_database's translation
        url = url.replace("postgres://", "postgresql://", 1)
    else:
        url = f"sqlite:{sqlite_dir / 'communities.db'}"
    db = create_database(url)
    await db.start()
    try:
        yield Tables(db)
    finally:
        await db.stop()
        if pg_name:
            await drop(pg_name)
