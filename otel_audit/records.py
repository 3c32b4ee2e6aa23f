"""Typed construction of audit records (DESIGN §3).

:func:`build` turns keyword arguments into a record dict of plain JSON types: it copies
every input (the record never shares a dict or list with the caller), drops ``None``
values (records have no ``null``: an absent key says the same), and sets ``version``,
``timestamp`` and ``event_id``. It neither adds ``integrity`` (the sealer does) nor
validates (call :func:`otel_audit.schema.validate`).

The ``TypedDict`` classes describe each block of the schema for type checkers; at run
time they are ordinary dicts.
"""

from __future__ import annotations

import itertools
import os
import random
import struct
import time
from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict

from otel_audit.schema import SCHEMA_VERSION

__all__ = [
    "Actor",
    "ActorType",
    "BatchContext",
    "Category",
    "ChangeTracking",
    "Context",
    "DataAccess",
    "GdprContext",
    "HipaaBasis",
    "HipaaContext",
    "Integrity",
    "LawfulBasis",
    "Metadata",
    "PciContext",
    "Resource",
    "Result",
    "RiskLevel",
    "SoxContext",
    "Status",
    "TransferMechanism",
    "build",
    "new_event_id",
    "utc_timestamp",
]

Category = Literal["authentication", "data_access", "administrative", "security", "integrity"]
Status = Literal["SUCCESS", "FAILURE", "PARTIAL"]
RiskLevel = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]
ActorType = Literal["user", "service", "system"]
LawfulBasis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
]
TransferMechanism = Literal[
    "adequacy_decision",
    "standard_contractual_clauses",
    "binding_corporate_rules",
    "code_of_conduct",
    "certification",
    "ad_hoc_contractual_clauses",
    "derogation",
]
HipaaBasis = Literal["treatment", "payment", "operations", "authorization", "public_interest"]


# Required keys live in a base class, optional ones in a total=False subclass: the
# Python 3.10 way to mix them without typing_extensions.Required.


class _ActorRequired(TypedDict):
    user_id: str


class Actor(_ActorRequired, total=False):
    """Who acted: ``user_id`` is required."""

    session_id: str
    role: str
    type: ActorType


class _ResourceRequired(TypedDict):
    type: str
    id: str


class Resource(_ResourceRequired, total=False):
    """What was acted on: ``type`` and ``id`` are required."""

    name: str
    table: str
    classification: str  # upper-case token: PII, PHI, CONFIDENTIAL, ...


class Context(TypedDict, total=False):
    """Where the action came from; the schema needs ``source_ip`` or ``application``."""

    source_ip: str
    application: str
    user_agent: str
    api_endpoint: str
    hostname: str
    request_id: str
    trace_id: str
    span_id: str


class _ResultRequired(TypedDict):
    status: Status


class Result(_ResultRequired, total=False):
    """Outcome: ``status`` is required."""

    response_code: int
    affected_records: int
    reason: str
    error_code: str


class Metadata(TypedDict, total=False):
    """Record classification; :func:`build` takes ``risk_level`` as its own argument."""

    risk_level: RiskLevel
    compliance_tags: list[str]
    retention_years: int
    checksum: str  # set by the sealer


class _IntegrityRequired(TypedDict):
    origin: str
    seq: int
    prev_hash: str


class Integrity(_IntegrityRequired, total=False):
    """Hash-chain position; set by the sealer, never by :func:`build`."""

    checkpoint: str
    previous_checkpoint: str
    vkey: str
    vkeys: list[str]
    reason: str


class DataAccess(TypedDict, total=False):
    data_classification: str
    access_method: str
    record_count: int
    query_hash: str
    fields: list[str]
    purpose: str
    data_retention_impact: bool


class GdprContext(TypedDict, total=False):
    lawful_basis: LawfulBasis
    data_subject_id: str
    processing_purpose: str
    personal_data_categories: list[str]
    special_category: bool
    retention_justified: bool
    cross_border_transfer: bool
    transfer_mechanism: TransferMechanism


class HipaaContext(TypedDict, total=False):
    phi_involved: bool
    minimum_necessary: bool
    basis: HipaaBasis
    covered_entity: str
    business_associate: str
    patient_authorization: str
    patient_id: str


class SoxContext(TypedDict, total=False):
    financial_system: str
    control_id: str
    management_access: bool
    segregation_verified: bool


class PciContext(TypedDict, total=False):
    cardholder_data: bool
    pan_masked: bool
    requirement: str


class ChangeTracking(TypedDict, total=False):
    before_state: dict[str, Any]
    after_state: dict[str, Any]
    change_reason: str
    approver: str
    change_ticket: str


class BatchContext(TypedDict, total=False):
    batch_id: str
    total_records: int
    successful_records: int
    failed_records: int
    processing_duration_ms: float
    error_summary: list[str]


# --------------------------------------------------------------------------------------
# Timestamps and event ids
# --------------------------------------------------------------------------------------

_NS_PER_MS: Final = 1_000_000
_END_OF_9999: Final = 253_402_300_800  # 10000-01-01T00:00:00Z in Unix seconds
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
_second: tuple[int, str] = (-1, "")  # (Unix second, its "YYYY-MM-DDTHH:MM:SS"); one tuple


def utc_timestamp(now_ns: int | None = None) -> str:
    """``now_ns`` (default: the clock) as RFC 3339 UTC with milliseconds, e.g.
    ``2024-01-15T14:30:45.123Z``. Truncates to the millisecond, never rounds up.
    """
    return _timestamp((time.time_ns() if now_ns is None else now_ns) // _NS_PER_MS)


def _timestamp(ms: int) -> str:
    global _second  # noqa: PLW0603 -- a one-entry cache, swapped as one tuple
    seconds, millis = divmod(ms, 1000)
    cached = _second
    if cached[0] != seconds:
        if not 0 <= seconds < _END_OF_9999:
            raise ValueError("timestamp must lie between 1970 and 9999")
        cached = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
        _second = cached
    return cached[1] + _MILLIS[millis]


# UUIDv7 (RFC 9562 §5.7): 48-bit Unix ms, version 7, 12 bits rand_a, variant 0b10, 62 bits
# rand_b. Here the 74 bits after the version are a 42-bit counter (rand_a and the top 30
# bits of rand_b) and 32 fresh random bits: RFC 9562 §6.2 method 1 ("fixed bit-length
# dedicated counter"), never reset, started at a random value below 2**41 in each process.
# So the ids of one process are unique even within a millisecond and sort in issue order
# (until 2**41 ids later the counter wraps), and the random start and tail keep other
# processes' ids apart. next() on an itertools.count is atomic under the GIL: no lock.
# The text is assembled from a per-millisecond prefix and 8 packed bytes, because bit
# operations and hex formatting of large ints are slow in CPython.
_MAX_MS: Final = (1 << 48) - 1
_COUNTER_START_BITS: Final = 41
_LOW_MASK: Final = (1 << 30) - 1  # counter bits in rand_b
_VARIANT: Final = 0b10 << 30  # on top of them
_pack_tail = struct.Struct(">II").pack

_rng = random.Random()  # noqa: S311 -- for uniqueness, not secrecy; seeded from os.urandom
_random_bits = _rng.getrandbits
_counter = itertools.count(_random_bits(_COUNTER_START_BITS))
_last_ms = 0  # the last clock reading, in ms
_prefix: tuple[int, int, str] = (-1, -1, "")  # (ms, counter >> 30, "evt_" + 16 hex digits)


def _reseed_after_fork() -> None:
    """A forked child must not repeat its parent's counter and random stream."""
    global _counter  # noqa: PLW0603
    _rng.seed()
    _counter = itertools.count(_random_bits(_COUNTER_START_BITS))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_after_fork)


def new_event_id(now_ns: int | None = None) -> str:
    """A new ``evt_`` + UUIDv7 hex id; the ids of one process are unique and increase.

    The time part is ``now_ns`` in ms. Without ``now_ns`` it is the clock's, but never less
    than the last clock reading's: if the clock steps back, ids keep the last millisecond
    and stay in order. An explicit ``now_ns`` (e.g. a replayed event's) is used as given.
    """
    if now_ns is None:
        return _event_id(time.time_ns() // _NS_PER_MS, monotonic=True)
    return _event_id(now_ns // _NS_PER_MS, monotonic=False)


def _event_id(ms: int, *, monotonic: bool) -> str:
    global _last_ms, _prefix  # noqa: PLW0603 -- benign races: the counter keeps ids unique
    if monotonic:
        if ms < _last_ms:
            ms = _last_ms
        else:
            _last_ms = ms
    if not 0 <= ms <= _MAX_MS:
        raise ValueError("event id time must lie between 1970 and 10889")
    count = next(_counter)
    high = count >> 30
    prefix = _prefix
    if prefix[1] != high or prefix[0] != ms:
        prefix = (ms, high, f"evt_{ms:012x}7{high & 0xFFF:03x}")
        _prefix = prefix
    return prefix[2] + _pack_tail(_VARIANT | (count & _LOW_MASK), _random_bits(32)).hex()


# --------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------

_MAX_COPY_DEPTH: Final = 64  # deeper (or cyclic) values are not records; the validator says so
_SCALARS: Final = frozenset({str, int, bool, float})


def _copy_object(value: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """A deep copy of a mapping as a dict, without its ``None`` values."""
    if _SCALARS.issuperset(map(type, value.values())):  # the common case, at C speed
        return dict(value)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(item) in _SCALARS:
            out[key] = item
        elif item is not None:
            out[key] = _copy_value(item, depth + 1)
    return out


def _copy_value(value: Any, depth: int) -> Any:
    if depth > _MAX_COPY_DEPTH:
        return value
    kind = type(value)
    if kind is list or kind is tuple:  # a tuple becomes a JSON array
        if _SCALARS.issuperset(map(type, value)):
            return list(value)
        return [item if type(item) in _SCALARS else _copy_value(item, depth + 1) for item in value]
    if kind is dict or isinstance(value, Mapping):
        return _copy_object(value, depth)
    if isinstance(value, (list, tuple)):
        return [_copy_value(item, depth + 1) for item in value]
    return value  # a scalar, or something the validator will report


def build(
    *,
    category: str,
    action: str,
    actor: str | Actor,
    resource: tuple[str, str] | Resource,
    result: str | Result,
    risk_level: str,
    context: Context | None = None,
    metadata: Metadata | None = None,
    data_access: DataAccess | None = None,
    gdpr_context: GdprContext | None = None,
    hipaa_context: HipaaContext | None = None,
    sox_context: SoxContext | None = None,
    pci_context: PciContext | None = None,
    change_tracking: ChangeTracking | None = None,
    batch_context: BatchContext | None = None,
    extensions: Mapping[str, Any] | None = None,
    timestamp: str | None = None,
    event_id: str | None = None,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """A new, unsealed audit record (no ``integrity`` yet), not validated.

    Shorthands: ``actor="alice"`` is ``{"user_id": "alice"}``, ``resource=("customer",
    "c-1")`` is ``{"type": "customer", "id": "c-1"}``, ``result="SUCCESS"`` is
    ``{"status": "SUCCESS"}``. ``risk_level`` goes into ``metadata`` (and wins over a
    ``risk_level`` there). ``timestamp`` and ``event_id`` default to ones made from
    ``now_ns`` (default: the clock, read once for both).

    Every dict and list is copied, a tuple becomes a list, and ``None`` values in
    mappings are dropped (``None`` inside a list is kept, for the validator to report).
    """
    if timestamp is None or event_id is None:
        ms = (time.time_ns() if now_ns is None else now_ns) // _NS_PER_MS
        if timestamp is None:
            timestamp = _timestamp(ms)
        if event_id is None:
            event_id = _event_id(ms, monotonic=now_ns is None)
    record: dict[str, Any] = {
        "timestamp": timestamp,
        "event_id": event_id,
        "version": SCHEMA_VERSION,
        "category": category,
        "action": action,
        "actor": {"user_id": actor} if isinstance(actor, str) else _copy_object(actor),
        "resource": (
            {"type": resource[0], "id": resource[1]}
            if isinstance(resource, tuple)
            else _copy_object(resource)
        ),
    }
    if context is not None:
        record["context"] = _copy_object(context)
    record["result"] = {"status": result} if isinstance(result, str) else _copy_object(result)
    meta = {} if metadata is None else _copy_object(metadata)
    meta["risk_level"] = risk_level
    record["metadata"] = meta
    if data_access is not None:
        record["data_access"] = _copy_object(data_access)
    if gdpr_context is not None:
        record["gdpr_context"] = _copy_object(gdpr_context)
    if hipaa_context is not None:
        record["hipaa_context"] = _copy_object(hipaa_context)
    if sox_context is not None:
        record["sox_context"] = _copy_object(sox_context)
    if pci_context is not None:
        record["pci_context"] = _copy_object(pci_context)
    if change_tracking is not None:
        record["change_tracking"] = _copy_object(change_tracking)
    if batch_context is not None:
        record["batch_context"] = _copy_object(batch_context)
    if extensions is not None:
        record["extensions"] = _copy_object(extensions)
    return record
