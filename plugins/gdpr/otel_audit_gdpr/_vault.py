"""The key vault: a pseudonymization secret and one AES-256 key per data subject.

Layout of the vault directory (mode 0700, files 0600)::

    pseudonym.secret            32 random bytes: the HMAC-SHA-256 key of pseudonyms
    keys/<pseudonym>/<kid>.key  32 random bytes: a subject's AES-256-GCM key
    erased/<pseudonym>          a tombstone: when the subject's keys were destroyed

A pseudonym is ``ds_`` + the first 32 hex digits of HMAC-SHA-256(secret, subject id)
(GDPR Art. 4(5): the id cannot be attributed to the subject without the secret, which
is kept apart from the log). Erasing a subject deletes its keys: every value sealed
under them is unreadable from then on ("crypto-shredding"), while the records, and so
the hash chain and the signed checkpoints, stay exactly as they were.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from hashlib import sha256
from pathlib import Path

__all__ = ["KeyVault", "SubjectState"]

SubjectState = str  # "readable" | "erased" | "unknown"

_KEY_BYTES = 32
_PSEUDONYM = re.compile(r"ds_[0-9a-f]{32}")
_KID = re.compile(r"[0-9a-f]{16}")


class _Secret:
    """Holds key bytes; never shows them (repr, str, pickling by accident in a traceback)."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def mac(self, message: bytes) -> str:
        return hmac.new(self._value, message, sha256).hexdigest()


def _read_key(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return data if len(data) == _KEY_BYTES else None  # still being written by another process


def _create(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file (0600); False when it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


class KeyVault:
    """A vault directory (created on first use) and an optional separate secret file."""

    def __init__(self, directory: str | os.PathLike[str], secret_file: str | None = None) -> None:
        self.directory = Path(directory).expanduser().absolute()
        self._secret_path = (
            Path(secret_file).expanduser().absolute()
            if secret_file
            else self.directory / "pseudonym.secret"
        )
        self._secret: _Secret | None = None
        self._current: dict[str, tuple[str, bytes]] = {}  # pseudonym -> (kid, key)

    def __repr__(self) -> str:
        return f"KeyVault({str(self.directory)!r})"

    def _dir(self, *parts: str) -> Path:
        path = self.directory.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _load_secret(self) -> _Secret:
        if self._secret is None:
            for _ in range(100):
                value = _read_key(self._secret_path)
                if value is not None:
                    break
                if not self._secret_path.exists():
                    self._secret_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    _create(self._secret_path, secrets.token_bytes(_KEY_BYTES))
                else:
                    time.sleep(0.01)  # another process is writing it
            else:
                raise OSError(f"{self._secret_path}: not a {_KEY_BYTES}-byte secret")
            self._secret = _Secret(value)
        return self._secret

    def pseudonym(self, subject_id: str) -> str:
        """The subject's pseudonym (a pseudonym given again is returned as it is)."""
        if _PSEUDONYM.fullmatch(subject_id):
            return subject_id
        return "ds_" + self._load_secret().mac(subject_id.encode("utf-8"))[:32]

    def current_key(self, pseudonym: str) -> tuple[str, bytes]:
        """``(kid, key)`` to seal a subject's values with, made on first use (also after
        an erasure: new data of an erased subject gets a new key)."""
        cached = self._current.get(pseudonym)
        if (
            cached is not None
            and (self.directory / "keys" / pseudonym / f"{cached[0]}.key").exists()
        ):
            return cached
        folder = self._dir("keys", pseudonym)
        for path in sorted(folder.glob("*.key")):
            key = _read_key(path)
            if key is not None and _KID.fullmatch(path.stem):
                self._current[pseudonym] = (path.stem, key)
                return path.stem, key
        kid, key = secrets.token_hex(8), secrets.token_bytes(_KEY_BYTES)
        _create(folder / f"{kid}.key", key)
        self._current[pseudonym] = (kid, key)
        return kid, key

    def key(self, pseudonym: str, kid: str) -> bytes | None:
        """A subject's key ``kid``, or None when it does not exist (erased or never made)."""
        if not (_PSEUDONYM.fullmatch(pseudonym) and _KID.fullmatch(kid)):
            return None
        return _read_key(self.directory / "keys" / pseudonym / f"{kid}.key")

    def erase(self, pseudonym: str) -> int:
        """Destroy every key of a subject and leave a tombstone; returns how many keys."""
        if not _PSEUDONYM.fullmatch(pseudonym):
            raise ValueError("not a pseudonym (ds_ + 32 hex digits)")
        folder = self.directory / "keys" / pseudonym
        count = 0
        for path in sorted(folder.glob("*.key")) if folder.is_dir() else []:
            try:  # overwrite first: a plain unlink leaves the bytes on many file systems
                with open(path, "r+b") as handle:
                    handle.write(b"\0" * _KEY_BYTES)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError:
                pass
            path.unlink(missing_ok=True)
            count += 1
        if folder.is_dir():
            folder.rmdir()
        tombstone = self._dir("erased") / pseudonym
        tombstone.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        self._current.pop(pseudonym, None)
        return count

    def erased(self, pseudonym: str) -> bool:
        return (self.directory / "erased" / pseudonym).is_file()
