"""Tests of otel_audit.keys against the published Go note vectors (tests/data/note)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from otel_audit.errors import KeyFormatError
from otel_audit.keys import (
    Signer,
    SigningKey,
    VerifierKey,
    format_vkey,
    is_valid_key_name,
    key_id,
)

DATA = Path(__file__).parent / "data" / "note"
GO: dict[str, Any] = json.loads((DATA / "go_note.json").read_text(encoding="utf-8"))
PETER: dict[str, Any] = GO["keys"][0]
ENOCH: dict[str, Any] = GO["keys"][1]
SKEY: str = PETER["skey"]
VKEY: str = PETER["vkey"]


def _secrets(key: SigningKey) -> list[str]:
    """Every textual form of ``key``'s private material a leak could take."""
    skey = key.skey()
    seed = base64.b64decode(skey.split("+", 4)[4])[1:]
    pem = key._private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    return [
        skey,
        skey.split("+", 4)[4],
        seed.hex(),
        base64.b64encode(seed).decode(),
        body,
        body[16:40],
    ]


def _assert_no_secret(text: str, key: SigningKey) -> None:
    for secret in _secrets(key):
        assert secret not in text


# --- the Go vector -----------------------------------------------------------------


def test_go_vector_skey_gives_published_key_id_and_vkey() -> None:
    key = SigningKey.from_skey(SKEY)
    assert key.name == "PeterNeumann"
    assert key.key_id == bytes.fromhex(PETER["key_id"])
    assert key_id(key.name, key.public_key) == key.key_id
    assert key.vkey == VKEY
    assert key.skey() == SKEY
    assert str(key.verifier()) == VKEY


@pytest.mark.parametrize("entry", GO["keys"], ids=lambda e: e["name"])
def test_go_vector_vkeys_parse(entry: dict[str, Any]) -> None:
    verifier = VerifierKey.parse(entry["vkey"])
    assert verifier.name == entry["name"]
    assert verifier.key_id.hex() == entry["key_id"]
    assert key_id(verifier.name, verifier.public_key) == verifier.key_id
    assert str(verifier) == entry["vkey"] == verifier.vkey
    assert format_vkey(verifier.name, verifier.public_key) == entry["vkey"]


def test_go_vector_signature_verifies() -> None:
    verifier = VerifierKey.parse(VKEY)
    raw = base64.b64decode(PETER["signature_line"].split(" ")[2])
    text = GO["text"].encode()
    assert raw[:4] == verifier.key_id
    assert verifier.verify(text, raw[4:])
    assert not verifier.verify(text + b" ", raw[4:])
    assert not verifier.verify(text, raw[4:-1])
    assert not verifier.verify(text, raw[4:] + b"\0")


@pytest.mark.parametrize("entry", GO["bad_vkeys"], ids=lambda e: e["desc"])
def test_go_bad_vkeys_rejected(entry: dict[str, Any]) -> None:
    with pytest.raises(KeyFormatError):
        VerifierKey.parse(entry["vkey"])


def test_vkey_manglings_rejected() -> None:
    """As Go's TestNewVerifier: every proper substring and every one-character bump fails."""
    for i in range(len(VKEY)):
        for j in range(i + 1, len(VKEY) + 1):
            if (i, j) != (0, len(VKEY)):
                with pytest.raises(KeyFormatError):
                    VerifierKey.parse(VKEY[i:j])
    for i in range(len(VKEY)):
        with pytest.raises(KeyFormatError):
            VerifierKey.parse(VKEY[:i] + chr(ord(VKEY[i]) + 1) + VKEY[i + 1 :])


def test_skey_manglings_rejected_without_leaking() -> None:
    """As Go's TestNewSigner; no error message may echo any part of the key."""
    key = SigningKey.from_skey(SKEY)
    for i in range(len(SKEY)):
        for j in range(i + 1, len(SKEY) + 1):
            if (i, j) != (0, len(SKEY)):
                with pytest.raises(KeyFormatError) as info:
                    SigningKey.from_skey(SKEY[i:j])
                _assert_no_secret(str(info.value), key)
    for i in range(len(SKEY)):
        with pytest.raises(KeyFormatError) as info:
            SigningKey.from_skey(SKEY[:i] + chr(ord(SKEY[i]) + 1) + SKEY[i + 1 :])
        _assert_no_secret(str(info.value), key)


@pytest.mark.parametrize(
    "vkey",
    [
        VKEY.replace("c74f20a3", "C74F20A3"),  # key id hex must be lowercase
        VKEY.replace("c74f20a3", "c74f20a4"),  # key id not derived from the key
        VKEY.replace("+c74f20a3+", "+c74f20a+"),
        VKEY.rstrip("W") + "V",  # non-canonical base64 / other key
        VKEY + "=",
        " " + VKEY,
        "Peter Neumann+c74f20a3+" + VKEY.rsplit("+", 1)[1],
        "+c74f20a3+" + VKEY.rsplit("+", 1)[1],
        "",
    ],
)
def test_malformed_vkeys(vkey: str) -> None:
    with pytest.raises(KeyFormatError):
        VerifierKey.parse(vkey)


def test_skey_given_as_vkey_is_refused_without_echo() -> None:
    key = SigningKey.from_skey(SKEY)
    for call in (VerifierKey.parse, VerifierKey.load):
        with pytest.raises(KeyFormatError, match="private") as info:
            call(SKEY)
        _assert_no_secret(str(info.value), key)


# --- names, ids ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\x01b", "a\ud800"]
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_key_name(name)
    with pytest.raises(KeyFormatError):
        key_id(name, bytes(32))
    with pytest.raises(KeyFormatError):
        SigningKey.generate(name)


@pytest.mark.parametrize("name", ["a", "example.com/log42", "día", "PeterNeumann", "x-y_z.1"])
def test_valid_names(name: str) -> None:
    assert is_valid_key_name(name)
    key = SigningKey.generate(name)
    assert VerifierKey.parse(key.vkey) == key.verifier()


def test_key_id_needs_32_byte_key() -> None:
    with pytest.raises(KeyFormatError):
        key_id("a", bytes(31))


# --- SigningKey ------------------------------------------------------------------------


def test_generate_sign_verify() -> None:
    key = SigningKey.generate("example.com/log")
    assert isinstance(key, Signer)
    verifier = VerifierKey.parse(key.vkey)
    signature = key.sign(b"hi")
    assert len(signature) == 64
    assert verifier.verify(b"hi", signature)
    assert not verifier.verify(b"hj", signature)
    assert not SigningKey.generate("example.com/log").verifier().verify(b"hi", signature)
    assert SigningKey.from_skey(key.skey()).vkey == key.vkey


def test_repr_and_str_hide_the_key() -> None:
    key = SigningKey.from_skey(SKEY)
    assert repr(key) == "SigningKey(name='PeterNeumann', key_id='c74f20a3')"
    _assert_no_secret(repr(key), key)
    _assert_no_secret(str(key), key)
    _assert_no_secret(repr(key.verifier()), key)


def test_write_modes_and_content(tmp_path: Path) -> None:
    key = SigningKey.generate("example.com/log")
    path = tmp_path / "log.key"
    key.write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    vkey_path = tmp_path / "log.key.vkey"
    assert vkey_path.read_text(encoding="utf-8") == key.vkey + "\n"
    assert stat.S_IMODE(vkey_path.stat().st_mode) & 0o777 == 0o644 & ~_umask()
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = SigningKey.from_file(path)
    assert (loaded.name, loaded.public_key) == (key.name, key.public_key)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    SigningKey.generate("a").write(path)
    before = path.read_bytes(), (tmp_path / "log.key.vkey").read_bytes()
    with pytest.raises(FileExistsError):
        SigningKey.generate("b").write(path)
    assert (path.read_bytes(), (tmp_path / "log.key.vkey").read_bytes()) == before


def test_write_refuses_when_only_vkey_exists(tmp_path: Path) -> None:
    (tmp_path / "log.key.vkey").write_text("keep me\n", encoding="utf-8")
    with pytest.raises(FileExistsError):
        SigningKey.generate("a").write(tmp_path / "log.key")
    assert not (tmp_path / "log.key").exists()
    assert (tmp_path / "log.key.vkey").read_text(encoding="utf-8") == "keep me\n"


def test_write_refuses_through_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "log.key").symlink_to(target)
    with pytest.raises(FileExistsError):
        SigningKey.generate("a").write(tmp_path / "log.key")
    assert not target.exists()


def _pem(private: Any, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    data: bytes = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return data


def test_from_file_pem_needs_a_name(tmp_path: Path) -> None:
    key = SigningKey.generate("example.com/log")
    path = tmp_path / "k.pem"
    path.write_bytes(_pem(key._private))
    with pytest.raises(KeyFormatError, match=r"\.vkey") as info:
        SigningKey.from_file(path)
    _assert_no_secret(str(info.value), key)
    named = SigningKey.from_file(path, name="other.example/log")
    assert named.name == "other.example/log"
    assert named.public_key == key.public_key
    assert SigningKey.from_file(str(path), name="example.com/log").vkey == key.vkey


def test_from_file_pem_name_from_vkey_sibling(tmp_path: Path) -> None:
    key = SigningKey.generate("example.com/log")
    path = tmp_path / "k.pem"
    path.write_bytes(_pem(key._private))
    (tmp_path / "k.pem.vkey").write_text("\n" + key.vkey + "\n", encoding="utf-8")
    assert SigningKey.from_file(path).vkey == key.vkey
    assert SigningKey.from_file(path, name="override").name == "override"


def test_from_file_vkey_sibling_of_another_key(tmp_path: Path) -> None:
    key = SigningKey.generate("example.com/log")
    path = tmp_path / "k.pem"
    path.write_bytes(_pem(key._private))
    (tmp_path / "k.pem.vkey").write_text(VKEY + "\n", encoding="utf-8")
    with pytest.raises(KeyFormatError, match="does not match") as info:
        SigningKey.from_file(path)
    _assert_no_secret(str(info.value), key)


def test_from_file_skey(tmp_path: Path) -> None:
    path = tmp_path / "k.skey"
    path.write_text(SKEY + "\n", encoding="utf-8")
    assert SigningKey.from_file(path).skey() == SKEY
    assert SigningKey.from_file(path, name="PeterNeumann").skey() == SKEY
    with pytest.raises(KeyFormatError) as info:
        SigningKey.from_file(path, name="Other")
    _assert_no_secret(str(info.value), SigningKey.from_skey(SKEY))


def test_from_file_rejects_other_formats_without_leaking(tmp_path: Path) -> None:
    key = SigningKey.generate("example.com/log")
    pem = _pem(key._private)
    lines = pem.splitlines(keepends=True)
    cases = {
        "garbage": b"hello\n",
        "empty": b"",
        "truncated PEM": b"".join(lines[:2]),
        "corrupted PEM": lines[0] + lines[1][:10] + b"!" + lines[1][11:] + lines[2],
        "encrypted PEM": _pem(key._private, b"pw"),
        "EC PEM": _pem(ec.generate_private_key(ec.SECP256R1())),
        "raw seed": base64.b64decode(key.skey().split("+", 4)[4])[1:],
        "not UTF-8 skey": b"PRIVATE+KEY+\xff\n",
        "too large": b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 70000,
    }
    for desc, data in cases.items():
        path = tmp_path / desc.replace(" ", "_")
        path.write_bytes(data)
        with pytest.raises(KeyFormatError) as info:
            SigningKey.from_file(path, name="n")
        _assert_no_secret(str(info.value), key)
        assert info.value.__cause__ is None, desc


def test_from_file_missing_is_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SigningKey.from_file(tmp_path / "nope")


def test_ed25519_check_in_constructor() -> None:
    with pytest.raises(KeyFormatError):
        SigningKey("a", ec.generate_private_key(ec.SECP256R1()))  # type: ignore[arg-type]
    assert SigningKey("a", Ed25519PrivateKey.generate()).name == "a"


# --- VerifierKey.load ---------------------------------------------------------------


def test_load_string_and_file(tmp_path: Path) -> None:
    assert str(VerifierKey.load(VKEY)) == VKEY
    assert str(VerifierKey.load(f"  {VKEY}\n")) == VKEY
    path = tmp_path / "peter.vkey"
    path.write_text(f"\n\n{VKEY}\n{ENOCH['vkey']}\n", encoding="utf-8")
    assert str(VerifierKey.load(str(path))) == VKEY


def test_load_failures(tmp_path: Path) -> None:
    with pytest.raises(KeyFormatError):
        VerifierKey.load(str(tmp_path / "missing.vkey"))
    with pytest.raises(KeyFormatError):
        VerifierKey.load(VKEY.replace("c74f20a3", "c74f20a4"))
    empty = tmp_path / "empty"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(KeyFormatError):
        VerifierKey.load(str(empty))
    key = SigningKey.generate("example.com/log")
    pem = tmp_path / "k.pem"
    pem.write_bytes(_pem(key._private))
    with pytest.raises(KeyFormatError) as info:
        VerifierKey.load(str(pem))
    _assert_no_secret(str(info.value), key)


def test_verifier_equality() -> None:
    a, b = VerifierKey.parse(VKEY), VerifierKey.parse(VKEY)
    assert a == b
    assert hash(a) == hash(b)
    assert a != VerifierKey.parse(ENOCH["vkey"])
    assert a != VKEY
    assert repr(a) == f"VerifierKey({VKEY!r})"
