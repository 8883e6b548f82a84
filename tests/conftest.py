"""The suite's database fixtures, and the `db` marker that selects them for the PostgreSQL pass.

A test that touches a table uses one of these (no import needed, pytest finds them here):

- `tables`: migrated tables on this pass's backend, shared by the test module and emptied
  before each test (ids restarted), so each test starts from a fresh database;
- `module_tables`: the same tables, not emptied (the module's shared database);
- `database_url`: the URL of a fresh, empty database of its own, for a test that opens,
  closes and reopens the database itself (`create_database(database_url)`);
- `db_backend`: the backend's name, "sqlite" or "postgres".

Every test using one of these (or a local fixture of the same name, or depending on
`db_backend`, or the integration suite's `stack`) is marked `db`. The first pass (`pytest`)
runs everything on SQLite; the second (`COMMUNITIES_TEST_DB=postgres pytest -m db`) runs the
`db` tests again, on PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from communities_appservice.db import Tables

from . import postgres

# A test using one of these fixtures, directly or through another fixture, touches a database.
DB_FIXTURES = frozenset(
    {"db_backend", "database_url", "module_tables", "tables", "stack", "federated"}
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def db_backend() -> str:
    return postgres.backend()


def _prefix(request: pytest.FixtureRequest) -> str:
    """A PostgreSQL database name saying which test module made it."""
    return f"communities_{request.module.__name__.rsplit('.', 1)[-1]}"[:40]


@pytest.fixture
async def database_url(
    db_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async with postgres.database_on(
        db_backend, tmp_path_factory.mktemp("db"), _prefix(request)
    ) as url:
        yield url


@pytest.fixture(scope="module")
async def module_tables(
    db_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Tables]:
    async with postgres.tables_on(
        db_backend, tmp_path_factory.mktemp("db"), _prefix(request)
    ) as tables:
        yield tables


@pytest.fixture
async def tables(module_tables: Tables) -> Tables:
    """The module's database, emptied."""
    await postgres.empty(module_tables.db)
    return module_tables
