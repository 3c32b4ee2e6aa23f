"""The GDPR plugin's hooks.

A record **touches personal data** when ``resource.classification`` or
``data_access.data_classification`` is a configured personal-data class (default PII,
PERSONAL, PERSONAL_DATA, SPECIAL_CATEGORY), ``resource.type`` is a configured type, or
it has a ``gdpr_context``. Such a record:

* enrich: is tagged ``GDPR`` (``GDPR-ART9`` for special-category data, Art. 9);
* redact: with a vault configured, its ``gdpr_context.data_subject_id`` is replaced by
  the subject's pseudonym (keyed HMAC, Art. 4(5), 25, 32(1)(a)), and its personal fields
  (``personal_fields``) are moved into ``extensions.gdpr.sealed`` encrypted under the
  subject's own key, so that erasing that key erases them (Art. 17) without touching
  the sealed log;
* validate: needs ``gdpr_context`` with ``lawful_basis`` (Art. 6(1)(a)–(f)),
  ``processing_purpose`` (Art. 5(1)(b)) and ``data_subject_id``; a
  ``cross_border_transfer`` needs a ``transfer_mechanism`` (Chapter V, Art. 45–49);
* classify_risk: special-category data (Art. 9) is at least HIGH.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from otel_audit.errors import PluginError, Violation
from otel_audit.plugins import add_compliance_tag, block, hookimpl
from otel_audit_gdpr._envelope import seal_value
from otel_audit_gdpr._vault import KeyVault

__all__ = ["GdprPlugin"]

NAME = "gdpr"
ENV_VAULT = "OTEL_AUDIT_GDPR_VAULT"
ENV_SECRET_FILE = "OTEL_AUDIT_GDPR_SECRET_FILE"  # noqa: S105 - a variable name, not a secret
_DEFAULTS: dict[str, Any] = {
    "vault": None,
    "secret_file": None,
    "classifications": ["PII", "PERSONAL", "PERSONAL_DATA", "SPECIAL_CATEGORY"],
    "resource_types": [],
    "personal_fields": [
        "extensions.personal_data",
        "change_tracking.before_state",
        "change_tracking.after_state",
        "resource.name",
    ],
}
# fields the schema requires or otel-audit owns: they cannot move into a sealed envelope
_FIXED = frozenset(
    {"timestamp", "event_id", "version", "category", "action", "integrity", "metadata",
     "actor.user_id", "resource.type", "resource.id", "result.status", "gdpr_context",
     "extensions.gdpr"}
)  # fmt: skip
_internal = logging.getLogger("otel_audit.internal")


def _split_paths(paths: list[str]) -> list[tuple[str, list[str], str]]:
    """``(path, parent keys, leaf key)`` of each dotted path, split once at configuration."""
    out = []
    for path in paths:
        *parents, leaf = str(path).split(".")
        out.append((str(path), parents, leaf))
    return out


class GdprPlugin:
    """Registered on the ``otel_audit`` entry point as ``gdpr``."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = dict(_DEFAULTS)
        self._personal_paths = _split_paths(_DEFAULTS["personal_fields"])
        self.vault: KeyVault | None = None
        self._warned = False

    @hookimpl
    def otel_audit_configure(self, config: Mapping[str, Any]) -> None:
        given = config.get(NAME, {})
        unknown = set(given) - set(_DEFAULTS) - {"enabled"}
        if unknown:
            raise PluginError(f"unknown gdpr settings: {', '.join(sorted(unknown))}", NAME)
        settings = {**_DEFAULTS, **given}
        settings["vault"] = settings["vault"] or os.environ.get(ENV_VAULT) or None
        settings["secret_file"] = settings["secret_file"] or os.environ.get(ENV_SECRET_FILE) or None
        for path in settings["personal_fields"]:
            parts = str(path).split(".")
            if ".".join(parts[:2]) in _FIXED or parts[0] in _FIXED or len(parts) < 2:
                raise PluginError(f"gdpr personal_fields: {path!r} cannot be sealed", NAME)
        self.settings = settings
        self._personal_paths = _split_paths(settings["personal_fields"])
        self.vault = (
            KeyVault(settings["vault"], settings["secret_file"]) if settings["vault"] else None
        )
        self._warned = False

    def personal(self, record: Mapping[str, Any]) -> bool:
        if record.get("category") == "integrity":
            return False
        classes = self.settings["classifications"]
        resource = block(record, "resource")
        return bool(
            "gdpr_context" in record
            or resource.get("classification") in classes
            or block(record, "data_access").get("data_classification") in classes
            or resource.get("type") in self.settings["resource_types"]
        )

    @hookimpl
    def otel_audit_enrich(self, record: dict[str, Any]) -> None:
        if not self.personal(record):
            return
        add_compliance_tag(record, "GDPR")
        if block(record, "gdpr_context").get("special_category") is True:
            add_compliance_tag(record, "GDPR-ART9")

    @hookimpl
    def otel_audit_redact(self, record: dict[str, Any]) -> None:
        if not self.personal(record):
            return
        context = record.get("gdpr_context")
        subject = context.get("data_subject_id") if isinstance(context, dict) else None
        if not isinstance(context, dict) or not isinstance(subject, str) or not subject:
            return  # validate reports it
        if self.vault is None:
            if not self._warned:
                self._warned = True
                _internal.disabled = False
                _internal.warning(
                    "otel-audit: gdpr: no vault configured (%s): data subject ids are not "
                    "pseudonymized and personal fields are not sealed",
                    ENV_VAULT,
                )
            return
        pseudonym = self.vault.pseudonym(subject)
        context["data_subject_id"] = pseudonym
        event_id = record.get("event_id")
        if not isinstance(event_id, str):
            return
        sealed: dict[str, Any] = {}
        for path, parents, leaf in self._personal_paths:
            holder: Any = record
            for part in parents:
                holder = holder.get(part) if isinstance(holder, dict) else None
            if not isinstance(holder, dict) or leaf not in holder:
                continue
            kid, key = self.vault.current_key(pseudonym)
            sealed[path] = seal_value(
                holder.pop(leaf),
                key=key,
                kid=kid,
                event_id=event_id,
                pseudonym=pseudonym,
                path=path,
            )
        if sealed:
            extensions = record.setdefault("extensions", {})
            if isinstance(extensions, dict):
                extensions["gdpr"] = {"subject": pseudonym, "sealed": sealed}

    @hookimpl
    def otel_audit_validate(self, record: Mapping[str, Any]) -> list[Violation]:
        if not self.personal(record):
            return []
        context = record.get("gdpr_context")
        if type(context) is not dict and not isinstance(context, Mapping):
            return [
                Violation(
                    "$.gdpr_context",
                    "gdpr.context_required",
                    "processing of personal data needs gdpr_context (lawful basis, "
                    "purpose, data subject)",
                )
            ]
        out = []
        for key, rule, text in (
            ("lawful_basis", "gdpr.lawful_basis", "a lawful basis (Art. 6(1)(a)-(f))"),
            ("processing_purpose", "gdpr.purpose", "a processing purpose (Art. 5(1)(b))"),
            ("data_subject_id", "gdpr.data_subject", "the data subject's id"),
        ):
            if not context.get(key):
                out.append(
                    Violation(
                        f"$.gdpr_context.{key}", rule, f"processing of personal data needs {text}"
                    )
                )
        if context.get("cross_border_transfer") is True and not context.get("transfer_mechanism"):
            out.append(
                Violation(
                    "$.gdpr_context.transfer_mechanism",
                    "gdpr.transfer_mechanism",
                    "a transfer out of the EEA needs a transfer mechanism (Art. 45 adequacy, "
                    "Art. 46 SCCs or BCRs, Art. 49 derogation)",
                )
            )
        return out

    @hookimpl
    def otel_audit_classify_risk(self, record: Mapping[str, Any]) -> str | None:
        if self.personal(record) and block(record, "gdpr_context").get("special_category"):
            return "HIGH"
        return None
