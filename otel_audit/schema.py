"""The published audit-record schema and its fast validator.

The JSON Schema (draft 2020-12) in ``otel_audit/schema/audit-record-1.0.schema.json`` is
the single source of truth for the record format (DESIGN §3). At import this module
compiles that file, not a hand-written copy of it, into two validators:

* a **fast path**: Python source generated from the schema and ``exec``-ed once; one
  function of inlined checks (precompiled regexes, frozensets, exact ``type() is``
  tests, small caches of values that passed) that answers only "valid or not";
* a **precise path**: an interpreter over the same compiled schema that lists every
  broken rule as a :class:`~otel_audit.errors.Violation` (JSON path + keyword).

The fast path is allowed to be conservative: whenever it says "not valid" (or meets
anything unusual, such as a ``str`` subclass or an integral float), :func:`validate`
asks the precise path, whose answer is final. Tests check that the fast path never
accepts what the precise path rejects, and that the precise path agrees with an
independent JSON Schema implementation.

Supported keywords are exactly those the schema uses; an unknown keyword fails the import.
Beyond JSON Schema, the validator enforces what JSON Schema cannot express, named in the
schema by two ``x-`` keywords and its description:

* ``x-maxCanonicalBytes`` (root): the record's RFC 8785 form is at most that many bytes
  (rule ``maxRecordSize``);
* ``x-maxDepth``: a free-form object nests at most that many levels of objects/arrays,
  itself included (rule ``maxDepth``);
* no ``null`` anywhere (rule ``null``; JSON Schema would call it ``type``), numbers are
  finite (rule ``finite``), strings hold no lone UTF-16 surrogate (rule ``surrogate``).

Patterns follow ECMA-262, as JSON Schema requires: ``$`` matches only at the very end
(Python's ``$`` would also match before a final newline), and ``\\d``/``\\w`` are ASCII.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Final

from otel_audit.errors import AuditValidationError, Violation

__all__ = [
    "MAX_RECORD_BYTES",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "check",
    "schema",
    "validate",
]

SCHEMA_VERSION: Final = "1.0"
_SCHEMA_FILE: Final = "audit-record-1.0.schema.json"

# Keys the sealer adds: a record validated before sealing (``sealed=False``) may lack them.
_SEALER_KEYS: Final = frozenset({"integrity"})

_MAX_SAFE: Final = 2**53 - 1
_MAX_VIOLATIONS: Final = 100  # a hostile record must not produce an unbounded report


def _load_text() -> str:
    return (resources.files("otel_audit") / "schema" / _SCHEMA_FILE).read_text(encoding="utf-8")


_SCHEMA_TEXT: Final = _load_text()


def schema() -> dict[str, Any]:
    """The published JSON Schema of the audit record (a fresh copy on every call)."""
    loaded: dict[str, Any] = json.loads(_SCHEMA_TEXT)
    return loaded


# --------------------------------------------------------------------------------------
# Compiling the schema into nodes
# --------------------------------------------------------------------------------------

_ANNOTATIONS: Final = frozenset(
    {"$comment", "title", "description", "examples", "default", "deprecated"}
)
_ROOT_ONLY: Final = frozenset({"$schema", "$id", "$defs", "x-maxCanonicalBytes"})
_KEYWORDS: Final = frozenset(
    {
        "type",
        "enum",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "anyOf",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "$ref",
        "x-maxDepth",
    }
)
_TYPES: Final = ("string", "integer", "number", "boolean", "object", "array")


def _ecma_regex(source: str, where: str) -> re.Pattern[str]:
    """Compile an ECMA-262 pattern as used by JSON Schema, for Python's ``re``.

    Outside character classes ``$`` becomes ``\\Z`` (end of input; ECMA-262 ``$`` does not
    match before a trailing newline). ``.`` and ``\\s``/``\\S`` differ between the two
    dialects (line terminators, Unicode spaces) and are refused, as are backreferences.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            nxt = source[i + 1 : i + 2]
            if nxt in ("s", "S") or (nxt.isdigit() and nxt != "0"):
                raise ValueError(f"schema {where}: pattern escape \\{nxt} is not portable")
            out.append(source[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if source[i + 1 : i + 2] == "]" or source[i + 1 : i + 3] == "^]":
                # ECMA-262 "[]" matches nothing and "[^]" anything; Python reads "]" literally
                raise ValueError(f"schema {where}: '[]' and '[^]' are not portable")
        elif ch == "$":
            ch = r"\Z"
        elif ch == ".":
            raise ValueError(f"schema {where}: '.' in a pattern is not portable; use a class")
        out.append(ch)
        i += 1
    return re.compile("".join(out), re.ASCII)


class _Node:
    """One compiled (sub)schema: its keywords, preprocessed for fast evaluation."""

    __slots__ = (
        "additional",
        "any_of",
        "closed",
        "const",
        "enum",
        "enum_set",
        "has_const",
        "items",
        "max_depth",
        "max_items",
        "max_len",
        "maximum",
        "min_items",
        "min_len",
        "minimum",
        "pattern",
        "pattern_src",
        "prop_names",
        "props",
        "ref",
        "ref_name",
        "required",
        "types",
        "unique",
        "where",
    )

    def __init__(self, where: str) -> None:
        self.where = where
        self.types: tuple[str, ...] | None = None
        self.enum: tuple[Any, ...] | None = None
        self.enum_set: frozenset[str] | None = None  # when every member is a string
        self.has_const = False
        self.const: Any = None
        self.pattern: re.Pattern[str] | None = None
        self.pattern_src: str | None = None  # as written in the schema (ECMA-262)
        self.min_len: int | None = None
        self.max_len: int | None = None
        self.minimum: int | float | None = None
        self.maximum: int | float | None = None
        self.props: dict[str, _Node] = {}
        self.required: tuple[str, ...] = ()
        self.closed = False
        self.additional: _Node | None = None
        self.prop_names: _Node | None = None
        self.any_of: tuple[_Node, ...] = ()
        self.items: _Node | None = None
        self.min_items: int | None = None
        self.max_items: int | None = None
        self.unique = False
        self.ref: _Node | None = None
        self.ref_name: str | None = None
        self.max_depth: int | None = None

    def without_required(self, names: frozenset[str]) -> _Node:
        clone = _Node(self.where)
        for slot in _Node.__slots__:
            setattr(clone, slot, getattr(self, slot))
        clone.required = tuple(r for r in self.required if r not in names)
        return clone

    def is_plain_ref(self) -> bool:
        """Only a ``$ref`` (plus annotations): the node behaves exactly like its target."""
        return self.ref is not None and not self.has_keywords(ref=False)

    def only_required(self) -> bool:
        """Only ``required`` (as in an anyOf of alternatives that name required keys)."""
        return bool(self.required) and not self.has_keywords(required=False)

    def has_keywords(self, *, ref: bool = True, required: bool = True) -> bool:
        """Whether any validation keyword is present (optionally ignoring $ref/required)."""
        return bool(
            (ref and self.ref is not None)
            or (required and self.required)
            or self.types is not None
            or self.enum is not None
            or self.has_const
            or self.pattern is not None
            or self.min_len is not None
            or self.max_len is not None
            or self.minimum is not None
            or self.maximum is not None
            or self.props
            or self.closed
            or self.additional is not None
            or self.prop_names is not None
            or self.any_of
            or self.items is not None
            or self.min_items is not None
            or self.max_items is not None
            or self.unique
            or self.max_depth is not None
        )


def _int(value: Any, where: str, key: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"schema {where}: {key} must be a non-negative integer")
    return value


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        defs = root.get("$defs", {})
        self.defs: dict[str, _Node] = {name: _Node(f"#/$defs/{name}") for name in defs}
        for name, sub in defs.items():
            self.fill(self.defs[name], sub, is_root=False)
        self.root = _Node("#")
        self.fill(self.root, root, is_root=True)

    def node(self, raw: Any, where: str) -> _Node:
        node = _Node(where)
        self.fill(node, raw, is_root=False)
        return node

    def fill(self, node: _Node, raw: Any, *, is_root: bool) -> None:
        where = node.where
        if not isinstance(raw, dict):
            raise ValueError(f"schema {where}: boolean or non-object schemas are not supported")
        for key, value in raw.items():
            if key in _ANNOTATIONS or (is_root and key in _ROOT_ONLY):
                continue
            if key not in _KEYWORDS:
                raise ValueError(f"schema {where}: unsupported keyword {key!r}")
            if key == "type":
                types = (value,) if isinstance(value, str) else tuple(value)
                if not types or any(t not in _TYPES for t in types):
                    raise ValueError(f"schema {where}: unsupported type {value!r} (no null)")
                node.types = types
            elif key == "enum":
                if not isinstance(value, list) or not value or None in value:
                    raise ValueError(f"schema {where}: enum must be a non-empty list, no null")
                node.enum = tuple(value)
                if all(isinstance(e, str) for e in value):
                    node.enum_set = frozenset(value)
            elif key == "const":
                if value is None:
                    raise ValueError(f"schema {where}: const null is not supported")
                node.has_const, node.const = True, value
            elif key == "pattern":
                node.pattern, node.pattern_src = _ecma_regex(value, where), value
            elif key == "minLength":
                node.min_len = _int(value, where, key)
            elif key == "maxLength":
                node.max_len = _int(value, where, key)
            elif key in ("minimum", "maximum"):
                if type(value) not in (int, float):
                    raise ValueError(f"schema {where}: {key} must be a number")
                setattr(node, key, value)
            elif key == "properties":
                node.props = {
                    name: self.node(sub, f"{where}/properties/{name}")
                    for name, sub in value.items()
                }
            elif key == "required":
                node.required = tuple(value)
            elif key == "additionalProperties":
                if value is False:
                    node.closed = True
                elif value is not True:
                    node.additional = self.node(value, f"{where}/additionalProperties")
            elif key == "propertyNames":
                node.prop_names = self.node(value, f"{where}/propertyNames")
            elif key == "anyOf":
                node.any_of = tuple(
                    self.node(sub, f"{where}/anyOf/{i}") for i, sub in enumerate(value)
                )
            elif key == "items":
                node.items = self.node(value, f"{where}/items")
            elif key == "minItems":
                node.min_items = _int(value, where, key)
            elif key == "maxItems":
                node.max_items = _int(value, where, key)
            elif key == "uniqueItems":
                node.unique = value is True
            elif key == "$ref":
                prefix = "#/$defs/"
                if not isinstance(value, str) or not value.startswith(prefix):
                    raise ValueError(f"schema {where}: only local #/$defs/ references work")
                name = value[len(prefix) :]
                if name not in self.defs:
                    raise ValueError(f"schema {where}: unresolved $ref {value!r}")
                node.ref, node.ref_name = self.defs[name], name
            else:  # x-maxDepth
                node.max_depth = _int(value, where, key)
                if node.max_depth < 1:
                    raise ValueError(f"schema {where}: x-maxDepth must be at least 1")


_RAW: Final[dict[str, Any]] = json.loads(_SCHEMA_TEXT)
_COMPILED: Final = _Compiler(_RAW)
_ROOT: Final = _COMPILED.root
_ROOT_UNSEALED: Final = _ROOT.without_required(_SEALER_KEYS)

SCHEMA_ID: Final[str] = _RAW["$id"]
#: Largest RFC 8785 canonical size of a record, in bytes (schema ``x-maxCanonicalBytes``).
MAX_RECORD_BYTES: Final[int] = _int(_RAW["x-maxCanonicalBytes"], "#", "x-maxCanonicalBytes")
if _RAW.get("properties", {}).get("version", {}).get("const") != SCHEMA_VERSION:
    raise ValueError(f"schema file does not describe version {SCHEMA_VERSION}")


# --------------------------------------------------------------------------------------
# The precise path: every violation, with its JSON path
# --------------------------------------------------------------------------------------

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Path = tuple[Any, ...]


def _format_path(parts: Path) -> str:
    out = ["$"]
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        elif isinstance(part, str) and _IDENTIFIER.fullmatch(part):
            out.append("." + part)
        else:
            text = part if isinstance(part, str) else repr(part)
            if len(text) > 64:
                text = text[:64] + "…"
            out.append("[" + json.dumps(text) + "]")  # ASCII-escaped: safe in any log line
    return "".join(out)


class _FullError(Exception):
    """The report reached _MAX_VIOLATIONS."""


class _Report:
    __slots__ = ("violations",)

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def add(self, parts: Path, rule: str, message: str) -> None:
        self.violations.append(Violation(_format_path(parts), rule, message))
        if len(self.violations) >= _MAX_VIOLATIONS:
            raise _FullError


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return f"non-JSON value ({type(value).__name__})"


def _is_type(value: Any, name: str) -> bool:
    # JSON Schema semantics: 1.0 is an integer; booleans are not numbers.
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float))  # number


def _json_key(value: Any) -> Any:
    """A hashable stand-in with JSON equality (1 == 1.0, true != 1, objects unordered)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict):
        return ("object", frozenset((k, _json_key(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_json_key(v) for v in value))
    if isinstance(value, float) and math.isnan(value):
        return ("nan", id(value))
    return value


def _json_equal(a: Any, b: Any) -> bool:
    try:
        return bool(_json_key(a) == _json_key(b))
    except TypeError:
        return False


def _pattern_message(node: _Node) -> str:
    source = node.pattern_src or ""
    if len(source) <= 80:
        return f"does not match {source!r}"
    return f"does not match the pattern of schema {node.where}"


def _in_enum(node: _Node, value: Any) -> bool:
    if node.enum_set is not None and type(value) is str:
        return value in node.enum_set
    return any(_json_equal(value, e) for e in node.enum or ())


def _walk(node: _Node, value: Any, parts: Path, report: _Report, rem: int | None) -> None:
    """Check one value: the rules of every value (no null, well-formed strings and keys,
    finite numbers), then the keywords of ``node``."""
    if value is None:
        report.add(parts, "null", "null is not allowed; omit the key instead")
        return
    if isinstance(value, str):
        if not value.isascii() and _has_surrogate(value):
            report.add(parts, "surrogate", "string contains a lone UTF-16 surrogate")
    elif isinstance(value, float):
        if not math.isfinite(value):
            report.add(parts, "finite", "number must be finite (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                report.add((*parts, key), "type", "object keys must be strings")
            elif not key.isascii() and _has_surrogate(key):
                report.add((*parts, key), "surrogate", "property name contains a lone surrogate")
    _apply(node, value, parts, report, rem)


def _apply(node: _Node, value: Any, parts: Path, report: _Report, rem: int | None) -> None:
    if node.max_depth is not None:
        rem = node.max_depth if rem is None else min(rem, node.max_depth)
    is_object, is_array = isinstance(value, dict), isinstance(value, list)
    if rem is not None and (is_object or is_array):
        if rem < 1:
            report.add(parts, "maxDepth", "nested too deeply")
            return
        child_rem: int | None = rem - 1
    else:
        child_rem = None

    if node.types is not None and not any(_is_type(value, t) for t in node.types):
        expected = " or ".join(node.types)
        report.add(parts, "type", f"must be {expected}, not {_type_name(value)}")
        return

    if isinstance(value, str):
        if node.max_len is not None and len(value) > node.max_len:
            report.add(parts, "maxLength", f"longer than {node.max_len} characters")
        if node.min_len is not None and len(value) < node.min_len:
            report.add(parts, "minLength", f"shorter than {node.min_len} characters")
        if node.pattern is not None and not node.pattern.search(value):
            report.add(parts, "pattern", _pattern_message(node))
    elif (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))  # else: reported by _walk
    ):
        if node.minimum is not None and value < node.minimum:
            report.add(parts, "minimum", f"less than {node.minimum}")
        if node.maximum is not None and value > node.maximum:
            report.add(parts, "maximum", f"greater than {node.maximum}")

    if node.enum is not None and not _in_enum(node, value):
        shown = ", ".join(json.dumps(e) for e in node.enum)
        report.add(parts, "enum", f"must be one of {shown}")
    if node.has_const and not _json_equal(value, node.const):
        report.add(parts, "const", f"must be {json.dumps(node.const)}")

    if is_object:
        _apply_object(node, value, parts, report, child_rem)
    elif is_array:
        _apply_array(node, value, parts, report, child_rem)

    if node.ref is not None:
        _apply(node.ref, value, parts, report, rem)
    if node.any_of and not any(_matches(sub, value, rem) for sub in node.any_of):
        report.add(parts, "anyOf", _any_of_message(node.any_of))


def _apply_object(
    node: _Node, value: dict[Any, Any], parts: Path, report: _Report, rem: int | None
) -> None:
    for name in node.required:
        if name not in value:
            report.add((*parts, name), "required", "required property is missing")
    props = node.props
    for name, sub in props.items():
        if name in value:
            _walk(sub, value[name], (*parts, name), report, rem)
    for key, item in value.items():
        if key in props:
            continue
        if node.closed:
            report.add((*parts, key), "additionalProperties", "property is not allowed here")
        elif node.additional is not None:
            _walk(node.additional, item, (*parts, key), report, rem)
    if node.prop_names is not None:
        for key in value:
            if isinstance(key, str):
                inner = _Report()
                with contextlib.suppress(_FullError):
                    _apply(node.prop_names, key, (), inner, None)
                if inner.violations:
                    message = inner.violations[0].message
                    report.add((*parts, key), "propertyNames", f"property name {message}")


def _apply_array(
    node: _Node, value: list[Any], parts: Path, report: _Report, rem: int | None
) -> None:
    if node.max_items is not None and len(value) > node.max_items:
        report.add(parts, "maxItems", f"more than {node.max_items} items")
    if node.min_items is not None and len(value) < node.min_items:
        report.add(parts, "minItems", f"fewer than {node.min_items} items")
    if node.unique:
        seen: dict[Any, int] = {}
        for index, item in enumerate(value):
            try:
                key = _json_key(item)
                first = seen.setdefault(key, index)
            except TypeError:  # a non-JSON value: reported by the item checks
                continue
            if first != index:
                report.add((*parts, index), "uniqueItems", f"duplicate of item {first}")
    if node.items is not None:
        for index, item in enumerate(value):
            _walk(node.items, item, (*parts, index), report, rem)


def _is_valid(node: _Node, value: Any, rem: int | None) -> bool:
    inner = _Report()
    try:
        _walk(node, value, (), inner, rem)
    except _FullError:
        return False
    return not inner.violations


def _matches(node: _Node, value: Any, rem: int | None) -> bool:
    """Whether ``node``'s keywords accept ``value`` (whose own rules _walk has checked)."""
    inner = _Report()
    try:
        _apply(node, value, (), inner, rem)
    except _FullError:
        return False
    return not inner.violations


def _any_of_message(branches: tuple[_Node, ...]) -> str:
    if all(b.only_required() for b in branches):
        return "needs " + " or ".join(" and ".join(b.required) for b in branches)
    return f"matches none of the {len(branches)} alternatives"


# --------------------------------------------------------------------------------------
# RFC 8785 size (the x-maxCanonicalBytes rule)
# --------------------------------------------------------------------------------------

_NEEDS_ESCAPE: Final = re.compile('[\x00-\x1f"\\\\]')
_SHORT_ESCAPES: Final = frozenset('"\\\b\t\n\f\r')


def _string_size(text: str) -> int | None:
    """Bytes of ``text`` in RFC 8785 form, quotes included; None when it has no UTF-8 form."""
    if text.isascii():
        size = len(text) + 2
    else:
        try:
            size = len(text.encode("utf-8")) + 2
        except UnicodeEncodeError:
            return None
    if _NEEDS_ESCAPE.search(text):
        for ch in _NEEDS_ESCAPE.findall(text):
            size += 1 if ch in _SHORT_ESCAPES else 5  # \" \\ \n ... or \u00xx
    return size


def _number_size(value: float) -> int | None:
    """Length of ECMAScript ``Number::toString(value)`` (RFC 8785 §3.2.2.3)."""
    if isinstance(value, int):
        return len(str(value)) if -_MAX_SAFE <= value <= _MAX_SAFE else None
    if not math.isfinite(value):
        return None
    if value == 0:
        return 1  # "0", also for -0
    # repr() gives the shortest round-tripping digits, as ECMAScript does; only the
    # placement of the decimal point and the exponent notation differ.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    k = len(significant.rstrip("0"))
    if k <= point <= 21:
        size = point  # digits then zeros
    elif 0 < point <= 21:
        size = k + 1  # digits with a decimal point
    elif -6 < point <= 0:
        size = 2 - point + k  # "0." zeros digits
    else:  # d[.ddd]e±x
        size = k + (1 if k > 1 else 0) + 2 + len(str(abs(point - 1)))
    return size + (1 if value < 0 else 0)


def _canonical_size(value: Any, depth: int = 0) -> int | None:
    """Size in bytes of ``value``'s RFC 8785 form, or None when it has none."""
    if isinstance(value, str):
        return _string_size(value)
    if isinstance(value, bool):
        return 4 if value else 5
    if isinstance(value, (int, float)):
        return _number_size(value)
    if depth > 64:
        return None
    if isinstance(value, dict):
        size = 1 + max(len(value), 1)  # braces and commas
        for key, item in value.items():
            if not isinstance(key, str):
                return None
            key_size, item_size = _string_size(key), _canonical_size(item, depth + 1)
            if key_size is None or item_size is None:
                return None
            size += key_size + 1 + item_size
        return size
    if isinstance(value, list):
        size = 1 + max(len(value), 1)
        for item in value:
            item_size = _canonical_size(item, depth + 1)
            if item_size is None:
                return None
            size += item_size
        return size
    return None


def _explain(record: Any, sealed: bool) -> list[Violation]:
    report = _Report()
    try:
        _walk(_ROOT if sealed else _ROOT_UNSEALED, record, (), report, None)
        size = _canonical_size(record)
        if size is not None and size > MAX_RECORD_BYTES:
            report.add(
                (),
                "maxRecordSize",
                f"canonical form is {size} bytes; at most {MAX_RECORD_BYTES} allowed",
            )
    except _FullError:
        pass  # capped: the first _MAX_VIOLATIONS are reported
    return report.violations


# --------------------------------------------------------------------------------------
# The fast path: Python source generated from the compiled schema
# --------------------------------------------------------------------------------------


class _PatternShape:
    """What a pattern's matches look like: lengths and whether they are all ASCII."""

    __slots__ = ("ascii", "max", "min")

    def __init__(self, low: int, high: int | None, ascii_only: bool) -> None:
        self.min, self.max, self.ascii = low, high, ascii_only


class _PatternParser:
    """A small parser for the ECMA-262 subset the schema's patterns use.

    It computes the shortest and longest match and whether every match is ASCII, so the
    generated code can skip length accounting, surrogate checks and caching where they
    cannot matter. Anything it does not understand makes it give up (None), which only
    costs speed.
    """

    def __init__(self, body: str) -> None:
        self.body, self.pos = body, 0

    def parse(self) -> _PatternShape | None:
        try:
            shape, alternatives = self.alternatives()
        except (ValueError, IndexError):
            return None
        if self.pos != len(self.body) or alternatives > 1:
            return None  # "^a|b$" is not anchored at both ends
        return shape

    def alternatives(self) -> tuple[_PatternShape, int]:
        shapes = [self.sequence()]
        while self.pos < len(self.body) and self.body[self.pos] == "|":
            self.pos += 1
            shapes.append(self.sequence())
        highs = [s.max for s in shapes]
        high = None if None in highs else max(h for h in highs if h is not None)
        low = min(s.min for s in shapes)
        return _PatternShape(low, high, all(s.ascii for s in shapes)), len(shapes)

    def sequence(self) -> _PatternShape:
        total = _PatternShape(0, 0, True)
        while self.pos < len(self.body) and self.body[self.pos] not in "|)":
            atom = self.quantified(self.atom())
            total.min += atom.min
            total.max = None if total.max is None or atom.max is None else total.max + atom.max
            total.ascii = total.ascii and atom.ascii
        return total

    def atom(self) -> _PatternShape:
        body, ch = self.body, self.body[self.pos]
        if ch == "(":
            self.pos += 1
            if body.startswith("?:", self.pos):
                self.pos += 2
            elif body[self.pos] == "?":
                raise ValueError("lookaround")
            shape, _ = self.alternatives()
            if body[self.pos] != ")":
                raise ValueError("unbalanced")
            self.pos += 1
            return shape
        if ch == "[":
            return self.char_class()
        if ch == "\\":
            escape = body[self.pos + 1]
            self.pos += 2
            if escape in "bB":
                return _PatternShape(0, 0, True)
            if escape in "DWSsuxcpPk" or escape.isdigit():
                raise ValueError("escape")
            return _PatternShape(1, 1, escape.isascii())
        if ch in "^$":
            self.pos += 1
            return _PatternShape(0, 0, True)
        if ch in ".*+?{}]":
            raise ValueError("metacharacter")
        self.pos += 1
        return _PatternShape(1, 1, ch.isascii())

    def char_class(self) -> _PatternShape:
        body = self.body
        self.pos += 1
        ascii_only = body[self.pos] != "^"
        first = True
        while body[self.pos] != "]" or first:
            ch = body[self.pos]
            if ch == "\\":
                if body[self.pos + 1] in "DWSsuxcpP":
                    ascii_only = False
                self.pos += 2
            else:
                ascii_only = ascii_only and ch.isascii()
                self.pos += 1
            first = False
        self.pos += 1
        return _PatternShape(1, 1, ascii_only)

    def quantified(self, atom: _PatternShape) -> _PatternShape:
        body = self.body
        if self.pos >= len(body):
            return atom
        ch = body[self.pos]
        low: int
        high: int | None
        if ch == "{":
            end = body.index("}", self.pos)
            lo_text, comma, hi_text = body[self.pos + 1 : end].partition(",")
            low = int(lo_text)
            high = low if not comma else (int(hi_text) if hi_text else None)
            self.pos = end + 1
        elif ch in "?*+":
            low, high = (0 if ch in "?*" else 1), (1 if ch == "?" else None)
            self.pos += 1
        else:
            return atom
        if self.pos < len(body) and body[self.pos] == "?":
            self.pos += 1  # lazy: same lengths
        atom_high = atom.max
        return _PatternShape(
            atom.min * low,
            None if high is None or atom_high is None else atom_high * high,
            atom.ascii,
        )


def _pattern_shape(source: str) -> _PatternShape | None:
    """Shape of the strings an anchored ``^...$`` pattern accepts (None if unknown)."""
    if not (source.startswith("^") and source.endswith("$")) or source.endswith("\\$"):
        return None
    return _PatternParser(source[1:-1]).parse()


def _json_size_of_literal(value: Any) -> int:
    size = _canonical_size(value)
    if size is None:
        raise ValueError(f"schema literal {value!r} has no RFC 8785 form")
    return size


def _fallback(node: _Node, value: Any, rem: int | None) -> int:
    """Fast-path escape hatch: the precise path's verdict, as a size bound (or -1)."""
    if not _is_valid(node, value, rem):
        return -1
    size = _canonical_size(value)
    return -1 if size is None else size


def _all_unique(items: list[Any]) -> bool:
    return len({_json_key(item) for item in items}) == len(items)


_CACHE_SIZE: Final = 256  # validated values remembered per patterned field
_CACHE_MAX_LEN: Final = 256  # ... of at most this many characters


class _Ctx:
    """Where the code being generated sits: how it fails, and the depth budget left."""

    __slots__ = ("fail", "rem")

    def __init__(self, fail: str, rem: int | str | None) -> None:
        self.fail = fail
        self.rem = rem  # None: no x-maxDepth above; int: known now; str: an expression

    def with_rem(self, rem: int | str | None) -> _Ctx:
        return _Ctx(self.fail, rem)


_TYPE_GUARD: Final = {  # "value is NOT of this type", exact types only (conservative)
    "string": "type({x}) is not str",
    "integer": "type({x}) is not int",
    "number": "type({x}) is not int and type({x}) is not float",
    "boolean": "{x} is not True and {x} is not False",
    "object": "type({x}) is not dict",
    "array": "type({x}) is not list",
}
_TYPE_TEST: Final = {  # on a local holding type(value)
    "string": "{t} is str",
    "integer": "{t} is int",
    "number": "{t} is int or {t} is float",
    "boolean": "{t} is bool",
    "object": "{t} is dict",
    "array": "{t} is list",
}


class _FastGen:
    """Generates the fast validator's source from compiled nodes.

    Generated code returns a failure (``return False`` at the top, ``return -1`` in the
    helpers for recursive definitions) at the first broken rule, and meanwhile sums an
    upper bound of the RFC 8785 size: ``n`` counts string characters (each is at most 6
    bytes once escaped or UTF-8 encoded), ``m`` counts bytes; everything whose size is
    known from the schema alone (key names, quotes, punctuation, numbers) is added as a
    constant ("static" size) at compile time.
    """

    def __init__(self, defs: dict[str, _Node]) -> None:
        self.env: dict[str, Any] = {
            "_surrogate": _has_surrogate,
            "_fallback": _fallback,
            "_all_unique": _all_unique,
        }
        self.count = 0
        self.pending = 0  # sources[:pending] have been executed
        self.recursive = _recursive_defs(defs)
        self.functions: dict[str, str] = {}  # recursive def name -> helper function name
        self.sources: list[str] = []

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def constant(self, value: Any, prefix: str = "_c") -> str:
        name = self.fresh(prefix)
        self.env[name] = value
        return name

    # -- functions ---------------------------------------------------------------------

    def top(self, root: _Node, name: str, limit: int) -> Callable[[dict[str, Any]], bool]:
        lines: list[str] = []
        static = self.emit(root, "r", lines, 1, _Ctx("return False", None))
        body = "\n".join(lines)
        source = (
            f"def {name}(r):\n    n = 0\n    m = 0\n{body}\n"
            f"    return 6 * n + m <= {limit - static}\n"
        )
        self.sources.append(source)
        # Our own source, generated from the packaged schema: nothing external reaches it.
        code = compile("\n\n".join(self.sources[self.pending :]), f"<{name}>", "exec")
        exec(code, self.env)  # noqa: S102
        self.pending = len(self.sources)
        function: Callable[[dict[str, Any]], bool] = self.env[name]
        return function

    def helper(self, def_name: str, node: _Node) -> str:
        if def_name in self.functions:
            return self.functions[def_name]
        fn = self.fresh(f"_def_{re.sub(r'[^A-Za-z0-9_]', '_', def_name)}_")
        self.functions[def_name] = fn
        lines: list[str] = []
        static = self.emit(node, "x", lines, 1, _Ctx("return -1", "rem"))
        self.sources.append(
            f"def {fn}(x, rem):\n    n = 0\n    m = 0\n"
            + "\n".join(lines)
            + f"\n    return 6 * n + m + {static}\n"
        )
        return fn

    # -- nodes -------------------------------------------------------------------------

    def emit(self, node: _Node, x: str, out: list[str], ind: int, ctx: _Ctx) -> int:
        """Append checks of ``node`` against local ``x``; return the static size part."""
        pad = "    " * ind
        target, target_name = node.ref, node.ref_name
        if target is not None and target_name is not None and node.is_plain_ref():
            if target_name in self.recursive:
                if ctx.rem is None:
                    raise ValueError(f"schema {node.where}: recursive $ref needs x-maxDepth")
                fn = self.helper(target_name, target)
                b = "b"
                out.append(f"{pad}{b} = {fn}({x}, {ctx.rem})")
                out.append(f"{pad}if {b} < 0: {ctx.fail}")
                out.append(f"{pad}m += {b}")
                return 0
            return self.emit(target, x, out, ind, ctx)
        types = node.types
        if types is None and (
            node.enum_set is not None or (node.has_const and isinstance(node.const, str))
        ):
            types = ("string",)
        if node.ref is not None or types is None or not self.supported(node):
            return self.emit_fallback(node, x, out, ind, ctx)
        if node.max_depth is not None:
            rem = ctx.rem
            if rem is None or isinstance(rem, int):
                rem = node.max_depth if rem is None else min(rem, node.max_depth)
            else:
                rem = f"min({rem}, {node.max_depth})"
            ctx = ctx.with_rem(rem)
        if "number" in types and "integer" in types:
            types = tuple(t for t in types if t != "integer")
        if len(types) == 1:
            out.append(f"{pad}if {_TYPE_GUARD[types[0]].format(x=x)}: {ctx.fail}")
            return self.emit_typed(node, types[0], x, out, ind, ctx)
        t = "t" + _level(x)
        out.append(f"{pad}{t} = type({x})")
        keyword = "if"
        for name in _TYPES:
            if name not in types:
                continue
            out.append(f"{pad}{keyword} {_TYPE_TEST[name].format(t=t)}:")
            static = self.emit_typed(node, name, x, out, ind + 1, ctx)
            out.append(f"{pad}    m += {static}")
            keyword = "elif"
        out.append(f"{pad}else:")
        out.append(f"{pad}    {ctx.fail}")
        return 0

    def supported(self, node: _Node) -> bool:
        if node.any_of and not all(b.only_required() for b in node.any_of):
            return False
        if node.enum is not None and node.enum_set is None:
            return False
        if node.has_const and not isinstance(node.const, str):
            return False
        types = node.types or ()
        if (node.enum is not None or node.has_const) and types not in ((), ("string",)):
            return False  # emit_string checks enum/const, the other type branches would not
        # open objects (extra keys with no schema) and arrays of anything have no
        # static size bound here: the precise path handles them
        if "object" in types and not node.closed and node.additional is None:
            return False
        return not ("array" in types and node.items is None)

    def emit_fallback(self, node: _Node, x: str, out: list[str], ind: int, ctx: _Ctx) -> int:
        pad = "    " * ind
        if isinstance(ctx.rem, str):
            raise ValueError(f"schema {node.where}: unsupported shape inside a recursive $ref")
        b = "b"
        out.append(f"{pad}{b} = _fallback({self.constant(node, '_node')}, {x}, {ctx.rem})")
        out.append(f"{pad}if {b} < 0: {ctx.fail}")
        out.append(f"{pad}m += {b}")
        return 0

    def emit_typed(
        self, node: _Node, type_name: str, x: str, out: list[str], ind: int, ctx: _Ctx
    ) -> int:
        if type_name == "string":
            return self.emit_string(node, x, out, ind, ctx)
        if type_name in ("integer", "number"):
            return self.emit_number(node, type_name, x, out, ind, ctx)
        if type_name == "boolean":
            return 5
        if ctx.rem is not None:  # a container under x-maxDepth
            pad = "    " * ind
            if isinstance(ctx.rem, int):
                if ctx.rem < 1:
                    out.append(f"{pad}{ctx.fail}")
                    return 0
                ctx = ctx.with_rem(ctx.rem - 1)
            else:
                out.append(f"{pad}if {ctx.rem} < 1: {ctx.fail}")
                ctx = ctx.with_rem(f"{ctx.rem} - 1")
        if type_name == "object":
            return self.emit_object(node, x, out, ind, ctx)
        return self.emit_array(node, x, out, ind, ctx)

    def emit_string(
        self, node: _Node, x: str, out: list[str], ind: int, ctx: _Ctx, *, cache: bool = True
    ) -> int:
        pad, fail = "    " * ind, ctx.fail
        if node.enum_set is not None or node.has_const:
            members = node.enum_set if node.enum_set is not None else frozenset([node.const])
            out.append(f"{pad}if {x} not in {self.constant(members, '_enum')}: {fail}")
            # other string keywords would be redundant: checked at compile time instead
            if not all(self.string_ok(node, e) for e in members):
                return self.emit_fallback(node, x, out, ind, ctx)
            return max(_json_size_of_literal(e) for e in members)
        shape = _pattern_shape(node.pattern_src) if node.pattern_src is not None else None
        ascii_only = shape is not None and shape.ascii
        # Short ASCII matches need no length accounting: their bound is static.
        static = None
        if shape is not None and ascii_only and shape.max is not None and shape.max <= 256:
            static = 6 * shape.max + 2
        need_length = static is None or node.min_len is not None or node.max_len is not None
        length = "L"  # used at once: one name serves every string
        inner = pad
        seen = ""
        if node.pattern is not None and cache and (shape is None or shape.min != shape.max):
            # Values of variable-length patterns (actions, tags, classifications,
            # addresses) repeat: remember a few hundred that passed, per field; a set
            # lookup is much cheaper than a regex. Fixed-length patterns (ids, digests,
            # timestamps) rarely repeat and are not cached. Only exact str values get here.
            if need_length:
                seen = self.constant({}, "_seen")
                out.append(f"{pad}{length} = {seen}.get({x})")
                out.append(f"{pad}if {length} is None:")
            else:
                seen = self.constant(set(), "_seen")
                out.append(f"{pad}if {x} not in {seen}:")
            inner = pad + "    "
        if need_length:
            out.append(f"{inner}{length} = len({x})")
        low, high = node.min_len, node.max_len
        if low is not None and high is not None:
            out.append(f"{inner}if not {low} <= {length} <= {high}: {fail}")
        elif high is not None:
            out.append(f"{inner}if {length} > {high}: {fail}")
        elif low is not None:
            out.append(f"{inner}if {length} < {low}: {fail}")
        if node.pattern is not None:
            search = self.constant(node.pattern.search, "_re")
            out.append(f"{inner}if {search}({x}) is None: {fail}")
        if not ascii_only:
            out.append(f"{inner}if not {x}.isascii() and _surrogate({x}): {fail}")
        if seen and need_length:
            out.append(f"{inner}if {length} <= {_CACHE_MAX_LEN} and len({seen}) < {_CACHE_SIZE}:")
            out.append(f"{inner}    {seen}[{x}] = {length}")
        elif seen:
            out.append(f"{inner}if len({seen}) < {_CACHE_SIZE}: {seen}.add({x})")
        if static is not None:
            return static
        out.append(f"{pad}n += {length}")
        return 2

    @staticmethod
    def string_ok(node: _Node, value: str) -> bool:
        probe = _Node(node.where)
        probe.min_len, probe.max_len, probe.pattern = node.min_len, node.max_len, node.pattern
        return _is_valid(probe, value, None)

    def emit_number(
        self, node: _Node, type_name: str, x: str, out: list[str], ind: int, ctx: _Ctx
    ) -> int:
        # Always bounded by ±(2**53-1): beyond that the precise path decides.
        low = -_MAX_SAFE if node.minimum is None else max(node.minimum, -_MAX_SAFE)
        high = _MAX_SAFE if node.maximum is None else min(node.maximum, _MAX_SAFE)
        out.append(f"{'    ' * ind}if not ({low!r} <= {x} <= {high!r}): {ctx.fail}")  # NaN fails
        if type_name == "integer" and type(low) is int and type(high) is int:
            return max(len(str(low)), len(str(high)))
        return 24  # longest ECMAScript form of a double, e.g. -1.7976931348623157e+308

    def emit_object(self, node: _Node, x: str, out: list[str], ind: int, ctx: _Ctx) -> int:
        pad, fail = "    " * ind, ctx.fail
        props = node.props
        for name in node.required:
            if name not in props:
                out.append(f"{pad}if {name!r} not in {x}: {fail}")
        if node.any_of:
            alternatives = " or ".join(
                "(" + " and ".join(f"{r!r} in {x}" for r in b.required) + ")" for b in node.any_of
            )
            out.append(f"{pad}if not ({alternatives}): {fail}")
        # A closed object is checked by counting the declared keys found: cheaper than a
        # set comparison of its keys. A missing required key raises KeyError, which sends
        # the record to the precise path.
        count = "c" + _level(x)
        if node.closed:
            out.append(f"{pad}{count} = {sum(1 for r in node.required if r in props)}")
        static = 2
        for name, sub in props.items():
            value = _child(x)
            if name in node.required:
                out.append(f"{pad}{value} = {x}[{name!r}]")
                child = self.emit(sub, value, out, ind, ctx)
            else:
                out.append(f"{pad}if {name!r} in {x}:")
                out.append(f"{pad}    {value} = {x}[{name!r}]")
                if node.closed:
                    out.append(f"{pad}    {count} += 1")
                child = self.emit(sub, value, out, ind + 1, ctx)
            static += _json_size_of_literal(name) + 2 + child  # "name":value,
        if node.closed:
            out.append(f"{pad}if len({x}) != {count}: {fail}")
        if node.additional is not None or node.prop_names is not None:
            key, value = "k" + _level(x), _child(x)
            out.append(f"{pad}for {key}, {value} in {x}.items():")
            out.append(f"{pad}    if type({key}) is not str: {fail}")
            if props:
                names = self.constant(frozenset(props), "_keys")
                out.append(f"{pad}    if {key} in {names}: continue")
            key_node = node.prop_names if node.prop_names is not None else _Node("key")
            key_static = self.emit_string(key_node, key, out, ind + 1, ctx, cache=False)
            entry = key_static + 2
            if node.additional is not None:
                entry += self.emit(node.additional, value, out, ind + 1, ctx)
            out.append(f"{pad}m += {entry} * len({x})")
        return static

    def emit_array(self, node: _Node, x: str, out: list[str], ind: int, ctx: _Ctx) -> int:
        pad, fail = "    " * ind, ctx.fail
        length = "a" + _level(x)
        out.append(f"{pad}{length} = len({x})")
        if node.max_items is not None:
            out.append(f"{pad}if {length} > {node.max_items}: {fail}")
        if node.min_items is not None:
            out.append(f"{pad}if {length} < {node.min_items}: {fail}")
        items = node.items
        if items is None:  # excluded by supported()
            raise ValueError(f"schema {node.where}: array without items")
        item = _child(x)
        out.append(f"{pad}for {item} in {x}:")
        static = self.emit(items, item, out, ind + 1, ctx)
        out.append(f"{pad}m += {length} * {static + 1}")
        if node.unique:
            if _is_string_node(items):
                out.append(f"{pad}if len(set({x})) != {length}: {fail}")
            else:
                out.append(f"{pad}if not _all_unique({x}): {fail}")
        return 2


# Generated code names a value by its nesting level (x1, x2, ...), not uniquely: siblings
# are checked one after another, so the names can be reused, which keeps the functions'
# frames small (every local costs on each call).


def _level(var: str) -> str:
    return "0" if var in ("r", "x") else var[1:]


def _child(var: str) -> str:
    return f"x{int(_level(var)) + 1}"


def _is_string_node(node: _Node) -> bool:
    while node.is_plain_ref() and node.ref is not None:
        node = node.ref
    return node.types == ("string",) or node.enum_set is not None


def _direct_refs(node: _Node) -> set[str]:
    """Names of the $defs that ``node``'s subtree references directly."""
    found: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current.ref_name is not None:
            found.add(current.ref_name)
        stack.extend(current.props.values())
        stack.extend(current.any_of)
        stack.extend(n for n in (current.additional, current.prop_names, current.items) if n)
    return found


def _recursive_defs(defs: dict[str, _Node]) -> frozenset[str]:
    edges = {name: _direct_refs(node) for name, node in defs.items()}
    recursive = set()
    for start in defs:
        stack, seen = list(edges[start]), set()
        while stack:
            name = stack.pop()
            if name == start:
                recursive.add(start)
                break
            if name not in seen:
                seen.add(name)
                stack.extend(edges[name])
    return frozenset(recursive)


_GEN: Final = _FastGen(_COMPILED.defs)
_FAST: Final = _GEN.top(_ROOT, "_fast_sealed", MAX_RECORD_BYTES)
_FAST_UNSEALED: Final = _GEN.top(_ROOT_UNSEALED, "_fast_unsealed", MAX_RECORD_BYTES)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def validate(record: Mapping[str, Any], *, sealed: bool = True) -> list[Violation]:
    """Every way ``record`` breaks the schema (``[]`` when it is valid).

    ``sealed=False`` validates a record before sealing: ``integrity`` (added by the
    sealer) may then be absent, but is checked when present. The list is capped at
    100 violations.
    """
    if type(record) is not dict and isinstance(record, Mapping):
        record = dict(record)
    if type(record) is dict:
        try:
            valid = (_FAST if sealed else _FAST_UNSEALED)(record)
        except Exception:  # noqa: BLE001 -- anything unusual: the precise path decides
            valid = False
        if valid:
            return []
    return _explain(record, sealed)


def check(record: Mapping[str, Any], *, sealed: bool = True) -> None:
    """Raise :class:`~otel_audit.errors.AuditValidationError` unless ``record`` is valid."""
    violations = validate(record, sealed=sealed)
    if violations:
        raise AuditValidationError(violations)
