"""The typed helpers produce schema-valid records with the documented fields."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from handler_support import app_records, assert_intact

from otel_audit_logging import (
    AuditHandler,
    audit_batch,
    audit_config_change,
    audit_context,
    audit_create,
    audit_delete,
    audit_lockout,
    audit_login,
    audit_permission_change,
    audit_read,
    audit_update,
)

MakeHandler = Callable[..., AuditHandler]
MakeLogger = Callable[[logging.Handler], logging.Logger]


@pytest.fixture
def run(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> Callable[[Callable[[logging.Logger], None]], list[dict[str, Any]]]:
    """Run ``calls(logger)`` under a strict handler; return the sealed records."""

    def go(calls: Callable[[logging.Logger], None]) -> list[dict[str, Any]]:
        handler = make_handler(strict=True)  # a helper producing a bad record would raise
        calls(make_logger(handler))
        handler.close()
        assert_intact(store, vkey_file)
        return app_records(store)

    return go


Run = Callable[[Callable[[logging.Logger], None]], list[dict[str, Any]]]


def test_login_success_and_failure(run: Run) -> None:
    def calls(log: logging.Logger) -> None:
        with audit_context(actor="alice", session_id="s-1", source_ip="198.51.100.4"):
            audit_login(log, "alice", success=True, mfa=True, method="password")
        audit_login(log, "mallory", success=False, reason="bad password")

    ok, failed = run(calls)
    assert (ok["category"], ok["action"]) == ("authentication", "LOGIN")
    assert ok["actor"] == {"user_id": "alice", "session_id": "s-1"}
    assert ok["resource"] == {"type": "user_account", "id": "alice"}
    assert ok["result"] == {"status": "SUCCESS"}
    assert ok["metadata"]["risk_level"] == "LOW"
    assert ok["context"]["source_ip"] == "198.51.100.4"
    assert ok["extensions"]["auth_method"] == "password"
    assert ok["extensions"]["mfa"] is True
    assert ok["extensions"]["logging"]["message"] == "login succeeded for alice"
    assert failed["actor"] == {"user_id": "mallory"}
    assert failed["result"] == {"status": "FAILURE", "reason": "bad password"}
    assert failed["metadata"]["risk_level"] == "MEDIUM"


def test_lockout_actor_defaults_to_system(run: Run) -> None:
    def calls(log: logging.Logger) -> None:
        audit_lockout(log, "mallory", failed_attempts=5, reason="too many failures")
        with audit_context(actor="admin"):
            audit_lockout(log, "eve")

    automatic, manual = run(calls)
    assert automatic["action"] == "LOCKOUT"
    assert automatic["actor"] == {"user_id": "system", "type": "system"}
    assert automatic["resource"] == {"type": "user_account", "id": "mallory"}
    assert automatic["extensions"]["failed_attempts"] == 5
    assert automatic["metadata"]["risk_level"] == "HIGH"
    assert manual["actor"] == {"user_id": "admin"}


def test_data_access_helpers(run: Run) -> None:
    def calls(log: logging.Logger) -> None:
        with audit_context(actor="alice"):
            audit_read(
                log,
                "customer",
                "c-1",
                records=3,
                table="customers",
                classification="PII",
                fields=["email", "name", "email"],
                purpose="support ticket 42",
            )
            audit_read(log, "report", "r-1")
            audit_create(log, "customer", "c-2", after={"tier": "silver"}, reason="signup")
            audit_update(
                log,
                "customer",
                "c-2",
                before={"tier": "silver", "credit_limit": 5000},
                after={"tier": "gold", "credit_limit": 10000},
                reason="promotion_campaign",
                approver="manager.smith@example.com",
                ticket="CHG-7",
            )
            audit_delete(log, "customer", "c-2", reason="GDPR erasure", classification="PII")

    read, plain_read, create, update, delete = run(calls)
    assert (read["category"], read["action"]) == ("data_access", "READ")
    assert read["resource"] == {
        "type": "customer",
        "id": "c-1",
        "table": "customers",
        "classification": "PII",
    }
    assert read["result"] == {"status": "SUCCESS", "affected_records": 3}
    assert read["data_access"] == {
        "record_count": 3,
        "data_classification": "PII",
        "fields": ["email", "name"],
        "purpose": "support ticket 42",
    }
    assert read["metadata"]["risk_level"] == "MEDIUM"  # sensitive classification
    assert plain_read["metadata"]["risk_level"] == "LOW"
    assert "data_access" not in plain_read
    assert create["change_tracking"] == {
        "after_state": {"tier": "silver"},
        "change_reason": "signup",
    }
    assert update["action"] == "UPDATE"
    assert update["metadata"]["risk_level"] == "MEDIUM"
    assert update["change_tracking"] == {
        "before_state": {"tier": "silver", "credit_limit": 5000},
        "after_state": {"tier": "gold", "credit_limit": 10000},
        "change_reason": "promotion_campaign",
        "approver": "manager.smith@example.com",
        "change_ticket": "CHG-7",
    }
    assert delete["action"] == "DELETE"
    assert delete["metadata"]["risk_level"] == "HIGH"
    assert {r["actor"]["user_id"] for r in (read, create, update, delete)} == {"alice"}


def test_administrative_helpers(run: Run) -> None:
    def calls(log: logging.Logger) -> None:
        with audit_context(actor="root-admin"):
            audit_permission_change(
                log,
                "bob",
                before=["viewer"],
                after=["viewer", "editor", "editor"],
                reason="joined team",
                approver="lead",
            )
            audit_config_change(log, "session_timeout_s", before=900, after=3600, ticket="CHG-9")
            audit_config_change(log, "feature.export", after=True, risk_level="CRITICAL")

    perms, timeout, feature = run(calls)
    assert (perms["category"], perms["action"]) == ("administrative", "PERMISSION_CHANGE")
    assert perms["resource"] == {"type": "user_account", "id": "bob"}
    assert perms["change_tracking"]["before_state"] == {"permissions": ["viewer"]}
    assert perms["change_tracking"]["after_state"] == {"permissions": ["editor", "viewer"]}
    assert perms["metadata"]["risk_level"] == "HIGH"
    assert "granted ['editor'], revoked []" in perms["extensions"]["logging"]["message"]
    assert timeout["action"] == "CONFIG_CHANGE"
    assert timeout["resource"] == {"type": "configuration", "id": "session_timeout_s"}
    assert timeout["change_tracking"] == {
        "before_state": {"value": 900},
        "after_state": {"value": 3600},
        "change_ticket": "CHG-9",
    }
    assert feature["change_tracking"] == {"after_state": {"value": True}}
    assert feature["metadata"]["risk_level"] == "CRITICAL"


@pytest.mark.parametrize(
    ("succeeded", "failed", "status", "risk"),
    [(10, 0, "SUCCESS", "LOW"), (7, 3, "PARTIAL", "MEDIUM"), (0, 10, "FAILURE", "MEDIUM")],
)
def test_batch(run: Run, succeeded: int, failed: int, status: str, risk: str) -> None:
    def calls(log: logging.Logger) -> None:
        audit_batch(
            log,
            "batch_2024_01_15_001",
            total=10,
            succeeded=succeeded,
            failed=failed,
            duration_ms=45678.5,
            errors=[f"validation_failed: {failed}"] if failed else [],
            actor="svc-import",
        )

    (record,) = run(calls)
    assert (record["category"], record["action"]) == ("data_access", "BATCH_PROCESS")
    assert record["actor"] == {"user_id": "svc-import"}
    assert record["result"] == {"status": status, "affected_records": succeeded}
    assert record["metadata"]["risk_level"] == risk
    expected: dict[str, Any] = {
        "batch_id": "batch_2024_01_15_001",
        "total_records": 10,
        "successful_records": succeeded,
        "failed_records": failed,
        "processing_duration_ms": 45678.5,
    }
    if failed:
        expected["error_summary"] = [f"validation_failed: {failed}"]
    assert record["batch_context"] == expected


def test_helpers_report_the_callers_location(
    make_handler: MakeHandler, make_logger: MakeLogger
) -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    log = make_logger(Keep())
    audit_read(log, "customer", "c-1", actor="alice")
    assert seen[0].funcName == "test_helpers_report_the_callers_location"
    assert seen[0].filename == Path(__file__).name


def test_a_helper_without_any_actor_yields_a_violation_record(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path
) -> None:
    handler = make_handler()
    audit_read(make_logger(handler), "customer", "c-1")  # nobody bound, none given
    handler.close()
    (record,) = app_records(store)
    assert record["action"] == "AUDIT_SCHEMA_VIOLATION"
    assert "$.actor" in record["result"]["reason"]
