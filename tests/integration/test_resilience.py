"""What goes wrong, against the real homeserver: kill -9 in the middle of `create`, replayed
transactions, a server admin's hand edits, Synapse stopping mid-promotion, a lowered limit."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from collections.abc import Callable
from typing import Any, Protocol

import pytest
from mautrix.api import Method
from mautrix.types import EventType, PaginationDirection, RoomID

from communities_appservice.db import Tables, create_database
from communities_appservice.rules.model import AdminRole

from .e2ee import E2EEUser
from .harness import Stack, User, eventually
from .test_groups_and_admins import joined_community

GROUPS = 10
MOMENT = 0.002  # how often a test that kills at a precise point looks (seconds)


async def rooms_named(stack: Stack, term: str) -> list[dict[str, Any]]:
    """Every room on the homeserver whose name contains `term` (Synapse's admin room list)."""
    found = await stack.synapse_admin("GET", f"v1/rooms?search_term={term}&limit=500")
    return list(found["rooms"])


async def rooms_on_server(stack: Stack, name: str, recorded: set[str]) -> list[dict[str, Any]]:
    """The homeserver's rooms named after `name`, once Synapse lists every recorded one
    (it indexes new rooms in the background, in order); asserts they are exactly those."""

    async def listed() -> list[dict[str, Any]] | None:
        found = await rooms_named(stack, name)
        return found if recorded <= {r["room_id"] for r in found} else None

    on_server = await eventually(listed, "Synapse to list the community's rooms")
    assert sorted(r["room_id"] for r in on_server) == sorted(recorded)
    return on_server


async def op_steps(tables: Tables, name: str) -> tuple[int, set[str]] | None:
    """The latest `create` operation for the community `name`, and its finished steps."""
    rows = await tables.db.fetch("SELECT id, params FROM operation WHERE kind='create'")
    ids = [int(r["id"]) for r in rows if json.loads(r["params"])["name"] == name]
    if not ids:
        return None
    return max(ids), set((await tables.operations.steps(max(ids))).keys())


def groups_recorded(steps: set[str]) -> int:
    return sum(1 for s in steps if s.startswith("record group "))


class Sender(Protocol):
    async def send(self, room_id: str, text: str) -> str: ...


async def create_then_kill(
    stack: Stack,
    owner: Sender,
    dm: str,
    name: str,
    groups: int,
    reached: Callable[[set[str]], bool],
) -> tuple[str, int, set[str]]:
    """`create` with `groups` groups in a service process, SIGKILLed as soon as the operation's
    finished steps satisfy `reached`; the command's event id, the operation and its steps."""
    names = ",".join(f"{name} G{i}" for i in range(groups))
    process = await stack.spawn_app()
    observer = create_database(stack.database)
    await observer.start()
    try:
        event_id = await owner.send(dm, f'!community create "{name}" --groups "{names}"')

        async def at_point() -> bool:
            found = await op_steps(Tables(observer), name)
            return found is not None and reached(found[1])

        await eventually(at_point, "create to reach the point of the kill", 60, MOMENT)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        found = await op_steps(Tables(observer), name)
        assert found is not None
        return event_id, found[0], found[1]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await observer.stop()


async def op_state(stack: Stack, op_id: int, state: str) -> None:
    """Wait until the restarted service has brought the operation to `state`."""
    assert stack.app is not None
    tables = stack.app.tables

    async def reached() -> bool:
        op = await tables.operations.get(op_id)
        return op is not None and op.state == state

    await eventually(reached, f"operation {op_id} to be {state}", timeout=60)


KILL_POINTS = {
    "after the space": lambda steps: "record space" in steps,
    "after half the groups": lambda steps: groups_recorded(steps) >= GROUPS // 2,
    "before the admins room": lambda steps: groups_recorded(steps) == GROUPS,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
async def test_kill_9_during_create_then_restart_finishes_it(
    stack: Stack, people: list[E2EEUser], point: str
) -> None:
    owner = await stack.e2ee_person("owner")  # type: ignore[attr-defined]
    dm = await owner.encrypted_dm(stack.bot)
    name = f"Crash {secrets.token_hex(3)}"
    event_id, op_id, steps_at_kill = await create_then_kill(
        stack, owner, dm, name, GROUPS, KILL_POINTS[point]
    )
    assert "activate" not in steps_at_kill, "killed too late to test anything"

    await stack.start_app()
    await op_state(stack, op_id, "done")
    assert stack.app is not None
    tables = stack.app.tables
    op = await tables.operations.get(op_id)
    assert op is not None
    community = await tables.communities.get(op.space_id)
    assert community is not None and community.state == "active" and community.name == name
    rooms = await tables.rooms.of_community(op.space_id)
    assert sorted(r.role for r in rooms).count("group") == GROUPS
    # Every room exactly once on the homeserver: nothing the crash made twice, no orphan.
    # (Synapse indexes new rooms for its admin room list in the background, in order: once
    # the last recorded room is listed, every room made before it is too.)
    on_server = await rooms_on_server(stack, name, {r.room_id for r in rooms})
    for room in on_server:
        assert room["canonical_alias"] is None, room  # the step aliases are gone again
    children = {
        e["state_key"]
        for e in await stack.room_state(op.space_id)
        if e["type"] == "m.space.child" and e["content"].get("via")
    }
    assert children == {r.room_id for r in rooms if r.role in ("group", "announcements")}
    reply = await owner.reply_to(event_id)
    assert "Finished after an interruption" in reply.body, reply
    assert f"with {GROUPS} groups" in reply.body, reply
    admins_room = next(r.room_id for r in rooms if r.role == "admins")
    await owner.join(admins_room)
    await owner.notice_in(
        admins_room, f"Finished after an interruption: Created the community {name}"
    )
    assert [e.action for e in await tables.audit.recent(op.space_id, 5)] == ["create"]


async def test_create_is_undone_when_its_space_was_deleted_meanwhile(stack: Stack) -> None:
    owner = await stack.user("owner")
    dm = await owner.dm_bot()
    name = f"Doomed {secrets.token_hex(3)}"
    event_id, op_id, _ = await create_then_kill(
        stack, owner, dm, name, 3, lambda steps: "record space" in steps
    )

    # While the service is down, a server admin deletes the new space.
    async def the_space() -> str | None:
        spaces = [r["room_id"] for r in await rooms_named(stack, name) if r["room_type"]]
        return spaces[0] if spaces else None

    space = await eventually(the_space, "Synapse to list the new space")
    deletion = await stack.synapse_admin("DELETE", f"v2/rooms/{space}", {"purge": False})

    async def deleted() -> bool:
        status = await stack.synapse_admin("GET", f"v2/rooms/delete_status/{deletion['delete_id']}")
        return status["status"] == "complete"

    await eventually(deleted, "Synapse to delete the space")

    await stack.start_app()
    await op_state(stack, op_id, "undone")
    assert stack.app is not None
    tables = stack.app.tables
    reply = await stack.reply_to(owner, dm, event_id)
    assert f"Could not create the community {name}" in reply["body"], reply
    assert "nothing is left of it" in reply["body"], reply
    assert await tables.communities.get(space) is None
    for room in await rooms_named(stack, name):
        if room["room_id"] == space:
            continue
        assert await stack.membership(room["room_id"], stack.bot) == "leave", room
        assert await stack.membership(room["room_id"], owner.user_id) in ("leave", None), room


async def put_transaction(stack: Stack, txn_id: str, events: list[dict[str, Any]]) -> None:
    assert stack.config is not None
    url = f"http://127.0.0.1:{stack.as_port}/_matrix/app/v1/transactions/{txn_id}"
    headers = {"Authorization": f"Bearer {stack.config.appservice.hs_token}"}
    async with stack.http.put(url, json={"events": events}, headers=headers) as response:
        assert response.status == 200, await response.text()


async def replies_to(stack: Stack, user: User, room_id: str, event_id: str) -> int:
    response = await user.client.get_messages(
        RoomID(room_id), PaginationDirection.BACKWARD, limit=50
    )
    return sum(
        1
        for e in response.events
        if e.sender == stack.bot
        and ((e.content.serialize().get("m.relates_to") or {}).get("m.in_reply_to") or {}).get(
            "event_id"
        )
        == event_id
    )


async def test_replayed_command_runs_once_before_and_after_a_restart(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Replayed")
    space, dm = rooms["space"], rooms["dm"]
    event_id = await owner.send(dm, "!community group create Echo")
    await stack.reply_to(owner, dm, event_id)
    raw = await owner.client.api.request(  # the event as the homeserver delivers it
        Method.GET, f"/_matrix/client/v3/rooms/{dm}/event/{event_id}"
    )
    txn = f"replay-{secrets.token_hex(4)}"
    await put_transaction(stack, txn, [raw])  # the same event in a new transaction
    await put_transaction(stack, txn, [raw])  # the same transaction again
    await stack.idle()
    await stack.restart_app()
    await put_transaction(stack, txn, [raw])
    await put_transaction(stack, f"{txn}-b", [raw])
    await stack.idle()
    assert stack.app is not None
    groups = await stack.app.tables.rooms.of_community(space, "group")
    assert [g.name for g in groups] == ["Echo"]
    assert await replies_to(stack, owner, dm, event_id) == 1


async def power_of(stack: Stack, room_id: str) -> dict[str, int]:
    return dict((await stack.admin_state(room_id, "m.room.power_levels"))["users"])


async def test_server_admin_edits_are_repaired_and_recorded(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, rooms = await joined_community(stack, "Tampered")
    space, ann, admins_room = rooms["space"], rooms["announcements"], rooms["admins"]
    assert "Created group" in (await owner.command(rooms["dm"], "group create Chat"))["body"]
    # A second admin reads the (encrypted) admins room with a real E2EE client.
    reader = await stack.e2ee_person("reader")  # type: ignore[attr-defined]
    await reader.client.join(space)
    reply = await owner.command(rooms["dm"], f"admin add {reader.user_id}")
    assert "is now an admin" in reply["body"], reply
    await stack.wait_membership(admins_room, reader.user_id, "invite")
    await reader.join(admins_room)
    assert stack.app is not None
    [chat] = await stack.app.tables.rooms.of_community(space, "group")
    mallory = await stack.user("mallory")
    await mallory.join(space)
    await mallory.join(ann)

    # A server admin raises Mallory in the announcement room with Synapse's admin API.
    await stack.synapse_admin(
        "POST", f"v1/rooms/{ann}/make_room_admin", {"user_id": mallory.user_id}
    )

    async def repaired() -> bool:
        return mallory.user_id not in await power_of(stack, ann)

    await eventually(repaired, "the bot to repair the power levels")
    assert await power_of(stack, ann) == {owner.user_id: 100, reader.user_id: 100}

    async def recorded() -> bool:
        assert stack.app is not None
        entries = await stack.app.tables.audit.recent(space, 10)
        return any(
            e.action == "repair" and e.target == ann and mallory.user_id in e.detail
            for e in entries
        )

    await eventually(recorded, "the power level repair in the audit log")

    notice = await reader.notice_in(admins_room, "Repaired")
    assert f"{mallory.user_id}: 100 → unset" in notice, notice

    # The group is unlinked from the space behind the bot's back (as the bot, with its token:
    # nobody else holds the level); while the service is down, so start-up finds it.
    await stack.stop_app()
    assert stack.config is not None
    await unlink_as_bot(stack, space, chat.room_id)
    await stack.start_app()

    async def relinked() -> bool:
        content = await stack.admin_state(space, "m.space.child", chat.room_id)
        return bool(content.get("via"))

    await eventually(relinked, "the bot to link the group again")

    async def audited() -> bool:
        assert stack.app is not None
        entries = await stack.app.tables.audit.recent(space, 10)
        return any(e.action == "repair" and "link to Chat" in e.detail for e in entries)

    await eventually(audited, "the repair in the audit log")  # written just after the state
    await reader.notice_in(admins_room, "the link to Chat")


async def unlink_as_bot(stack: Stack, space: str, child: str) -> None:
    assert stack.config is not None
    url = (
        f"{stack.synapse.base_url}/_matrix/client/v3/rooms/{space}/state/m.space.child/{child}"
        f"?user_id={stack.bot}"
    )
    headers = {"Authorization": f"Bearer {stack.config.appservice.as_token}"}
    async with stack.http.put(url, json={}, headers=headers) as response:
        assert response.status == 200, await response.text()


async def five_rooms(stack: Stack, name: str) -> tuple[User, dict[str, str], list[str]]:
    """A community with two groups: five rooms a promotion has to change."""
    owner, rooms = await joined_community(stack, name)
    for group in ("One", "Two"):
        reply = await owner.command(rooms["dm"], f"group create {group}")
        assert "Created group" in reply["body"], reply
    assert stack.app is not None
    every_room = [r.room_id for r in await stack.app.tables.rooms.of_community(rooms["space"])]
    assert len(every_room) == 5
    return owner, rooms, every_room


async def test_synapse_stopping_mid_promotion_the_promotion_completes(stack: Stack) -> None:
    owner, rooms, every_room = await five_rooms(stack, "Outage")
    space, dm = rooms["space"], rooms["dm"]
    assert stack.app is not None
    tables = stack.app.tables
    alice = await stack.user("alice")
    await alice.join(space)
    before = await tables.db.fetchval("SELECT COALESCE(MAX(id), 0) FROM operation")

    await owner.send(dm, f"!community admin add {alice.user_id}")

    async def started() -> int | None:
        value = await tables.db.fetchval(
            "SELECT id FROM operation WHERE id > $1 AND kind='admin add'", before
        )
        return int(value) if value is not None else None

    op_id = await eventually(started, "the promotion to start", 30, MOMENT)
    process = stack.synapse._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # frozen mid-request, then gone
    done_at_stop = {s for s in await tables.operations.steps(op_id) if s.startswith("power ")}
    os.kill(process.pid, signal.SIGKILL)
    await stack.synapse.stop()
    await asyncio.sleep(1)
    await stack.synapse.start()
    assert len(done_at_stop) < len(every_room), "promotion ended before Synapse stopped"

    async def finished() -> bool:
        op = await tables.operations.get(op_id)
        return op is not None and op.state == "done"

    await eventually(finished, "the promotion to finish", timeout=120)
    for room in every_room:
        assert (await power_of(stack, room)).get(alice.user_id) == 100, room
    assert (await tables.admins.roles(space)).get(alice.user_id) is AdminRole.ADMIN
    assert await stack.membership(rooms["admins"], alice.user_id) == "invite"
    await stack.await_delivery()


async def test_lowered_max_admins_refuses_promotions_and_reports(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, rooms = await joined_community(stack, "Crowded")
    space, dm, admins_room = rooms["space"], rooms["dm"], rooms["admins"]
    alice = await stack.e2ee_person("alice")  # type: ignore[attr-defined]
    bob = await stack.user("bob")
    await alice.client.join(space)
    await bob.join(space)
    assert "is now an admin" in (await owner.command(dm, f"admin add {alice.user_id}"))["body"]
    await stack.wait_membership(admins_room, alice.user_id, "invite")
    await alice.join(admins_room)
    await stack.restart_app(max_admins=1)
    try:
        notice = await alice.notice_in(admins_room, "limit is now 1")
        assert "2 admins" in notice and "nobody was dismissed" in notice, notice
        # Known problems are remembered: another restart does not announce this one again.
        await stack.restart_app(max_admins=1)
        assert stack.app is not None and stack.app.reconciler is not None
        await stack.app.reconciler.everything()
        await alice.sync()
        said = [n for n in alice.notices_by_room[admins_room] if "limit is now 1" in n]
        assert len(said) == 1, said
        entries = await stack.app.tables.audit.recent(space, 20)
        assert [e.action for e in entries].count("problem") == 1
        info = await owner.command(dm, "info")
        assert "Degraded" in info["body"] and "2 admins but the limit is now 1" in info["body"]
        reply = await owner.command(dm, f"admin add {bob.user_id}")
        assert "limit is now 1: dismiss 1 before promoting anyone" in reply["body"], reply
        assert stack.app is not None
        roles = await stack.app.tables.admins.roles(space)
        assert set(roles) == {owner.user_id, alice.user_id}  # nobody dismissed silently
        reply = await owner.command(dm, f"admin remove {alice.user_id}")
        assert "no longer an admin" in reply["body"], reply

        async def healthy() -> bool:
            return "Degraded" not in (await owner.command(dm, "info"))["body"]

        await eventually(healthy, "the community to be healthy again")
    finally:
        await stack.restart_app()


async def test_what_the_bot_cannot_repair_is_reported_until_fixed(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Outranked")
    dm = rooms["dm"]
    other, mallory = await stack.user("other"), await stack.user("mallory")
    old = str(await other.client.create_room(room_version="11", invitees=[stack.bot]))  # type: ignore[list-item]
    power = await other.state(old, "m.room.power_levels")
    power["users"] = {stack.bot: 100, other.user_id: 50}
    await other.client.send_state_event(old, EventType.ROOM_POWER_LEVELS, power)  # type: ignore[arg-type]
    assert "as a group" in (await owner.command(dm, f"group add {old}"))["body"]

    # In an adopted room the bot holds 100, not a creator's infinite power: a server admin
    # raising Mallory to the bot's own level (and inviting her) leaves the bot unable to
    # lower her.
    await stack.synapse_admin(
        "POST", f"v1/rooms/{old}/make_room_admin", {"user_id": mallory.user_id}
    )
    await mallory.join(old)

    async def degraded() -> str | None:
        body = str((await owner.command(dm, "info"))["body"])
        return body if "Degraded" in body else None

    info = await eventually(degraded, "info to show the community as degraded")
    assert mallory.user_id in info and "lower their own level below 100" in info, info

    async def audited() -> bool:
        assert stack.app is not None
        entries = await stack.app.tables.audit.recent(rooms["space"], 5)
        return any(e.action == "problem" and mallory.user_id in e.detail for e in entries)

    await eventually(audited, "the problem in the audit log")

    # Mallory steps down; the bot repairs the rest and the community is healthy again.
    power = await mallory.state(old, "m.room.power_levels")
    power["users"][mallory.user_id] = 0
    await mallory.client.send_state_event(old, EventType.ROOM_POWER_LEVELS, power)  # type: ignore[arg-type]

    async def healthy() -> bool:
        return "Degraded" not in (await owner.command(dm, "info"))["body"]

    await eventually(healthy, "the problem to be resolved")
    assert (await power_of(stack, old)) == {stack.bot: 100, owner.user_id: 99}


async def test_a_command_a_crash_cut_short_is_answered_after_the_restart(stack: Stack) -> None:
    """Two commands the service was handling when it died (claimed, still in the inbox):
    one it had not answered yet gets "may not be done"; one whose operation had finished
    and been answered is not answered a second time (its reply went out under the
    command's own transaction id)."""
    owner, rooms = await joined_community(stack, "Cut short")
    dm = rooms["dm"]
    create = await owner.send(dm, "!community group create Chat")
    await stack.reply_to(owner, dm, create)
    await stack.stop_app()
    rename = await owner.send(dm, "!community rename Cut short again")  # the service is down
    raws = [
        await owner.client.api.request(Method.GET, f"/_matrix/client/v3/rooms/{dm}/event/{e}")
        for e in (rename, create)
    ]
    observer = create_database(stack.database)
    await observer.start()
    try:
        tables = Tables(observer)
        await tables.dedupe.claim_event(rename, 1)  # as if it had been started
        await tables.inbox.accept(f"cut-{secrets.token_hex(4)}", raws, 1)
    finally:
        await observer.stop()
    await stack.start_app()

    async def warned() -> bool:
        return await replies_to(stack, owner, dm, rename) > 0

    await eventually(warned, "the notice about the interrupted command")
    await stack.idle()
    notices = await stack.bot_notices(owner, dm)
    assert sum("may not be done" in b for b in notices) == 1, notices  # not for the operation
    assert await replies_to(stack, owner, dm, rename) == 1
    assert await replies_to(stack, owner, dm, create) == 1  # answered before: not again
    assert stack.app is not None
    community = await stack.app.tables.communities.get(rooms["space"])
    assert community is not None and community.name == "Cut short"  # not run after all


async def test_kill_9_mid_promotion_leaves_no_half_promoted_admin(stack: Stack) -> None:
    owner, rooms, every_room = await five_rooms(stack, "Half")
    space, dm = rooms["space"], rooms["dm"]
    alice = await stack.user("alice")
    await alice.join(space)
    synapse = stack.synapse._process
    assert synapse is not None

    process = await stack.spawn_app()
    observer = create_database(stack.database)
    await observer.start()
    try:
        await owner.send(dm, f"!community admin add {alice.user_id}")

        async def recorded() -> int | None:
            value = await observer.fetchval(
                "SELECT o.id FROM operation o JOIN operation_step s ON s.op_id = o.id"
                " WHERE o.kind='admin add' AND o.params LIKE $1 AND s.step='record'",
                f"%{alice.user_id}%",
            )
            return int(value) if value is not None else None

        op_id = await eventually(recorded, "the promotion to be recorded", 60, MOMENT)
        # The homeserver freezes mid-promotion; the service dies there; both come back.
        os.kill(synapse.pid, signal.SIGSTOP)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        steps = set((await Tables(observer).operations.steps(op_id)).keys())
    finally:
        os.kill(synapse.pid, signal.SIGCONT)
        if process.returncode is None:
            process.kill()
            await process.wait()
        await observer.stop()
    assert "audit" not in steps, "killed too late to test anything"

    await stack.start_app()
    await op_state(stack, op_id, "done")
    for room in every_room:
        assert (await power_of(stack, room)).get(alice.user_id) == 100, room
    assert await stack.membership(rooms["admins"], alice.user_id) == "invite"
    assert stack.app is not None
    entries = await stack.app.tables.audit.recent(space, 50)
    assert [e.target for e in entries if e.action == "admin add"] == [alice.user_id]  # once
