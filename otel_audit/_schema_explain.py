"""The precise validator: every broken rule of the schema, each with its JSON path.

An interpreter over the compiled nodes of :mod:`otel_audit._schema_model`; slower than
the generated fast path, and the final word whenever the fast path says "not valid".
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from typing import Any, Final

from otel_audit._schema_model import _MAX_SAFE, _Node
from otel_audit.errors import Violation

_MAX_VIOLATIONS: Final = 100  # a hostile record must not produce an unbounded report

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


def explain(root: _Node, record: Any, max_bytes: int) -> list[Violation]:
    """Every rule of ``root`` that ``record`` breaks (capped), plus its canonical size."""
    report = _Report()
    try:
        _walk(root, record, (), report, None)
        size = _canonical_size(record)
        if size is not None and size > max_bytes:
            report.add(
                (),
                "maxRecordSize",
                f"canonical form is {size} bytes; at most {max_bytes} allowed",
            )
    except _FullError:
        pass  # capped: the first _MAX_VIOLATIONS are reported
    return report.violations
