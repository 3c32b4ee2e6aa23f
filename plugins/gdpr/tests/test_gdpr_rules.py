"""GDPR plugin: lawful basis, purpose, subject, transfers, special categories."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from gdpr_support import gdpr, personal

from otel_audit.errors import PluginError
from otel_audit.schema import validate
from otel_audit.testing import run_pipeline, sample_record


def violations(record: dict[str, Any], vault: Path | None = None, **settings: Any) -> list[str]:
    [out] = run_pipeline([record], plugins=gdpr(vault, **settings))
    if out.action != "AUDIT_SCHEMA_VIOLATION":
        return []
    return [v["rule"] for v in out.record["extensions"]["violations"]]


def test_a_complete_record_passes_and_is_tagged() -> None:
    [out] = run_pipeline([personal()], plugins=gdpr())
    assert out.action == "UPDATE"
    assert out.record["metadata"]["compliance_tags"] == ["GDPR"]
    assert validate(out.record) == []


@pytest.mark.parametrize(
    ("drop", "rule"),
    [
        ("lawful_basis", "gdpr.lawful_basis"),
        ("processing_purpose", "gdpr.purpose"),
        ("data_subject_id", "gdpr.data_subject"),
    ],
)
def test_each_required_element(drop: str, rule: str) -> None:
    record = personal()
    del record["gdpr_context"][drop]
    assert violations(record) == [rule]


def test_personal_data_without_gdpr_context() -> None:
    record = personal()
    del record["gdpr_context"]
    assert violations(record) == ["gdpr.context_required"]


def test_other_records_are_not_personal_unless_configured() -> None:
    record = sample_record(2)
    record["resource"] = {"type": "session", "id": "s-1"}
    del record["gdpr_context"]
    assert violations(record) == []
    assert violations(record, resource_types=["session"]) == ["gdpr.context_required"]


def test_a_cross_border_transfer_needs_a_mechanism() -> None:
    assert violations(personal(cross_border_transfer=True)) == ["gdpr.transfer_mechanism"]
    sccs = personal(cross_border_transfer=True, transfer_mechanism="standard_contractual_clauses")
    assert violations(sccs) == []


def test_an_unknown_lawful_basis_is_refused_by_the_schema() -> None:
    assert violations(personal(lawful_basis="because")) == ["enum"]


def test_special_category_data_is_high_risk_and_tagged() -> None:
    [out] = run_pipeline([personal(special_category=True)], plugins=gdpr())
    assert out.record["metadata"]["risk_level"] == "HIGH"
    assert out.record["metadata"]["compliance_tags"] == ["GDPR", "GDPR-ART9"]


def test_without_a_vault_ids_stay_and_the_plugin_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_AUDIT_GDPR_VAULT", raising=False)
    with caplog.at_level(logging.WARNING, logger="otel_audit.internal"):
        out, _ = run_pipeline([personal(), personal()], plugins=gdpr())
    assert out.record["gdpr_context"]["data_subject_id"] == "customer-4711"
    assert out.record["change_tracking"]["after_state"] == {"street": "2 New Street"}
    warnings = [r for r in caplog.records if "no vault configured" in r.getMessage()]
    assert len(warnings) == 1


def test_required_fields_cannot_be_sealed() -> None:
    with pytest.raises(PluginError, match=r"'resource\.id' cannot be sealed"):
        gdpr(personal_fields=["resource.id"])
    with pytest.raises(PluginError, match="unknown gdpr settings"):
        gdpr(vualt="/tmp/x")
