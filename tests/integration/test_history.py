"""Announcement history for newcomers (MSC4268) against the real Synapse: a member who joins
after three announcements (two by an admin's E2EE client, one by the bot) reads all three
with the key bundle the bot sent at the invitation; a group's history is never shared; with
`encryption.share_announcement_history: false` nothing is."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
from mautrix.types import RoomID
from nio import MegolmEvent, RoomMessageText

from .e2ee import E2EEUser
from .harness import Stack, eventually
from .msc4268 import BUNDLE_TYPES, BundleInbox, cross_sign, history, mark_keys_shared
from .test_announcements import encrypted_community


async def newcomer(stack: Stack, prefix: str) -> tuple[E2EEUser, BundleInbox]:
    """A new person with a cross-signed device that keeps the bundles it receives."""
    person = await stack.e2ee_person(prefix)  # type: ignore[attr-defined]
    await cross_sign(stack.http, person)
    return person, BundleInbox(person)


def bodies(events: list[RoomMessageText | MegolmEvent]) -> list[str]:
    return [e.body for e in events if isinstance(e, RoomMessageText)]


async def test_a_newcomer_reads_the_announcements_posted_before_they_came(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, _, rooms = await encrypted_community(stack, "Historians", ["Kids"])
    assert stack.app is not None and stack.app.crypto is not None
    crypto = stack.app.crypto
    announcements = rooms["announcements"]
    mark_keys_shared(owner)
    mark = secrets.token_hex(3)
    await owner.send(announcements, f"First {mark}")
    ack = await owner.reply_to(
        await owner.send(rooms["admins"], f"!community announce Second {mark}")
    )
    assert ack.body.startswith("Announced"), ack.body
    await owner.send(announcements, f"Third {mark}")
    owners_session = owner.outbound_session(announcements)

    async def recorded() -> bool:
        return owners_session in await crypto.history.shareable(RoomID(announcements))

    await eventually(recorded, "the bot to record the admin's shareable key")
    kids = rooms["groups"]["Kids"]
    await owner.send(kids, f"Before you came {mark}")
    seen = await owner.reply_to(await owner.send(kids, "!community group list"))
    assert seen.decrypted  # the bot holds the admin's key of the group, marked too
    assert await crypto.history.shareable(RoomID(kids)) == []

    late, inbox = await newcomer(stack, "late")
    await late.join(rooms["space"])
    await late.wait(
        lambda: {b["type"] for b in inbox.of_room(announcements)} == set(BUNDLE_TYPES),
        "the key bundle of the announcement room, in both event types",
    )
    bundle = inbox.of_room(announcements)[0]
    assert bundle["sender"] == stack.bot
    assert bundle["sender_device_keys"]["user_id"] == stack.bot
    assert await inbox.import_bundle(stack.http, bundle) >= 2
    await late.join(announcements)
    read = bodies(await history(stack.http, late, announcements))
    for text in (f"First {mark}", f"Second {mark}", f"Third {mark}"):
        assert any(text in body for body in read), (text, read)

    # A group's earlier messages stay unreadable: the bot shares no group's history.
    await late.join(kids)
    answer = await late.reply_to(await late.send(kids, "!community group list"))
    assert answer.decrypted  # every room key sent to this device before it has arrived
    assert inbox.of_room(kids) == []
    earlier = await history(stack.http, late, kids)
    assert not any(f"Before you came {mark}" in body for body in bodies(earlier))
    assert any(isinstance(e, MegolmEvent) for e in earlier)


async def test_with_sharing_turned_off_a_newcomer_gets_no_history(
    stack: Stack, people: list[E2EEUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, _, rooms = await encrypted_community(stack, "Forgetters", ["Only"])
    assert stack.app is not None and stack.app.service is not None
    service = stack.app.service
    config = service.config
    off = dataclasses.replace(
        config, encryption=dataclasses.replace(config.encryption, share_announcement_history=False)
    )
    monkeypatch.setattr(service, "config", off)
    announcements = rooms["announcements"]
    mark = secrets.token_hex(3)
    ack = await owner.reply_to(await owner.send(rooms["admins"], f"!community announce Old {mark}"))
    assert ack.body.startswith("Announced"), ack.body

    late, inbox = await newcomer(stack, "unshared")
    await late.join(rooms["space"])
    await late.wait(lambda: announcements in late.client.invited_rooms, "the announcements invite")
    await late.join(announcements)
    await stack.idle()  # the invitation and the join handled
    ack = await owner.reply_to(await owner.send(rooms["admins"], f"!community announce New {mark}"))
    assert ack.body.startswith("Announced"), ack.body
    new = await late.text_in(announcements, f"New {mark}")
    assert new.decrypted  # every room key sent to this device before it has arrived
    assert inbox.bundles == []
    assert not any(
        f"Old {mark}" in body for body in bodies(await history(stack.http, late, announcements))
    )
