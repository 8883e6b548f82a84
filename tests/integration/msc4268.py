"""The client side of shared history (MSC4268) for the test clients, following the spec:
matrix-nio has none of it.

- `cross_sign`: a cross-signing identity for a user, with their device signed by it (bundles
  go to cross-signed devices only);
- `mark_keys_shared`: the device marks the room keys it sends `shared_history`, as Element
  does in rooms whose history is `shared`;
- `BundleInbox`: the `m.room_key_bundle` events the device receives over Olm, and importing
  one: download the bundle, check and decrypt it, add its sessions to the device's store;
- `history`: the room's encrypted events before now, decrypted with what the device holds.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import olm
from nio import MegolmEvent, RoomMessageText
from nio.crypto.attachments import decrypt_attachment

from .devices import canonical
from .e2ee import E2EEUser

BUNDLE_TYPES = ("m.room_key_bundle", "io.element.msc4268.room_key_bundle")


async def _call(
    http: aiohttp.ClientSession,
    user: E2EEUser,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {user.client.access_token}"}
    url = f"{user.client.homeserver}/_matrix/client/v3{path}"
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


def _key(signing: olm.PkSigning, user_id: str, usage: str) -> dict[str, Any]:
    public = signing.public_key
    return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}


async def cross_sign(http: aiohttp.ClientSession, user: E2EEUser) -> None:
    """A master and a self-signing key for `user`, and their device signed by the latter."""
    master = olm.PkSigning(olm.PkSigning.generate_seed())
    self_signing = olm.PkSigning(olm.PkSigning.generate_seed())
    user_id, device_id = user.user_id, str(user.client.device_id)
    ssk = _key(self_signing, user_id, "self_signing")
    ssk["signatures"] = {user_id: {f"ed25519:{master.public_key}": master.sign(canonical(ssk))}}
    usk = _key(olm.PkSigning(olm.PkSigning.generate_seed()), user_id, "user_signing")
    usk["signatures"] = {user_id: {f"ed25519:{master.public_key}": master.sign(canonical(usk))}}
    body: dict[str, Any] = {
        "master_key": _key(master, user_id, "master"),
        "self_signing_key": ssk,
        "user_signing_key": usk,
    }
    status, answer = await _call(http, user, "POST", "/keys/device_signing/upload", body)
    if status == 401:
        body["auth"] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id[1:].split(":")[0]},
            "password": user.password,
            "session": answer.get("session"),
        }
        status, answer = await _call(http, user, "POST", "/keys/device_signing/upload", body)
    assert status == 200, answer
    status, keys = await _call(http, user, "POST", "/keys/query", {"device_keys": {user_id: []}})
    assert status == 200, keys
    device = dict(keys["device_keys"][user_id][device_id])
    device.pop("unsigned", None)
    signatures = device.pop("signatures")
    signature = self_signing.sign(canonical(device))
    signatures[user_id][f"ed25519:{self_signing.public_key}"] = signature
    status, answer = await _call(
        http,
        user,
        "POST",
        "/keys/signatures/upload",
        {user_id: {device_id: {**device, "signatures": signatures}}},
    )
    assert status == 200 and not answer.get("failures"), answer


def mark_keys_shared(user: E2EEUser) -> None:
    """Room keys this device sends carry the unstable shared-history mark, as Element's do."""
    machine = user.client.olm
    assert machine is not None
    encrypt = machine._olm_encrypt

    def marked(session: Any, device: Any, kind: str, content: dict[str, Any]) -> Any:
        if kind == "m.room_key":
            content = {**content, "org.matrix.msc3061.shared_history": True}
        return encrypt(session, device, kind, content)

    machine._olm_encrypt = marked  # type: ignore[method-assign]


class BundleInbox:
    """The key bundles the device receives (decrypted Olm payloads)."""

    def __init__(self, user: E2EEUser) -> None:
        self.user = user
        self.bundles: list[dict[str, Any]] = []
        machine = user.client.olm
        assert machine is not None
        handle = machine._handle_olm_event

        def handle_olm_event(sender: str, sender_key: str, payload: dict[str, Any]) -> Any:
            if payload.get("type") in BUNDLE_TYPES:
                self.bundles.append({**payload, "sender": sender, "sender_key": sender_key})
                return None
            return handle(sender, sender_key, payload)

        machine._handle_olm_event = handle_olm_event  # type: ignore[method-assign]

    def of_room(self, room_id: str) -> list[dict[str, Any]]:
        return [b for b in self.bundles if b["content"]["room_id"] == room_id]

    async def import_bundle(self, http: aiohttp.ClientSession, bundle: dict[str, Any]) -> int:
        """Download, verify and decrypt the bundle; add its sessions. How many it held."""
        file = bundle["content"]["file"]
        server, media_id = file["url"].removeprefix("mxc://").split("/", 1)
        url = f"{self.user.client.homeserver}/_matrix/client/v1/media/download/{server}/{media_id}"
        headers = {"Authorization": f"Bearer {self.user.client.access_token}"}
        async with http.get(url, headers=headers) as response:
            assert response.status == 200, await response.text()
            ciphertext = await response.read()
        # The hash is checked against the ciphertext, and the decryption with the key.
        data = decrypt_attachment(
            ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"]
        )
        keys = json.loads(data)["room_keys"]
        machine = self.user.client.olm
        assert machine is not None
        for key in keys:
            session = machine._import_group_session(
                key["session_key"],
                key["sender_claimed_keys"]["ed25519"],
                key["sender_key"],
                key["room_id"],
                [],
            )
            assert session is not None, key["session_id"]
            if machine.inbound_group_store.add(session):
                machine.save_inbound_group_session(session)
        return len(keys)


async def history(
    http: aiohttp.ClientSession, user: E2EEUser, room_id: str, limit: int = 50
) -> list[RoomMessageText | MegolmEvent]:
    """The room's messages, oldest first, each decrypted if the device holds its key."""
    headers = {"Authorization": f"Bearer {user.client.access_token}"}
    url = f"{user.client.homeserver}/_matrix/client/v3/rooms/{room_id}/messages"
    params = {"dir": "b", "limit": str(limit)}
    async with http.get(url, headers=headers, params=params) as response:
        assert response.status == 200, await response.text()
        chunk = (await response.json())["chunk"]
    events: list[RoomMessageText | MegolmEvent] = []
    for raw in reversed(chunk):
        if raw.get("type") != "m.room.encrypted":
            continue
        encrypted = MegolmEvent.from_dict(raw)
        try:
            readable = user.client.decrypt_event(encrypted)
        except Exception:
            events.append(encrypted)
            continue
        if isinstance(readable, RoomMessageText):
            events.append(readable)
    return events
