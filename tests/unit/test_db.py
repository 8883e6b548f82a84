"""Every table of `db`, against a real database: SQLite, and PostgreSQL in its own pass.

The tests use the suite's `tables` fixture (tests/conftest.py): this module's database on the
pass's backend, emptied before each test. `COMMUNITIES_TEST_DB=postgres pytest -m db` runs them
on a fresh PostgreSQL database (at `COMMUNITIES_TEST_POSTGRES_URL`, default
postgres://postgres@127.0.0.1:5432/test, dropped afterwards) instead of SQLite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from communities_appservice.db import Tables, create_database
from communities_appservice.db.community import Community
from communities_appservice.db.inbox import content_digest
from communities_appservice.db.room import CommunityRoom
from communities_appservice.rules.model import AdminRole

SPACE = "!space:example.org"
OTHER = "!other:example.org"
OWNER = "@owner:example.org"
ALICE = "@alice:example.org"
BOB = "@bob:example.org"


def _community(space_id: str = SPACE, name: str = "Parents", **kw: object) -> Community:
    values: dict[str, object] = dict(
        space_id=space_id,
        name=name,
        description="School parents",
        join_mode="approval",
        owner=OWNER,
        state="active",
        room_version="12",
        created_at=1_000,
    )
    values.update(kw)
    return Community(**values)  # type: ignore[arg-type]


def _room(room_id: str, space_id: str = SPACE, **kw: object) -> CommunityRoom:
    values: dict[str, object] = dict(
        room_id=room_id,
        space_id=space_id,
        role="group",
        name=room_id[1:4],
        access="open",
        adopted=False,
        position=1,
        created_at=2_000,
    )
    values.update(kw)
    return CommunityRoom(**values)  # type: ignore[arg-type]


# --- migrations --------------------------------------------------------------------------


async def test_migrations_run_once(database_url: str) -> None:
    for _ in range(2):  # a restart finds the schema in place
        db = create_database(database_url)
        await db.start()
        try:
            assert await db.fetchval("SELECT MAX(version) FROM communities_version") >= 1
            assert await db.fetchval("SELECT owner FROM database_owner") == "communities"
        finally:
            await db.stop()


async def test_sqlite_commits_survive_a_power_loss(tmp_path: Path) -> None:
    """synchronous=FULL with the WAL: a commit is on disk before it returns."""
    db = create_database(f"sqlite:{tmp_path / 'durable.db'}")
    await db.start()
    try:
        assert await db.fetchval("PRAGMA journal_mode") == "wal"
        assert await db.fetchval("PRAGMA synchronous") == 2  # FULL
    finally:
        await db.stop()


# --- community ---------------------------------------------------------------------------


async def test_community_insert_get(tables: Tables) -> None:
    c = _community()
    await tables.communities.insert(c)
    assert await tables.communities.get(SPACE) == c
    assert await tables.communities.get(OTHER) is None


async def test_community_created_at_defaults_to_now(tables: Tables) -> None:
    await tables.communities.insert(_community(created_at=0))
    got = await tables.communities.get(SPACE)
    assert got is not None and got.created_at > 1_600_000_000_000


async def test_community_updates(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.communities.set_name(SPACE, "Parents & teachers")
    await tables.communities.set_description(SPACE, "multi\nline")
    await tables.communities.set_state(SPACE, "deactivated")
    got = await tables.communities.get(SPACE)
    assert got == _community(
        name="Parents & teachers", description="multi\nline", state="deactivated"
    )


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("Parents", [SPACE]),
        ("pArEnTs", [SPACE]),
        ("Teachers", [OTHER]),
        ("Parent", []),
        ("Gone", []),
    ],
)
async def test_community_find_by_name(tables: Tables, query: str, found: list[str]) -> None:
    await tables.communities.insert(_community(SPACE, "Parents"))
    await tables.communities.insert(_community(OTHER, "Teachers"))
    await tables.communities.insert(_community("!gone:example.org", "Gone", state="deactivated"))
    assert [c.space_id for c in await tables.communities.find_by_name(query)] == found


async def test_community_all_active_in_creation_order(tables: Tables) -> None:
    await tables.communities.insert(_community("!b:x", "B", created_at=2))
    await tables.communities.insert(_community("!a:x", "A", created_at=3))
    await tables.communities.insert(_community("!c:x", "C", created_at=1))
    await tables.communities.insert(_community("!d:x", "D", created_at=4, state="deactivated"))
    assert [c.space_id for c in await tables.communities.all_active()] == ["!c:x", "!b:x", "!a:x"]


# --- rooms -------------------------------------------------------------------------------


async def test_room_insert_get_update_delete(tables: Tables) -> None:
    await tables.communities.insert(_community())
    room = _room("!g1:example.org", adopted=True, access="private", position=3)
    await tables.rooms.insert(room)
    got = await tables.rooms.get(room.room_id)
    assert got == room
    assert got is not None and got.adopted is True
    await tables.rooms.set_name(room.room_id, "Renamed")
    got = await tables.rooms.get(room.room_id)
    assert got is not None and got.name == "Renamed"
    await tables.rooms.delete(room.room_id)
    assert await tables.rooms.get(room.room_id) is None


async def test_room_adopted_false_is_false(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.rooms.insert(_room("!g1:example.org", adopted=False))
    got = await tables.rooms.get("!g1:example.org")
    assert got is not None and got.adopted is False


async def test_rooms_of_community(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.communities.insert(_community(OTHER, "Other"))
    await tables.rooms.insert(_room("!ann:x", role="announcements", position=0))
    await tables.rooms.insert(_room("!g2:x", position=2))
    await tables.rooms.insert(_room("!g1:x", position=1))
    await tables.rooms.insert(_room("!elsewhere:x", space_id=OTHER, position=1))
    all_rooms = await tables.rooms.of_community(SPACE)
    assert [r.room_id for r in all_rooms] == ["!ann:x", "!g1:x", "!g2:x"]
    groups = await tables.rooms.of_community(SPACE, "group")
    assert [r.room_id for r in groups] == ["!g1:x", "!g2:x"]
    assert await tables.rooms.of_community(SPACE, "admins") == []
    assert await tables.rooms.of_community("!nothing:x") == []


async def test_room_next_position(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.communities.insert(_community(OTHER, "Other"))
    assert await tables.rooms.next_position(SPACE) == 1
    await tables.rooms.insert(_room("!g1:x", position=1))
    assert await tables.rooms.next_position(SPACE) == 2
    await tables.rooms.insert(_room("!g7:x", position=7))
    assert await tables.rooms.next_position(SPACE) == 8
    assert await tables.rooms.next_position(OTHER) == 1
    await tables.rooms.delete("!g7:x")
    assert await tables.rooms.next_position(SPACE) == 2


async def test_room_needs_its_community(tables: Tables) -> None:
    with pytest.raises(Exception):  # noqa: B017  (sqlite3 and asyncpg raise their own)
        await tables.rooms.insert(_room("!orphan:x", space_id="!missing:x"))
    assert await tables.rooms.get("!orphan:x") is None


async def test_room_ids_are_unique(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.rooms.insert(_room("!g1:x"))
    with pytest.raises(Exception):  # noqa: B017
        await tables.rooms.insert(_room("!g1:x", name="again"))


# --- admins ------------------------------------------------------------------------------


async def test_admin_roles_order_and_updates(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.communities.insert(_community(OTHER, "Other"))
    await tables.admins.put(SPACE, BOB, AdminRole.ADMIN, 30)
    await tables.admins.put(SPACE, OWNER, AdminRole.OWNER, 10)
    await tables.admins.put(SPACE, ALICE, AdminRole.ADMIN, 30)  # same time: by user id
    await tables.admins.put(OTHER, ALICE, AdminRole.OWNER, 5)
    roles = await tables.admins.roles(SPACE)
    assert list(roles.items()) == [
        (OWNER, AdminRole.OWNER),
        (ALICE, AdminRole.ADMIN),
        (BOB, AdminRole.ADMIN),
    ]
    assert all(isinstance(r, AdminRole) for r in roles.values())
    # put again changes the role and keeps the original time
    await tables.admins.put(SPACE, OWNER, AdminRole.ADMIN, 99)
    await tables.admins.put(SPACE, BOB, AdminRole.OWNER, 99)
    assert list((await tables.admins.roles(SPACE)).items()) == [
        (OWNER, AdminRole.ADMIN),
        (ALICE, AdminRole.ADMIN),
        (BOB, AdminRole.OWNER),
    ]
    await tables.admins.delete(SPACE, ALICE)
    assert list(await tables.admins.roles(SPACE)) == [OWNER, BOB]
    assert sorted(await tables.admins.communities_of(ALICE)) == [OTHER]
    assert await tables.admins.communities_of("@nobody:x") == []
    assert await tables.admins.roles("!nothing:x") == {}


# --- members -----------------------------------------------------------------------------


async def test_members(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.communities.insert(_community(OTHER, "Other"))
    assert await tables.members.add(SPACE, ALICE, 1) is True
    assert await tables.members.add(SPACE, ALICE, 2) is False
    assert await tables.members.add(SPACE, BOB, 3) is True
    assert await tables.members.add(OTHER, ALICE, 4) is True
    assert await tables.members.is_member(SPACE, ALICE) is True
    assert await tables.members.is_member(SPACE, OWNER) is False
    assert await tables.members.count(SPACE) == 2
    assert await tables.members.count("!nothing:x") == 0
    assert sorted(await tables.members.communities_of(ALICE)) == sorted([SPACE, OTHER])
    assert await tables.members.remove(SPACE, ALICE) is True
    assert await tables.members.remove(SPACE, ALICE) is False
    assert await tables.members.is_member(SPACE, ALICE) is False
    assert await tables.members.count(SPACE) == 1
    assert await tables.members.communities_of(ALICE) == [OTHER]


# --- audit -------------------------------------------------------------------------------


async def test_audit_recent_newest_first(tables: Tables) -> None:
    for i in range(5):
        await tables.audit.add(SPACE, ALICE, f"action {i}", BOB, f"detail {i}", "ok", 100 + i)
    await tables.audit.add(OTHER, BOB, "elsewhere", "", "", "failed", 200)
    recent = await tables.audit.recent(SPACE, 3)
    assert [e.action for e in recent] == ["action 4", "action 3", "action 2"]
    first = recent[0]
    assert (first.space_id, first.actor, first.target, first.detail, first.result, first.ts) == (
        SPACE,
        ALICE,
        BOB,
        "detail 4",
        "ok",
        104,
    )
    assert len(await tables.audit.recent(SPACE, 50)) == 5
    assert [e.action for e in await tables.audit.recent(OTHER, 10)] == ["elsewhere"]
    assert await tables.audit.recent("!nothing:x", 10) == []


# --- dedupe ------------------------------------------------------------------------------


async def test_claim_event_once(tables: Tables) -> None:
    assert await tables.dedupe.claim_event("$one", 1) is True
    assert await tables.dedupe.claim_event("$one", 2) is False
    assert await tables.dedupe.claim_event("$two", 3) is True


# --- inbox -------------------------------------------------------------------------------


def _event(event_id: str, room_id: str = "!r1:x", **content: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "room_id": room_id,
        "type": "m.room.message",
        "sender": ALICE,
        "content": dict(content),
    }


async def test_inbox_accept_same_txn_twice(tables: Tables) -> None:
    events = [_event("$a", body="one"), _event("$b", "!r2:x", body="two")]
    items = await tables.inbox.accept("txn1", events, 1)
    assert [(i.room_id, i.event) for i in items] == [("!r1:x", events[0]), ("!r2:x", events[1])]
    assert items[0].seq < items[1].seq
    assert await tables.inbox.accept("txn1", events, 2) == []
    assert [p.event["event_id"] for p in await tables.inbox.pending()] == ["$a", "$b"]


async def test_inbox_reused_txn_id_with_other_content_is_new(tables: Tables) -> None:
    """A homeserver that lost its pending transactions numbers them from 1 again."""
    await tables.inbox.accept("txn1", [_event("$a")], 1)
    (item,) = await tables.inbox.accept("txn1", [_event("$new")], 2)
    assert item.event["event_id"] == "$new"
    assert await tables.inbox.accept("txn1", [_event("$new")], 3) == []


async def test_inbox_same_event_in_a_second_txn_is_stored_once(tables: Tables) -> None:
    first = await tables.inbox.accept("txn1", [_event("$a")], 1)
    second = await tables.inbox.accept("txn2", [_event("$a"), _event("$b")], 2)
    assert [i.event["event_id"] for i in second] == ["$a", "$b"]
    assert second[0].seq == first[0].seq
    pending = await tables.inbox.pending()
    assert [p.event["event_id"] for p in pending] == ["$a", "$b"]


async def test_inbox_pending_and_done(tables: Tables) -> None:
    events = [_event("$a", body="é ✓ <b>"), _event("$b"), _event("$c", "!r2:x")]
    items = await tables.inbox.accept("txn1", events, 1)
    pending = await tables.inbox.pending()
    assert [(p.seq, p.room_id, p.event) for p in pending] == [
        (i.seq, i.room_id, i.event) for i in items
    ]
    assert pending[0].event["content"] == {"body": "é ✓ <b>"}
    await tables.inbox.done(items[1].seq)
    assert [p.event["event_id"] for p in await tables.inbox.pending()] == ["$a", "$c"]
    await tables.inbox.done(items[0].seq)
    await tables.inbox.done(items[2].seq)
    await tables.inbox.done(items[2].seq)  # twice is harmless
    assert await tables.inbox.pending() == []


async def test_inbox_skips_events_without_id(tables: Tables) -> None:
    events: list[dict[str, object]] = [
        {"type": "m.typing", "room_id": "!r1:x"},
        {"event_id": 5},
        _event("$a"),
    ]
    items = await tables.inbox.accept("txn1", events, 1)
    assert [i.event["event_id"] for i in items] == ["$a"]
    assert await tables.inbox.accept("txn1", events, 2) == []


async def test_inbox_empty_txn_is_remembered(tables: Tables) -> None:
    assert await tables.inbox.accept("empty", [], 1) == []
    assert await tables.inbox.seen("empty", content_digest([]))
    assert await tables.inbox.accept("empty", [], 2) == []
    assert await tables.inbox.pending() == []


async def test_inbox_event_handled_and_done_comes_back_as_new_row(tables: Tables) -> None:
    """The inbox forgets handled events; the dedupe table is what stops a second run."""
    (item,) = await tables.inbox.accept("txn1", [_event("$a")], 1)
    assert await tables.dedupe.claim_event("$a", 1) is True
    await tables.inbox.done(item.seq)
    (again,) = await tables.inbox.accept("txn2", [_event("$a")], 2)
    assert again.seq != item.seq
    assert await tables.dedupe.claim_event("$a", 2) is False


# --- group admins ------------------------------------------------------------------------


async def test_group_admins_add_list_remove(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.rooms.insert(_room("!g1:x"))
    await tables.rooms.insert(_room("!g2:x", position=2))
    assert await tables.group_admins.add("!g1:x", BOB, 30) is True
    assert await tables.group_admins.add("!g1:x", ALICE, 30) is True  # same time: by user id
    assert await tables.group_admins.add("!g1:x", OWNER, 10) is True
    assert await tables.group_admins.add("!g1:x", BOB, 99) is False  # already one
    assert await tables.group_admins.add("!g2:x", ALICE, 5) is True
    assert await tables.group_admins.of_room("!g1:x") == [OWNER, ALICE, BOB]
    assert await tables.group_admins.of_room("!g2:x") == [ALICE]
    assert await tables.group_admins.of_room("!nothing:x") == []
    assert await tables.group_admins.is_admin("!g1:x", BOB) is True
    assert await tables.group_admins.is_admin("!g2:x", BOB) is False
    assert await tables.group_admins.remove("!g1:x", BOB) is True
    assert await tables.group_admins.remove("!g1:x", BOB) is False
    assert await tables.group_admins.is_admin("!g1:x", BOB) is False
    assert await tables.group_admins.of_room("!g1:x") == [OWNER, ALICE]
    assert await tables.group_admins.of_room("!g2:x") == [ALICE]  # other groups untouched


async def test_group_admins_go_with_their_group(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.rooms.insert(_room("!g1:x"))
    await tables.rooms.insert(_room("!g2:x", position=2))
    await tables.group_admins.add("!g1:x", ALICE, 1)
    await tables.group_admins.add("!g2:x", ALICE, 1)
    await tables.rooms.delete("!g1:x")  # `group remove`
    assert await tables.group_admins.of_room("!g1:x") == []
    assert await tables.group_admins.of_room("!g2:x") == [ALICE]
    # a group that comes back (adopted again) starts without admins
    await tables.rooms.insert(_room("!g1:x", position=3))
    assert await tables.group_admins.of_room("!g1:x") == []


async def test_group_admin_needs_a_known_room(tables: Tables) -> None:
    with pytest.raises(Exception):  # noqa: B017  (sqlite3 and asyncpg raise their own)
        await tables.group_admins.add("!missing:x", ALICE, 1)
    assert await tables.group_admins.of_room("!missing:x") == []


# --- owner transfer: one transaction over two tables -----------------------------------


async def _owned_by_owner(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.admins.put(SPACE, OWNER, AdminRole.OWNER, 10)
    await tables.admins.put(SPACE, ALICE, AdminRole.ADMIN, 20)


async def _transfer(tables: Tables, old: str, new: str) -> None:
    assert await tables.communities.replace_owner(SPACE, old, new) is True
    await tables.admins.put(SPACE, old, AdminRole.ADMIN, 30)
    await tables.admins.put(SPACE, new, AdminRole.OWNER, 30)


async def test_replace_owner(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.communities.insert(_community(OTHER, "Other"))
    assert await tables.communities.replace_owner(SPACE, OWNER, ALICE) is True
    assert await tables.communities.get(SPACE) == _community(owner=ALICE)
    assert await tables.communities.get(OTHER) == _community(OTHER, "Other")
    # a second transfer from the same, now stale, owner changes nothing
    assert await tables.communities.replace_owner(SPACE, OWNER, BOB) is False
    assert await tables.communities.get(SPACE) == _community(owner=ALICE)
    assert await tables.communities.replace_owner("!nothing:x", OWNER, BOB) is False


async def test_transaction_commits_every_table(tables: Tables) -> None:
    await _owned_by_owner(tables)
    async with tables.transaction():
        await _transfer(tables, OWNER, ALICE)
    got = await tables.communities.get(SPACE)
    assert got is not None and got.owner == ALICE
    assert await tables.admins.roles(SPACE) == {OWNER: AdminRole.ADMIN, ALICE: AdminRole.OWNER}


async def test_transaction_rolls_back_every_table(tables: Tables) -> None:
    await _owned_by_owner(tables)

    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted):
        async with tables.transaction():
            await _transfer(tables, OWNER, ALICE)
            raise Interrupted
    got = await tables.communities.get(SPACE)
    assert got is not None and got.owner == OWNER
    assert await tables.admins.roles(SPACE) == {OWNER: AdminRole.OWNER, ALICE: AdminRole.ADMIN}


async def test_transaction_rolls_back_when_a_query_fails(tables: Tables) -> None:
    await _owned_by_owner(tables)
    with pytest.raises(Exception):  # noqa: B017  (sqlite3 and asyncpg raise their own)
        async with tables.transaction():
            assert await tables.communities.replace_owner(SPACE, OWNER, ALICE)
            await tables.rooms.insert(_room("!orphan:x", space_id="!missing:x"))
    got = await tables.communities.get(SPACE)
    assert got is not None and got.owner == OWNER


async def test_join_requests_are_kept_until_settled(tables: Tables) -> None:
    from communities_appservice.db.join_request import JoinRequest

    await tables.communities.insert(_community())
    await tables.join_requests.put(JoinRequest(SPACE, "@b:x", SPACE, "second", 2))
    await tables.join_requests.put(JoinRequest(SPACE, "@a:x", SPACE, "first", 1))
    await tables.join_requests.put(JoinRequest(SPACE, "@a:x", SPACE, "again", 3))
    pending = await tables.join_requests.of_community(SPACE)
    assert [(r.user_id, r.reason, r.requested_at) for r in pending] == [
        ("@a:x", "again", 1),
        ("@b:x", "second", 2),
    ]
    assert await tables.join_requests.delete(SPACE, "@a:x") is True
    assert await tables.join_requests.delete(SPACE, "@a:x") is False
    assert await tables.join_requests.get(SPACE, "@a:x") is None
    assert (await tables.join_requests.get(SPACE, "@b:x")) is not None


async def test_texts_welcomed_and_dms(tables: Tables) -> None:
    await tables.communities.insert(_community())
    assert await tables.texts.get(SPACE, "rules") is None
    await tables.texts.put(SPACE, "rules", "Be kind", "$e1")
    await tables.texts.put(SPACE, "rules", "Be kinder", "$e2")
    assert await tables.texts.get(SPACE, "rules") == ("Be kinder", "$e2")
    assert await tables.welcomed.claim(SPACE, "@a:x", 1) is True
    assert await tables.welcomed.claim(SPACE, "@a:x", 2) is False
    assert await tables.bot_dms.get("@a:x") is None
    await tables.bot_dms.put("@a:x", "!dm:x")
    assert await tables.bot_dms.get("@a:x") == "!dm:x"


async def test_group_suggestions(tables: Tables) -> None:
    await tables.communities.insert(_community())
    first = await tables.suggestions.add(SPACE, "@a:x", "Chess", "", 1)
    second = await tables.suggestions.add(SPACE, "@b:x", "Poker", "!room:x", 2)
    assert second > first
    assert [s.name for s in await tables.suggestions.pending(SPACE)] == ["Chess", "Poker"]
    await tables.suggestions.decide(first, "accepted")
    assert [s.id for s in await tables.suggestions.pending(SPACE)] == [second]
    found = await tables.suggestions.get(SPACE, first)
    assert found is not None and found.state == "accepted" and found.room_id == ""
    assert await tables.suggestions.get("!other:x", second) is None


# --- operation, operation_step ----------------------------------------------------------------


async def test_operation_recorded_with_params_and_origin(tables: Tables) -> None:
    ops = tables.operations
    op = await ops.add("create", "", OWNER, {"name": "A", "groups": ["x"]}, ("!r", "$e", ""), 5)
    assert op.id > 0 and op.state == "running" and op.attempts == 0
    assert (op.params, op.room_id, op.event_id, op.created_at) == (
        {"name": "A", "groups": ["x"]},
        "!r",
        "$e",
        5,
    )
    second = await ops.add("admin add", SPACE, OWNER, {}, ("", "", ""), 6)
    assert second.id > op.id
    assert [o.id for o in await ops.running()] == [op.id, second.id]
    assert await ops.running_in(SPACE) == 1
    await ops.set_space(op.id, SPACE)
    await ops.attempt(op.id, 7)
    await ops.finish(second.id, "undoing", "refused", 8)
    assert await ops.running_in(SPACE) == 2  # an operation being undone is not over yet
    await ops.finish(op.id, "done", "Created A.", 9)
    got = await ops.get(op.id)
    assert got is not None
    assert (got.space_id, got.state, got.outcome, got.attempts, got.updated_at) == (
        SPACE,
        "done",
        "Created A.",
        1,
        9,
    )
    assert [o.id for o in await ops.running()] == [second.id]
    assert await ops.get(10_000) is None


async def test_operation_steps_keep_the_first_result(tables: Tables) -> None:
    ops = tables.operations
    op = await ops.add("create", "", OWNER, {}, ("", "", ""), 1)
    await ops.save_step(op.id, "room:space", "!one", 2)
    await ops.save_step(op.id, "room:space", "!two", 3)  # a replayed step changes nothing
    await ops.save_step(op.id, "rooms", ["!a", "!b"], 3)
    await ops.save_step(op.id, "nothing", None, 3)
    assert await ops.steps(op.id) == {"room:space": "!one", "rooms": ["!a", "!b"], "nothing": None}


# --- community_problem -------------------------------------------------------------------


async def test_problems_kept_until_deleted_and_gone_with_the_community(tables: Tables) -> None:
    await tables.communities.insert(_community())
    problems = tables.problems
    assert await problems.of(SPACE) == {}
    await problems.put(SPACE, "gone !b", "The bot was removed from B.", 2)
    await problems.put(SPACE, "admins", "Too many admins.", 1)
    await problems.put(SPACE, "gone !b", "The bot was removed from Bee.", 3)  # reworded
    assert await problems.of(SPACE) == {
        "admins": "Too many admins.",
        "gone !b": "The bot was removed from Bee.",
    }
    await problems.delete(SPACE, "admins")
    assert list(await problems.of(SPACE)) == ["gone !b"]
    await tables.communities.delete(SPACE)
    assert await problems.of(SPACE) == {}


async def test_parked_events_wait_oldest_first_and_are_let_go(tables: Tables) -> None:
    def encrypted(event_id: str) -> dict[str, object]:
        return {"event_id": event_id, "room_id": SPACE, "type": "m.room.encrypted"}

    await tables.parked.park(encrypted("$later"), "session-b", 2_000)
    await tables.parked.park(encrypted("$first"), "session-a", 1_000)
    await tables.parked.park(encrypted("$first"), "session-a", 3_000)  # parked once
    waiting = await tables.parked.oldest(10)
    assert [(p.event_id, p.session_id, p.parked_at) for p in waiting] == [
        ("$first", "session-a", 1_000),
        ("$later", "session-b", 2_000),
    ]
    assert waiting[0].event == encrypted("$first") and not waiting[0].running
    await tables.parked.set_running("$first", True)  # type: ignore[arg-type]
    assert [p.running for p in await tables.parked.oldest(1)] == [True]
    assert await tables.parked.delete("$first")  # type: ignore[arg-type]
    assert not await tables.parked.holds("$first")  # type: ignore[arg-type]
    assert await tables.parked.holds("$later")  # type: ignore[arg-type]
    assert await tables.parked.count() == 1
