"""Many light E2EE devices: a python-olm account per device with its keys uploaded as any
client uploads them, and the to-device side of receiving room keys (sync, Olm-decrypt).

For tests that need hundreds of recipients of a room key, where a full client per member
would cost seconds each; what a device receives is decrypted and checked for real."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import olm

CLIENT_API = "/_matrix/client/v3"
TO_DEVICE_ONLY = json.dumps(
    {
        "room": {"rooms": []},
        "presence": {"types": []},
        "account_data": {"types": []},
    }
)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class LightDevice:
    base_url: str
    http: aiohttp.ClientSession
    user_id: str
    token: str
    device_id: str = ""
    account: olm.Account = field(default_factory=olm.Account)
    since: str = ""
    room_keys: list[dict[str, Any]] = field(default_factory=list)  # decrypted m.room_key events
    sessions: dict[str, olm.InboundSession] = field(default_factory=dict)  # by sender key

    @property
    def curve25519(self) -> str:
        return str(self.account.identity_keys["curve25519"])

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **query: str
    ) -> dict[str, Any]:
        async with self.http.request(
            method,
            self.base_url + CLIENT_API + path,
            json=body,
            params=query or None,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            result: dict[str, Any] = await response.json()
            assert response.status == 200, (method, path, response.status, result)
            return result

    async def upload_keys(self, one_time_keys: int = 5) -> None:
        self.device_id = str((await self.call("GET", "/account/whoami"))["device_id"])
        sign = f"ed25519:{self.device_id}"
        keys = self.account.identity_keys
        device_keys: dict[str, Any] = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{self.device_id}": keys["curve25519"], sign: keys["ed25519"]},
        }
        device_keys["signatures"] = {
            self.user_id: {sign: self.account.sign(canonical(device_keys))}
        }
        self.account.generate_one_time_keys(one_time_keys)
        signed: dict[str, Any] = {}
        for key_id, key in self.account.one_time_keys["curve25519"].items():
            signature = self.account.sign(canonical({"key": key}))
            signed[f"signed_curve25519:{key_id}"] = {
                "key": key,
                "signatures": {self.user_id: {sign: signature}},
            }
        self.account.mark_keys_as_published()
        await self.call(
            "POST", "/keys/upload", {"device_keys": device_keys, "one_time_keys": signed}
        )

    async def receive(self, timeout_ms: int = 0) -> None:
        """One sync of to-device messages; Olm-encrypted room keys are decrypted and kept."""
        query = {"filter": TO_DEVICE_ONLY, "timeout": str(timeout_ms)}
        if self.since:
            query["since"] = self.since
        result = await self.call("GET", "/sync", **query)
        self.since = str(result["next_batch"])
        for event in result.get("to_device", {}).get("events", []):
            if event.get("type") != "m.room.encrypted":
                continue
            sealed = event["content"]["ciphertext"].get(self.curve25519)
            if sealed is None:
                continue
            sender_key = event["content"]["sender_key"]
            # A light device never answers, so every message it gets is a pre-key message.
            assert sealed["type"] == 0, "a light device only receives pre-key messages"
            message = olm.OlmPreKeyMessage(sealed["body"])
            session = self.sessions.get(sender_key)
            if session is None or not session.matches(message, sender_key):
                session = olm.InboundSession(self.account, message, sender_key)
                self.sessions[sender_key] = session
            plain = json.loads(session.decrypt(message))
            assert plain["recipient"] == self.user_id
            assert plain["recipient_keys"]["ed25519"] == self.account.identity_keys["ed25519"]
            if plain["type"] == "m.room_key":
                self.room_keys.append(plain)

    def keys_for(self, room_id: str) -> list[dict[str, Any]]:
        return [k for k in self.room_keys if k["content"]["room_id"] == room_id]


def megolm_decrypt(room_key: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The plaintext of an encrypted room event, with the room key a device received."""
    session = olm.InboundGroupSession(room_key["content"]["session_key"])
    plaintext, _ = session.decrypt(event["content"]["ciphertext"])
    return dict(json.loads(plaintext))
