"""Invite links: alias format, the QR code's content, the `invite_link` table, and `Links`
through a recording gateway on a real database (SQLite, and PostgreSQL in its own pass)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import zxingcpp
from mautrix.types import RoomID
from PIL import Image

from communities_appservice import config
from communities_appservice.commands.links import link_reply
from communities_appservice.core.service import Service
from communities_appservice.db import Tables
from communities_appservice.db.community import Community
from communities_appservice.db.invite_link import InviteLink
from communities_appservice.errors import Forbidden
from communities_appservice.features.links import Link, Links, is_link_alias, new_alias, qr_png

from ..recording import RecordingGateway

SPACE = "!space:example.org"
OWNER = "@owner:example.org"
CONFIG = config.parse(
    {
        "homeserver": {"address": "http://127.0.0.1:8008", "domain": "example.org"},
        "appservice": {"as_token": "AS", "hs_token": "HS"},
    },
    env={},
)


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in a PNG."""
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(barcode.text)


# --- pure parts ----------------------------------------------------------------------------


def test_new_alias_is_in_our_namespace() -> None:
    alias = new_alias("communities_", "example.org")
    assert re.fullmatch(r"#communities_[a-z0-9]{8}:example\.org", alias), alias
    assert is_link_alias(alias, "communities_", "example.org")


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("Parents Berlin", "parents-berlin"),
        ("École Saint-Jean — CM2", "école-saint-jean-cm2"),
        ("הורים תל אביב", "הורים-תל-אביב"),
        ("北京家长会", "北京家长会"),
        ("Lagos Chapter 🇳🇬", "lagos-chapter"),
    ],
)
def test_a_link_says_what_it_is_for(name: str, readable: str) -> None:
    alias = new_alias("communities_", "example.org", name)
    assert re.fullmatch(rf"#communities_{re.escape(readable)}-[a-z0-9]{{4}}:example\.org", alias)
    assert is_link_alias(alias, "communities_", "example.org")


def test_new_aliases_differ() -> None:
    assert len({new_alias("c_", "example.org") for _ in range(50)}) == 50


@pytest.mark.parametrize(
    "alias",
    [
        "#communities_abcd123:example.org",  # 7 characters
        "#communities_abcd12345:example.org",  # 9 characters
        "#communities_ABCD1234:example.org",  # upper case
        "#other_abcd1234:example.org",
        "#communities_abcd1234:example.com",
    ],
)
def test_is_link_alias_rejects(alias: str) -> None:
    assert not is_link_alias(alias, "communities_", "example.org")


@pytest.mark.parametrize(
    "text",
    [
        "https://matrix.to/#/#communities_abcd1234:example.org",
        "https://matrix.to/#/#communities_zz99zz99:matrix.example.com:8448",
    ],
)
def test_qr_png_encodes_exactly_the_link(text: str) -> None:
    image = qr_png(text)
    assert image.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode_qr(image.png) == text
    assert Image.open(io.BytesIO(image.png)).size == (image.width, image.height)


def test_link_reply_escapes_and_links() -> None:
    made = Link("#communities_abcd1234:example.org", created=True)
    reply = link_reply("Parents <&> co", made, reset=False)
    url = "https://matrix.to/#/#communities_abcd1234:example.org"
    assert reply.plain == f"Invite link to Parents <&> co: {url}"
    assert "Parents &lt;&amp;&gt; co" in reply.html
    assert f'<a href="{url}">{url}</a>' in reply.html
    reset = link_reply("P", made, reset=True)
    assert reset.plain.endswith("The old link no longer works.")


# --- the table and the use cases -------------------------------------------------------------


def _community(join_mode: str = "open") -> Community:
    return Community(SPACE, "Parents", "", join_mode, OWNER, "active", "12", 1)


async def test_invite_link_table(tables: Tables) -> None:
    await tables.communities.insert(_community())
    assert await tables.invite_links.get(SPACE) is None
    await tables.invite_links.put(InviteLink(SPACE, "#a:x", 1))
    assert await tables.invite_links.get(SPACE) == InviteLink(SPACE, "#a:x", 1)
    await tables.invite_links.put(InviteLink(SPACE, "#b:x", 2))
    assert await tables.invite_links.get(SPACE) == InviteLink(SPACE, "#b:x", 2)
    await tables.invite_links.delete(SPACE)
    assert await tables.invite_links.get(SPACE) is None


async def test_invite_link_goes_with_its_community(tables: Tables) -> None:
    await tables.communities.insert(_community())
    await tables.invite_links.put(InviteLink(SPACE, "#a:x", 1))
    await tables.db.execute("DELETE FROM community WHERE space_id=$1", SPACE)
    assert await tables.invite_links.get(SPACE) is None


@pytest.fixture
async def links(tables: Tables) -> tuple[Links, RecordingGateway]:
    gateway = RecordingGateway("@communities:example.org", "example.org")
    service = Service(CONFIG, tables, gateway)
    return Links(service), gateway


async def _actions(tables: Tables) -> list[str]:
    return [e.action for e in reversed(await tables.audit.recent(SPACE, 10))]


async def test_link_is_made_once_and_reused(
    tables: Tables, links: tuple[Links, RecordingGateway]
) -> None:
    use, gateway = links
    await tables.communities.insert(_community())
    first = await use.link(_community(), OWNER)
    assert first.created and is_link_alias(first.alias, "communities_", "example.org")
    assert gateway.aliases == {first.alias: SPACE}
    again = await use.link(_community(), OWNER)
    assert again == Link(first.alias, created=False)
    assert await _actions(tables) == ["link create"]


async def test_link_replaces_an_alias_that_stopped_resolving(
    tables: Tables, links: tuple[Links, RecordingGateway]
) -> None:
    use, gateway = links
    await tables.communities.insert(_community())
    first = await use.link(_community(), OWNER)
    gateway.aliases.clear()  # e.g. a homeserver admin deleted it
    second = await use.link(_community(), OWNER)
    assert second.created and second.alias != first.alias
    assert gateway.aliases == {second.alias: SPACE}


async def test_reset_deletes_the_old_alias(
    tables: Tables, links: tuple[Links, RecordingGateway]
) -> None:
    use, gateway = links
    await tables.communities.insert(_community("approval"))
    first = await use.link(_community("approval"), OWNER)
    second = await use.reset(_community("approval"), OWNER)
    assert second.alias != first.alias
    assert gateway.aliases == {second.alias: SPACE}
    stored = await tables.invite_links.get(SPACE)
    assert stored is not None and stored.alias == second.alias
    assert await _actions(tables) == ["link create", "link reset"]


async def test_taken_aliases_are_skipped(
    tables: Tables, links: tuple[Links, RecordingGateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    use, gateway = links
    await tables.communities.insert(_community())
    candidates = iter(["#communities_taken000:example.org", "#communities_free0000:example.org"])
    gateway.aliases["#communities_taken000:example.org"] = RoomID("!other:example.org")
    monkeypatch.setattr(
        "communities_appservice.features.links.new_alias", lambda *_: next(candidates)
    )
    made = await use.link(_community(), OWNER)
    assert made.alias == "#communities_free0000:example.org"


@pytest.mark.parametrize("reset", [False, True])
async def test_invite_mode_is_refused_and_nothing_made(
    tables: Tables, links: tuple[Links, RecordingGateway], reset: bool
) -> None:
    use, gateway = links
    await tables.communities.insert(_community("invite"))
    with pytest.raises(Forbidden, match="join approval.*join open"):
        await (use.reset if reset else use.link)(_community("invite"), OWNER)
    assert gateway.aliases == {}
    assert await tables.invite_links.get(SPACE) is None


async def test_upload_qr(tables: Tables, links: tuple[Links, RecordingGateway]) -> None:
    use, gateway = links
    made = Link("#communities_abcd1234:example.org", created=True)
    content = await use.upload_qr(made, "!dm:example.org")
    [(png, mimetype, filename)] = gateway.uploads
    assert decode_qr(png) == made.url
    assert (mimetype, filename) == ("image/png", "invite-link.png")
    assert content["msgtype"] == "m.image" and content["body"] == filename
    assert content["url"] == "mxc://example.org/media1"
    info: Any = content["info"]
    assert info["mimetype"] == "image/png" and info["size"] == len(png)
    assert (info["w"], info["h"]) == Image.open(io.BytesIO(png)).size
