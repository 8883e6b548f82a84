"""Devices' keys and signatures checked as mautrix checks them, faster.

mautrix checks an ed25519 signature through pycryptodome (0.4 ms); libolm's check takes
0.17 ms and vodozemac's 0.06 ms (bench/README.md), and a first send into a room of N members
checks 2N signatures (each device's keys and its claimed one-time key). Device keys are read
from the homeserver's JSON as served, not from mautrix's types, which would have to be built
and serialised again to be checked.
"""

from __future__ import annotations

from typing import Any

from mautrix.crypto.signature import canonical_json
from mautrix.errors import DeviceValidationError
from mautrix.types import DeviceID, DeviceIdentity, IdentityKey, SigningKey, TrustState, UserID
from vodozemac import Ed25519PublicKey, Ed25519Signature


def signed_by(data: Any, user_id: str, key_name: str, key: str) -> bool:
    """Whether `data` (a JSON object) carries a valid signature of `user_id`'s ed25519 key
    `key_name`, which is `key`: what mautrix's `verify_signature_json` checks."""
    try:
        signature = data["signatures"][user_id][f"ed25519:{key_name}"]
        signed = {k: v for k, v in data.items() if k not in ("signatures", "unsigned")}
        checked = Ed25519PublicKey.from_base64(key)
        checked.verify_signature(
            canonical_json(signed).encode(), Ed25519Signature.from_base64(signature)
        )
    except (KeyError, TypeError, AttributeError, ValueError):  # vodozemac's errors are ValueErrors
        return False
    return True


def checked_device(
    user_id: UserID, device_id: DeviceID, keys: Any, existing: DeviceIdentity | None = None
) -> DeviceIdentity:
    """A device from its keys (a JSON object), checked as mautrix checks them: served under
    its own user and device id, with both keys, its signing key unchanged since `existing`,
    and signed by it."""
    try:
        served = (keys["user_id"], keys["device_id"])
        signing_key = SigningKey(keys["keys"][f"ed25519:{device_id}"])
        identity_key = IdentityKey(keys["keys"][f"curve25519:{device_id}"])
        unsigned = keys.get("unsigned") or {}
        name = str(unsigned.get("device_display_name") or device_id)
    except (KeyError, TypeError, AttributeError) as e:
        raise DeviceValidationError(f"malformed device keys ({e!r})") from None
    if served != (user_id, device_id):
        raise DeviceValidationError(
            f"keys of {served[0]}/{served[1]} served as {user_id}/{device_id}"
        )
    if not isinstance(signing_key, str) or not isinstance(identity_key, str):
        raise DeviceValidationError("an ed25519 or curve25519 key is not a string")
    if existing and existing.signing_key != signing_key:
        raise DeviceValidationError(
            f"the signing key changed (was {existing.signing_key}, now {signing_key})"
        )
    if not signed_by(keys, user_id, device_id, signing_key):
        raise DeviceValidationError("invalid signature on device keys")
    return DeviceIdentity(
        user_id=user_id,
        device_id=device_id,
        identity_key=identity_key,
        signing_key=signing_key,
        trust=TrustState.UNVERIFIED,
        name=name,
        deleted=False,
    )
