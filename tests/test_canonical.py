"""Tests of otel_audit._canonical against RFC 8785 vectors and the independent rfc8785 package."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import struct
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_audit._canonical import (
    MAX_SAFE_INTEGER,
    _fast_path,
    canonicalize,
    canonicalize_reference,
    number_to_json,
)
from otel_audit.errors import CanonicalizationError

DATA = Path(__file__).parent / "data" / "rfc8785"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert loaded["desc"]
    assert loaded["source"]
    return loaded


def _double(ieee_hex: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(ieee_hex))[0]
    return value


def _all_agree(value: Any) -> bytes:
    """Canonical bytes of ``value``, asserting both of ours and rfc8785 give the same."""
    expected: bytes = rfc8785.dumps(value)
    assert canonicalize_reference(value) == expected
    assert canonicalize(value) == expected
    return expected


# --- published vectors ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["sample.json", "sorting.json"])
def test_rfc8785_objects(name: str) -> None:
    vector = _load(name)
    expected = vector["expected"].encode("utf-8")
    assert _all_agree(vector["input"]) == expected
    if "expected_utf8_hex" in vector:  # §3.2.4
        assert expected == bytes.fromhex(vector["expected_utf8_hex"])
    if "expected_key_order" in vector:
        assert list(json.loads(expected)) == vector["expected_key_order"]


NUMBERS = _load("numbers.json")
ECMASCRIPT_NUMBERS = _load("numbers_ecmascript.json")
STRINGS = _load("strings.json")


@pytest.mark.parametrize(
    ("ieee_hex", "expected"), [(v["ieee_hex"], v["expected"]) for v in NUMBERS["vectors"]]
)
def test_appendix_b_numbers(ieee_hex: str, expected: str) -> None:
    x = _double(ieee_hex)
    assert number_to_json(x) == expected
    assert _all_agree([x]) == f"[{expected}]".encode()
    assert canonicalize(x) == expected.encode()


@pytest.mark.parametrize("ieee_hex", [v["ieee_hex"] for v in NUMBERS["errors"]])
def test_appendix_b_errors(ieee_hex: str) -> None:
    x = _double(ieee_hex)
    with pytest.raises(CanonicalizationError, match="not a JSON number"):
        number_to_json(x)
    for function in (canonicalize, canonicalize_reference):
        with pytest.raises(CanonicalizationError, match=r"^\$\.v\[1\]: "):
            function({"v": [0, x]})


@pytest.mark.parametrize(
    ("literal", "expected"),
    [(v["literal"], v["expected"]) for v in ECMASCRIPT_NUMBERS["vectors"]],
)
def test_ecmascript_number_boundaries(literal: str, expected: str) -> None:
    x = float(literal)
    assert number_to_json(x) == expected
    assert _all_agree({"x": x}) == b'{"x":' + expected.encode() + b"}"


@pytest.mark.parametrize(
    ("text", "expected"), [(v["input"], v["expected"]) for v in STRINGS["vectors"]]
)
def test_strings(text: str, expected: str) -> None:
    assert _all_agree(text) == expected.encode("utf-8")
    assert _all_agree({text: [text]}) == f"{{{expected}:[{expected}]}}".encode()


# --- numbers --------------------------------------------------------------------------


def test_integers() -> None:
    assert number_to_json(0) == "0"
    assert number_to_json(-42) == "-42"
    assert number_to_json(MAX_SAFE_INTEGER) == "9007199254740991"
    assert number_to_json(-MAX_SAFE_INTEGER) == "-9007199254740991"
    for big in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**64, -(2**70)):
        with pytest.raises(CanonicalizationError, match="no exact IEEE 754 double"):
            number_to_json(big)


def test_number_to_json_rejects_non_numbers() -> None:
    for bad in (True, False, "1", None, decimal.Decimal(1)):
        with pytest.raises(CanonicalizationError, match="not a number"):
            number_to_json(bad)  # type: ignore[arg-type]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_to_json_matches_rfc8785(x: float) -> None:
    text = number_to_json(x)
    assert text.encode() == rfc8785.dumps(x)
    assert float(text) == x  # round-trips (-0 reads back as 0.0, which equals -0.0)


# --- rejections -----------------------------------------------------------------------


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int


REJECTED: list[tuple[object, str, str]] = [
    ({"a": [0, 1, 2, {"b": math.nan}]}, "$.a[3].b", "not a JSON number"),
    ({"a": math.inf}, "$.a", "not a JSON number"),
    ([-math.inf], "$[0]", "not a JSON number"),
    ({"n": 2**53}, "$.n", "no exact IEEE 754 double"),
    ({"n": [-(2**53)]}, "$.n[0]", "no exact IEEE 754 double"),
    ({"n": 2**64}, "$.n", "no exact IEEE 754 double"),
    ({"a": {1: "x"}}, "$.a", "not a str"),
    ({("t",): 1}, "$", "not a str"),
    ({"s": "ok\ud800"}, "$.s", "lone surrogate"),
    ({"k": {"\udc00": 1}}, '$.k["\\udc00"]', "lone surrogate"),
    (
        {"odd key": [datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)]},
        '$["odd key"][0]',
        "datetime is not a JSON type",
    ),
    ({"id": uuid.UUID(int=1)}, "$.id", "UUID is not a JSON type"),
    ({"b": b"bytes"}, "$.b", "bytes is not a JSON type"),
    ({"s": {1, 2}}, "$.s", "set is not a JSON type"),
    ({"s": frozenset()}, "$.s", "frozenset is not a JSON type"),
    ({"c": Color.RED}, "$.c", "Color is not a JSON type"),
    ({"p": Point(1)}, "$.p", "Point is not a JSON type"),
    ({"d": decimal.Decimal("1.5")}, "$.d", "Decimal is not a JSON type"),
    ({"f": orjson.Fragment(b'{"b":1, "a":2}')}, "$.f", "Fragment is not a JSON type"),
    ({"o": object()}, "$.o", "object is not a JSON type"),
    (uuid.UUID(int=1), "$", "UUID is not a JSON type"),
]


@pytest.mark.parametrize(("value", "path", "reason"), REJECTED)
def test_rejections_name_the_path(value: object, path: str, reason: str) -> None:
    for function in (canonicalize, canonicalize_reference):
        with pytest.raises(CanonicalizationError) as caught:
            function(value)
        message = str(caught.value)
        assert message.startswith(path + ": "), message
        assert reason in message


def test_cycles_and_deep_nesting_are_rejected() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    for value in (cyclic, deep):
        for function in (canonicalize, canonicalize_reference):
            with pytest.raises(CanonicalizationError, match="nests too deeply"):
                function(value)


# --- accepted non-plain input ---------------------------------------------------------


class Level(enum.IntEnum):
    HIGH = 3


class Kind(str, enum.Enum):
    USER = "user"


class MyStr(str):
    def __str__(self) -> str:
        return "not the content"


class MyDict(dict[str, object]):
    pass


def test_subclasses_tuples_and_none_as_their_base_type() -> None:
    value = {
        "level": Level.HIGH,
        "kind": Kind.USER,
        "name": MyStr("alice"),
        MyStr("key"): MyDict(z=1, a=(1, 2.5, None)),
        "list": [True, False, None],
    }
    expected = (
        b'{"key":{"a":[1,2.5,null],"z":1},"kind":"user","level":3,'
        b'"list":[true,false,null],"name":"alice"}'
    )
    assert canonicalize(value) == canonicalize_reference(value) == expected
    assert canonicalize(None) == b"null"
    assert canonicalize((1, "x")) == b'[1,"x"]'


def test_fast_path_declines_what_orjson_would_get_wrong() -> None:
    declined: list[object] = [
        {"f": 1.0},  # orjson writes 1.0
        {"f": 0.5},  # every float goes the slow way, even where orjson agrees
        [-0.0],  # orjson writes -0.0
        {"n": None},  # orjson writes NaN as null too, so all null goes the slow way
        {"t": (1, 2)},
        {"id": uuid.UUID(int=1)},  # orjson would write the UUID string
        {"c": Color.RED},  # orjson would write 1
        {"f": orjson.Fragment(b'{"b":1, "a":2}')},  # orjson would copy it verbatim
        {"big": 2**53},
        {"\ue000": 1, "\U0001f600": 2},  # UTF-8 and UTF-16 orders differ
        "top-level scalar",
    ]
    for value in declined:
        assert _fast_path(value) is None, value
    assert canonicalize({"\ue000": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ue000":1}'.encode()


def test_orjson_escapes_every_char_as_rfc8785() -> None:
    """The fast path relies on this; it re-checks each orjson upgrade."""
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    chars += ["\U00010000", "\U0001f600", "\U0010ffff"]
    for batch in range(0, len(chars), 4096):
        strings = chars[batch : batch + 4096]
        assert orjson.dumps(strings) == canonicalize_reference(strings)


# --- property tests -------------------------------------------------------------------

CHARS = st.one_of(
    st.characters(codec="utf-8"),
    st.characters(max_codepoint=0x7F),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
    st.sampled_from('"\\/\b\t\n\f\r\x00\x1f\x7f\u2028\u2029'),
)
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e21, 1e-7, 1e-6, 9007199254740992.0]),
    st.floats(min_value=-1e-300, max_value=1e-300, allow_nan=False),
)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.integers(-1000, 1000),
    FLOATS,
    st.text(CHARS, max_size=10),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(CHARS, max_size=6), inner, max_size=6),
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(JSON_VALUES)
def test_random_json_matches_reference_and_rfc8785(value: object) -> None:
    _all_agree(value)


RECORD_KEYS = st.text("abcdefghijklmnopqrstuvwxyz_.ABCZ019", min_size=1, max_size=12)
RECORD_TEXT = st.text(
    st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.sampled_from('\t\n"\\é日€😀\x7f'),  # non-ASCII but no U+E000-U+FFFF
    ),
    max_size=30,
)
RECORD_LEAVES = st.one_of(
    RECORD_TEXT, st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), st.booleans()
)
RECORDS = st.dictionaries(
    RECORD_KEYS,
    st.recursive(
        RECORD_LEAVES,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(RECORD_KEYS, inner, max_size=6)
        ),
        max_leaves=15,
    ),
    max_size=10,
)


@settings(max_examples=200)
@given(RECORDS)
def test_audit_shaped_records_take_the_fast_path(record: dict[str, object]) -> None:
    expected = _all_agree(record)
    assert _fast_path(record) == expected


# Keys from a few chars where UTF-8 (code point) and UTF-16 orders disagree: U+E000-U+FFFF
# sorts after U+10000 and above in UTF-16, before them by code point.
ORDER_KEYS = st.text(
    st.sampled_from(["a", "\x7f", "\ue000", "\ufb33", "\uffff", "\U00010000", "\U0001f600"]),
    min_size=1,
    max_size=3,
)


@given(st.dictionaries(ORDER_KEYS, st.integers(-5, 5) | st.dictionaries(ORDER_KEYS, st.none())))
def test_utf16_key_order(value: dict[str, object]) -> None:
    expected = _all_agree(value)
    keys = list(json.loads(expected))
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))
