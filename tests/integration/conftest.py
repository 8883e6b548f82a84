"""Session fixtures: one Synapse and one appservice for the whole run."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .harness import POSTGRES_URL, Stack


async def _postgres_database() -> tuple[str, str]:
    """A fresh database for this run; fails loudly when PostgreSQL is unreachable."""
    import asyncpg

    name = f"communities_test_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as e:
        pytest.fail(f"COMMUNITIES_TEST_DB=postgres but PostgreSQL is unreachable: {e}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", name


async def _drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("stack")
    pg_name = None
    if os.environ.get("COMMUNITIES_TEST_DB") == "postgres":
        database, pg_name = await _postgres_database()
    else:
        database = f"sqlite:{workdir / 'communities.db'}"
    stack = Stack(workdir, database)
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()
        if pg_name:
            await _drop_database(pg_name)
