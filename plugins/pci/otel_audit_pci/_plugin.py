"""The PCI DSS plugin's hooks.

* redact: masks every PAN in the record (first 6 / last 4), keys included, and then
  sets ``pci_context.pan_masked`` and ``cardholder_data``.
* enrich/validate: a record about cardholder data (classification ``PCI`` or
  ``CARDHOLDER``, a configured resource type, a ``pci_context``, or a masked PAN) is
  tagged ``PCI-DSS`` and must carry the audit-trail elements of PCI DSS v4.0 10.2.2
  (v3.2.1 10.3.1–10.3.6): user identification, type of event, date and time, success or
  failure, origination (a source IP or host name), and the affected resource.
* retention: at least 1 year for those records (10.5.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_audit.errors import PluginError, Violation
from otel_audit.plugins import add_compliance_tag, block, hookimpl
from otel_audit_pci._redact import mask_record

__all__ = ["PciPlugin", "missing_elements"]

NAME = "pci"
TAG = "PCI-DSS"
_DEFAULTS: dict[str, Any] = {
    "classifications": ["PCI", "CARDHOLDER"],
    "resource_types": ["payment_card", "card", "cardholder", "cardholder_data"],
    "retention_years": 1,
    "require_source_ip": True,
}


def missing_elements(record: Mapping[str, Any], *, require_source_ip: bool = True) -> list[str]:
    """The PCI DSS v4.0 10.2.2 elements ``record`` lacks (empty: all present)."""
    missing = []
    if not block(record, "actor").get("user_id"):
        missing.append("user identification (actor.user_id)")
    if not (record.get("category") and record.get("action")):
        missing.append("type of event (category, action)")
    if not record.get("timestamp"):
        missing.append("date and time (timestamp)")
    if block(record, "result").get("status") not in ("SUCCESS", "FAILURE", "PARTIAL"):
        missing.append("success or failure (result.status)")
    origins = (
        ("source_ip", "hostname") if require_source_ip else ("source_ip", "hostname", "application")
    )
    context, resource = block(record, "context"), block(record, "resource")
    if not any(context.get(key) for key in origins):
        missing.append("origination (context." + " or context.".join(origins) + ")")
    if not (resource.get("type") and resource.get("id")):
        missing.append("affected resource (resource.type, resource.id)")
    return missing


class PciPlugin:
    """Registered on the ``otel_audit`` entry point as ``pci``."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = dict(_DEFAULTS)

    @hookimpl
    def otel_audit_configure(self, config: Mapping[str, Any]) -> None:
        given = config.get(NAME, {})
        unknown = set(given) - set(_DEFAULTS) - {"enabled"}
        if unknown:
            raise PluginError(f"unknown pci settings: {', '.join(sorted(unknown))}", NAME)
        self.settings = {**_DEFAULTS, **given}

    def in_scope(self, record: Mapping[str, Any]) -> bool:
        classes = self.settings["classifications"]
        context = record.get("pci_context")
        resource = block(record, "resource")
        return bool(
            (context is not None and isinstance(context, Mapping))
            or resource.get("classification") in classes
            or block(record, "data_access").get("data_classification") in classes
            or resource.get("type") in self.settings["resource_types"]
        )

    @hookimpl
    def otel_audit_enrich(self, record: dict[str, Any]) -> None:
        if self.in_scope(record):
            add_compliance_tag(record, TAG)

    # tryfirst: mask before other redactors run, e.g. before the GDPR plugin encrypts a
    # field (a PAN must not survive inside a ciphertext that the vault can open)
    @hookimpl(tryfirst=True)
    def otel_audit_redact(self, record: dict[str, Any]) -> None:
        if mask_record(record):
            pci = record.get("pci_context")
            if not isinstance(pci, dict):
                pci = record["pci_context"] = {}
            pci["pan_masked"] = True
            pci["cardholder_data"] = True
            add_compliance_tag(record, TAG)

    @hookimpl
    def otel_audit_validate(self, record: Mapping[str, Any]) -> list[Violation]:
        if not self.in_scope(record):
            return []
        missing = missing_elements(record, require_source_ip=self.settings["require_source_ip"])
        return [
            Violation("$", "pci.10.2.2", f"PCI DSS 10.2.2 requires {element}")
            for element in missing
        ]

    @hookimpl
    def otel_audit_retention(self, record: Mapping[str, Any]) -> int | None:
        return int(self.settings["retention_years"]) if self.in_scope(record) else None
