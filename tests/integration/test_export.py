"""export against the real Synapse: an admin asks in a group, the archive arrives in the
admins room as an encrypted file, and what an E2EE client downloads and decrypts is the
community's records."""

from __future__ import annotations

from communities_appservice.features import export as feature

from .e2ee import E2EEUser
from .harness import Stack, eventually
from .test_announcements import encrypted_community


async def test_the_archive_arrives_encrypted_in_the_admins_room(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner, member, rooms = await encrypted_community(stack, "Archived", ["Kids"])
    space, admins, kids = rooms["space"], rooms["admins"], rooms["groups"]["Kids"]
    assert stack.app is not None
    tables = stack.app.tables

    async def member_recorded() -> bool:
        return await tables.members.is_member(space, member.user_id)

    await eventually(member_recorded, "the member recorded")
    said = (await owner.reply_to(await owner.send(kids, "!community export"))).body
    assert "The archive of Archived is in the admins room" in said, said
    sent = await owner.file_in(admins)
    assert sent.body.startswith("Archived-") and sent.body.endswith(".zip")
    parts = feature.read(await owner.image_bytes(sent))
    assert parts["manifest"]["community"] == space
    assert parts["community"][0]["name"] == "Archived"
    assert member.user_id in {m["user_id"] for m in parts["members"]}
    assert {r["role"] for r in parts["rooms"]} == {"space", "announcements", "group", "admins"}
    assert owner.user_id in {a["user_id"] for a in parts["admins"]}
    assert any(e["action"] for e in parts["audit_log"])
