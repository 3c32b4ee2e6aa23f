"""Mask PANs anywhere in a record: every string value and every object key, at any depth.

Integers that could be a PAN (13–16 digits; JSON integers stop at 2^53) become the masked
string. Fields whose format the schema fixes and which otel-audit itself fills with hex
(``event_id``, ``context.trace_id``/``span_id``, ``data_access.query_hash``, and
``timestamp``/``version``) are left alone when they match that format exactly: a run of
decimal digits inside a random hex id is not a card number.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from otel_audit_pci._pan import mask_pans

__all__ = ["mask_record"]

_FIXED_FORMATS: dict[tuple[str, ...], re.Pattern[str]] = {
    ("event_id",): re.compile(r"evt_[0-9a-f]{32}"),
    ("timestamp",): re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"),
    ("version",): re.compile(r"\d{1,3}\.\d{1,3}"),
    ("context", "trace_id"): re.compile(r"[0-9a-f]{32}"),
    ("context", "span_id"): re.compile(r"[0-9a-f]{16}"),
    ("data_access", "query_hash"): re.compile(r"sha256:[0-9a-f]{64}"),
}
_EVENT_ID = _FIXED_FORMATS[("event_id",)]
_MAX_DEPTH = 64
# A prefilter over the record's JSON text (JSON writes the digits, spaces and dashes of
# keys, strings and integers as they are): digits become "d", everything else "x" except
# spaces and dashes, which are dropped. No 13 "d" in a row: no PAN anywhere. (Dropping
# every separator, not only single ones, can only let more records through to the walk.)
_CLASSES = bytes(ord("d") if 48 <= b <= 57 else ord("x") for b in range(256))
_THIRTEEN = b"d" * 13


def _mask(value: Any, depth: int) -> tuple[Any, int]:
    if isinstance(value, str):
        return mask_pans(value)
    if isinstance(value, bool):
        return value, 0
    if isinstance(value, int) and abs(value) >= 10**12:
        masked, count = mask_pans(str(value))
        return (masked, count) if count else (value, 0)
    if isinstance(value, dict):
        return value, _mask_dict(value, depth + 1, ())
    if isinstance(value, list):
        total = 0
        for index, item in enumerate(value):
            new, count = _mask(item, depth + 1)
            if count:
                value[index] = new
                total += count
        return value, total
    return value, 0


def _mask_dict(record: dict[str, Any], depth: int, path: tuple[str, ...]) -> int:
    if depth > _MAX_DEPTH:
        return 0  # the schema rejects such depth; the violation copy is bounded by the core
    total = 0
    for key in list(record):
        value = record[key]
        where = (*path, key) if isinstance(key, str) and len(path) < 2 else None
        fixed = _FIXED_FORMATS.get(where) if where is not None else None
        if fixed is not None and isinstance(value, str) and fixed.fullmatch(value):
            continue
        if isinstance(value, dict) and where is not None and len(where) == 1:
            count = _mask_dict(value, depth + 1, where)  # second level: trace_id, query_hash
        else:
            value, count = _mask(value, depth)
        new_key, key_count = mask_pans(key) if isinstance(key, str) else (key, 0)
        if key_count:
            del record[key]
            while new_key in record:  # two keys masked alike: keep both values
                new_key += "~"
            record[new_key] = value
        elif count:
            record[key] = value
        total += count + key_count
    return total


def mask_record(record: dict[str, Any]) -> int:
    """Mask every PAN in ``record`` in place; returns how many were masked."""
    try:  # C speed: most records hold no run of 13 digits at all
        text = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError):
        text = None  # not JSON (the schema will say so): walk it anyway
    if text is not None and _THIRTEEN not in text.translate(_CLASSES, b" -"):
        return 0
    event_id = record.get("event_id")
    if text is not None and isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id):
        # About 1 % of event ids hold 13 decimal digits in their random hex. The walk
        # leaves that field alone anyway, so look again without it.
        own = b'"event_id":"' + event_id.encode() + b'"'  # its format needs no escaping
        if _THIRTEEN not in text.replace(own, b"").translate(_CLASSES, b" -"):
            return 0
    return _mask_dict(record, 0, ())
