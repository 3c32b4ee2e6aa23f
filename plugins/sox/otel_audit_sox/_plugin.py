"""The SOX plugin's hooks (Sarbanes-Oxley §404 internal control over financial reporting).

A record is about a financial resource when its ``resource.type`` or ``resource.table``
is configured as financial, its classification is ``FINANCIAL``, or it carries a
``sox_context``. For such records:

* a successful change (CREATE, UPDATE, DELETE, POST, REVERSE, ADJUST, …) needs
  ``change_tracking.change_reason`` and ``change_tracking.approver`` (``sox.change_control``);
* the approver must not be the actor (separation of duties, ``sox.separation_of_duties``);
  when they differ the record gets ``sox_context.segregation_verified = true``;
* management access (``sox_context.management_access`` or a configured management role)
  is tagged ``SOX-MANAGEMENT-ACCESS`` and raises the risk to at least HIGH;
* the record is tagged ``SOX`` and kept at least 7 years (SOX §802, 18 U.S.C. §1520 and
  SEC Rule 2-06 of Regulation S-X: audit records of 7 years).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_audit.errors import PluginError, Violation
from otel_audit.plugins import add_compliance_tag, block, hookimpl

__all__ = ["SoxPlugin"]

NAME = "sox"
_DEFAULTS: dict[str, Any] = {
    "resource_types": [
        "general_ledger",
        "journal_entry",
        "ledger_account",
        "financial_report",
        "financial_statement",
        "invoice",
        "payment",
        "payroll",
    ],
    "tables": ["general_ledger", "journal_entries", "gl_accounts", "invoices", "payments"],
    "classifications": ["FINANCIAL"],
    "change_actions": ["CREATE", "UPDATE", "DELETE", "POST", "REVERSE", "ADJUST", "APPROVE"],
    "management_roles": ["cfo", "ceo", "controller", "finance_manager", "finance_admin"],
    "retention_years": 7,
}


def _same_person(record: Mapping[str, Any]) -> bool | None:
    """Whether the approver of a change is its actor (None: one of them is not named)."""
    approver = block(record, "change_tracking").get("approver")
    actor = block(record, "actor").get("user_id")
    if not (isinstance(approver, str) and isinstance(actor, str)):
        return None
    return approver.strip().lower() == actor.strip().lower()


class SoxPlugin:
    """Registered on the ``otel_audit`` entry point as ``sox``."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = dict(_DEFAULTS)

    @hookimpl
    def otel_audit_configure(self, config: Mapping[str, Any]) -> None:
        given = config.get(NAME, {})
        unknown = set(given) - set(_DEFAULTS) - {"enabled"}
        if unknown:
            raise PluginError(f"unknown sox settings: {', '.join(sorted(unknown))}", NAME)
        self.settings = {**_DEFAULTS, **given}

    def is_financial(self, record: Mapping[str, Any]) -> bool:
        resource = block(record, "resource")
        return bool(
            "sox_context" in record
            or resource.get("type") in self.settings["resource_types"]
            or resource.get("table") in self.settings["tables"]
            or resource.get("classification") in self.settings["classifications"]
        )

    def is_change(self, record: Mapping[str, Any]) -> bool:
        status = block(record, "result").get("status")
        return record.get("action") in self.settings["change_actions"] and status in (
            "SUCCESS",
            "PARTIAL",
        )

    def is_management(self, record: Mapping[str, Any]) -> bool:
        role = block(record, "actor").get("role")
        roles = {r.lower() for r in self.settings["management_roles"]}
        return block(record, "sox_context").get("management_access") is True or (
            isinstance(role, str) and role.lower() in roles
        )

    @hookimpl
    def otel_audit_enrich(self, record: dict[str, Any]) -> None:
        if not self.is_financial(record) or record.get("category") == "integrity":
            return
        add_compliance_tag(record, "SOX")
        if not isinstance(record.setdefault("sox_context", {}), dict):
            return  # not an object: the schema reports it
        sox = record["sox_context"]
        if self.is_management(record):
            add_compliance_tag(record, "SOX-MANAGEMENT-ACCESS")
            sox["management_access"] = True
        if self.is_change(record) and _same_person(record) is False:
            sox["segregation_verified"] = True

    @hookimpl
    def otel_audit_validate(self, record: Mapping[str, Any]) -> list[Violation]:
        if not (self.is_financial(record) and self.is_change(record)):
            return []
        change = block(record, "change_tracking")
        violations = []
        if not change.get("change_reason"):
            violations.append(
                Violation(
                    "$.change_tracking.change_reason",
                    "sox.change_control",
                    "a change to financial data needs a reason",
                )
            )
        approver = change.get("approver")
        if not approver:
            violations.append(
                Violation(
                    "$.change_tracking.approver",
                    "sox.change_control",
                    "a change to financial data needs an approver",
                )
            )
        if _same_person(record):
            violations.append(
                Violation(
                    "$.change_tracking.approver",
                    "sox.separation_of_duties",
                    "the approver of a change to financial data must not be its actor",
                )
            )
        return violations

    @hookimpl
    def otel_audit_classify_risk(self, record: Mapping[str, Any]) -> str | None:
        if self.is_financial(record) and self.is_management(record):
            return "HIGH"
        return None

    @hookimpl
    def otel_audit_retention(self, record: Mapping[str, Any]) -> int | None:
        if self.is_financial(record) and record.get("category") != "integrity":
            return int(self.settings["retention_years"])
        return None
