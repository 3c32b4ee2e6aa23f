"""The HIPAA plugin's hooks (45 CFR Part 164, the Privacy and Security Rules).

PHI is involved when ``resource.classification`` or ``data_access.data_classification``
is ``PHI`` (configurable), the record has a ``hipaa_context``, or ``resource.type`` is a
configured PHI type. Such a record:

* is tagged ``HIPAA`` and gets ``hipaa_context.phi_involved = true``;
* must carry ``hipaa_context`` with ``covered_entity``, ``minimum_necessary`` and a basis:
  ``basis`` treatment, payment or operations (164.506), authorization (164.508, then with
  ``patient_authorization``) or public_interest (164.512), or a ``patient_authorization``
  alone (``hipaa.*`` violations);
* must meet the minimum necessary standard (164.502(b)): ``minimum_necessary: false`` is
  a violation unless the basis is treatment, which 164.502(b)(2)(i) exempts;
* is kept at least 6 years (164.316(b)(2)(i));
* when it reads more than ``bulk_threshold`` records (``data_access.record_count`` or
  ``result.affected_records``), is a bulk PHI access: tag ``HIPAA-BULK-PHI``, risk HIGH.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_audit.errors import PluginError, Violation
from otel_audit.plugins import add_compliance_tag, block, hookimpl

__all__ = ["HipaaPlugin"]

NAME = "hipaa"
_DEFAULTS: dict[str, Any] = {
    "classifications": ["PHI"],
    "resource_types": ["patient", "patient_record", "medical_record", "health_record"],
    "bulk_threshold": 100,
    "bulk_actions": ["READ", "EXPORT", "DOWNLOAD", "QUERY", "SEARCH", "COPY"],
    "retention_years": 6,
}
_TPO = ("treatment", "payment", "operations")


class HipaaPlugin:
    """Registered on the ``otel_audit`` entry point as ``hipaa``."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = dict(_DEFAULTS)

    @hookimpl
    def otel_audit_configure(self, config: Mapping[str, Any]) -> None:
        given = config.get(NAME, {})
        unknown = set(given) - set(_DEFAULTS) - {"enabled"}
        if unknown:
            raise PluginError(f"unknown hipaa settings: {', '.join(sorted(unknown))}", NAME)
        settings = {**_DEFAULTS, **given}
        threshold = settings["bulk_threshold"]
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise PluginError("hipaa bulk_threshold must be an integer >= 1", NAME)
        self.settings = settings

    def phi_involved(self, record: Mapping[str, Any]) -> bool:
        if record.get("category") == "integrity":
            return False
        classes = self.settings["classifications"]
        resource = block(record, "resource")
        return bool(
            "hipaa_context" in record
            or resource.get("classification") in classes
            or block(record, "data_access").get("data_classification") in classes
            or resource.get("type") in self.settings["resource_types"]
        )

    def is_bulk(self, record: Mapping[str, Any]) -> bool:
        if record.get("action") not in self.settings["bulk_actions"]:
            return False
        counts = (
            block(record, "data_access").get("record_count"),
            block(record, "result").get("affected_records"),
        )
        threshold = self.settings["bulk_threshold"]
        return any(isinstance(n, int) and not isinstance(n, bool) and n > threshold for n in counts)

    @hookimpl
    def otel_audit_enrich(self, record: dict[str, Any]) -> None:
        if not self.phi_involved(record):
            return
        add_compliance_tag(record, "HIPAA")
        context = record.get("hipaa_context")
        if isinstance(context, dict):
            context.setdefault("phi_involved", True)
        if self.is_bulk(record):
            add_compliance_tag(record, "HIPAA-BULK-PHI")

    @hookimpl
    def otel_audit_validate(self, record: Mapping[str, Any]) -> list[Violation]:
        if not self.phi_involved(record):
            return []
        context = record.get("hipaa_context")
        if type(context) is not dict and not isinstance(context, Mapping):
            return [
                Violation(
                    "$.hipaa_context",
                    "hipaa.context_required",
                    "an access to PHI needs hipaa_context (covered entity, minimum "
                    "necessary, basis or authorization)",
                )
            ]
        if context.get("phi_involved") is False:
            return []  # the caller states that no PHI was involved after all
        out = []
        if not context.get("covered_entity"):
            out.append(
                Violation(
                    "$.hipaa_context.covered_entity",
                    "hipaa.covered_entity",
                    "an access to PHI must name the covered entity",
                )
            )
        basis = context.get("basis")
        authorization = context.get("patient_authorization")
        if basis is None and not authorization:
            out.append(
                Violation(
                    "$.hipaa_context.basis",
                    "hipaa.basis",
                    "an access to PHI needs a basis (treatment, payment, operations, "
                    "public_interest) or a patient_authorization",
                )
            )
        elif basis == "authorization" and not authorization:
            out.append(
                Violation(
                    "$.hipaa_context.patient_authorization",
                    "hipaa.basis",
                    "basis 'authorization' needs the patient_authorization id (164.508)",
                )
            )
        necessary = context.get("minimum_necessary")
        if necessary is None:
            out.append(
                Violation(
                    "$.hipaa_context.minimum_necessary",
                    "hipaa.minimum_necessary",
                    "an access to PHI must state whether it met the minimum necessary standard",
                )
            )
        elif necessary is False and basis != "treatment":
            out.append(
                Violation(
                    "$.hipaa_context.minimum_necessary",
                    "hipaa.minimum_necessary",
                    "access beyond the minimum necessary (164.502(b)) outside treatment",
                )
            )
        return out

    @hookimpl
    def otel_audit_classify_risk(self, record: Mapping[str, Any]) -> str | None:
        if self.phi_involved(record) and self.is_bulk(record):
            return "HIGH"
        return None

    @hookimpl
    def otel_audit_retention(self, record: Mapping[str, Any]) -> int | None:
        return int(self.settings["retention_years"]) if self.phi_involved(record) else None
