"""``otel-audit demo``: a simulated customer portal audited through :class:`AuditHandler`.

Two process lifetimes of one application write to a local store (the embedded default,
no collector); the second stream links to the first. Then the verifier checks the store
and the demo prints what it found and the command to re-check it.
"""

from __future__ import annotations

import collections
import logging
import shutil
from pathlib import Path
from typing import Any

import orjson

from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.store import iter_segments, read_lines
from otel_audit.verify import verify_paths
from otel_audit_logging._context import audit_context
from otel_audit_logging._demo_plugins import handler_options, log_scenes, show
from otel_audit_logging._handler import AuditHandler
from otel_audit_logging._helpers import (
    audit_batch,
    audit_config_change,
    audit_delete,
    audit_lockout,
    audit_login,
    audit_permission_change,
    audit_read,
    audit_update,
)

_BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"


def register(subparsers: Any) -> None:
    """Entry point of the ``otel_audit.commands`` group: adds ``otel-audit demo``."""
    parser = subparsers.add_parser(
        "demo", help="audit a simulated application into a local store and verify it"
    )
    parser.add_argument("--out", default="demo-output", help="output directory")
    parser.set_defaults(run=lambda args: run_demo(Path(args.out)))


def _first_run(log: logging.Logger) -> None:
    """Morning: logins, a brute-force lockout, reads of personal and health data."""
    for user, ip in (
        ("alice@acme.example", "198.51.100.10"),
        ("bob@acme.example", "198.51.100.11"),
    ):
        with audit_context(source_ip=ip, user_agent=_BROWSER, api_endpoint="/login"):
            audit_login(log, user, success=True, method="sso", mfa=True)
    with audit_context(
        source_ip="203.0.113.66", user_agent="python-requests/2.32", api_endpoint="/login"
    ):
        for _ in range(5):
            audit_login(log, "carol@acme.example", success=False, reason="bad password")
        audit_lockout(log, "carol@acme.example", failed_attempts=5, actor="auth-service")

    with audit_context(
        actor="bob@acme.example",
        session_id="sess-7f3a",
        source_ip="198.51.100.11",
        api_endpoint="/api/v1/customers",
    ):
        log.info(
            "customer search",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "READ",
                    "resource": {
                        "type": "customer",
                        "id": "segment:eu-north",
                        "table": "customers",
                        "classification": "PII",
                    },
                    "result": {"status": "SUCCESS", "affected_records": 150},
                    "risk_level": "MEDIUM",
                    "data_access": {
                        "access_method": "API",
                        "record_count": 150,
                        "data_classification": "PII",
                    },
                    "gdpr_context": {
                        "lawful_basis": "contract",
                        "data_subject_id": "segment:eu-north",
                        "processing_purpose": "customer_service",
                        "cross_border_transfer": False,
                    },
                    "metadata": {"compliance_tags": ["GDPR"]},
                }
            },
        )
    with audit_context(
        actor="dr.erin@clinic.example",
        role="physician",
        source_ip="10.20.0.7",
        api_endpoint="/api/v1/patients/p-5521",
    ):
        log.info(
            "chart opened",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "READ",
                    "resource": {"type": "patient_record", "id": "p-5521", "classification": "PHI"},
                    "result": {"status": "SUCCESS", "affected_records": 1},
                    "risk_level": "HIGH",
                    "hipaa_context": {
                        "phi_involved": True,
                        "minimum_necessary": True,
                        "covered_entity": "acme_clinic",
                        "basis": "treatment",
                    },
                    "metadata": {"compliance_tags": ["HIPAA"], "retention_years": 6},
                }
            },
        )
    with audit_context(actor="bob@acme.example", source_ip="198.51.100.11"):
        audit_read(log, "report", "q3-revenue", records=1_200, classification="FINANCIAL")
    agents = ("alice@acme.example", "bob@acme.example", "svc-billing")
    for i in range(60):  # the steady background of a working day
        with audit_context(
            actor=agents[i % 3],
            source_ip=f"198.51.100.{10 + i % 3}",
            api_endpoint=f"/api/v1/orders/o-{1000 + i}",
        ):
            audit_read(log, "order", f"o-{1000 + i}", records=1, table="orders")


def _second_run(log: logging.Logger) -> None:
    """After a restart: administrative changes, security events, a nightly batch."""
    with audit_context(
        actor="alice@acme.example", role="admin", source_ip="198.51.100.10", api_endpoint="/admin"
    ):
        audit_update(
            log,
            "customer",
            "c-12345",
            table="customers",
            before={"tier": "silver", "credit_limit": 5000},
            after={"tier": "gold", "credit_limit": 10000},
            reason="promotion_campaign",
            approver="dave@acme.example",
            ticket="CHG-2211",
            risk_level="HIGH",
        )
        audit_permission_change(
            log,
            "bob@acme.example",
            before=["analyst"],
            after=["analyst", "exporter"],
            reason="quarterly export",
            approver="dave@acme.example",
        )
        audit_config_change(
            log,
            "session_timeout_minutes",
            before=30,
            after=15,
            reason="security baseline",
            approver="dave@acme.example",
        )
        audit_delete(
            log,
            "customer",
            "c-99881",
            reason="GDPR Art. 17 erasure request",
            approver="dpo@acme.example",
            risk_level="CRITICAL",
        )
    with audit_context(
        actor="bob@acme.example", source_ip="198.51.100.11", api_endpoint="/admin/users"
    ):
        log.warning(
            "forbidden",
            extra={
                "audit": {
                    "category": "security",
                    "action": "PERMISSION_DENIED",
                    "resource": {"type": "endpoint", "id": "/admin/users"},
                    "result": {"status": "FAILURE", "response_code": 403, "reason": "role analyst"},
                    "risk_level": "HIGH",
                }
            },
        )
    with audit_context(actor="svc-nightly-import", source_ip="10.20.0.2"):
        audit_batch(
            log,
            "batch_2026_12_03_001",
            total=10_000,
            succeeded=9_987,
            failed=13,
            duration_ms=45_678,
            errors=["validation_failed: 13"],
        )
        # An annotation that breaks the schema is sealed as a violation, not lost.
        log.info("bad annotation", extra={"audit": {"category": "data_access", "action": "read"}})


def run_demo(out: Path) -> int:
    store = out / "store"
    if store.exists():
        shutil.rmtree(store)  # each demo starts from an empty store
    out.mkdir(parents=True, exist_ok=True)
    key_file = out / "audit.key"
    vkey_file = out / "audit.key.vkey"
    if not key_file.exists():
        vkey_file.unlink(missing_ok=True)
        SigningKey.generate("acme-audit-demo").write(key_file)

    shutil.rmtree(out / "gdpr-vault", ignore_errors=True)  # the plugins' output starts afresh
    (out / "audit.cef").unlink(missing_ok=True)
    options, plugin_names = handler_options(out)

    log = logging.getLogger("otel_audit.demo")
    log.propagate = False
    log.setLevel(logging.INFO)
    for lifetime, run in enumerate((_first_run, _second_run)):  # two process lifetimes
        handler = AuditHandler(
            store=str(store),
            key_file=str(key_file),
            service_name="customer-portal",
            checkpoint_every=16,
            **options,
        )
        log.addHandler(handler)
        run(log)
        log_scenes(log, lifetime)
        log.removeHandler(handler)
        handler.close()

    vkey = VerifierKey.load(str(vkey_file))
    report = verify_paths([str(store)], [vkey])
    records = [orjson.loads(line) for line in read_lines(store)]
    categories = collections.Counter(r["category"] for r in records)
    risks = collections.Counter(
        r["metadata"]["risk_level"] for r in records if r["category"] != "integrity"
    )
    violations = sum(  # compliance plugins' rules are named <plugin>.<rule>
        1
        for r in records
        if r["action"] == "AUDIT_SCHEMA_VIOLATION"
        and not any("." in v["rule"] for v in r["extensions"]["violations"])
    )
    print(f"otel-audit demo: a customer portal audited through AuditHandler into {store}/")
    print(
        f"  {len(records)} sealed records in {len(iter_segments(store))} segment file(s), "
        f"{len(report.streams)} stream(s) (the second links to the first)"
    )
    print("  by category: " + ", ".join(f"{k} {v}" for k, v in sorted(categories.items())))
    print(
        "  by risk:     "
        + ", ".join(f"{k} {risks[k]}" for k in ("CRITICAL", "HIGH", "MEDIUM", "LOW") if risks[k])
    )
    print(f"  schema violations sealed instead of lost: {violations}")
    show(out, records, plugin_names, vkey_file)
    report = verify_paths([str(store)], [vkey])  # again: after the GDPR erasure
    for finding in report.findings:
        print(f"  {finding}")
    print(f"  {report.summary(strict=True)}")
    print("\nre-check it yourself:")
    print(f"  .venv/bin/otel-audit verify --strict --key {vkey_file} {store}")
    return 0 if report.intact(strict=True) else 1
