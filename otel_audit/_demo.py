"""``otel-audit demo``: seal a simulated audit trail, verify it, show a tampering caught."""

from __future__ import annotations

import shutil
from pathlib import Path

from otel_audit._inputs import read_into
from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.testing import seal_stream
from otel_audit.verify import Verifier


def run_demo(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    key_file = out / "demo.key"
    for stale in (key_file, out / "demo.key.vkey"):
        stale.unlink(missing_ok=True)
    key = SigningKey.generate("otel-audit-demo")
    key.write(key_file)
    log = out / "audit.jsonl"
    first, records = seal_stream(key, 2_000, service_name="billing")
    _, more = seal_stream(
        key, 1_500, service_name="billing", previous_checkpoint=first.last_checkpoint
    )
    log.write_bytes(b"".join(s.line + b"\n" for s in records + more))

    vkey = VerifierKey.parse(key.vkey)
    print(f"sealed {len(records) + len(more):,} records in 2 streams into {log}")
    intact = _verify(log, vkey)

    tampered = out / "tampered" / "audit.jsonl"
    tampered.parent.mkdir(exist_ok=True)
    shutil.copyfile(log, tampered)
    data = tampered.read_bytes().replace(b"customer_1500", b"customer_9999", 1)
    tampered.write_bytes(data)
    print(f"\nchanged one field in a copy: {tampered}")
    caught = not _verify(tampered, vkey)

    print(f"\nre-check it yourself:\n  otel-audit verify --key {key_file}.vkey {log}")
    return 0 if intact and caught else 1


def _verify(path: Path, vkey: VerifierKey) -> bool:
    verifier = Verifier([vkey])
    read_into(verifier, [str(path)])
    report = verifier.finish()
    for finding in report.findings:
        print(f"  {finding}")
    print(f"  verdict: {'INTACT' if report.intact() else 'INTEGRITY FAILURE'}")
    return report.intact()
