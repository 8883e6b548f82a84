"""Throw-away PostgreSQL databases for the suite's PostgreSQL pass.

`COMMUNITIES_TEST_DB=postgres` selects the pass; `COMMUNITIES_TEST_POSTGRES_URL` names the
server (default: the local one, database `test`, trust auth). Each fixture gets a fresh
database and drops it afterwards; an unreachable server fails the run loudly.
"""

from __future__ import annotations

import os
import secrets

import asyncpg
import pytest

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
