"""Invite links against the real homeserver: joining and knocking through the alias, reset,
the refusals, and the QR code image the bot uploads and posts."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlparse

import pytest
import zxingcpp
from mautrix.api import Method, Path
from mautrix.errors import MatrixRequestError
from mautrix.types import PaginationDirection, RoomAlias, RoomID
from nio.crypto.attachments import decrypt_attachment
from PIL import Image, UnidentifiedImageError

from communities_appservice.matrix.gateway import matrix_to

from .e2ee import E2EEUser
from .harness import Stack, User, eventually
from .test_community import create


async def _link(stack: Stack, owner: User, dm: str, space: str, words: str = "link") -> str:
    """Run `words`, check the reply shows the stored alias as a link, and return the alias."""
    reply = await owner.command(dm, words)
    assert stack.app is not None
    stored = await stack.app.tables.invite_links.get(space)
    assert stored is not None, reply
    url = matrix_to(stored.alias)
    assert url in reply["body"], reply
    assert f'<a href="{url}">{url}</a>' in reply["formatted_body"], reply
    return stored.alias


async def _resolves(user: User, alias: str) -> str | None:
    """The room the alias points at, or None when the homeserver says M_NOT_FOUND."""
    try:
        result = await user.client.api.request(Method.GET, Path.v3.directory.room[alias])
    except MatrixRequestError as e:
        assert e.errcode == "M_NOT_FOUND", e
        return None
    return str(result["room_id"])


async def test_open_mode_join_by_link_then_announcements_invite(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Linked Open", "--join", "open")
    alias = await _link(stack, owner, rooms["dm"], rooms["space"])
    assert alias == await _link(stack, owner, rooms["dm"], rooms["space"])  # reused

    fresh = await stack.user("fresh")
    info = await fresh.client.resolve_room_alias(RoomAlias(alias))
    assert info.room_id == rooms["space"]
    assert await fresh.client.join_room(RoomAlias(alias)) == rooms["space"]
    await stack.wait_membership(rooms["announcements"], fresh.user_id, "invite")
    assert stack.app is not None
    actions = [e.action for e in await stack.app.tables.audit.recent(rooms["space"], 20)]
    assert actions.count("link create") == 1


async def test_approval_mode_knock_by_link(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Linked Approval", "--join", "approval")
    alias = await _link(stack, owner, rooms["dm"], rooms["space"])
    fresh = await stack.user("knocker")
    await fresh.client.api.request(Method.POST, Path.v3.knock[alias], {"reason": "hi"})
    assert await stack.membership(rooms["space"], fresh.user_id) == "knock"


async def test_reset_kills_the_old_link(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Linked Reset", "--join", "open")
    old = await _link(stack, owner, rooms["dm"], rooms["space"])
    new = await _link(stack, owner, rooms["dm"], rooms["space"], "link reset")
    assert new != old
    fresh = await stack.user("fresh")
    assert await _resolves(fresh, old) is None
    assert await _resolves(fresh, new) == rooms["space"]
    assert stack.app is not None
    [entry] = [
        e
        for e in await stack.app.tables.audit.recent(rooms["space"], 20)
        if e.action == "link reset"
    ]
    assert entry.target == new and old in entry.detail


async def test_invite_mode_refuses_and_makes_nothing(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Linked Invite", "--join", "invite")
    for words in ("link", "link reset", "link --qr"):
        reply = await owner.command(rooms["dm"], words)
        assert "invite-only" in reply["body"] and "join approval" in reply["body"], reply
    assert stack.app is not None
    assert await stack.app.tables.invite_links.get(rooms["space"]) is None


async def _bot_image(stack: Stack, user: User, room_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await user.client.get_messages(
            RoomID(room_id), PaginationDirection.BACKWARD, limit=30
        )
        for event in response.events:
            content = event.content.serialize()
            if event.sender == stack.bot and content.get("msgtype") == "m.image":
                return dict(content)
        return None

    return await eventually(probe, "the bot's QR code image")


async def _download(stack: Stack, user: User, mxc: str) -> bytes:
    parsed = urlparse(mxc)
    url = f"{stack.synapse.base_url}/_matrix/client/v1/media/download/{parsed.netloc}{parsed.path}"
    headers = {"Authorization": f"Bearer {user.client.api.token}"}
    async with stack.http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.read()


async def test_qr_code_image_encodes_the_link(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Linked QR", "--join", "open")
    alias = await _link(stack, owner, rooms["dm"], rooms["space"], "link --qr")
    image = await _bot_image(stack, owner, rooms["dm"])
    png = await _download(stack, owner, image["url"])
    assert image["body"] == "invite-link.png"
    assert image["info"]["mimetype"] == "image/png" and image["info"]["size"] == len(png)
    decoded = Image.open(io.BytesIO(png))
    assert (image["info"]["w"], image["info"]["h"]) == decoded.size
    [barcode] = zxingcpp.read_barcodes(decoded)
    assert barcode.text == matrix_to(alias)


async def test_member_is_refused(stack: Stack) -> None:
    owner = await stack.user("owner")
    rooms = await create(stack, owner, "Linked Members", "--join", "open")
    member = await stack.user("member")
    await member.join(rooms["space"])
    dm = await member.dm_bot()
    reply = await member.command(dm, f"link --community {rooms['space']}")
    assert "Only admins" in reply["body"], reply
    assert stack.app is not None
    assert await stack.app.tables.invite_links.get(rooms["space"]) is None


async def test_qr_code_in_an_encrypted_room_is_an_encrypted_file(
    stack: Stack, people: list[E2EEUser]
) -> None:
    owner = await stack.e2ee_person("owner")  # type: ignore[attr-defined]
    dm = await owner.encrypted_dm(stack.bot)
    created = await owner.reply_to(await owner.send(dm, "!community create Sealed --join open"))
    assert "Created community" in created.body
    link = await owner.reply_to(await owner.send(dm, "!community link --qr"))
    url = link.body.split(": ", 1)[1].split()[0]
    await owner.wait(lambda: bool(owner.images), "the QR code image")
    [image] = owner.images
    assert image.decrypted and image.source["content"].get("url") is None  # no plain upload
    download = await owner.client.download(image.url)
    ciphertext = download.body  # type: ignore[union-attr]
    with pytest.raises(UnidentifiedImageError):  # the homeserver holds only ciphertext
        Image.open(io.BytesIO(ciphertext))
    png = decrypt_attachment(ciphertext, image.key["k"], image.hashes["sha256"], image.iv)
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert barcode.text == url


@pytest.mark.parametrize(
    ("name", "readable"), [("הורים תל אביב", "הורים-תל-אביב"), ("北京家长会", "北京家长会")]
)
async def test_a_link_in_the_communitys_own_script_works(
    stack: Stack, name: str, readable: str
) -> None:
    """The alias carries the name as people write it; joining through it works."""
    owner = await stack.user("owner")
    rooms = await create(stack, owner, name, "--join", "open")
    alias = await _link(stack, owner, rooms["dm"], rooms["space"])
    assert alias.startswith(f"#communities_{readable}-"), alias
    member = await stack.user("member")
    assert await _resolves(member, alias) == rooms["space"]
    await member.client.join_room(alias)  # type: ignore[arg-type]
    await stack.wait_membership(rooms["space"], member.user_id, "join")
