"""Session fixtures: one Synapse and one appservice for the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .. import postgres
from .harness import Stack


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("stack")
    pg_name = None
    if postgres.selected():
        database, pg_name = await postgres.create("communities_test")
    else:
        database = f"sqlite:{workdir / 'communities.db'}"
    stack = Stack(workdir, database)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()
        if pg_name:
            await postgres.drop(pg_name)
