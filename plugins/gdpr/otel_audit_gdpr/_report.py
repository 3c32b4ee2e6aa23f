"""Which data subjects' sealed values are still readable, and which are erased."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_audit_gdpr._envelope import open_value
from otel_audit_gdpr._vault import KeyVault

__all__ = ["SubjectReport", "subject_reports"]


@dataclass
class SubjectReport:
    """One data subject (by pseudonym) over a set of records."""

    pseudonym: str
    records: int = 0
    readable: int = 0  # sealed values that open and match their commitment
    erased: int = 0  # sealed values whose key is gone
    broken: int = 0  # a key exists but the value does not open or match (tampering)
    erased_at: str | None = None
    kids: set[str] = field(default_factory=set)

    @property
    def state(self) -> str:
        if self.broken:
            return "broken"
        if self.erased and self.readable:
            return "partly erased"  # erased, then new data under a new key
        if self.erased:
            return "erased"
        return "readable"

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.pseudonym,
            "state": self.state,
            "records": self.records,
            "readable": self.readable,
            "erased": self.erased,
            "broken": self.broken,
            "erased_at": self.erased_at,
        }


def subject_reports(records: Iterable[Mapping[str, Any]], vault: KeyVault) -> list[SubjectReport]:
    """Try to open every sealed value of every record; one report per subject."""
    reports: dict[str, SubjectReport] = {}
    for record in records:
        gdpr = record.get("extensions", {}).get("gdpr") if isinstance(record, Mapping) else None
        if not isinstance(gdpr, Mapping) or not isinstance(gdpr.get("subject"), str):
            continue
        pseudonym = gdpr["subject"]
        report = reports.setdefault(pseudonym, SubjectReport(pseudonym))
        report.records += 1
        event_id = str(record.get("event_id"))
        for path, envelope in (gdpr.get("sealed") or {}).items():
            kid = str(envelope.get("kid")) if isinstance(envelope, Mapping) else ""
            report.kids.add(kid)
            key = vault.key(pseudonym, kid)
            if key is None:
                report.erased += 1
                continue
            try:
                open_value(
                    dict(envelope), key=key, event_id=event_id, pseudonym=pseudonym, path=path
                )
            except ValueError:
                report.broken += 1
            else:
                report.readable += 1
    for report in reports.values():
        if vault.erased(report.pseudonym):
            tombstone = vault.directory / "erased" / report.pseudonym
            report.erased_at = tombstone.read_text().strip() or None
    return sorted(reports.values(), key=lambda r: r.pseudonym)
