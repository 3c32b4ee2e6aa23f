"""The record builder (otel_audit.records): build, new_event_id, utc_timestamp."""

from __future__ import annotations

import copy
import datetime
import os
import re
import threading
import time
import uuid
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_audit.records import (
    Actor,
    BatchContext,
    ChangeTracking,
    Context,
    DataAccess,
    GdprContext,
    HipaaContext,
    Metadata,
    PciContext,
    Resource,
    Result,
    SoxContext,
    build,
    new_event_id,
    utc_timestamp,
)
from otel_audit.schema import validate

EVENT_ID = re.compile(r"evt_[0-9a-f]{32}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
JAN_15_2024 = 1_705_329_045_123_456_789  # 2024-01-15T14:30:45.123456789Z
END_OF_9999_NS = 253_402_300_800 * 10**9


def sealed(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` plus the integrity block the sealer would add."""
    return {
        **record,
        "integrity": {"origin": "test/1/x", "seq": 0, "prev_hash": "sha256:" + "0" * 64},
    }


def id_ms(event_id: str) -> int:
    return int(event_id[4:16], 16)


def everything() -> dict[str, Any]:
    """Keyword arguments of build() using every block."""
    actor: Actor = {"user_id": "john.doe@company.com", "session_id": "sess_abc123", "role": "admin"}
    resource: Resource = {"type": "database_record", "id": "customer_12345", "table": "customers"}
    context: Context = {"source_ip": "192.168.1.100", "application": "customer_portal"}
    result: Result = {"status": "SUCCESS", "response_code": 200, "affected_records": 1}
    metadata: Metadata = {"compliance_tags": ["GDPR", "SOX"], "retention_years": 7}
    data_access: DataAccess = {"data_classification": "PII", "fields": ["name", "email"]}
    gdpr: GdprContext = {"lawful_basis": "contract", "data_subject_id": "ds_789"}
    hipaa: HipaaContext = {"phi_involved": False, "basis": "operations"}
    sox: SoxContext = {"financial_system": "ledger", "segregation_verified": True}
    pci: PciContext = {"cardholder_data": False, "requirement": "10.2.1"}
    changes: ChangeTracking = {
        "before_state": {"customer_tier": "silver", "limits": {"credit": 5000, "tags": ["a"]}},
        "after_state": {"customer_tier": "gold", "limits": {"credit": 10000, "tags": ["a", "b"]}},
        "approver": "manager.smith@company.com",
    }
    batch: BatchContext = {"batch_id": "b1", "total_records": 2, "error_summary": ["x: 1"]}
    return {
        "category": "administrative",
        "action": "UPDATE",
        "actor": actor,
        "resource": resource,
        "context": context,
        "result": result,
        "risk_level": "HIGH",
        "metadata": metadata,
        "data_access": data_access,
        "gdpr_context": gdpr,
        "hipaa_context": hipaa,
        "sox_context": sox,
        "pci_context": pci,
        "change_tracking": changes,
        "batch_context": batch,
        "extensions": {"acme": {"scores": [1, 2.5], "nested": [{"k": "v"}]}},
    }


# --------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------


def test_build_with_shorthands_makes_a_valid_record() -> None:
    record = build(
        category="security",
        action="LOGIN",
        actor="alice",
        resource=("application", "portal"),
        result="FAILURE",
        risk_level="HIGH",
        context={"application": "portal"},
    )
    assert record["version"] == "1.0"
    assert record["actor"] == {"user_id": "alice"}
    assert record["resource"] == {"type": "application", "id": "portal"}
    assert record["result"] == {"status": "FAILURE"}
    assert record["metadata"] == {"risk_level": "HIGH"}
    assert "integrity" not in record
    assert TIMESTAMP.fullmatch(record["timestamp"])
    assert EVENT_ID.fullmatch(record["event_id"])
    assert validate(record, sealed=False) == []
    assert validate(sealed(record)) == []


def test_build_with_every_block_makes_a_valid_record() -> None:
    kwargs = everything()
    record = build(**kwargs)
    assert validate(sealed(record)) == []
    for name in ("gdpr_context", "hipaa_context", "sox_context", "pci_context", "batch_context"):
        assert record[name] == kwargs[name]
    assert record["metadata"] == {
        "compliance_tags": ["GDPR", "SOX"],
        "retention_years": 7,
        "risk_level": "HIGH",
    }


def _containers(value: Any) -> list[Any]:
    found = []
    if isinstance(value, (dict, list)):
        found.append(value)
        for item in value.values() if isinstance(value, dict) else value:
            found += _containers(item)
    return found


def test_build_copies_its_inputs() -> None:
    kwargs = everything()
    record = build(**kwargs)
    snapshot = copy.deepcopy(record)
    inputs = {id(c) for value in kwargs.values() for c in _containers(value)}
    assert not inputs & {id(c) for c in _containers(record)}  # nothing shared
    kwargs["actor"]["user_id"] = "mallory"
    kwargs["context"].clear()
    kwargs["metadata"]["compliance_tags"].append("PCI-DSS")
    kwargs["change_tracking"]["before_state"]["limits"]["credit"] = 0
    kwargs["change_tracking"]["after_state"]["limits"]["tags"].append("c")
    kwargs["extensions"]["acme"]["nested"][0]["k"] = "changed"
    assert record == snapshot


def test_build_drops_none_values() -> None:
    record = build(
        category="data_access",
        action="READ",
        actor={"user_id": "alice", "session_id": None},  # type: ignore[arg-type]
        resource=("file", "f-1"),
        result={"status": "SUCCESS", "reason": None},  # type: ignore[arg-type]
        risk_level="LOW",
        context={"source_ip": None, "application": "app"},  # type: ignore[arg-type]
        change_tracking={"before_state": {"a": None, "b": {"c": None, "d": 1}}},
        gdpr_context=None,
    )
    assert record["actor"] == {"user_id": "alice"}
    assert record["result"] == {"status": "SUCCESS"}
    assert record["context"] == {"application": "app"}
    assert record["change_tracking"] == {"before_state": {"b": {"d": 1}}}
    assert "gdpr_context" not in record
    assert validate(record, sealed=False) == []


def test_build_keeps_none_in_lists_for_the_validator_to_report() -> None:
    record = build(
        category="data_access",
        action="READ",
        actor="alice",
        resource=("file", "f-1"),
        result="SUCCESS",
        risk_level="LOW",
        context={"application": "app"},
        data_access={"fields": ["name", None]},  # type: ignore[arg-type]
    )
    assert [(v.path, v.rule) for v in validate(record, sealed=False)] == [
        ("$.data_access.fields[1]", "null")
    ]


def test_build_turns_tuples_into_lists() -> None:
    record = build(
        category="data_access",
        action="READ",
        actor="alice",
        resource=("file", "f-1"),
        result="SUCCESS",
        risk_level="LOW",
        context={"application": "app"},
        metadata={"compliance_tags": ("GDPR", "SOX")},  # type: ignore[arg-type]
        extensions={"p": (1, (2, 3))},
    )
    assert record["metadata"]["compliance_tags"] == ["GDPR", "SOX"]
    assert record["extensions"] == {"p": [1, [2, 3]]}
    assert validate(record, sealed=False) == []


def test_risk_level_argument_wins_over_metadata() -> None:
    record = build(
        category="security",
        action="LOGIN",
        actor="alice",
        resource=("application", "portal"),
        result="SUCCESS",
        risk_level="LOW",
        context={"application": "portal"},
        metadata={"risk_level": "CRITICAL", "retention_years": 3},
    )
    assert record["metadata"] == {"risk_level": "LOW", "retention_years": 3}


def test_build_uses_one_clock_reading_for_timestamp_and_event_id() -> None:
    record = build(
        category="security",
        action="LOGIN",
        actor="alice",
        resource=("application", "portal"),
        result="SUCCESS",
        risk_level="LOW",
        now_ns=JAN_15_2024,
    )
    assert record["timestamp"] == "2024-01-15T14:30:45.123Z"
    assert id_ms(record["event_id"]) == JAN_15_2024 // 10**6
    now = time.time_ns()
    record = build(
        category="security",
        action="LOGIN",
        actor="alice",
        resource=("application", "portal"),
        result="SUCCESS",
        risk_level="LOW",
    )
    stamp = datetime.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    assert abs(stamp.timestamp() - now / 1e9) < 5
    assert id_ms(record["event_id"]) == round(stamp.timestamp() * 1000)


def test_build_keeps_explicit_timestamp_and_event_id() -> None:
    record = build(
        category="security",
        action="LOGIN",
        actor="alice",
        resource=("application", "portal"),
        result="SUCCESS",
        risk_level="LOW",
        timestamp="2024-01-15T14:30:45.123Z",
        event_id="evt_" + "0" * 32,
    )
    assert record["timestamp"] == "2024-01-15T14:30:45.123Z"
    assert record["event_id"] == "evt_" + "0" * 32


def test_build_does_not_validate() -> None:
    record = build(
        category="nonsense",
        action="lower",
        actor="alice",
        resource=("application", "portal"),
        result="MAYBE",
        risk_level="SEVERE",
    )
    assert {(v.path, v.rule) for v in validate(record, sealed=False)} == {
        ("$.category", "enum"),
        ("$.action", "pattern"),
        ("$.result.status", "enum"),
        ("$.metadata.risk_level", "enum"),
        ("$.context", "required"),
    }


def test_build_leaves_too_deep_values_to_the_validator() -> None:
    value: Any = 1
    for _ in range(100):
        value = {"a": value}
    record = build(
        category="security",
        action="LOGIN",
        actor="alice",
        resource=("application", "portal"),
        result="SUCCESS",
        risk_level="LOW",
        context={"application": "portal"},
        extensions={"deep": value},
    )
    assert [v.rule for v in validate(record, sealed=False)] == ["maxDepth"]


# --------------------------------------------------------------------------------------
# new_event_id
# --------------------------------------------------------------------------------------


def test_event_ids_are_uuidv7_unique_and_sorted() -> None:
    ids = [new_event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for event_id in ids[::997]:
        assert EVENT_ID.fullmatch(event_id)
        parsed = uuid.UUID(event_id[4:])
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    assert abs(id_ms(ids[-1]) - time.time_ns() // 10**6) < 5_000


def test_event_ids_within_one_millisecond_stay_sorted() -> None:
    ids = [new_event_id(JAN_15_2024) for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert {id_ms(i) for i in ids} == {JAN_15_2024 // 10**6}


def test_explicit_times_order_event_ids() -> None:
    later = new_event_id(JAN_15_2024 + 10**6)
    earlier = new_event_id(JAN_15_2024)
    assert earlier < later
    assert id_ms(earlier) == JAN_15_2024 // 10**6


def test_event_ids_from_the_clock_never_go_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time_ns()
    readings = iter([now, now - 10**10, now - 10**10 + 10**6])
    monkeypatch.setattr(time, "time_ns", lambda: next(readings))
    first, second, third = new_event_id(), new_event_id(), new_event_id()
    assert first < second < third
    assert id_ms(second) == id_ms(third) >= now // 10**6


@pytest.mark.parametrize("now_ns", [-(10**6), 2**48 * 10**6])
def test_event_id_time_range(now_ns: int) -> None:
    with pytest.raises(ValueError, match="between 1970"):
        new_event_id(now_ns)


def test_event_ids_are_unique_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        out.extend(new_event_id() for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in results for i in out]
    assert len(set(every)) == len(every) == 20_000
    for out in results:
        assert out == sorted(out)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_event_ids() -> None:
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child
        try:
            os.write(write, " ".join(new_event_id(JAN_15_2024) for _ in range(200)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = {new_event_id(JAN_15_2024) for _ in range(200)}
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    child = set(b"".join(chunks).decode().split())
    assert len(child) == 200
    assert not parent & child


# --------------------------------------------------------------------------------------
# utc_timestamp
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now_ns", "expected"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (JAN_15_2024, "2024-01-15T14:30:45.123Z"),
        (1_709_251_199_999_999_999, "2024-02-29T23:59:59.999Z"),  # truncated, not rounded
        (END_OF_9999_NS - 1, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_utc_timestamp(now_ns: int, expected: str) -> None:
    assert utc_timestamp(now_ns) == expected


def test_utc_timestamp_across_second_boundaries() -> None:
    second = 1_705_329_045 * 10**9
    assert utc_timestamp(second - 1) == "2024-01-15T14:30:44.999Z"
    assert utc_timestamp(second) == "2024-01-15T14:30:45.000Z"
    assert utc_timestamp(second + 999_999_999) == "2024-01-15T14:30:45.999Z"
    assert utc_timestamp(second + 10**9) == "2024-01-15T14:30:46.000Z"
    assert utc_timestamp(second - 1) == "2024-01-15T14:30:44.999Z"  # and back again


@settings(max_examples=300, deadline=None)
@given(st.integers(0, END_OF_9999_NS - 1))
def test_utc_timestamp_agrees_with_datetime(now_ns: int) -> None:
    seconds, rest = divmod(now_ns, 10**9)
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        seconds=seconds
    )
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 10**6:03d}Z"
    assert utc_timestamp(now_ns) == expected
    assert TIMESTAMP.fullmatch(expected)


@pytest.mark.parametrize("now_ns", [-1, END_OF_9999_NS])
def test_utc_timestamp_range(now_ns: int) -> None:
    with pytest.raises(ValueError, match="between 1970 and 9999"):
        utc_timestamp(now_ns)


def test_utc_timestamp_defaults_to_the_clock() -> None:
    stamp = datetime.datetime.fromisoformat(utc_timestamp().replace("Z", "+00:00"))
    assert abs(stamp.timestamp() - time.time()) < 5
