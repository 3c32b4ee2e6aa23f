"""The published audit-record schema and its fast validator.

The JSON Schema (draft 2020-12) in ``otel_audit/schema/audit-record-1.0.schema.json`` is
the single source of truth for the record format (DESIGN §3). At import this module
compiles that file, not a hand-written copy of it, into two validators:

* a **fast path** (``_schema_fast``): Python source generated from the schema and
  ``exec``-ed once; one function of inlined checks (precompiled regexes, frozensets,
  exact ``type() is`` tests, small caches of values that passed) that answers only
  "valid or not";
* a **precise path** (``_schema_explain``): an interpreter over the same compiled
  schema (``_schema_model``) that lists every broken rule as a
  :class:`~otel_audit.errors.Violation` (JSON path + keyword).

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

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

from otel_audit._schema_explain import explain
from otel_audit._schema_fast import PLAIN, _FastGen
from otel_audit._schema_model import _Compiler, _int
from otel_audit.errors import AuditValidationError, Violation

__all__ = [
    "MAX_RECORD_BYTES",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "check",
    "schema",
    "validate",
    "validate_unsealed",
]

SCHEMA_VERSION: Final = "1.0"
_SCHEMA_FILE: Final = "audit-record-1.0.schema.json"

# Keys the sealer adds: a record validated before sealing (``sealed=False``) may lack them.
_SEALER_KEYS: Final = frozenset({"integrity"})


def _load_text() -> str:
    return (resources.files("otel_audit") / "schema" / _SCHEMA_FILE).read_text(encoding="utf-8")


_SCHEMA_TEXT: Final = _load_text()


def schema() -> dict[str, Any]:
    """The published JSON Schema of the audit record (a fresh copy on every call)."""
    loaded: dict[str, Any] = json.loads(_SCHEMA_TEXT)
    return loaded


_RAW: Final[dict[str, Any]] = json.loads(_SCHEMA_TEXT)
_COMPILED: Final = _Compiler(_RAW)
_ROOT: Final = _COMPILED.root
_ROOT_UNSEALED: Final = _ROOT.without_required(_SEALER_KEYS)

SCHEMA_ID: Final[str] = _RAW["$id"]
#: Largest RFC 8785 canonical size of a record, in bytes (schema ``x-maxCanonicalBytes``).
MAX_RECORD_BYTES: Final[int] = _int(_RAW["x-maxCanonicalBytes"], "#", "x-maxCanonicalBytes")
if _RAW.get("properties", {}).get("version", {}).get("const") != SCHEMA_VERSION:
    raise ValueError(f"schema file does not describe version {SCHEMA_VERSION}")


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


def validate_unsealed(record: dict[str, Any]) -> tuple[list[Violation], bool]:
    """``validate(record, sealed=False)``, and whether the record is *plain*: its values
    are only exact dict, list, str, int and bool (no float, no subclass). The pipeline
    passes that on to :meth:`~otel_audit.sealing.Sealer.seal`, which then needs no type
    walk of its own to know orjson writes the record's RFC 8785 form."""
    if type(record) is dict:
        try:
            verdict = _FAST_UNSEALED(record)
        except Exception:  # noqa: BLE001 -- anything unusual: the precise path decides
            verdict = 0
        if verdict:
            return [], verdict == PLAIN
    return _explain(record, False), False


def _explain(record: Any, sealed: bool) -> list[Violation]:
    return explain(_ROOT if sealed else _ROOT_UNSEALED, record, MAX_RECORD_BYTES)


def check(record: Mapping[str, Any], *, sealed: bool = True) -> None:
    """Raise :class:`~otel_audit.errors.AuditValidationError` unless ``record`` is valid."""
    violations = validate(record, sealed=sealed)
    if violations:
        raise AuditValidationError(violations)
