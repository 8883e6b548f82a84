"""Member lists of new sessions: asked once, then the stored list, unless a member event
came while it was asked, or the bot left."""

from __future__ import annotations

from typing import Any, cast

from mautrix.types import (
    EventID,
    EventType,
    Member,
    Membership,
    MemberStateEventContent,
    RoomID,
    StateEvent,
    UserID,
)

from communities_appservice.matrix.members import MemberLists

ROOM = RoomID("!room:hs")
BOT = UserID("@bot:hs")


class State:
    """The part of the state store member lists use."""

    def __init__(self) -> None:
        self.members: dict[UserID, Membership] = {}

    async def set_members(self, room: RoomID, members: dict[UserID, Member]) -> None:
        self.members = {u: m.membership for u, m in members.items()}

    async def get_members(self, room: RoomID, memberships: tuple[Membership, ...]) -> list[UserID]:
        return [u for u, m in self.members.items() if m in memberships]


def member_event(user: str, membership: Membership) -> StateEvent:
    return StateEvent(
        type=EventType.ROOM_MEMBER,
        room_id=ROOM,
        event_id=EventID("$e"),
        sender=UserID(user),
        state_key=user,
        timestamp=0,
        content=MemberStateEventContent(membership=membership),
    )


class Homeserver:
    def __init__(self, lists: MemberLists | None = None) -> None:
        self.asked = 0
        self.lists = lists  # sees a member event while it answers, when set

    async def members(self) -> dict[UserID, str]:
        self.asked += 1
        if self.lists is not None:
            self.lists.seen(member_event("@late:hs", Membership.JOIN))
        return {BOT: "join", UserID("@a:hs"): "join", UserID("@b:hs"): "invite"}


def lists_of(state: State) -> MemberLists:
    return MemberLists(cast(Any, state), BOT)


async def test_asked_once_then_the_stored_list_as_member_events_keep_it() -> None:
    state = State()
    lists, hs = lists_of(state), Homeserver()
    assert sorted(await lists.of(ROOM, hs.members)) == [UserID("@a:hs"), UserID("@b:hs"), BOT]
    state.members[UserID("@b:hs")] = Membership.LEAVE  # the store, kept by a leave
    lists.seen(member_event("@b:hs", Membership.LEAVE))
    assert sorted(await lists.of(ROOM, hs.members)) == [UserID("@a:hs"), BOT]
    assert hs.asked == 1


async def test_a_member_event_during_the_question_has_it_asked_again() -> None:
    lists = lists_of(State())
    hs = Homeserver(lists)
    await lists.of(ROOM, hs.members)
    hs.lists = None
    await lists.of(ROOM, hs.members)
    await lists.of(ROOM, hs.members)
    assert hs.asked == 2


async def test_once_the_bot_is_out_the_list_is_asked_again() -> None:
    lists, hs = lists_of(State()), Homeserver()
    await lists.of(ROOM, hs.members)
    lists.seen(member_event(BOT, Membership.LEAVE))
    lists.seen(member_event(BOT, Membership.JOIN))
    await lists.of(ROOM, hs.members)
    assert hs.asked == 2
