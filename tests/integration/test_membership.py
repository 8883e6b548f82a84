"""Membership like WhatsApp, and surviving a restart of the appservice."""

from __future__ import annotations

import asyncio

from .harness import FailingProxy, Stack, User, eventually
from .test_groups_and_admins import joined_community


async def test_leaving_the_space_leaves_announcements_and_groups(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Leavers")
    dm, space, ann = rooms["dm"], rooms["space"], rooms["announcements"]
    await owner.command(dm, "group create Football")
    assert stack.app is not None
    [group] = await stack.app.tables.rooms.of_community(space, "group")
    # Another community's group, which the member also joined, must not be touched.
    other_owner, other = await joined_community(stack, "Elsewhere")
    await other_owner.command(other["dm"], "group create Chess")
    [chess] = await stack.app.tables.rooms.of_community(other["space"], "group")

    member = await stack.user("member")
    await member.join(space)
    await stack.wait_membership(ann, member.user_id, "invite")
    await member.join(ann)
    await member.join(group.room_id)
    await member.join(other["space"])
    await member.join(chess.room_id)
    assert await stack.app.tables.members.is_member(space, member.user_id)

    await member.client.leave_room(space)  # type: ignore[arg-type]
    await stack.wait_membership(ann, member.user_id, "leave")
    await stack.wait_membership(group.room_id, member.user_id, "leave")
    assert await stack.membership(chess.room_id, member.user_id) == "join"
    assert await stack.membership(other["space"], member.user_id) == "join"
    assert not await stack.app.tables.members.is_member(space, member.user_id)


async def test_a_burst_of_joins_and_leaves_ends_with_every_record_right(stack: Stack) -> None:
    """Joins of different people are handled side by side; someone who joins and leaves at
    once ends up out, in that order, whatever the others do meanwhile."""
    _, rooms = await joined_community(stack, "Burst")
    space, ann = rooms["space"], rooms["announcements"]
    stayers = [await stack.user("stayer") for _ in range(8)]
    leavers = [await stack.user("leaver") for _ in range(4)]

    async def join_and_leave(leaver: User) -> None:
        await leaver.join(space)
        await leaver.client.leave_room(space)  # type: ignore[arg-type]

    await asyncio.gather(*(s.join(space) for s in stayers), *map(join_and_leave, leavers))
    for stayer in stayers:
        await stack.wait_membership(ann, stayer.user_id, "invite")
    await stack.idle()
    assert stack.app is not None
    members = stack.app.tables.members
    for stayer in stayers:
        assert await members.is_member(space, stayer.user_id)
    for leaver in leavers:
        assert not await members.is_member(space, leaver.user_id)
        assert await stack.membership(ann, leaver.user_id) == "leave"  # invited, then not


async def test_leaving_keeps_groups_when_configured(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Keepers")
    await owner.command(rooms["dm"], "group create Stay")
    assert stack.app is not None
    [group] = await stack.app.tables.rooms.of_community(rooms["space"], "group")
    member = await stack.user("member")
    await member.join(rooms["space"])
    await member.join(group.room_id)
    await stack.wait_membership(rooms["announcements"], member.user_id, "invite")
    await stack.restart_app(leave_space_leaves_groups=False)
    try:
        await member.client.leave_room(rooms["space"])  # type: ignore[arg-type]
        await stack.wait_membership(rooms["announcements"], member.user_id, "leave")
        await stack.idle()
        assert await stack.membership(group.room_id, member.user_id) == "join"
    finally:
        await stack.restart_app(leave_space_leaves_groups=True)


async def test_joining_a_group_makes_a_member(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Joiners")
    await owner.command(rooms["dm"], "group create Private --private")
    assert stack.app is not None
    [group] = await stack.app.tables.rooms.of_community(rooms["space"], "group")
    newcomer = await stack.user("newcomer")
    await owner.join(group.room_id)
    await owner.client.invite_user(group.room_id, newcomer.user_id)  # type: ignore[arg-type]
    await newcomer.join(group.room_id)
    await stack.wait_membership(rooms["space"], newcomer.user_id, "invite")
    await stack.wait_membership(rooms["announcements"], newcomer.user_id, "invite")


async def test_bot_declines_invites_from_users_without_permission(stack: Stack) -> None:
    outsider, insider = await stack.user("outsider"), await stack.user("insider")
    await stack.restart_app(
        permissions={"*": "member", "localhost": "creator", outsider.user_id: "none"}
    )
    try:
        refused = await outsider.client.create_room(invitees=[stack.bot])  # type: ignore[list-item]
        accepted = await insider.client.create_room(invitees=[stack.bot])  # type: ignore[list-item]
        await stack.wait_membership(str(refused), stack.bot, "leave")
        await stack.wait_membership(str(accepted), stack.bot, "join")
    finally:
        await stack.restart_app()


async def test_everything_still_works_after_a_restart(stack: Stack) -> None:
    owner, rooms = await joined_community(stack, "Durable")
    await owner.command(rooms["dm"], "group create Before")
    await stack.restart_app()
    reply = await owner.command(rooms["dm"], "group create After")
    assert "Created group After" in reply["body"], reply
    info = await owner.command(rooms["dm"], "info")
    assert "Before, After" in info["body"], info
    member = await stack.user("member")
    await member.join(rooms["space"])
    await stack.wait_membership(rooms["announcements"], member.user_id, "invite")
    reply = await owner.command(rooms["dm"], f"admin add {member.user_id}")
    assert "is now an admin" in reply["body"], reply


async def test_a_group_member_who_declines_the_community_is_swept_out(stack: Stack) -> None:
    """Drift no event repairs: invited into a private group, the newcomer declines the
    space's invitation. Reconciliation's member sweep (one member list per pass, in turn)
    finds them in the group though not in the community, and removes them."""
    owner, rooms = await joined_community(stack, "Decliners")
    await owner.command(rooms["dm"], "group create Hidden --private")
    assert stack.app is not None and stack.app.reconciler is not None
    [group] = await stack.app.tables.rooms.of_community(rooms["space"], "group")
    newcomer = await stack.user("newcomer")
    await owner.join(group.room_id)
    await owner.client.invite_user(group.room_id, newcomer.user_id)  # type: ignore[arg-type]
    await newcomer.join(group.room_id)
    await stack.wait_membership(rooms["space"], newcomer.user_id, "invite")
    await newcomer.client.leave_room(rooms["space"])  # type: ignore[arg-type]
    await stack.wait_membership(rooms["space"], newcomer.user_id, "leave")
    # No event removes them; the service's own sweep may already (it runs in the background).

    community = await stack.app.tables.communities.get(rooms["space"])
    assert community is not None
    reconciler = stack.app.reconciler

    async def swept_out() -> bool:
        # Each pass reads the next list: the space's, the announcement room's, the group's
        # (a pass of the service's own may take a turn in between).
        await reconciler.community(community)
        return await stack.membership(group.room_id, newcomer.user_id) == "leave"

    await eventually(swept_out, "a pass to sweep the group", 60, 0)
    assert await stack.membership(rooms["space"], owner.user_id) == "join"


async def test_an_invitation_lost_to_a_failing_homeserver_is_retried(stack: Stack) -> None:
    """The homeserver answers 502 to the bot's invitations for a while (a proxy in front of
    it does): a member who joins the space meanwhile is invited to the announcements once
    it works again, and the event is retried, not lost."""
    owner, rooms = await joined_community(stack, "Outage")
    proxy = FailingProxy(stack.synapse.base_url, stack.http)
    await proxy.start()
    stack.homeserver_address = proxy.url
    try:
        await stack.restart_app()
        assert stack.app is not None and stack.app.gateway is not None
        # The client library's own retries (about a minute) are not what is tested here.
        stack.app.gateway.client.api.default_retry_count = 0
        tables = stack.app.tables
        proxy.failing = lambda method, path: method == "POST" and path.endswith("/invite")
        member = await stack.user("member")
        await member.join(rooms["space"])

        async def retrying() -> bool:
            return any(item.retrying for item in await tables.inbox.pending())

        await eventually(retrying, "the join to be kept for a retry")
        assert await stack.membership(rooms["announcements"], member.user_id) is None
        proxy.failing = lambda method, path: False
        await stack.wait_membership(rooms["announcements"], member.user_id, "invite")
        assert any(path.endswith("/invite") for _, path in proxy.refused)
    finally:
        proxy.failing = lambda method, path: False
        stack.homeserver_address = None
        await stack.restart_app()
        await proxy.stop()
