"""The OTel front door: a LogRecordProcessor on a real LoggerProvider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry import baggage, context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource

from otel_audit._inputs import read_into
from otel_audit.errors import AuditValidationError
from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline
from otel_audit.processor import AuditProcessor
from otel_audit.store import LocalStore, read_lines
from otel_audit.verify import Verifier

KEY = SigningKey.generate("processor-test")


def provider_for(store: Path, *, strict: bool = False) -> tuple[LoggerProvider, AuditPipeline]:
    pipeline = AuditPipeline(KEY, [LocalStore(store)], service_name="orders", strict=strict)
    provider = LoggerProvider(resource=Resource.create({"service.name": "orders"}))
    provider.add_log_record_processor(AuditProcessor(pipeline))
    return provider, pipeline


def stored(store: Path) -> list[dict[str, Any]]:
    """The application's records in the store, after checking that it verifies."""
    verifier = Verifier([KEY.verifier()])
    read_into(verifier, [str(store)])
    assert verifier.finish().intact(strict=True)
    records = [orjson.loads(line) for line in read_lines(store)]
    return [r for r in records if r["category"] != "integrity"]


def test_annotated_log_records_become_sealed_audit_records(tmp_path: Path) -> None:
    provider, _ = provider_for(tmp_path)
    logger = provider.get_logger("audit")
    body: dict[str, Any] = {
        "actor": {"user_id": "alice@example.com"},
        "resource": {"type": "order", "id": "o-17"},
        "result": {"status": "SUCCESS", "affected_records": 1},
    }
    token = context.attach(baggage.set_baggage("session.id", "sess-9"))
    try:
        logger.emit(
            body=body,
            event_name="audit.data_access.delete",
            attributes={"client.address": "198.51.100.7", "url.path": "/orders/o-17"},
        )
    finally:
        context.detach(token)
    body["actor"]["user_id"] = "mallory"  # the SDK hands over references: we copied
    logger.emit(body="plain application log, not an audit record")
    assert provider.force_flush(10_000)
    provider.shutdown()
    (record,) = stored(tmp_path)
    assert record["category"] == "data_access"
    assert record["action"] == "DELETE"
    assert record["actor"] == {"user_id": "alice@example.com", "session_id": "sess-9"}
    assert record["context"]["source_ip"] == "198.51.100.7"
    assert record["context"]["api_endpoint"] == "/orders/o-17"
    assert record["context"]["application"] == "orders"
    assert record["timestamp"].endswith("Z")


def test_bad_body_is_sealed_as_a_violation_not_raised(tmp_path: Path) -> None:
    provider, pipeline = provider_for(tmp_path)
    provider.get_logger("audit").emit(body={"audit": {"action": "delete things", "actor": 7}})
    provider.shutdown()
    (record,) = stored(tmp_path)
    assert record["action"] == "AUDIT_SCHEMA_VIOLATION"
    assert pipeline.stats.violations == 1


def test_strict_mode_raises_into_the_caller(tmp_path: Path) -> None:
    provider, _ = provider_for(tmp_path, strict=True)
    with pytest.raises(AuditValidationError):
        provider.get_logger("audit").emit(body={"audit": {"action": "DELETE"}})
    provider.shutdown()
