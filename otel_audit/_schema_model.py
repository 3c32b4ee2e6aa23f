"""The audit-record JSON Schema compiled into nodes (the model both validators share).

Only the keywords the published schema uses are supported; an unknown keyword is an
error, so the validators can never silently ignore a rule. Patterns are translated to
ECMA-262 semantics (JSON Schema draft 2020-12 §6.3.3 refers to ECMA-262).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

_MAX_SAFE: Final = 2**53 - 1

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
