"""Fixtures: one Synapse and one appservice for the whole run; people with E2EE devices."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .. import postgres
from .e2ee import E2EEUser
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


@pytest.fixture
async def people(stack: Stack) -> AsyncIterator[list[E2EEUser]]:
    made: list[E2EEUser] = []

    async def person(prefix: str, localpart: str | None = None) -> E2EEUser:
        localpart = localpart or f"{prefix}-{secrets.token_hex(4)}"
        user_id, _ = await stack.synapse.register_user(localpart, "pw-" + localpart)
        user = E2EEUser(
            stack.synapse.base_url,
            user_id,
            "pw-" + localpart,
            stack.workdir / "nio" / f"{localpart}-{len(made)}",
        )
        await user.login(device_name=f"device-{len(made)}")
        made.append(user)
        return user

    stack.e2ee_person = person  # type: ignore[attr-defined]
    yield made
    for user in made:
        await user.close()
