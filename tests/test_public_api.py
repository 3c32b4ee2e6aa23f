"""The public surface is small and deliberate: changing it must change this test."""

from __future__ import annotations

import otel_audit


def test_all_is_locked() -> None:
    assert sorted(otel_audit.__all__) == sorted(
        [
            "SCHEMA_VERSION",
            "AuditError",
            "AuditSetup",
            "AuditValidationError",
            "CanonicalizationError",
            "Finding",
            "InputError",
            "KeyFormatError",
            "NoteError",
            "PluginError",
            "Plugins",
            "ProofError",
            "Report",
            "SealError",
            "SealedRecord",
            "Sealer",
            "Signer",
            "SigningKey",
            "StoreError",
            "VerifierKey",
            "Verifier",
            "Violation",
            "__version__",
            "build",
            "configure",
            "hookimpl",
            "load_plugins",
            "new_event_id",
            "schema",
            "utc_timestamp",
            "validate",
            "verify_paths",
        ]
    )
    for name in otel_audit.__all__:
        assert hasattr(otel_audit, name), name


def test_pure_parts_import_no_opentelemetry() -> None:
    """The verifier runs anywhere: its modules do not pull in the OTel SDK."""
    import subprocess
    import sys

    code = (
        "import sys, otel_audit.verify, otel_audit.sealing, otel_audit.proofs;"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
