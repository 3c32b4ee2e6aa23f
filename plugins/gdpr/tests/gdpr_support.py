"""Shared helpers of the GDPR plugin tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otel_audit.plugins import Plugins, load_plugins
from otel_audit.records import build
from otel_audit_gdpr import GdprPlugin


def gdpr(vault: Path | None = None, **settings: Any) -> Plugins:
    """A fresh GDPR plugin through a real plugin manager (no installed plugins)."""
    if vault is not None:
        settings["vault"] = str(vault)
    return load_plugins({"gdpr": settings}, entry_points=False, extra=[("gdpr", GdprPlugin())])


def personal(subject: str = "customer-4711", **context: Any) -> dict[str, Any]:
    """An update of a customer's personal data, with a complete gdpr_context."""
    gdpr_context: Any = {
        "lawful_basis": "contract",
        "processing_purpose": "address change requested by the customer",
        "data_subject_id": subject,
        **context,
    }
    return build(
        category="data_access",
        action="UPDATE",
        actor="agent-7@shop.example",
        resource={"type": "customer", "id": "c-88", "classification": "PII", "name": "Jane Roe"},
        result="SUCCESS",
        risk_level="MEDIUM",
        context={"source_ip": "198.51.100.20"},
        change_tracking={
            "before_state": {"street": "1 Old Road"},
            "after_state": {"street": "2 New Street"},
            "change_reason": "customer request",
        },
        gdpr_context=gdpr_context,
    )
