"""The core pipeline: never drops, keeps order, reports failure truthfully."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from otel_audit._canonical import canonicalize_reference
from otel_audit.errors import AuditValidationError
from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline
from otel_audit.sealing import SealedRecord
from otel_audit.testing import sample_record
from otel_audit.verify import Verifier

KEY = SigningKey.generate("pipeline-test")


class ListSink:
    """A real in-memory sink; ``gate`` lets a test hold the worker to fill the queue."""

    def __init__(self) -> None:
        self.records: list[SealedRecord] = []
        self.gate = threading.Event()
        self.gate.set()
        self.flushes = 0
        self.closed = False

    def write(self, batch: Sequence[SealedRecord]) -> None:
        self.gate.wait(10)
        self.records.extend(batch)

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


class FailingSink(ListSink):
    def write(self, batch: Sequence[SealedRecord]) -> None:
        raise OSError("disk on fire")


def intact(records: list[SealedRecord]) -> bool:
    verifier = Verifier([KEY.verifier()])
    for s in records:
        verifier.add(orjson.loads(s.line), s.line, str(s.seq))
    return verifier.finish().intact(strict=True)


def user_records(sink: ListSink) -> list[SealedRecord]:
    return [s for s in sink.records if s.category != "integrity"]


def test_records_are_sealed_in_order_and_close_ends_the_stream() -> None:
    sink = ListSink()
    pipeline = AuditPipeline(KEY, [sink], service_name="svc", checkpoint_every=16)
    for i in range(100):
        pipeline.submit(sample_record(i))
    assert pipeline.flush(10)
    assert sink.flushes >= 1
    assert pipeline.close(10)
    assert sink.closed
    ids = [s.record["resource"]["id"] for s in user_records(sink)]
    assert ids == [f"customer_{i}" for i in range(100)]
    assert sink.records[-1].action == "STREAM_END"
    assert intact(sink.records)


def test_records_with_floats_are_sealed_in_rfc8785_form() -> None:
    """The pipeline skips the sealer's type walk only for records the schema's fast path
    found plain; a float (orjson writes 1.0 and 1e15 as "1.0" and "1000000000000000.0",
    RFC 8785 as "1" and "1000000000000000") takes the exact path."""
    sink = ListSink()
    pipeline = AuditPipeline(KEY, [sink], service_name="svc")
    floats = sample_record(1)
    floats["extensions"] = {"ratio": 1.0, "big": 1e15, "list": [0.5, 2.0]}
    pipeline.submit(floats)
    pipeline.submit(sample_record(2))
    assert pipeline.close(10)
    sealed = user_records(sink)
    assert [s.record["resource"]["id"] for s in sealed] == ["customer_1", "customer_2"]
    assert all(s.line == canonicalize_reference(s.record) for s in sealed)
    assert b'"big":1000000000000000,' in sealed[0].line
    assert b'"ratio":1}' in sealed[0].line
    assert intact(sink.records)


def test_full_queue_spills_to_disk_and_loses_nothing(tmp_path: Path) -> None:
    sink = ListSink()
    sink.gate.clear()  # hold the worker inside its first write
    pipeline = AuditPipeline(
        KEY, [sink], queue_size=8, max_block_ms=1, batch_size=4, spill_dir=tmp_path / "spill"
    )
    for i in range(200):
        pipeline.submit(sample_record(i))
    assert pipeline.stats.spilled > 0
    assert list((tmp_path / "spill").glob("spill-*.jsonl"))
    sink.gate.set()
    assert pipeline.close(30)
    ids = [s.record["resource"]["id"] for s in user_records(sink)]
    assert ids == [f"customer_{i}" for i in range(200)]  # every record, in order
    assert not list((tmp_path / "spill").glob("spill-*.jsonl"))
    assert intact(sink.records)


def test_spill_left_by_a_crash_is_replayed_at_start(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    lines = b"".join(orjson.dumps(sample_record(i)) + b"\n" for i in range(5))
    (spill / "spill-00000000000000000001-1-000001.jsonl").write_bytes(lines + b'{"torn')
    sink = ListSink()
    pipeline = AuditPipeline(KEY, [sink], spill_dir=spill)
    assert pipeline.close(10)
    assert [s.record["resource"]["id"] for s in user_records(sink)] == [
        f"customer_{i}" for i in range(5)
    ]


def test_bad_record_becomes_a_sealed_violation_record() -> None:
    sink = ListSink()
    pipeline = AuditPipeline(KEY, [sink], service_name="svc")
    bad = sample_record(1)
    bad["actor"] = {"user_id": 42}
    bad["result"]["status"] = "MAYBE"
    pipeline.submit(bad)
    pipeline.submit({"not": "a record", "blob": "x" * 20_000_000})
    assert pipeline.close(10)
    violations = user_records(sink)
    assert [s.action for s in violations] == ["AUDIT_SCHEMA_VIOLATION"] * 2
    first = violations[0].record
    assert first["category"] == "security"
    paths = {v["path"] for v in first["extensions"]["violations"]}
    assert {"$.actor.user_id", "$.result.status"} <= paths
    assert len(violations[1].line) < 64 * 1024
    assert pipeline.stats.violations == 2
    assert intact(sink.records)


def test_strict_mode_raises_at_the_call() -> None:
    sink = ListSink()
    pipeline = AuditPipeline(KEY, [sink], strict=True)
    bad = sample_record(1)
    del bad["actor"]
    with pytest.raises(AuditValidationError, match=r"\$\.actor"):
        pipeline.submit(bad)
    pipeline.submit(sample_record(2))
    assert pipeline.close(10)
    assert len(user_records(sink)) == 1


def test_flush_and_close_report_a_failing_sink() -> None:
    good, bad = ListSink(), FailingSink()
    alerts: list[str] = []
    pipeline = AuditPipeline(KEY, [good, bad], on_alert=alerts.append)
    pipeline.submit(sample_record(1))
    assert pipeline.flush(20) is False
    assert not pipeline.close(20)
    assert pipeline.stats.sink_errors > 0
    assert any("disk on fire" in a for a in alerts)
    assert len(user_records(good)) == 1  # the healthy sink still got everything
