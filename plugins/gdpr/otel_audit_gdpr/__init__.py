"""GDPR plugin for otel-audit (entry point ``gdpr`` on the ``otel_audit`` group).

Requires a lawful basis, purpose and data subject on records that touch personal data,
pseudonymizes the data subject with a keyed hash, and seals personal fields under a
per-subject key so that erasing the key erases them while the log still verifies
(``otel-audit gdpr erase`` / ``otel-audit gdpr report``).
"""

from otel_audit_gdpr._envelope import open_value, seal_value
from otel_audit_gdpr._plugin import GdprPlugin
from otel_audit_gdpr._report import SubjectReport, subject_reports
from otel_audit_gdpr._vault import KeyVault

__all__ = [
    "GdprPlugin",
    "KeyVault",
    "SubjectReport",
    "open_value",
    "plugin",
    "seal_value",
    "subject_reports",
]

#: The instance the entry point registers (one per process).
plugin = GdprPlugin()
