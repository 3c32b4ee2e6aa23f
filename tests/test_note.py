"""Tests of otel_audit._note: signed notes and checkpoints (vectors in tests/data/note)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_audit._note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    parse_checkpoint,
    parse_note,
    sign_note,
    verify_note,
)
from otel_audit.errors import KeyFormatError, NoteError
from otel_audit.keys import SigningKey, VerifierKey, format_vkey, key_id


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "note" / name).read_text())
    return data


GO = _load("go_note.json")
C2SP = _load("c2sp_examples.json")
MALFORMED = _load("malformed.json")["cases"]
VERDICTS = _load("verdicts.json")["cases"]
TEXT: str = GO["text"]
PETER, ENOCH = GO["keys"]
PETER_KEY = SigningKey.from_skey(PETER["skey"])
PETER_V = VerifierKey.parse(PETER["vkey"])
ENOCH_V = VerifierKey.parse(ENOCH["vkey"])


def _desc(case: dict[str, Any]) -> str:
    return str(case["desc"])


# --- the Go vector -----------------------------------------------------------------


def test_go_vector_sign_reproduces_published_note() -> None:
    assert sign_note(TEXT, [PETER_KEY]) == GO["signed_note"]


def test_go_vector_parse_and_verify() -> None:
    note = parse_note(GO["signed_note"])
    assert note.text == TEXT
    (sig,) = note.signatures
    assert sig.name == "PeterNeumann"
    assert sig.key_id == bytes.fromhex("c74f20a3") == PETER_V.key_id
    assert len(sig.signature) == 64
    verdict = verify_note(GO["signed_note"], [PETER_V])
    assert verdict.ok
    assert verdict.text == TEXT
    assert verdict.verified_by == ("PeterNeumann",)
    assert verify_note(GO["signed_note"].encode(), [PETER_V]).ok


def test_go_vector_second_signer() -> None:
    note = TEXT + "\n" + PETER["signature_line"] + ENOCH["signature_line"]
    parsed = parse_note(note)
    assert [s.name for s in parsed.signatures] == ["PeterNeumann", "EnochRoot"]
    assert parsed.signatures[1].key_id == ENOCH_V.key_id
    assert verify_note(note, [ENOCH_V, PETER_V]).verified_by == ("PeterNeumann", "EnochRoot")


# --- data-file cases ---------------------------------------------------------------


@pytest.mark.parametrize("case", MALFORMED, ids=_desc)
def test_malformed_notes(case: dict[str, Any]) -> None:
    note: str | bytes = case["note"] if "note" in case else base64.b64decode(case["note_b64"])
    with pytest.raises(NoteError):
        parse_note(note)
    with pytest.raises(NoteError):
        verify_note(note, [PETER_V, ENOCH_V])


@pytest.mark.parametrize("case", VERDICTS, ids=_desc)
def test_verdicts(case: dict[str, Any]) -> None:
    verdict = verify_note(case["note"], [VerifierKey.parse(v) for v in case["known"]])
    assert verdict.verified_by == tuple(case["verified_by"])
    assert verdict.bad == tuple(case["bad"])
    assert verdict.unknown == tuple(case["unknown"])
    assert verdict.ok is case["ok"]


@pytest.mark.parametrize("case", C2SP["notes"], ids=_desc)
def test_c2sp_examples(case: dict[str, Any]) -> None:
    note = parse_note(case["note"])
    assert note.text == case["text"]
    assert [s.name for s in note.signatures] == case["signers"]
    verdict = verify_note(case["note"], [PETER_V])
    assert verdict.unknown == tuple(case["unknown"])
    assert not verdict.ok
    if case["checkpoint"] is not None:
        expected = case["checkpoint"]
        checkpoint = parse_checkpoint(note.text)
        assert checkpoint == Checkpoint(
            expected["origin"],
            expected["size"],
            bytes.fromhex(expected["root_hex"]),
            tuple(expected["extensions"]),
        )
        assert checkpoint.body() == note.text


# --- limits --------------------------------------------------------------------------


def test_signature_count_limit() -> None:
    line = PETER["signature_line"]
    assert MAX_SIGNATURES == 100
    verdict = verify_note(TEXT + "\n" + line * MAX_SIGNATURES, [PETER_V])
    assert verdict.ok
    with pytest.raises(NoteError, match="more than 100"):
        parse_note(TEXT + "\n" + line * (MAX_SIGNATURES + 1))
    with pytest.raises(NoteError):
        sign_note(TEXT, [SigningKey.generate(f"k{i}") for i in range(MAX_SIGNATURES + 1)])


def test_size_limit() -> None:
    line = PETER["signature_line"]
    big = "x" * (MAX_NOTE_BYTES - len(line.encode()) - 1) + "\n"
    with pytest.raises(NoteError, match="larger"):
        parse_note(big + "\n" + line)
    with pytest.raises(NoteError, match="larger"):
        parse_note((big + "\n" + line).encode())
    with pytest.raises(NoteError, match="larger"):
        sign_note(big, [PETER_KEY])
    just_fits = big[len(line) - 1 :]
    assert len((sign_note(just_fits, [PETER_KEY])).encode()) <= MAX_NOTE_BYTES


def test_surrogate_is_not_utf8() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note("a\udcff\n\n" + PETER["signature_line"])
    with pytest.raises(NoteError, match="UTF-8"):
        sign_note("a\udcff\n", [PETER_KEY])


# --- sign_note -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "abc", "a\n\x00\n", "a\r\n", "a\tb\n"])
def test_sign_rejects_bad_text(text: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, [PETER_KEY])


def test_sign_needs_a_signer() -> None:
    with pytest.raises(NoteError):
        sign_note(TEXT, [])


def test_sign_rejects_duplicate_signer() -> None:
    with pytest.raises(KeyFormatError, match="duplicate"):
        sign_note(TEXT, [PETER_KEY, SigningKey.from_skey(PETER["skey"])])


@dataclass
class PluginSigner:
    """A KMS-like signer with plain attributes, as a plugin might write it."""

    name: str
    key_id: bytes
    public_key: bytes
    inner: SigningKey
    truncate: bool = False

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        signature = self.inner.sign(message)
        return signature[:-1] if self.truncate else signature


def _plugin(key: SigningKey, **changes: Any) -> PluginSigner:
    fields: dict[str, Any] = {
        "name": key.name,
        "key_id": key.key_id,
        "public_key": key.public_key,
        "inner": key,
    }
    fields.update(changes)
    return PluginSigner(**fields)


def test_plugin_signer_and_rotation() -> None:
    old, new = SigningKey.generate("example.com/log"), SigningKey.generate("example.com/log")
    note = sign_note(TEXT, [_plugin(old), new])
    verdict = verify_note(note, [old.verifier(), new.verifier()])
    assert verdict.ok
    assert verdict.verified_by == ("example.com/log",)
    only_new = verify_note(note, [new.verifier()])
    assert only_new.ok
    assert only_new.unknown == (f"example.com/log+{old.key_id.hex()}",)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"name": "bad name"}, "name"),
        ({"key_id": b"\0\0\0\0"}, "key id"),
        ({"public_key": bytes(32)}, "key id"),
        ({"truncate": True}, "64-byte"),
    ],
)
def test_sign_rejects_inconsistent_signer(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(KeyFormatError, match=match):
        sign_note(TEXT, [_plugin(PETER_KEY, **changes)])


def test_signer_exception_propagates() -> None:
    class Boom(PluginSigner):
        def sign(self, message: bytes) -> bytes:
            raise RuntimeError("hsm offline")

    boom = Boom(PETER_KEY.name, PETER_KEY.key_id, PETER_KEY.public_key, PETER_KEY)
    with pytest.raises(RuntimeError, match="hsm offline"):
        sign_note(TEXT, [boom])


# --- verify_note ---------------------------------------------------------------------


def test_ambiguous_verifiers_rejected() -> None:
    impostor = VerifierKey("PeterNeumann", SigningKey.generate("x").public_key)
    impostor.key_id = PETER_V.key_id  # as if a 32-bit key id collision had been found
    with pytest.raises(KeyFormatError, match="ambiguous"):
        verify_note(GO["signed_note"], [PETER_V, impostor])
    assert verify_note(GO["signed_note"], [PETER_V, VerifierKey.parse(PETER["vkey"])]).ok


def test_text_with_empty_lines_round_trips() -> None:
    for text in ["\n", "a\n\n", "a\n\nb\n", "\n\n\n", "— x y\n\n— z w\n"]:
        note = sign_note(text, [PETER_KEY])
        assert parse_note(note).text == text
        assert verify_note(note, [PETER_V]).ok


NOTE_TEXT = st.lists(
    st.text(
        st.characters(codec="utf-8", min_codepoint=0x20),
        max_size=30,
    ),
    min_size=1,
    max_size=6,
).map(lambda lines: "".join(line + "\n" for line in lines))


@settings(max_examples=200, deadline=None)
@given(NOTE_TEXT)
def test_sign_parse_verify_round_trip(text: str) -> None:
    note = sign_note(text, [PETER_KEY])
    parsed = parse_note(note)
    assert parsed.text == text
    assert parsed.signatures == (
        NoteSignature("PeterNeumann", PETER_V.key_id, PETER_KEY.sign(text.encode())),
    )
    verdict = verify_note(note, [PETER_V])
    assert verdict.ok
    assert verdict.text == text


@settings(max_examples=300, deadline=None)
@given(NOTE_TEXT, st.data())
def test_any_single_character_change_is_caught(text: str, data: st.DataObject) -> None:
    note = sign_note(text, [PETER_KEY])
    index = data.draw(st.integers(0, len(note) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != note[index]))
    tampered = note[:index] + replacement + note[index + 1 :]
    try:
        verdict = verify_note(tampered, [PETER_V])
    except NoteError:
        return
    assert not verdict.ok


# --- checkpoints ---------------------------------------------------------------------

ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()


def test_checkpoint_body_and_parse() -> None:
    checkpoint = Checkpoint("example.com/log", 0, ROOT)
    assert checkpoint.body() == f"example.com/log\n0\n{ROOT_B64}\n"
    assert parse_checkpoint(checkpoint.body()) == checkpoint
    with_ext = Checkpoint("o", 2**64 - 1, ROOT, ("ext one", "— ext two"))
    assert with_ext.body() == f"o\n18446744073709551615\n{ROOT_B64}\next one\n— ext two\n"
    assert parse_checkpoint(with_ext.body()) == with_ext


def test_signed_checkpoint_round_trip() -> None:
    key = SigningKey.generate("example.com/log")
    checkpoint = Checkpoint("example.com/log", 42, ROOT)
    verdict = verify_note(sign_note(checkpoint.body(), [key]), [key.verifier()])
    assert verdict.ok
    assert parse_checkpoint(verdict.text) == checkpoint


@pytest.mark.parametrize(
    "text",
    [
        f"o\n1\n{ROOT_B64}",  # no final newline
        f"o\n1\n{ROOT_B64}\n\n",  # empty extension line
        f"\n1\n{ROOT_B64}\n",  # empty origin
        "o\n1\n",  # no root
        f"o\n{ROOT_B64}\n",
        f"o\n01\n{ROOT_B64}\n",  # leading zero
        f"o\n00\n{ROOT_B64}\n",
        f"o\n+1\n{ROOT_B64}\n",
        f"o\n-1\n{ROOT_B64}\n",
        f"o\n 1\n{ROOT_B64}\n",
        f"o\n1.0\n{ROOT_B64}\n",
        f"o\n\u0663\n{ROOT_B64}\n",  # ARABIC-INDIC DIGIT THREE
        f"o\n1_000\n{ROOT_B64}\n",
        f"o\n{2**64}\n{ROOT_B64}\n",
        f"o\n{'9' * 5000}\n{ROOT_B64}\n",
        f"o\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",  # 31-byte root
        f"o\n1\n{base64.b64encode(ROOT + b'x').decode()}\n",
        f"o\n1\n{ROOT_B64.rstrip('=')}\n",
        f"o\n1\n{ROOT_B64[:-2]}R=\n",  # non-canonical base64
        f"o\n1\n{ROOT.hex()}\n",
        f"o\t1\n1\n{ROOT_B64}\n",  # control character
        f"o\r\n1\n{ROOT_B64}\n",
        "",
    ],
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "args",
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("o", -1, ROOT, ()),
        ("o", 2**64, ROOT, ()),
        ("o", True, ROOT, ()),
        ("o", 1, ROOT[:31], ()),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\nb",)),
        ("o", 1, ROOT, ["ext"]),
    ],
)
def test_checkpoint_validates_fields(args: tuple[Any, ...]) -> None:
    with pytest.raises(NoteError):
        Checkpoint(*args)


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(codec="utf-8", min_codepoint=0x20), min_size=1, max_size=20),
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(st.text(st.characters(codec="utf-8", min_codepoint=0x20), min_size=1), max_size=3),
)
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(ext))
    assert parse_checkpoint(checkpoint.body()) == checkpoint


def test_key_id_helper_agrees_with_notes() -> None:
    assert (
        key_id("PeterNeumann", PETER_KEY.public_key)
        == parse_note(GO["signed_note"]).signatures[0].key_id
    )
