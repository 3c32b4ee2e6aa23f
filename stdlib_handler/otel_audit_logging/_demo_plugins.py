"""The compliance plugins in ``otel-audit demo``: a masked card number, a SOX
separation-of-duties violation, a GDPR data subject erased while the log still
verifies, and CEF lines beside the store (when those plugins are installed).

The demo reaches the plugins only through the plugin manager and the ``otel-audit``
commands they register: this distribution does not depend on any of them.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from otel_audit.plugins import load_plugins
from otel_audit_logging._context import audit_context

__all__ = ["handler_options", "log_scenes", "show"]

#: The customer whose data is erased at the end of the demo (never printed: only its
#: pseudonym is).
ERASED_SUBJECT = "jane.roe@example.org"
_CARD = "4111 1111 1111 1111"  # a well-known test PAN


def handler_options(out: Path) -> tuple[dict[str, Any], list[str]]:
    """``(keyword arguments for AuditHandler, names of the active plugins)``."""
    config = {"gdpr": {"vault": str(out / "gdpr-vault")}}
    names = load_plugins(config).names  # honours OTEL_AUDIT_DISABLE_PLUGINS
    options: dict[str, Any] = {"plugins": config}
    if "cef" in names:
        options["sinks"] = [{"name": "cef", "path": str(out / "audit.cef")}]
    return options, names


def log_scenes(log: logging.Logger, lifetime: int) -> None:
    """Records for the plugins: personal data in the first lifetime, card and ledger in
    the second."""
    if lifetime == 0:
        with audit_context(actor="agent-7@acme.example", source_ip="198.51.100.20"):
            for street in ("2 New Street", "3 Newer Street"):
                log.info(
                    "address changed",
                    extra={
                        "audit": {
                            "category": "data_access",
                            "action": "UPDATE",
                            "resource": {
                                "type": "customer",
                                "id": "c-777",
                                "classification": "PII",
                            },
                            "change_tracking": {
                                "before_state": {"street": "1 Old Road"},
                                "after_state": {"street": street},
                                "change_reason": "customer request",
                            },
                            "gdpr_context": {
                                "lawful_basis": "contract",
                                "processing_purpose": "keep the delivery address current",
                                "data_subject_id": ERASED_SUBJECT,
                            },
                        }
                    },
                )
        return
    with audit_context(actor="checkout-svc", source_ip="10.20.0.9", api_endpoint="/pay"):
        log.info(
            "payment taken",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "CREATE",
                    "resource": {"type": "order", "id": "pay-5521"},
                    "extensions": {"payment": {"card": _CARD, "amount_cents": 4_999}},
                }
            },
        )
    with audit_context(actor="erin@acme.example", source_ip="198.51.100.14"):
        log.info(
            "journal entry posted",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "POST",
                    "resource": {"type": "journal_entry", "id": "je-2026-1203"},
                    "change_tracking": {
                        "after_state": {"account": "4000-revenue", "amount_cents": 1_250_000},
                        "change_reason": "quarter-end accrual",
                        "approver": "erin@acme.example",  # her own approval: SOX says no
                    },
                }
            },
        )


def _run_cli(*args: str) -> tuple[int, str]:
    from otel_audit._cli import main  # noqa: PLC0415 - the commands plugins register

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(args))
    return code, buffer.getvalue()


def show(out: Path, records: list[dict[str, Any]], names: list[str], vkey_file: Path) -> None:
    """Print what the plugins did; erase the demo customer and report on it."""
    print(f"  plugins: {', '.join(sorted(names)) or 'none installed'}")
    if "pci" in names:
        payment = next(r for r in records if r["resource"]["id"] == "pay-5521")
        card = payment["extensions"]["payment"]["card"]
        print(f"  PCI:  card number masked before sealing: {card!r}")
    if "sox" in names:
        rules = [
            v["rule"]
            for r in records
            if r["action"] == "AUDIT_SCHEMA_VIOLATION"
            for v in r["extensions"]["violations"]
            if v["rule"].startswith("sox.")
        ]
        print(f"  SOX:  compliance violations sealed: {len(rules)} ({', '.join(rules)})")
    if "cef" in names:
        cef = out / "audit.cef"
        lines = cef.read_text().splitlines() if cef.exists() else []
        print(f"  CEF:  {len(lines)} lines written beside the store to {cef}")
    if "gdpr" in names:
        vault = str(out / "gdpr-vault")
        _, erased = _run_cli("gdpr", "erase", "--vault", vault, ERASED_SUBJECT)
        print(f"  GDPR: {erased.strip()} (right to erasure)")
        code, report = _run_cli(
            "gdpr", "report", "--vault", vault, "--key", str(vkey_file), str(out / "store")
        )
        for line in report.strip().splitlines():
            print(f"        {line}")
        if code != 0:
            print("        (the GDPR report found a problem)")
