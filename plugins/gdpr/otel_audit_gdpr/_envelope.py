"""Sealed personal values: AES-256-GCM under the subject's key, plus a commitment.

    envelope = {"alg": "A256GCM", "kid": kid, "nonce": b64(12 bytes),
                "ct": b64(AES-GCM(key, nonce, P, aad)), "commitment": "sha256:" + hex}
    P        = JSON {"salt": b64(16 random bytes), "value": <the personal value>}
    aad      = "otel-audit-gdpr/1\\n" + event_id + "\\n" + pseudonym + "\\n" + path
    commitment = SHA-256("otel-audit-gdpr/1 commit\\0" || salt || JSON(value))

The AAD binds a ciphertext to its record and field (NIST SP 800-38D §5.2.1.1). GCM is
not key-committing: a different key can be made to open the same ciphertext to another
plaintext. The commitment, sealed inside the record, binds the record to exactly one
value; the random salt keeps it hiding, so after erasure it reveals nothing.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["open_value", "seal_value"]

_DOMAIN = b"otel-audit-gdpr/1"


def _aad(event_id: str, pseudonym: str, path: str) -> bytes:
    return b"\n".join((_DOMAIN, event_id.encode(), pseudonym.encode(), path.encode()))


def _commit(salt: bytes, value: Any) -> str:
    data = _DOMAIN + b" commit\0" + salt + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def seal_value(
    value: Any, *, key: bytes, kid: str, event_id: str, pseudonym: str, path: str
) -> dict[str, str]:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    plain = orjson.dumps({"salt": base64.b64encode(salt).decode(), "value": value})
    ct = AESGCM(key).encrypt(nonce, plain, _aad(event_id, pseudonym, path))
    return {
        "alg": "A256GCM",
        "kid": kid,
        "nonce": base64.b64encode(nonce).decode(),
        "ct": base64.b64encode(ct).decode(),
        "commitment": _commit(salt, value),
    }


def open_value(
    envelope: dict[str, Any], *, key: bytes, event_id: str, pseudonym: str, path: str
) -> Any:
    """The sealed value; ValueError when it does not decrypt or breaks its commitment."""
    try:
        nonce = base64.b64decode(envelope["nonce"], validate=True)
        ct = base64.b64decode(envelope["ct"], validate=True)
        plain = orjson.loads(AESGCM(key).decrypt(nonce, ct, _aad(event_id, pseudonym, path)))
        salt = base64.b64decode(plain["salt"], validate=True)
        value = plain["value"]
    except (InvalidTag, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"sealed value at {path} does not open: {type(exc).__name__}") from None
    if _commit(salt, value) != envelope.get("commitment"):
        raise ValueError(f"sealed value at {path} does not match its commitment")
    return value
