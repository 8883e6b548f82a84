"""The encryption's start-up: an outage is waited out, a refusal is not; cross-signing keys are
never replaced silently, nor behind a homeserver's interactive auth."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import AsyncMock

import pytest
from mautrix.client import Client
from mautrix.errors import MatrixRequestError, MatrixStandardRequestError, MUnknown
from mautrix.types import UserID

from communities_appservice.db import create_database
from communities_appservice.matrix import crypto as crypto_module
from communities_appservice.matrix.crypto import BotCrypto

BOT = UserID("@communities:example.org")


@pytest.fixture
async def bot_crypto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BotCrypto]:
    db = create_database(f"sqlite:{tmp_path / 'crypto.db'}")
    made = BotCrypto(
        Client(mxid=BOT, base_url="http://127.0.0.1:9"), db, "pickle", appservice_mode=True
    )
    # The stores are not what these tests are about: opening them does nothing here.
    monkeypatch.setattr(made.crypto_db, "start", AsyncMock())
    monkeypatch.setattr(made.state_db, "start", AsyncMock())
    monkeypatch.setattr(made.store, "open", AsyncMock())
    monkeypatch.setattr(crypto_module, "migrate", AsyncMock())
    monkeypatch.setattr(made.machine, "forget_outbound_sessions", AsyncMock())
    monkeypatch.setattr(crypto_module.asyncio, "sleep", AsyncMock())
    yield made
    await made.client.api.session.close()


def failure(status: int) -> MatrixRequestError:
    return MUnknown(status, "failed")


async def test_set_up_is_retried_while_the_homeserver_fails(
    bot_crypto: BotCrypto, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_up = AsyncMock(side_effect=[failure(502), failure(429), None])
    monkeypatch.setattr(bot_crypto, "_set_up", set_up)
    await bot_crypto.start()
    assert set_up.await_count == 3


async def test_a_refusal_fails_the_start(
    bot_crypto: BotCrypto, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_up = AsyncMock(side_effect=failure(403))
    monkeypatch.setattr(bot_crypto, "_set_up", set_up)
    with pytest.raises(MatrixRequestError):
        await bot_crypto.start()
    assert set_up.await_count == 1


async def test_a_retried_set_up_uses_the_device_the_first_attempt_made(
    bot_crypto: BotCrypto, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    async def ensure_device(device_id: str) -> None:
        asked.append(device_id)
        bot_crypto.client.device_id = device_id or "NEWDEVICE"  # type: ignore[assignment]

    monkeypatch.setattr(bot_crypto, "_ensure_device", ensure_device)
    monkeypatch.setattr(bot_crypto.store, "get_device_id", AsyncMock(return_value=None))
    monkeypatch.setattr(bot_crypto.store, "put_device_id", AsyncMock())
    monkeypatch.setattr(bot_crypto.machine, "load", AsyncMock())
    monkeypatch.setattr(
        bot_crypto.machine, "share_keys", AsyncMock(side_effect=[failure(504), None])
    )
    monkeypatch.setattr(bot_crypto, "_cross_sign", AsyncMock())
    await bot_crypto.start()
    assert asked == ["", "NEWDEVICE"]


async def test_cross_signing_behind_interactive_auth_is_left_and_said(
    bot_crypto: BotCrypto, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        bot_crypto, "_device_is_cross_signed", AsyncMock(return_value=(False, True))
    )
    uia = MatrixStandardRequestError(401, "auth needed")
    generate = AsyncMock(side_effect=uia)
    monkeypatch.setattr(bot_crypto.machine, "generate_recovery_key", generate)
    with caplog.at_level(logging.INFO, "communities.crypto"):
        await bot_crypto._cross_sign()
    [said] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "interactive authentication" in said.getMessage()
    assert "_allow_cross_signing_replacement_without_uia" in said.getMessage()


async def test_replacing_a_known_identity_is_a_warning(
    bot_crypto: BotCrypto, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        bot_crypto, "_device_is_cross_signed", AsyncMock(return_value=(False, True))
    )
    monkeypatch.setattr(bot_crypto.machine, "generate_recovery_key", AsyncMock(return_value="k"))
    with caplog.at_level(logging.INFO, "communities.crypto"):
        await bot_crypto._cross_sign()
    [said] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "replaced the bot's cross-signing identity" in said.getMessage()
