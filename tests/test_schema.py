"""The published schema and the fast validator (otel_audit.schema).

The validator must agree with an independent JSON Schema implementation (jsonschema's
Draft202012Validator) on every record JSON Schema can judge: the example records in
tests/data/records, records generated from the schema itself, and mutations of those.
Rules JSON Schema cannot express (record size, nesting depth, lone surrogates, NaN) and
the places where Python's ``re`` differs from ECMA-262 are tested on their own.
"""

from __future__ import annotations

import copy
import importlib
import ipaddress
import json
import math
import re
import types
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_audit.errors import AuditValidationError
from otel_audit.schema import (
    MAX_RECORD_BYTES,
    SCHEMA_ID,
    SCHEMA_VERSION,
    check,
    schema,
    validate,
    validate_unsealed,
)

# The module itself (the package re-exports the function ``schema`` under the same name).
S = importlib.import_module("otel_audit.schema")
M = importlib.import_module("otel_audit._schema_model")
E = importlib.import_module("otel_audit._schema_explain")
F = importlib.import_module("otel_audit._schema_fast")
C = importlib.import_module("otel_audit._canonical")

DATA = Path(__file__).parent / "data" / "records"
VALID: list[dict[str, Any]] = json.loads((DATA / "valid.json").read_text("utf-8"))
INVALID: list[dict[str, Any]] = json.loads((DATA / "invalid.json").read_text("utf-8"))
BY_NAME = {case["name"]: case["record"] for case in VALID}
MAX_SAFE = 2**53 - 1

RAW = schema()
REFERENCE = jsonschema.Draft202012Validator(RAW, format_checker=None)
_UNSEALED_RAW = schema()
_UNSEALED_RAW["required"].remove("integrity")
REFERENCE_UNSEALED = jsonschema.Draft202012Validator(_UNSEALED_RAW, format_checker=None)


def reference(sealed: bool) -> Any:
    return REFERENCE if sealed else REFERENCE_UNSEALED


def pairs(violations: list[Any]) -> set[tuple[str, str]]:
    return {(v.path, v.rule) for v in violations}


def fast_accepts(record: Any, sealed: bool = True) -> bool:
    fast = S._FAST if sealed else S._FAST_UNSEALED
    try:
        return bool(fast(record))
    except Exception:  # noqa: BLE001 -- as validate() does: the precise path decides
        return False


def seed() -> dict[str, Any]:
    return copy.deepcopy(BY_NAME["seed_example"])


# --------------------------------------------------------------------------------------
# The schema document
# --------------------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(RAW)
    assert RAW["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert RAW["$id"] == SCHEMA_ID == "https://otel-audit.dev/schema/audit-record-1.0.json"
    assert RAW["properties"]["version"]["const"] == SCHEMA_VERSION == "1.0"
    assert RAW["x-maxCanonicalBytes"] == MAX_RECORD_BYTES == 65536


def test_every_property_and_definition_has_a_description() -> None:
    missing: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if not isinstance(sub, dict) or not sub.get("description"):
                    missing.append(f"{where}/properties/{name}")
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}/{i}")

    walk(RAW, "#")
    missing += [f"#/$defs/{n}" for n, d in RAW["$defs"].items() if not d.get("description")]
    assert RAW.get("description")
    assert not missing


def test_schema_describes_what_json_schema_cannot_express() -> None:
    text = RAW["description"]
    for rule in ("64 KiB", "x-maxCanonicalBytes", "x-maxDepth", "surrogate", "NaN", "null"):
        assert rule in text


def test_schema_returns_a_fresh_copy() -> None:
    first = schema()
    first["properties"].clear()
    assert schema()["properties"]
    assert validate(seed()) == []


def test_objects_are_closed_except_free_form_ones() -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")

    walk(RAW, "#")
    assert RAW["properties"]["extensions"]["$ref"] == "#/$defs/freeObject"


# --------------------------------------------------------------------------------------
# Example records (tests/data/records)
# --------------------------------------------------------------------------------------


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply_patch(record: Any, patch: list[dict[str, Any]]) -> Any:
    """The add/replace/remove operations of RFC 6902 (JSON Patch)."""
    for op in patch:
        *parents, last = [_unescape(t) for t in op["path"].split("/")[1:]]
        target = record
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        if isinstance(target, list):
            if op["op"] == "remove":
                del target[int(last)]
            elif op["op"] == "add":
                target.insert(len(target) if last == "-" else int(last), op["value"])
            else:
                target[int(last)] = op["value"]
        elif op["op"] == "remove":
            del target[last]
        else:
            target[last] = op["value"]
    return record


def invalid_record(case: dict[str, Any]) -> Any:
    if "record" in case:
        return copy.deepcopy(case["record"])
    return apply_patch(copy.deepcopy(BY_NAME[case["base"]]), case["patch"])


@pytest.mark.parametrize("case", VALID, ids=[c["name"] for c in VALID])
def test_valid_example(case: dict[str, Any]) -> None:
    record, sealed = case["record"], case.get("sealed", True)
    assert case["desc"]
    assert validate(record, sealed=sealed) == []
    check(record, sealed=sealed)
    assert reference(sealed).is_valid(record), list(reference(sealed).iter_errors(record))


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid_example(case: dict[str, Any]) -> None:
    record, sealed = invalid_record(case), case.get("sealed", True)
    assert case["desc"]
    violations = validate(record, sealed=sealed)
    assert pairs(violations) == {tuple(v) for v in case["violations"]}
    assert len(violations) == len(case["violations"])
    for violation in violations:
        assert violation.message
    with pytest.raises(AuditValidationError) as raised:
        check(record, sealed=sealed)
    assert raised.value.violations == violations
    if "json_schema_differs" in case:
        assert reference(sealed).is_valid(record)  # documented: beyond JSON Schema/Python re
    else:
        assert not reference(sealed).is_valid(record)


def test_examples_cover_every_block_and_rule() -> None:
    blocks = {key for case in VALID for key in case["record"]}
    assert blocks == set(RAW["properties"])
    rules = {rule for case in INVALID for _, rule in case["violations"]}
    assert rules >= {
        "required",
        "type",
        "enum",
        "const",
        "pattern",
        "minLength",
        "minimum",
        "maximum",
        "minItems",
        "uniqueItems",
        "additionalProperties",
        "anyOf",
        "null",
        "surrogate",
    }


def test_the_sample_records_of_otel_audit_testing_are_valid_and_take_the_fast_path() -> None:
    from otel_audit.testing import sample_record

    for i in range(20):
        record = sample_record(i)
        assert validate(record, sealed=False) == []
        assert fast_accepts(record, sealed=False)
        assert pairs(validate(record)) == {("$.integrity", "required")}


def test_valid_examples_take_the_fast_path() -> None:
    for case in VALID:
        if case["name"] != "integral_float":  # 7.0: the precise path's job
            assert fast_accepts(case["record"], case.get("sealed", True)), case["name"]


# --------------------------------------------------------------------------------------
# Generated records: agreement with jsonschema
# --------------------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


def _no_surrogates(text: str) -> bool:
    return not any("\ud800" <= ch <= "\udfff" for ch in text)


def strategy(node: dict[str, Any], depth: int = 3) -> st.SearchStrategy[Any]:
    """Values valid for a node of the published schema, built from the schema itself."""
    if "$ref" in node:
        return strategy(RAW["$defs"][node["$ref"].rsplit("/", 1)[1]], depth)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
    options = [_typed(node, kind, depth) for kind in kinds if depth > 0 or kind not in ("array",)]
    return st.one_of(options)


def _typed(node: dict[str, Any], kind: str, depth: int) -> st.SearchStrategy[Any]:
    low, high = node.get("minimum", -MAX_SAFE), node.get("maximum", MAX_SAFE)
    if kind == "string":
        if "pattern" in node:
            body = node["pattern"].removeprefix("^").removesuffix("$")
            texts = st.from_regex(body, fullmatch=True).filter(_no_surrogates)
        else:
            size = min(node.get("maxLength", 12), 12)
            texts = st.text(
                st.characters(codec="utf-8"),
                min_size=node.get("minLength", 0),
                max_size=size,
            )
        return texts.filter(lambda t: len(t) <= node.get("maxLength", len(t)))
    if kind == "integer":
        return st.integers(low, high)
    if kind == "number":
        return st.one_of(
            st.integers(low, high),
            st.floats(low, high, allow_nan=False, allow_infinity=False),
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        items = strategy(node["items"], depth - 1)
        return st.lists(
            items,
            min_size=node.get("minItems", 0),
            max_size=min(node.get("maxItems", 3), 3),
            unique=node.get("uniqueItems", False),
        )
    if "properties" in node:
        required = node.get("required", [])
        objects = st.fixed_dictionaries(
            {k: strategy(v, depth) for k, v in node["properties"].items() if k in required},
            optional={
                k: strategy(v, depth) for k, v in node["properties"].items() if k not in required
            },
        )
        if "anyOf" in node:
            branches = [b["required"] for b in node["anyOf"]]
            objects = objects.filter(lambda d: any(all(k in d for k in b) for b in branches))
        return objects
    if depth <= 0:
        return st.just({})
    return st.dictionaries(_TEXT, strategy(node["additionalProperties"], depth - 1), max_size=3)


VALID_RECORDS = strategy(RAW)

_ODD_VALUES: list[Any] = [
    None,
    "",
    "x",
    "ZZ TOP",
    "1.0",
    "SUCCESS",
    "legitimate_interest",
    "sha256:" + "0" * 64,
    "evt_" + "0" * 32,
    "2024-01-15T14:30:45.123Z",
    "10.0.0.1",
    "a" * 8193,
    0,
    -1,
    1,
    100,
    7.0,
    7.5,
    MAX_SAFE,
    MAX_SAFE + 1,
    -(MAX_SAFE + 1),
    10**20,
    1e300,
    True,
    False,
    [],
    ["A"],
    ["A", "A"],
    list(range(1001)),
    {},
    {"a": 1},
]


def _locations(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _locations(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _locations(item, (*path, index))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def mutate(draw: Callable[[st.SearchStrategy[Any]], Any], record: Any) -> Any:
    """One random change: delete, replace with an odd value, add a key, duplicate, rename."""
    record = copy.deepcopy(record)
    path = draw(st.sampled_from(_locations(record)))
    target = _get(record, path)
    kind = draw(st.sampled_from(["delete", "replace", "add_key", "duplicate", "rename"]))
    if kind == "replace" and path:
        _get(record, path[:-1])[path[-1]] = copy.deepcopy(draw(st.sampled_from(_ODD_VALUES)))
    elif kind == "delete" and path and isinstance(_get(record, path[:-1]), dict):
        del _get(record, path[:-1])[path[-1]]
    elif kind == "add_key" and isinstance(target, dict):
        key = draw(st.sampled_from(["zz", "user_id", "type", "extensions", "status"]))
        target[key] = copy.deepcopy(draw(st.sampled_from(_ODD_VALUES)))
    elif kind == "duplicate" and isinstance(target, list) and target:
        target.append(copy.deepcopy(target[0]))
    elif kind == "rename" and path and isinstance(_get(record, path[:-1]), dict):
        parent = _get(record, path[:-1])
        parent[str(path[-1]).upper()] = parent.pop(path[-1])
    return record


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(st.data())
def test_generated_records_and_their_mutations_agree_with_jsonschema(data: st.DataObject) -> None:
    record = data.draw(VALID_RECORDS, "record")
    assert REFERENCE.is_valid(record), list(REFERENCE.iter_errors(record))
    assert validate(record) == []
    assert fast_accepts(record)  # plain JSON values never need the precise path

    for _ in range(3):
        changed = mutate(data.draw, record)
        violations = validate(changed)
        assert (violations == []) == REFERENCE.is_valid(changed), violations
        if fast_accepts(changed):  # the fast path never accepts what the precise path rejects
            assert S._explain(changed, True) == []
        unsealed = validate(changed, sealed=False)
        assert (unsealed == []) == REFERENCE_UNSEALED.is_valid(changed)
        assert_plain_is_exact(changed, unsealed)


def assert_plain_is_exact(record: Any, unsealed: list[Any]) -> None:
    """validate_unsealed gives validate's violations, and calls a record plain exactly
    when the fast path accepts it and the sealer's own type walk would pass it."""
    violations, plain = validate_unsealed(record)
    assert violations == unsealed
    walk = isinstance(record, dict) and C._only_plain_types(record)
    assert plain == (not violations and fast_accepts(record, sealed=False) and walk)


# --------------------------------------------------------------------------------------
# Rules beyond JSON Schema
# --------------------------------------------------------------------------------------


def padded(size: int) -> dict[str, Any]:
    """The seed record padded (via extensions) to exactly ``size`` canonical bytes."""
    record = seed()
    record["extensions"] = {"pad": ""}
    base = len(rfc8785.dumps(record))
    fill, rest = divmod(size - base, 8000)
    record["extensions"] = {f"p{i:02d}": "x" * 8000 for i in range(fill)}
    record["extensions"]["pad"] = "x" * (rest - 6 * fill - 7 * fill + 0)
    # each "pNN":"…" member adds 8000 + 6 (key) + 1 (colon) + 1 (comma) - 1 ... fix up exactly:
    while len(rfc8785.dumps(record)) < size:
        record["extensions"]["pad"] += "x"
    while len(rfc8785.dumps(record)) > size:
        record["extensions"]["pad"] = record["extensions"]["pad"][:-1]
    assert len(rfc8785.dumps(record)) == size
    return record


def test_record_size_limit_is_exact() -> None:
    at_limit = padded(MAX_RECORD_BYTES)
    assert validate(at_limit) == []
    assert REFERENCE.is_valid(at_limit)
    over = padded(MAX_RECORD_BYTES + 1)
    assert pairs(validate(over)) == {("$", "maxRecordSize")}
    assert REFERENCE.is_valid(over)  # JSON Schema cannot say this
    assert "65537 bytes" in validate(over)[0].message


def test_record_size_counts_escapes_and_utf8() -> None:
    record = seed()
    record["extensions"] = {f"k{i}": "\x01" * 2000 for i in range(6)}  # 6 bytes each: \u0001
    assert len(rfc8785.dumps(record)) > MAX_RECORD_BYTES
    assert pairs(validate(record)) == {("$", "maxRecordSize")}
    record["extensions"] = {f"k{i}": "€" * 2500 for i in range(9)}  # 3 bytes each in UTF-8
    assert len(rfc8785.dumps(record)) > MAX_RECORD_BYTES
    assert pairs(validate(record)) == {("$", "maxRecordSize")}


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("where", ["extensions", "before_state"])
def test_free_form_values_nest_at_most_16_levels(where: str) -> None:
    def put(value: Any) -> dict[str, Any]:
        record = seed()
        if where == "extensions":
            record["extensions"] = value
        else:
            record["change_tracking"] = {"before_state": value}
        return record

    assert validate(put(nested(16))) == []
    deep = validate(put(nested(17)))
    prefix = "$.extensions" if where == "extensions" else "$.change_tracking.before_state"
    assert pairs(deep) == {(prefix + ".a" * 15 + ".a", "maxDepth")}
    assert REFERENCE.is_valid(put(nested(17)))  # JSON Schema cannot say this
    arrays: Any = 1
    for _ in range(15):
        arrays = [arrays]
    assert validate(put({"x": arrays})) == []  # object + 15 arrays = 16 levels
    assert pairs(validate(put({"x": [arrays]}))) == {(prefix + ".x" + "[0]" * 15, "maxDepth")}


def test_very_deep_input_does_not_recurse_without_bound() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    record = seed()
    record["extensions"] = {"deep": value}
    assert [v.rule for v in validate(record)] == ["maxDepth"]
    record = seed()
    record["actor"]["junk"] = value  # an unknown key is not descended into
    assert pairs(validate(record)) == {("$.actor.junk", "additionalProperties")}


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_numbers_are_finite(number: float) -> None:
    record = seed()
    record["batch_context"] = {"processing_duration_ms": number}
    record["extensions"] = {"score": number}
    assert pairs(validate(record)) == {
        ("$.batch_context.processing_duration_ms", "finite"),
        ("$.extensions.score", "finite"),
    }


def test_lone_surrogates_are_rejected_everywhere() -> None:
    record = seed()
    record["extensions"] = {"list": ["ok", "\udc00"], "k": {"\ud83d": "x"}}
    record["context"]["user_agent"] = "Mozilla \ud800"
    record["metadata"]["compliance_tags"] = ["GDPR", "SOX"]
    assert pairs(validate(record)) == {
        ("$.extensions.list[1]", "surrogate"),
        ('$.extensions.k["\\ud83d"]', "surrogate"),
        ("$.context.user_agent", "surrogate"),
    }
    assert REFERENCE.is_valid(record)
    record = seed()
    record["actor"]["user_id"] = "😀 is a pair, not a lone surrogate"
    assert validate(record) == []


def test_dollar_matches_only_at_the_end() -> None:
    pattern = M._ecma_regex("^evt_[0-9a-f]{32}$", "#")
    value = "evt_" + "0" * 32
    assert pattern.search(value)
    assert not pattern.search(value + "\n")
    assert re.search("^evt_[0-9a-f]{32}$", value + "\n")  # what Python's re would say
    assert M._ecma_regex("^[$]a\\$$", "#").search("$a$")
    assert not M._ecma_regex("^[0-9]$", "#").search("٣")  # ECMA \d and classes are ASCII


@pytest.mark.parametrize("pattern", ["^.+$", "^\\s$", "^(a)\\1$", "^[]a]$", "^[^]$"])
def test_unportable_patterns_fail_the_compile(pattern: str) -> None:
    with pytest.raises(ValueError, match="not portable"):
        M._ecma_regex(pattern, "#")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "object", "format": "email"}, "unsupported keyword 'format'"),
        ({"type": "object", "if": {}}, "unsupported keyword 'if'"),
        ({"type": "null"}, "unsupported type"),
        ({"$ref": "https://example.com/x"}, "only local"),
        ({"$ref": "#/$defs/missing"}, "unresolved"),
        ({"properties": {"a": True}}, "boolean or non-object"),
    ],
)
def test_unsupported_schemas_fail_loudly(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        M._Compiler(raw)


def test_recursion_without_a_depth_bound_fails_the_compile() -> None:
    raw = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/loop"}},
        "additionalProperties": False,
        "$defs": {"loop": {"type": "array", "items": {"$ref": "#/$defs/loop"}}},
    }
    compiled = M._Compiler(raw)
    with pytest.raises(ValueError, match="needs x-maxDepth"):
        F._FastGen(compiled.defs).top(compiled.root, "_probe", 1000)


def test_non_json_values_are_reported() -> None:
    record = seed()
    record["metadata"]["compliance_tags"] = ("GDPR", "SOX")
    record["extensions"] = {"when": object(), 1: "int key", "bytes": b"x"}
    record["result"]["affected_records"] = 1 + 0j
    assert pairs(validate(record)) == {
        ("$.metadata.compliance_tags", "type"),
        ("$.extensions.when", "type"),
        ("$.extensions[1]", "type"),  # an int key, not an array index
        ("$.extensions.bytes", "type"),
        ("$.result.affected_records", "type"),
    }


def test_string_subclasses_and_mappings_are_judged_by_value() -> None:
    class Category(str, Enum):
        DATA_ACCESS = "data_access"

    record = seed()
    record["category"] = Category.DATA_ACCESS
    assert not fast_accepts(record)  # unusual types take the precise path...
    assert validate(record) == []  # ...which accepts them
    assert validate(types.MappingProxyType(seed())) == []


@pytest.mark.parametrize("root", [[], "record", 42, (1, 2)])
def test_a_record_is_an_object(root: Any) -> None:
    assert pairs(validate(root)) == {("$", "type")}
    assert pairs(validate(None)) == {("$", "null")}  # type: ignore[arg-type]


def test_sealed_false_allows_a_missing_integrity_only() -> None:
    record = seed()
    del record["integrity"]
    assert pairs(validate(record)) == {("$.integrity", "required")}
    assert validate(record, sealed=False) == []
    del record["actor"]
    assert pairs(validate(record, sealed=False)) == {("$.actor", "required")}


def test_violations_are_capped() -> None:
    record = seed()
    record["extensions"] = {"many": [math.nan] * 1000}
    violations = validate(record)
    assert len(violations) == 100
    assert str(AuditValidationError(violations)).endswith("(+95 more)")


def test_messages_never_echo_the_offending_value() -> None:
    secret = "hunter2-Secret"
    record = seed()
    record["action"] = secret
    record["category"] = secret
    record["actor"]["user_id"] = 12345678
    record["context"]["source_ip"] = secret
    record["integrity"]["seq"] = secret
    violations = validate(record)
    assert len(violations) == 5
    for violation in violations:
        assert secret not in str(violation)
        assert "12345678" not in str(violation)


def test_validation_does_not_change_the_record_or_remember_bad_values() -> None:
    record = seed()
    before = copy.deepcopy(record)
    assert validate(record) == []
    assert record == before
    record["action"] = "delete"
    assert pairs(validate(record)) == {("$.action", "pattern")}
    assert pairs(validate(record)) == {("$.action", "pattern")}  # not cached as valid


def test_paths_quote_keys_that_are_not_identifiers() -> None:
    record = seed()
    record["extensions"] = {"my-plugin": {"a b": None}, "x" * 100: None}
    assert pairs(validate(record)) == {
        ('$.extensions["my-plugin"]["a b"]', "null"),
        ("$.extensions." + "x" * 100, "null"),
    }
    record["extensions"] = {"ü" * 100: None}
    (violation,) = validate(record)
    assert violation.path == '$.extensions["' + "\\u00fc" * 64 + '\\u2026"]'  # ASCII, cut


def test_property_names_are_bounded() -> None:
    record = seed()
    record["extensions"] = {"k" * 8193: 1}
    (violation,) = validate(record)
    assert violation.rule == "propertyNames"
    assert not REFERENCE.is_valid(record)


# --------------------------------------------------------------------------------------
# Pieces of the compiler
# --------------------------------------------------------------------------------------

_IP_PATTERN = M._ecma_regex(RAW["properties"]["context"]["properties"]["source_ip"]["pattern"], "#")


def _is_ip(text: str) -> bool:
    if "%" in text and not re.fullmatch(r"[^%]*%[0-9A-Za-z._~-]{1,64}", text):
        return False  # our zone ids are restricted to unreserved URI characters
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_ip_pattern_accepts_every_address_form(address: Any) -> None:
    forms = {str(address), address.exploded, address.compressed}
    if address.version == 6 and address.ipv4_mapped is not None:
        forms.add(f"::ffff:{address.ipv4_mapped}")
    if address.version == 6:
        forms.add(address.exploded.upper())
        forms.add(f"{address.compressed}%eth0")
    for form in forms:
        assert _IP_PATTERN.search(form), form


@settings(max_examples=500, deadline=None)
@given(st.text("0123456789abcdefABCDEF:.%z", max_size=45))
def test_ip_pattern_agrees_with_ipaddress(text: str) -> None:
    assert bool(_IP_PATTERN.search(text)) == _is_ip(text)


_JSON = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(-MAX_SAFE, MAX_SAFE),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(codec="utf-8")),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(st.characters(codec="utf-8")), inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_canonical_size_matches_rfc8785(value: Any) -> None:
    assert E._canonical_size(value) == len(rfc8785.dumps(value))


@pytest.mark.parametrize(
    "number",
    [
        0.0,
        -0.0,
        1.0,
        -1.5,
        1e21,
        1e-7,
        1e-6,
        123456789012345680000.0,
        5e-324,
        1.7976931348623157e308,
    ],
)
def test_number_size_matches_rfc8785(number: float) -> None:
    assert E._number_size(number) == len(rfc8785.dumps(number))


@pytest.mark.parametrize(
    ("pattern", "shape"),
    [
        ("^evt_[0-9a-f]{32}$", (36, 36, True)),
        ("^[A-Z][A-Z0-9_]{0,63}$", (1, 64, True)),
        ("^(?:ab|c)?x+$", (1, None, True)),
        ("^[^+]+$", (1, None, False)),
        ("^é$", (1, 1, False)),
        ("^a|b$", None),
        ("^a(?=b)$", None),
        ("a$", None),
    ],
)
def test_pattern_shapes(pattern: str, shape: tuple[int, int | None, bool] | None) -> None:
    found = F._pattern_shape(pattern)
    assert (None if found is None else (found.min, found.max, found.ascii)) == shape


def test_caches_only_hold_values_that_passed() -> None:
    caches: list[Callable[[], int]] = [
        v.__len__ for k, v in S._GEN.env.items() if k.startswith("_seen")
    ]
    assert caches
    for i in range(300):
        record = seed()
        record["action"] = f"ACTION_{i}"
        assert validate(record) == []
    assert max(size() for size in caches) <= 256


MINI_SCHEMAS: list[tuple[dict[str, Any], list[Any]]] = [
    ({"type": ["string", "integer"], "enum": ["a", "b"]}, ["a", "c", 5, True]),
    ({"enum": [1, "a", True]}, [1, 1.0, True, "a", "b", 2, False]),
    ({"const": 3}, [3, 3.0, True, "3"]),
    (
        {"type": "object", "properties": {"a": {"type": "integer"}}},
        [{"a": 1, "b": [1]}, {"a": "x"}],
    ),
    (
        {"type": "object", "anyOf": [{"properties": {"a": {"const": 1}}}, {"required": ["b"]}]},
        [{"a": 1}, {"a": 2}, {"a": 2, "b": 0}, {}],
    ),
    ({"type": "array"}, [[1, "x", None], {}, "x"]),
    (
        {
            "type": "array",
            "uniqueItems": True,
            "items": {
                "type": "object",
                "properties": {"k": {"type": "string"}},
                "additionalProperties": False,
            },
        },
        [[{"k": "a"}, {"k": "a"}], [{"k": "a"}, {"k": "b"}], [{"k": "a", "j": 1}]],
    ),
    ({"type": "number", "minimum": 0.5}, [0.5, 0, 1, 2.5, -1.0]),
    ({"type": "string", "pattern": "^a+$", "maxLength": 3}, ["aaa", "aaaa", "aa\n", "", 1]),
    (
        {
            "type": "object",
            "properties": {"s": {"type": "string"}},
            "additionalProperties": {"type": "integer"},
        },
        [{"s": "x", "n": 1}, {"s": 1}, {"n": "x"}, {"n": 2**60}],
    ),
    ({"type": "integer"}, [1, 1.0, 2**53, -(2**53), 2**70, True]),
    ({"type": "object", "required": ["a"], "minProperties": 1}, []),
]


@pytest.mark.parametrize(
    ("raw", "values"), MINI_SCHEMAS[:-1], ids=[str(i) for i in range(len(MINI_SCHEMAS) - 1)]
)
def test_the_compiler_is_sound_beyond_the_published_schema(
    raw: dict[str, Any], values: list[Any]
) -> None:
    """Shapes the published schema does not use take the generic paths, still correctly."""
    compiled = M._Compiler(raw)
    fast = F._FastGen(compiled.defs).top(compiled.root, "_probe", MAX_RECORD_BYTES)
    reference_validator = jsonschema.Draft202012Validator(raw, format_checker=None)
    for value in values:
        precise = E._is_valid(compiled.root, value, None)
        if value != "aa\n" and not _has_null(value):  # Python re '$'; our null rule
            assert precise == reference_validator.is_valid(value), value
        try:
            quick = bool(fast(value))
        except Exception:  # noqa: BLE001 -- as validate() does
            quick = False
        assert precise or not quick, value


def _has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return value is None


def test_unsupported_keywords_in_mini_schemas_fail() -> None:
    with pytest.raises(ValueError, match="minProperties"):
        M._Compiler(MINI_SCHEMAS[-1][0])


@pytest.mark.parametrize(
    "where",
    ["extensions", "extensions.deep", "batch_context", "before_state", "list"],
)
def test_a_float_anywhere_makes_a_valid_record_not_plain(where: str) -> None:
    record = seed()
    assert validate_unsealed(record) == ([], True)
    if where == "extensions":
        record["extensions"] = {"amount": 12.5}
    elif where == "extensions.deep":
        record["extensions"] = {"a": {"b": [{"c": 1}, {"d": 1e-7}]}}
    elif where == "batch_context":
        record["batch_context"] = {"batch_id": "b-1", "processing_duration_ms": 3.0}
    elif where == "before_state":
        record["change_tracking"] = {"before_state": {"limit": 1.5}, "after_state": {"x": 2}}
    else:
        record["extensions"] = {"values": [1, 2, 3.25]}
    violations, plain = validate_unsealed(record)
    assert violations == []
    assert plain is False
    assert validate(record, sealed=False) == []


def test_validate_unsealed_reports_like_validate() -> None:
    record = seed()
    del record["integrity"]
    assert validate_unsealed(record) == ([], True)  # integrity may be absent before sealing
    record["actor"] = {"user_id": 7}
    violations, plain = validate_unsealed(record)
    assert violations == validate(record, sealed=False) != []
    assert plain is False
    assert validate_unsealed({"a": None})[1] is False
