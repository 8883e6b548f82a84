"""Throw-away databases for the suite: SQLite files, and PostgreSQL for its own pass.

`COMMUNITIES_TEST_DB=postgres` selects the pass; `COMMUNITIES_TEST_POSTGRES_URL` names the
server (default: the local one, database `test`, trust auth). A pass runs on one backend:
SQLite in the first, PostgreSQL only in the second. Each database is fresh and dropped
afterwards; an unreachable server fails the run loudly.

The fixtures built on these (`db_backend`, `database_url`, `module_tables`, `tables`) are in
`tests/conftest.py`; a test using any of them is marked `db`, which selects it for the
PostgreSQL pass (`pytest -m db`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from mautrix.util.async_db import Database, Scheme

from communities_appservice.db import Tables, create_database

POSTGRES_URL = os.environ.get(
    "COMMUNITIES_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)

# Kept by mautrix's upgrade machinery, not by the application: never emptied.
BOOKKEEPING = frozenset({"communities_version", "database_owner"})


def selected() -> bool:
    return os.environ.get("COMMUNITIES_TEST_DB") == "postgres"


def backend() -> str:
    """The one database this pass runs on: PostgreSQL when selected, SQLite otherwise."""
    return "postgres" if selected() else "sqlite"


def backends() -> list[str]:
    """`backend()` as a list, for a fixture parametrized by backend: one backend a pass."""
    return [backend()]


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


@asynccontextmanager
async def database_on(backend: str, sqlite_dir: Path, prefix: str) -> AsyncIterator[str]:
    """The URL of a fresh, empty database of that backend, dropped afterwards."""
    if backend == "postgres":
        url, pg_name = await create(prefix)
        try:
            # the postgresql:// spelling exercises create_database's translation
            yield url.replace("postgres://", "postgresql://", 1)
        finally:
            await drop(pg_name)
    else:
        yield f"sqlite:{sqlite_dir / 'communities.db'}"


@asynccontextmanager
async def tables_on(backend: str, sqlite_dir: Path, prefix: str) -> AsyncIterator[Tables]:
    """Migrated tables on a fresh database of that backend, dropped afterwards."""
    async with database_on(backend, sqlite_dir, prefix) as url:
        db = create_database(url)
        await db.start()
        try:
            yield Tables(db)
        finally:
            await db.stop()


async def empty(db: Database) -> None:
    """Every application table emptied and its ids restarted: as good as a fresh database."""
    sqlite = db.scheme == Scheme.SQLITE
    if sqlite:
        names = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        references = (
            'SELECT m.name AS child, f."table" AS parent FROM sqlite_master AS m'
            " JOIN pragma_foreign_key_list(m.name) AS f WHERE m.type = 'table'"
        )
    else:
        names = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
        references = (
            "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent"
            " FROM pg_constraint"
            " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
        )
    left = [row["name"] for row in await db.fetch(names) if row["name"] not in BOOKKEEPING]
    refs = {(row["child"], row["parent"]) for row in await db.fetch(references)}
    while left:  # a table before the tables it references, so no foreign key is in the way
        free = [n for n in left if not any(p == n and c in left and c != n for c, p in refs)]
        assert free, f"a cycle of foreign keys among {left}"
        for name in free:
            await db.execute(f'DELETE FROM "{name}"')
            left.remove(name)
    if sqlite:
        if await db.fetchval("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"):
            await db.execute("DELETE FROM sqlite_sequence")
    else:
        for row in await db.fetch(
            "SELECT sequencename FROM pg_sequences"
            " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
        ):
            await db.execute(f'ALTER SEQUENCE "{row["sequencename"]}" RESTART')
