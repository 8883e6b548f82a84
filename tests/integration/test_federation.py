"""Members from another homeserver: two Synapses on loopback that federate over TLS (each
named 127.0.0.1:PORT), the service registered with the first. A user of the second server
joins by the community's link and by approval, reads encrypted announcements and the bot's
replies, runs commands as an admin, and is removed and banned across every room; leaving
the space takes them out of the groups."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from mautrix.types import RoomID
from nio import JoinError, RoomKnockResponse

from communities_appservice.dev.localhs import LocalSynapse, free_loopback_port

from .. import postgres
from .e2ee import E2EEUser
from .harness import Stack, eventually
from .test_community import create
from .test_groups_and_admins import joined_community

Person = Callable[[str], Awaitable[E2EEUser]]


@pytest.fixture(scope="module")
async def federated(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Stack, LocalSynapse]]:
    """The service's homeserver (with the service) and a second homeserver federating."""
    workdir = tmp_path_factory.mktemp("federated")
    pg_name = None
    if postgres.selected():
        database, pg_name = await postgres.create("communities_federated")
    else:
        database = f"sqlite:{workdir / 'communities.db'}"
    home = Stack(workdir / "home", database, federation_port=free_loopback_port())
    remote = LocalSynapse(workdir / "remote", federation_port=free_loopback_port())
    try:
        await asyncio.gather(home.start(), remote.start())
        yield home, remote
    finally:
        await home.stop()
        await remote.stop()
        if pg_name:
            await postgres.drop(pg_name)


@pytest.fixture
async def remote_person(
    federated: tuple[Stack, LocalSynapse], tmp_path: Path
) -> AsyncIterator[Person]:
    """People of the second homeserver, each with an E2EE device (matrix-nio)."""
    _, remote = federated
    made: list[E2EEUser] = []

    async def person(prefix: str) -> E2EEUser:
        localpart = f"{prefix}-{secrets.token_hex(4)}"
        user_id, _ = await remote.register_user(localpart, "pw-" + localpart)
        user = E2EEUser(remote.base_url, user_id, "pw-" + localpart, tmp_path / localpart)
        await user.login(device_name=f"{prefix}-device")
        made.append(user)
        return user

    yield person
    for user in made:
        await user.close()


async def link_alias(home: Stack, dm: str, owner_command: Callable[..., Awaitable[dict]]) -> str:
    reply = await owner_command(dm, "link")
    found = re.search(r"#[\w.=-]+:[0-9.]+:\d+", reply["body"])
    assert found, reply
    return found.group(0)


async def test_a_remote_member_joins_by_link_and_reads_encrypted_announcements(
    federated: tuple[Stack, LocalSynapse], remote_person: Person
) -> None:
    home, remote = federated
    owner, rooms = await joined_community(home, "Far and wide")
    assert home.synapse.server_name != remote.server_name
    alias = await link_alias(home, rooms["dm"], owner.command)
    guest = await remote_person("guest")
    await guest.join(alias)
    await home.wait_member(rooms["space"], guest.user_id)
    ann = rooms["announcements"]
    await guest.wait(lambda: ann in guest.client.invited_rooms, "the announcements invitation")
    await guest.join(ann)
    await home.wait_membership(ann, guest.user_id, "join")
    said = await owner.command(rooms["dm"], "announce Hello from the other server")
    assert said["body"].startswith("Announced in the announcement room"), said
    post = await guest.text_in(ann, "Hello from the other server")
    assert post.decrypted


async def test_a_remote_admin_runs_commands_in_the_encrypted_admins_room(
    federated: tuple[Stack, LocalSynapse], remote_person: Person
) -> None:
    home, _ = federated
    owner, rooms = await joined_community(home, "Admins afar")
    alias = await link_alias(home, rooms["dm"], owner.command)
    guest = await remote_person("admin")
    await guest.join(alias)
    await home.wait_member(rooms["space"], guest.user_id)
    added = await owner.command(rooms["dm"], f"admin add {guest.user_id}")
    assert "is now an admin" in added["body"], added
    admins_room = rooms["admins"]
    await guest.wait(lambda: admins_room in guest.client.invited_rooms, "the admins room")
    await guest.join(admins_room)
    await home.wait_membership(admins_room, guest.user_id, "join")
    reply = await guest.reply_to(await guest.send(admins_room, "!community info"))
    assert reply.decrypted and "Admins afar" in reply.body, reply.body
    made = await guest.reply_to(await guest.send(admins_room, "!community group create Remote"))
    assert "Created group" in made.body, made.body
    assert home.app is not None
    groups = await home.app.tables.rooms.of_community(RoomID(rooms["space"]), "group")
    assert [g.name for g in groups] == ["Remote"]


async def test_a_remote_member_joins_by_approval(
    federated: tuple[Stack, LocalSynapse], remote_person: Person
) -> None:
    home, _ = federated
    owner = await home.user("owner")
    rooms = await create(home, owner, "Ask first", "--join", "approval")
    for role in ("space", "admins"):
        await owner.join(rooms[role])
    alias = await link_alias(home, rooms["dm"], owner.command)
    guest = await remote_person("knocker")
    knocked = await guest.client.room_knock(alias, "hello")  # by the link: the alias
    assert isinstance(knocked, RoomKnockResponse), knocked
    assert home.app is not None
    app = home.app

    async def requested() -> bool:
        waiting = await app.tables.join_requests.of_community(RoomID(rooms["space"]))
        return any(r.user_id == guest.user_id for r in waiting)

    await eventually(requested, "the join request")
    approved = await owner.command(rooms["dm"], f"approve {guest.user_id}")
    assert approved["body"].startswith(f"Approved {guest.user_id}"), approved
    space = rooms["space"]
    await guest.wait(lambda: space in guest.client.invited_rooms, "the space invitation")
    await guest.join(space)
    await home.wait_member(space, guest.user_id)


async def test_a_remote_member_is_removed_and_banned_everywhere_and_leaves_groups(
    federated: tuple[Stack, LocalSynapse], remote_person: Person
) -> None:
    home, remote = federated
    owner, rooms = await joined_community(home, "Strict")
    dm, space = rooms["dm"], rooms["space"]
    made = await owner.command(dm, "group create Chat")
    assert "Created group" in made["body"], made
    assert home.app is not None
    [chat] = await home.app.tables.rooms.of_community(RoomID(space), "group")
    alias = await link_alias(home, dm, owner.command)

    async def member(prefix: str) -> E2EEUser:
        user = await remote_person(prefix)
        await user.join(alias)
        await home.wait_member(space, user.user_id)
        ann = rooms["announcements"]
        await user.wait(lambda: ann in user.client.invited_rooms, "the announcements invitation")
        await user.join(ann)
        # An open group is joined as Element joins it from the space: through its `via`.
        link = await home.admin_state(space, "m.space.child", chat.room_id)
        await user.join_via(chat.room_id, link["via"])
        for room in (ann, chat.room_id):
            await home.wait_membership(room, user.user_id, "join")
        return user

    leaver, removed, banned = (
        await member("leaver"),
        await member("removed"),
        await member("banned"),
    )
    everywhere = (space, rooms["announcements"], chat.room_id)

    await leaver.client.room_leave(space)
    await home.wait_membership(chat.room_id, leaver.user_id, "leave")
    await home.wait_membership(rooms["announcements"], leaver.user_id, "leave")

    said = await owner.command(dm, f"remove {removed.user_id} spam")
    assert "in 3 room(s)" in said["body"], said
    for room in everywhere:
        assert await home.membership(room, removed.user_id) == "leave"

    said = await owner.command(dm, f"ban {banned.user_id} spam")
    assert "in 4 room(s)" in said["body"], said  # the admins room too: a ban is everywhere
    for room in (*everywhere, rooms["admins"]):
        assert await home.membership(room, banned.user_id) == "ban"

    _, operator = await remote.register_user(f"op-{secrets.token_hex(3)}", "pw-op", admin=True)

    async def ban_reached_their_server() -> bool:  # the second server's view of the space
        url = f"{remote.base_url}/_synapse/admin/v1/rooms/{space}/state"
        headers = {"Authorization": f"Bearer {operator}"}
        async with home.http.get(url, headers=headers) as response:
            state = (await response.json()).get("state", [])
        # Banned, or out of the room (its last member there gone): no longer joined, so a
        # join now goes to the community's server, which refuses it.
        return not any(
            e["type"] == "m.room.member"
            and e.get("state_key") == banned.user_id
            and e["content"].get("membership") == "join"
            for e in state
        )

    await eventually(ban_reached_their_server, "the ban to reach the second server")
    rejoined = await banned.client.join(space)
    assert isinstance(rejoined, JoinError), rejoined  # refused: banned
    assert await home.membership(space, banned.user_id) == "ban"
