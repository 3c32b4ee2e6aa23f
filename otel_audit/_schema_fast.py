"""The fast validator: Python source generated from the compiled schema, ``exec``-ed once.

It answers "valid or not" and may be conservative: anything unusual makes it say
"not valid", and then the precise path (:mod:`otel_audit._schema_explain`) decides.
A "valid" answer also says whether the record is *plain*: only exact dict, list, str,
int and bool values, with no float (nor anything checked by the precise path). The
sealer needs exactly that to trust orjson's output as RFC 8785 without its own type walk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from otel_audit._schema_explain import (
    _canonical_size,
    _has_surrogate,
    _is_valid,
    _json_key,
)
from otel_audit._schema_model import _MAX_SAFE, _TYPES, _Node

#: Top-level results of a generated validator (a falsy result is "not valid").
INVALID: Final = 0
PLAIN: Final = 1
NOT_PLAIN: Final = 2
# Added to the size sum ``m`` for a float (or a subtree the precise path checked): far
# above any size a record can reach, so ``sum // _MARK`` counts them and ``sum % _MARK``
# is still the size bound.
_MARK: Final = 1 << 62


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

    Generated code returns a failure (``INVALID`` at the top, ``-1`` in the
    helpers for recursive definitions) at the first broken rule, and meanwhile sums an
    upper bound of the RFC 8785 size: ``n`` counts string characters (each is at most 6
    bytes once escaped or UTF-8 encoded), ``m`` counts bytes; everything whose size is
    known from the schema alone (key names, quotes, punctuation, numbers) is added as a
    constant ("static" size) at compile time. Each float adds ``_MARK`` to ``m``.
    """

    def __init__(self, defs: dict[str, _Node]) -> None:
        self.env: dict[str, Any] = {
            "_MARK": _MARK,
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

    def top(self, root: _Node, name: str, limit: int) -> Callable[[dict[str, Any]], int]:
        """The validator: INVALID, PLAIN or NOT_PLAIN (see the module docstring)."""
        lines: list[str] = []
        static = self.emit(root, "r", lines, 1, _Ctx(f"return {INVALID}", None))
        body = "\n".join(lines)
        source = (
            f"def {name}(r):\n    n = 0\n    m = 0\n{body}\n"
            f"    if m < _MARK:\n"
            f"        return {PLAIN} if 6 * n + m <= {limit - static} else {INVALID}\n"
            f"    return {NOT_PLAIN} if 6 * n + m % _MARK <= {limit - static} else {INVALID}\n"
        )
        self.sources.append(source)
        # Our own source, generated from the packaged schema: nothing external reaches it.
        code = compile("\n\n".join(self.sources[self.pending :]), f"<{name}>", "exec")
        exec(code, self.env)  # noqa: S102
        self.pending = len(self.sources)
        function: Callable[[dict[str, Any]], int] = self.env[name]
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
        out.append(f"{pad}m += {b} + _MARK")  # the precise path allows more than plain types
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
        pad = "    " * ind
        out.append(f"{pad}if not ({low!r} <= {x} <= {high!r}): {ctx.fail}")  # NaN fails
        if type_name == "number":
            out.append(f"{pad}if type({x}) is float: m += _MARK")
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
