"""C2SP signed notes and tlog checkpoints.

Implements C2SP signed-note v1.0.0 (https://c2sp.org/signed-note@v1.0.0) with Ed25519
keys, interoperable with Go's ``golang.org/x/mod/sumdb/note``:

* §Format: a note is its text (valid UTF-8, ending in a newline, no ASCII control
  character but newline), a blank line, then one or more signature lines
  ``— <key name> <base64(4-byte key ID || signature)>``. The text is separated from the
  signatures by the *last* empty line, so the text may itself contain empty lines.
  We accept at most `MAX_SIGNATURES` signature lines and `MAX_NOTE_BYTES` bytes.
* §Signatures: signatures from unknown keys (name and key ID not both known) are ignored
  (reported as ``unknown``); one from a known key must verify (else it is ``bad``); a
  note is verified when some known key's signature verifies and none fails.

and C2SP tlog-checkpoint v1.0.0 (https://c2sp.org/tlog-checkpoint@v1.0.0) §Note text:
origin, decimal tree size without leading zeroes, base64 root hash, then optional
non-empty extension lines, each line ending in a newline.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from otel_audit.errors import KeyFormatError, NoteError
from otel_audit.keys import Signer, VerifierKey, _b64decode, is_valid_key_name, key_id

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Note",
    "NoteSignature",
    "NoteVerdict",
    "parse_checkpoint",
    "parse_note",
    "sign_note",
    "verify_note",
]

MAX_SIGNATURES = 100  # the spec requires accepting at least 16
MAX_NOTE_BYTES = 1 << 20
_DASH = "— "  # em dash U+2014, space
_BAD_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A parsed, *unverified* note: its text must be ignored until verified."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class NoteVerdict:
    """The outcome of `verify_note`; trust ``text`` only when ``ok``.

    ``verified_by`` and ``bad`` hold key names, ``unknown`` ``<name>+<hex key ID>``.
    """

    text: str
    verified_by: tuple[str, ...]
    bad: tuple[str, ...]
    unknown: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return bool(self.verified_by) and not self.bad


def _check_chars(text: str, what: str) -> bytes:
    """UTF-8 encoding of ``text``; NoteError on surrogates, controls or excess size."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8") from None
    if len(data) > MAX_NOTE_BYTES:
        raise NoteError(f"{what} is larger than {MAX_NOTE_BYTES} bytes")
    if _BAD_CONTROL.search(text):
        raise NoteError(f"{what} contains an ASCII control character other than newline")
    return data


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Sign ``text`` with every signer, in order; returns the signed note.

    NoteError when the text is not a valid note text; KeyFormatError when a signer is
    inconsistent (bad name, key ID not derived from its public key, duplicate, signature
    not 64 bytes). Exceptions raised by a signer's ``sign`` propagate.
    """
    if not text.endswith("\n"):
        raise NoteError("note text must be non-empty and end in a newline")
    message = _check_chars(text, "note text")
    if not signers:
        raise NoteError("a signed note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signers")
    lines: list[str] = []
    seen: set[tuple[str, bytes]] = set()
    for signer in signers:
        name, kid = signer.name, bytes(signer.key_id)
        if not is_valid_key_name(name):
            raise KeyFormatError("signer has an invalid key name")
        if kid != key_id(name, signer.public_key):
            raise KeyFormatError(f"signer {name!r}: key id does not match its public key")
        if (name, kid) in seen:
            raise KeyFormatError(f"duplicate signer {name}+{kid.hex()}")
        seen.add((name, kid))
        signature = signer.sign(message)
        if not isinstance(signature, bytes) or len(signature) != 64:
            raise KeyFormatError(f"signer {name!r} did not return a 64-byte Ed25519 signature")
        encoded = base64.b64encode(kid + signature).decode("ascii")
        lines.append(f"{_DASH}{name} {encoded}\n")
    note = text + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteError(f"signed note would be larger than {MAX_NOTE_BYTES} bytes")
    return note


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into text and signatures, without verifying; NoteError if malformed."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise NoteError(f"note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    _check_chars(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("note must end with a signature line and a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures: list[NoteSignature] = []
    for number, line in enumerate(lines, 1):
        if not line.startswith(_DASH):
            raise NoteError(f"signature line {number} does not start with an em dash and space")
        name, _, encoded = line[len(_DASH) :].partition(" ")
        if not is_valid_key_name(name):
            raise NoteError(f"signature line {number} has an invalid key name")
        raw = _b64decode(encoded)
        if raw is None or len(raw) < 5:
            raise NoteError(f"signature line {number} is not base64(key id || signature)")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def verify_note(note: str | bytes, verifiers: Iterable[VerifierKey]) -> NoteVerdict:
    """Parse ``note`` and check its signatures against ``verifiers``.

    NoteError only when the note is malformed; KeyFormatError when two different
    verifiers share both name and key ID. Signature outcomes go in the verdict.
    """
    known: dict[tuple[str, bytes], VerifierKey] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if slot in known and known[slot] != verifier:
            raise KeyFormatError(
                f"ambiguous verifiers: two keys are {verifier.name}+{slot[1].hex()}"
            )
        known[slot] = verifier
    parsed = parse_note(note)
    message = parsed.text.encode("utf-8")
    verified: dict[str, None] = {}
    bad: dict[str, None] = {}
    unknown: dict[str, None] = {}
    for sig in parsed.signatures:
        match = known.get((sig.name, sig.key_id))
        if match is None:
            unknown[f"{sig.name}+{sig.key_id.hex()}"] = None
        elif match.verify(message, sig.signature):
            verified[sig.name] = None
        else:
            bad[sig.name] = None
    return NoteVerdict(parsed.text, tuple(verified), tuple(bad), tuple(unknown))


def _check_line(line: str, what: str) -> None:
    if not line or "\n" in line or _BAD_CONTROL.search(line):
        raise NoteError(f"checkpoint {what} must be a non-empty line without control characters")


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint body (C2SP tlog-checkpoint §Note text); validated on creation."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("checkpoint tree size must be an integer")
        if not 0 <= self.size < 1 << 64:
            raise NoteError("checkpoint tree size must be in [0, 2**64)")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise NoteError("checkpoint root hash must be 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extensions must be a tuple of lines")
        for extension in self.extensions:
            _check_line(extension, "extension line")

    def body(self) -> str:
        """The checkpoint note text, every line ending in a newline."""
        root = base64.b64encode(self.root).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text (not a signed note); NoteError when malformed."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint must end in a newline")
    _check_chars(text, "checkpoint")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint needs origin, tree size and root hash lines")
    origin, size, root, *extensions = lines
    if not _TREE_SIZE.fullmatch(size):
        raise NoteError("checkpoint tree size must be decimal without leading zeroes")
    raw = _b64decode(root)
    if raw is None:
        raise NoteError("checkpoint root hash is not base64")
    return Checkpoint(origin, int(size), raw, tuple(extensions))
