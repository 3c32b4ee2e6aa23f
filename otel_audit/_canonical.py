"""RFC 8785 JSON Canonicalization Scheme (JCS): the bytes that get hashed and signed.

* §3.1 input: I-JSON values only. NaN, ±Infinity, integers outside ±(2**53 - 1) (no exact
  IEEE 754 double) and strings with lone surrogates (no UTF-8 form) are rejected with
  :class:`CanonicalizationError`, whose message names the JSON path (``$.a[3].b``).
* §3.2.1 no whitespace between tokens.
* §3.2.2.1 literals ``null``, ``true``, ``false``.
* §3.2.2.2 strings escaped as ECMAScript ``JSON.stringify`` does: ``\\"``, ``\\\\``,
  ``\\b \\t \\n \\f \\r``, other U+0000-U+001F as ``\\u00xx`` (lowercase hex), all else literal.
* §3.2.2.3 numbers in ECMAScript ``Number::toString`` form (see Appendix B).
* §3.2.3 object members sorted by the UTF-16 code units of their names.
* §3.2.4 the result is UTF-8.

:func:`canonicalize_reference` is the plain algorithm in pure Python. :func:`canonicalize`
asks orjson first and keeps its output only when a guard proves it equal to RFC 8785;
otherwise it falls back to the reference. Tests check both against the ``rfc8785`` package.
"""

from __future__ import annotations

import json
import math
import re

import orjson

from otel_audit.errors import CanonicalizationError

__all__ = ["MAX_SAFE_INTEGER", "canonicalize", "canonicalize_reference", "number_to_json"]

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer n such that every integer in [-n, n] has an exact IEEE 754 double."""

# §3.2.2.2: \u00xx for U+0000-U+001F, except the two-character escapes; plus " and \.
_ESCAPES = {chr(code): f"\\u{code:04x}" for code in range(0x20)}
_ESCAPES.update({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"})
_ESCAPES.update({'"': '\\"', "\\": "\\\\"})
_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\]')
_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def number_to_json(x: float | int) -> str:
    """ECMA-262 ``Number::toString(x)`` (radix 10), as RFC 8785 §3.2.2.3 requires.

    Integers within ±(2**53 - 1) print as plain decimal; larger ones are rejected because
    they have no exact double. Floats start from Python's shortest round-trip ``repr``.
    """
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise CanonicalizationError(f"not a number: {type(x).__name__}")
    if isinstance(x, int):
        i = int.__int__(x)  # the plain int value, also for int subclasses
        if -MAX_SAFE_INTEGER <= i <= MAX_SAFE_INTEGER:
            return int.__repr__(i)
        raise CanonicalizationError(
            f"integer {i} is outside ±(2**53 - 1) and has no exact IEEE 754 double"
        )
    f = float.__float__(x)
    if not math.isfinite(f):
        raise CanonicalizationError(f"{f!r} is not a JSON number (NaN and Infinity have none)")
    if f == 0:
        return "0"  # also -0 (ECMA-262: "If x is -0, return "0"")
    sign = "-" if f < 0 else ""
    # repr gives the shortest digits that round-trip, ties broken to even, like ECMA-262.
    mantissa, _, exp = float.__repr__(abs(f)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    n = len(whole) + (int(exp) if exp else 0)  # value = 0.digits * 10**n
    significant = digits.lstrip("0")
    n -= len(digits) - len(significant)
    s = significant.rstrip("0")
    k = len(s)
    # ECMA-262 Number::toString steps, with s, k and n as named there.
    if k <= n <= 21:
        return sign + s + "0" * (n - k)
    if 0 < n <= 21:
        return sign + s[:n] + "." + s[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + s
    e = n - 1
    return sign + s[0] + ("." + s[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))


class _UnrepresentableError(Exception):
    """A value with no RFC 8785 form; ``where`` gathers its path while the stack unwinds."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.where: list[str] = []


def _member(key: str) -> str:
    """The path segment of an object member: ``.name``, or ``["odd name"]``."""
    return "." + key if _IDENTIFIER.match(key) else f"[{json.dumps(key)}]"


def _string(s: str) -> str:
    if _SURROGATE.search(s):
        raise _UnrepresentableError("string contains a lone surrogate (it has no UTF-8 form)")
    if _NEEDS_ESCAPE.search(s) is None:
        return '"' + s + '"'
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()], s) + '"'


def _write(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(str.__str__(value)))  # str.__str__: a plain copy of a subclass
    elif isinstance(value, (int, float)):
        try:
            out.append(number_to_json(value))
        except CanonicalizationError as exc:
            raise _UnrepresentableError(str(exc)) from None
    elif isinstance(value, dict):
        members: list[tuple[bytes, str, object]] = []
        for key, item in dict.items(value):
            if not isinstance(key, str):
                kind = type(key).__name__
                raise _UnrepresentableError(f"object key {key!r} is a {kind}, not a str")
            name = str.__str__(key)
            if _SURROGATE.search(name):
                error = _UnrepresentableError("object key contains a lone surrogate")
                error.where.append(_member(name))
                raise error
            # §3.2.3: big-endian UTF-16 bytes compare exactly as the code units do.
            members.append((name.encode("utf-16-be"), name, item))
        members.sort(key=lambda member: member[0])
        out.append("{")
        for index, (_, name, item) in enumerate(members):
            if index:
                out.append(",")
            out.append(_string(name))
            out.append(":")
            try:
                _write(item, out)
            except _UnrepresentableError as exc:
                exc.where.append(_member(name))
                raise
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        items = tuple.__iter__(value) if isinstance(value, tuple) else list.__iter__(value)
        for index, item in enumerate(items):
            if index:
                out.append(",")
            try:
                _write(item, out)
            except _UnrepresentableError as exc:
                exc.where.append(f"[{index}]")
                raise
        out.append("]")
    else:
        raise _UnrepresentableError(f"{type(value).__name__} is not a JSON type")


def canonicalize_reference(value: object) -> bytes:
    """RFC 8785 canonical form of ``value``, computed by the plain algorithm.

    Accepts dict (str keys), list, tuple, str, int, float, bool and None, and subclasses
    of those as their base type. Raises :class:`CanonicalizationError` for anything else.
    """
    out: list[str] = []
    try:
        _write(value, out)
    except _UnrepresentableError as exc:
        path = "$" + "".join(reversed(exc.where))
        raise CanonicalizationError(f"{path}: {exc}") from None
    except RecursionError:
        raise CanonicalizationError("$: value nests too deeply or contains itself") from None
    return "".join(out).encode("utf-8")


# Fast path. For input made only of dict, list, str, int and bool (exact types), orjson's
# compact sorted output equals RFC 8785 except for key order in one case, because:
#   * strings: orjson escapes exactly the JCS set (tested over every BMP char) and rejects
#     lone surrogates; dict keys must be exact str or it raises;
#   * ints: OPT_STRICT_INTEGER makes it raise outside ±(2**53 - 1), inside it writes decimal;
#   * no whitespace, true/false, and OPT_SORT_KEYS sorts every object;
#   * key order: orjson compares code points (= UTF-8 bytes); UTF-16 order differs only
#     between a char in U+E000-U+FFFF (UTF-8 lead byte EE or EF) and one >= U+10000 (lead
#     F0-F4), so output holding both kinds of byte (in a key or anywhere) falls back.
# Floats (orjson writes 1.0, 1e+21, -0.0, NaN as null), None, tuples, subclasses and every
# other type (orjson writes UUID, Enum and orjson.Fragment natively) fail the type walk.
# The walk is on the input, not the output: regex scans of the output for float or null
# tokens measured 5-30 us per KB, the walk ~4 us, and only the walk also catches UUID/Enum.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_ASTRAL_LEAD = re.compile(rb"[\xf0-\xf4]")
_PLAIN_LEAVES = frozenset((str, int, bool))


def _only_plain_types(container: dict[object, object] | list[object]) -> bool:
    """True if every value below ``container`` is an exact dict, list, str, int or bool."""
    for item in container.values() if type(container) is dict else container:
        if type(item) in _PLAIN_LEAVES:
            continue
        if (type(item) is dict or type(item) is list) and _only_plain_types(item):
            continue
        return False
    return True


def _fast_path(value: object, plain: bool = False) -> bytes | None:
    """orjson's output for ``value`` when it provably equals RFC 8785, else None.

    ``plain``: the caller knows the values are exact dict, list, str, int and bool (the
    schema's fast path proved it), so the type walk is skipped.
    """
    if type(value) is not dict and type(value) is not list:
        return None
    try:
        # First, so that cycles and nesting deeper than 255 raise here, not in the walk.
        out = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:  # unsupported type, subclass, surrogate, big int, depth
        return None
    if not plain and not _only_plain_types(value):
        return None
    if not out.isascii() and (b"\xee" in out or b"\xef" in out) and _ASTRAL_LEAD.search(out):
        return None
    return out


def canonicalize(value: object) -> bytes:
    """RFC 8785 canonical form of ``value``; same result and errors as the reference."""
    out = _fast_path(value)
    return out if out is not None else canonicalize_reference(value)
