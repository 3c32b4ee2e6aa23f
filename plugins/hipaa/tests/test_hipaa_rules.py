"""HIPAA plugin: hipaa_context, basis, minimum necessary, bulk PHI reads, retention."""

from __future__ import annotations

from typing import Any

import pytest

from otel_audit.errors import PluginError
from otel_audit.plugins import Plugins, load_plugins
from otel_audit.records import build
from otel_audit.schema import validate
from otel_audit.testing import run_pipeline
from otel_audit_hipaa import HipaaPlugin


def hipaa(settings: dict[str, Any] | None = None) -> Plugins:
    return load_plugins(
        {"hipaa": settings or {}}, entry_points=False, extra=[("hipaa", HipaaPlugin())]
    )


def chart_read(records: int = 1, **context: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "category": "data_access",
        "action": "READ",
        "actor": {"user_id": "dr.erin", "role": "physician"},
        "resource": {"type": "encounter", "id": "enc-9", "classification": "PHI"},
        "result": {"status": "SUCCESS", "affected_records": records},
        "risk_level": "MEDIUM",
        "context": {"source_ip": "10.20.0.7"},
    }
    if context:
        fields["hipaa_context"] = context
    return build(**fields)


GOOD: dict[str, Any] = {
    "covered_entity": "acme_clinic",
    "minimum_necessary": True,
    "basis": "treatment",
}


def rules(plugins: Plugins, record: dict[str, Any]) -> list[str]:
    [out] = run_pipeline([record], plugins=plugins)
    if out.action != "AUDIT_SCHEMA_VIOLATION":
        return []
    return [v["rule"] for v in out.record["extensions"]["violations"]]


def test_a_complete_phi_access_passes_with_tag_and_six_years() -> None:
    [out] = run_pipeline([chart_read(**GOOD)], plugins=hipaa())
    record = out.record
    assert out.action == "READ"
    assert record["metadata"]["compliance_tags"] == ["HIPAA"]
    assert record["metadata"]["retention_years"] == 6
    assert record["hipaa_context"]["phi_involved"] is True
    assert validate(record) == []


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, ["hipaa.context_required"]),
        ({**GOOD, "covered_entity": None}, ["hipaa.covered_entity"]),
        ({**GOOD, "basis": None}, ["hipaa.basis"]),
        ({**GOOD, "basis": "authorization"}, ["hipaa.basis"]),
        ({**GOOD, "minimum_necessary": None}, ["hipaa.minimum_necessary"]),
        ({**GOOD, "basis": "payment", "minimum_necessary": False}, ["hipaa.minimum_necessary"]),
    ],
)
def test_missing_elements_are_violations(context: dict[str, Any], expected: list[str]) -> None:
    record = chart_read()
    if context:
        record["hipaa_context"] = {k: v for k, v in context.items() if v is not None}
    assert rules(hipaa(), record) == expected


@pytest.mark.parametrize(
    "context",
    [
        {**GOOD, "minimum_necessary": False},  # treatment is exempt, 164.502(b)(2)(i)
        {**GOOD, "basis": "authorization", "patient_authorization": "auth-77"},
        {"covered_entity": "acme", "minimum_necessary": True, "patient_authorization": "a-1"},
    ],
)
def test_valid_bases(context: dict[str, Any]) -> None:
    assert rules(hipaa(), chart_read(**context)) == []


def test_phi_is_recognised_by_resource_type_and_by_context() -> None:
    by_type = chart_read()
    by_type["resource"] = {"type": "patient_record", "id": "p-1"}
    assert rules(hipaa(), by_type) == ["hipaa.context_required"]
    unrelated = chart_read()
    unrelated["resource"] = {"type": "invoice", "id": "i-1"}
    assert rules(hipaa(), unrelated) == []


def test_bulk_phi_reads_are_tagged_and_high_risk() -> None:
    [small, bulk] = run_pipeline(
        [chart_read(100, **GOOD), chart_read(101, **GOOD)], plugins=hipaa()
    )
    assert small.record["metadata"]["risk_level"] == "MEDIUM"
    assert bulk.record["metadata"]["risk_level"] == "HIGH"
    assert bulk.record["metadata"]["compliance_tags"] == ["HIPAA", "HIPAA-BULK-PHI"]
    [low] = run_pipeline([chart_read(20, **GOOD)], plugins=hipaa({"bulk_threshold": 10}))
    assert "HIPAA-BULK-PHI" in low.record["metadata"]["compliance_tags"]


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(PluginError, match="bulk_threshold"):
        hipaa({"bulk_threshold": 0})
    with pytest.raises(PluginError, match="unknown hipaa settings"):
        hipaa({"threshold": 5})
