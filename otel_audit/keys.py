"""Ed25519 note keys: signers, verifiers and their text encodings.

Key names and key IDs follow C2SP signed-note v1.0.0 (https://c2sp.org/signed-note@v1.0.0):

* §Format: key names are non-empty and contain no Unicode spaces and no ``+``.
* §Signatures: ``key ID = SHA-256(key name || 0x0A || signature type || public key)[:4]``.
* §Signature types / §Ed25519 signatures: type ``0x01``, 32-byte RFC 8032 public keys.

The key strings are those of Go's ``golang.org/x/mod/sumdb/note``:

* verifier key (vkey): ``<name>+<8 lowercase hex key ID>+<base64(0x01 || public key)>``
* signer key (skey): ``PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>``

No exception message or repr produced here ever contains private key material, and
messages never echo caller input that might be a secret.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import re
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from otel_audit.errors import KeyFormatError

__all__ = [
    "ED25519_TYPE",
    "Signer",
    "SigningKey",
    "VerifierKey",
    "format_vkey",
    "is_valid_key_name",
    "key_id",
]

ED25519_TYPE = 0x01  # C2SP signed-note §Signature types
_SKEY_PREFIX = "PRIVATE+KEY+"
_MAX_KEY_FILE = 64 * 1024
_HEX_ID = re.compile(r"[0-9a-f]{8}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_CONTROL = re.compile(r"[\x00-\x1f]")


def _b64decode(text: str) -> bytes | None:
    """Strict standard base64 (RFC 4648 §4): padded, canonical; None when malformed."""
    if not _B64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def is_valid_key_name(name: str) -> bool:
    """C2SP signed-note §Format: non-empty, no Unicode spaces, no ``+`` (nor controls)."""
    if not name or "+" in name or _CONTROL.search(name):
        return False
    if any(ch.isspace() for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not is_valid_key_name(name):
        raise KeyFormatError("invalid key name: it must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key (C2SP signed-note §Ed25519 signatures)."""
    _check_name(name)
    if len(public_key) != 32:
        raise KeyFormatError("an Ed25519 public key is 32 bytes")
    data = name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + bytes(public_key)
    return hashlib.sha256(data).digest()[:4]


def format_vkey(name: str, public_key: bytes) -> str:
    """The vkey string of an Ed25519 public key; what a `Signer` plugin returns as ``vkey``."""
    kid = key_id(name, public_key)
    data = base64.b64encode(bytes([ED25519_TYPE]) + bytes(public_key)).decode("ascii")
    return f"{name}+{kid.hex()}+{data}"


@runtime_checkable
class Signer(Protocol):
    """A note signer: what a KMS/HSM plugin implements (plain attributes are fine).

    ``sign`` returns the 64-byte Ed25519 signature of ``message``; ``key_id`` must equal
    ``key_id(name, public_key)``, and ``vkey`` ``format_vkey(name, public_key)``.
    """

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> bytes: ...
    @property
    def public_key(self) -> bytes: ...
    @property
    def vkey(self) -> str: ...
    def sign(self, message: bytes) -> bytes: ...


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _read_small(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        data = f.read(_MAX_KEY_FILE + 1)
    if len(data) > _MAX_KEY_FILE:
        raise KeyFormatError(f"key file is larger than {_MAX_KEY_FILE} bytes")
    return data


def _first_line(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFormatError("key file is not valid UTF-8") from None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise KeyFormatError("key file is empty")


def _key_bytes(kind: str, name: str, hex_id: str, data: str) -> bytes:
    """The 32 key bytes of a vkey/skey's parts; KeyFormatError without echoing them."""
    _check_name(name)
    if not _HEX_ID.fullmatch(hex_id):
        raise KeyFormatError(f"malformed {kind}: key id must be 8 lowercase hex digits")
    raw = _b64decode(data)
    if raw is None or len(raw) != 33 or raw[0] != ED25519_TYPE:
        raise KeyFormatError(f"malformed {kind}: key must be base64(0x01 || 32 bytes)")
    return raw[1:]


class VerifierKey:
    """An Ed25519 note verifier key; ``str()`` gives its vkey string."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        self.key_id = key_id(name, public_key)  # validates name and length
        self.name = name
        self.public_key = bytes(public_key)
        try:
            self._key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise KeyFormatError("invalid Ed25519 public key") from None

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || key)>``; KeyFormatError when malformed."""
        if vkey.startswith(_SKEY_PREFIX):
            raise KeyFormatError("this is a private signer key (skey), not a verifier key")
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise KeyFormatError("malformed vkey: expected <name>+<key id>+<key>")
        name, hex_id, data = parts
        key = cls(name, _key_bytes("vkey", name, hex_id, data))
        if key.key_id.hex() != hex_id:
            raise KeyFormatError(f"vkey {name!r}: key id does not match the key")
        return key

    @classmethod
    def load(cls, value: str) -> VerifierKey:
        """A vkey string, or the path of a file whose first non-empty line is one."""
        text = value.strip()
        if text.startswith(_SKEY_PREFIX):
            raise KeyFormatError("this is a private signer key (skey), not a verifier key")
        if re.fullmatch(r"[^+\s]+\+[0-9A-Fa-f]{8}\+[A-Za-z0-9+/=]+", text):
            return cls.parse(text)
        try:
            data = _read_small(value)
        except OSError:
            raise KeyFormatError("not a vkey string, nor a readable vkey file") from None
        return cls.parse(_first_line(data))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's valid Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            self._key.verify(bytes(signature), bytes(message))
        except InvalidSignature:
            return False
        return True

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key)

    def __str__(self) -> str:
        return self.vkey

    def __repr__(self) -> str:
        return f"VerifierKey({self.vkey!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifierKey):
            return NotImplemented
        return (self.name, self.public_key) == (other.name, other.public_key)

    def __hash__(self) -> int:
        return hash((self.name, self.public_key))


class SigningKey:
    """A local Ed25519 note signer (implements `Signer`); its repr never shows the key."""

    __slots__ = ("_private", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise KeyFormatError("not an Ed25519 private key")
        self.public_key = _raw_public(private_key)
        self.key_id = key_id(name, self.public_key)
        self.name = name
        self._private = private_key

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> SigningKey:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise KeyFormatError("malformed skey: expected PRIVATE+KEY+<name>+<key id>+<key>")
        _, _, name, hex_id, data = parts
        seed = _key_bytes("skey", name, hex_id, data)
        key = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if key.key_id.hex() != hex_id:
            raise KeyFormatError(f"skey {name!r}: key id does not match the key")
        return key

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], name: str | None = None) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM Ed25519 key, or a file holding an skey line.

        A PEM key's name is ``name``, else that of the sibling ``<path>.vkey`` file (whose
        key must match). OSError when unreadable, KeyFormatError when malformed.
        """
        data = _read_small(path)
        if data.lstrip().startswith(_SKEY_PREFIX.encode()):
            key = cls.from_skey(_first_line(data))
            if name is not None and name != key.name:
                raise KeyFormatError(f"skey is named {key.name!r}, not {name!r}")
            return key
        if not data.lstrip().startswith(b"-----BEGIN "):
            raise KeyFormatError("unrecognized key file: expected PKCS#8 PEM or a C2SP skey")
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyFormatError(
                "cannot load the PEM key (it must be an unencrypted PKCS#8 Ed25519 key)"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFormatError("the PEM key is not an Ed25519 key")
        if name is not None:
            return cls(name, private)
        vkey_path = os.fspath(path) + ".vkey"
        try:
            vkey_data = _read_small(vkey_path)
        except FileNotFoundError:
            raise KeyFormatError(
                "no key name: pass name= or provide the sibling <key file>.vkey"
            ) from None
        verifier = VerifierKey.parse(_first_line(vkey_data))
        if verifier.public_key != _raw_public(private):
            raise KeyFormatError("the sibling .vkey file does not match the private key")
        return cls(verifier.name, private)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write PKCS#8 PEM (mode 0600) and ``<path>.vkey``; never overwrites either file."""
        key_path = os.fspath(path)
        vkey_path = key_path + ".vkey"
        excl = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if os.path.lexists(vkey_path):
            raise FileExistsError(errno.EEXIST, "refusing to overwrite", vkey_path)
        key_fd = os.open(key_path, excl, 0o600)
        try:
            with os.fdopen(key_fd, "wb") as f:
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), 0o600)
                f.write(pem)
            vkey_fd = os.open(vkey_path, excl, 0o644)
        except BaseException:
            os.unlink(key_path)
            raise
        try:
            with os.fdopen(vkey_fd, "w", encoding="utf-8") as v:
                v.write(self.vkey + "\n")
        except BaseException:
            os.unlink(vkey_path)
            os.unlink(key_path)
            raise

    def skey(self) -> str:
        """The secret C2SP skey string. Treat the result as a secret."""
        seed = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        data = base64.b64encode(bytes([ED25519_TYPE]) + seed).decode("ascii")
        return f"{_SKEY_PREFIX}{self.name}+{self.key_id.hex()}+{data}"

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(bytes(message))

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key)

    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.public_key)

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, key_id={self.key_id.hex()!r})"
