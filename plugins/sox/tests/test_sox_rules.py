"""SOX plugin: change control, separation of duties, management access, retention."""

from __future__ import annotations

from typing import Any

import pytest

from otel_audit.errors import AuditValidationError, PluginError
from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline
from otel_audit.plugins import Plugins, load_plugins
from otel_audit.records import build
from otel_audit.schema import validate
from otel_audit.testing import MemorySink, run_pipeline
from otel_audit_sox import SoxPlugin


def sox(settings: dict[str, Any] | None = None) -> Plugins:
    return load_plugins({"sox": settings or {}}, entry_points=False, extra=[("sox", SoxPlugin())])


def ledger_change(actor: str = "alice", **change: Any) -> dict[str, Any]:
    tracking: Any = {"before_state": {"amount": 100}, "after_state": {"amount": 1000}, **change}
    return build(
        category="data_access",
        action="UPDATE",
        actor=actor,
        resource={"type": "journal_entry", "id": "je-2026-0042", "table": "journal_entries"},
        result="SUCCESS",
        risk_level="MEDIUM",
        context={"source_ip": "10.0.0.5"},
        change_tracking=tracking,
    )


def test_an_approved_reasoned_change_by_someone_else_passes() -> None:
    [out] = run_pipeline(
        [ledger_change(change_reason="accrual fix", approver="bob")], plugins=sox()
    )
    record = out.record
    assert out.action == "UPDATE"
    assert record["metadata"]["compliance_tags"] == ["SOX"]
    assert record["metadata"]["retention_years"] == 7
    assert record["sox_context"] == {"segregation_verified": True}
    assert validate(record) == []


def test_self_approval_breaks_separation_of_duties() -> None:
    [out] = run_pipeline(
        [ledger_change(actor="Alice", change_reason="fix", approver="alice ")], plugins=sox()
    )
    assert out.action == "AUDIT_SCHEMA_VIOLATION"
    rules = [v["rule"] for v in out.record["extensions"]["violations"]]
    assert rules == ["sox.separation_of_duties"]


@pytest.mark.parametrize(
    ("change", "rules"),
    [
        ({"approver": "bob"}, ["sox.change_control"]),
        ({"change_reason": "fix"}, ["sox.change_control"]),
        ({}, ["sox.change_control", "sox.change_control"]),
    ],
)
def test_a_change_needs_a_reason_and_an_approver(change: dict[str, str], rules: list[str]) -> None:
    [out] = run_pipeline([ledger_change(**change)], plugins=sox())
    assert [v["rule"] for v in out.record["extensions"]["violations"]] == rules


def test_strict_mode_raises_at_the_call() -> None:
    pipeline = AuditPipeline(SigningKey.generate("sox"), [MemorySink()], strict=True, plugins=sox())
    try:
        with pytest.raises(AuditValidationError, match=r"sox\.separation_of_duties"):
            pipeline.submit(ledger_change(change_reason="x", approver="alice"))
    finally:
        pipeline.close()


def test_reads_and_failed_attempts_need_no_approval() -> None:
    read = ledger_change()
    read["action"] = "READ"
    failed = ledger_change()
    failed["result"] = {"status": "FAILURE", "reason": "not authorised"}
    out = run_pipeline([read, failed], plugins=sox())
    assert [o.action for o in out] == ["READ", "UPDATE"]
    assert all(o.record["metadata"]["retention_years"] == 7 for o in out)


def test_management_access_is_tagged_and_high_risk() -> None:
    record = ledger_change(change_reason="close", approver="bob")
    record["actor"]["role"] = "Controller"
    [out] = run_pipeline([record], plugins=sox())
    assert out.record["metadata"]["compliance_tags"] == ["SOX", "SOX-MANAGEMENT-ACCESS"]
    assert out.record["metadata"]["risk_level"] == "HIGH"
    assert out.record["sox_context"]["management_access"] is True


def test_other_resources_are_not_sox_and_tables_are_configurable() -> None:
    other = ledger_change()
    other["resource"] = {"type": "customer", "id": "c-1", "table": "crm_notes"}
    [out] = run_pipeline([other], plugins=sox())
    assert out.action == "UPDATE"
    assert "compliance_tags" not in out.record["metadata"]
    [out] = run_pipeline([other], plugins=sox({"tables": ["crm_notes"]}))
    assert out.action == "AUDIT_SCHEMA_VIOLATION"


def test_retention_never_shortens_a_longer_one() -> None:
    record = ledger_change(change_reason="x", approver="bob")
    record["metadata"]["retention_years"] = 10
    [out] = run_pipeline([record], plugins=sox())
    assert out.record["metadata"]["retention_years"] == 10


def test_unknown_settings_are_rejected() -> None:
    with pytest.raises(PluginError, match="unknown sox settings"):
        sox({"approvers": []})
