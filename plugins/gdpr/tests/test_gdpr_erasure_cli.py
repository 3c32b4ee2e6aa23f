"""Erasure end to end: seal personal data, erase a subject, the log still verifies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from gdpr_support import gdpr, personal

from otel_audit.keys import SigningKey
from otel_audit.store import LocalStore, iter_segments, read_lines
from otel_audit.testing import run_pipeline
from otel_audit_gdpr import KeyVault

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_erase_then_verify_and_report(tmp_path: Path) -> None:
    vault, store = tmp_path / "vault", tmp_path / "store"
    key = SigningKey.generate("gdpr-erasure")
    key.write(tmp_path / "audit.key")
    vkey = str(tmp_path / "audit.key.vkey")
    run_pipeline(
        [personal("jane@example.com"), personal("john@example.com"), personal("jane@example.com")],
        plugins=gdpr(vault),
        signer=key,
        sinks=[LocalStore(store)],
    )
    before = b"".join(read_lines(store))
    jane, john = (
        KeyVault(vault).pseudonym("jane@example.com"),
        KeyVault(vault).pseudonym("john@example.com"),
    )

    erased = cli("gdpr", "erase", "--vault", str(vault), "jane@example.com")
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.strip() == f"erased {jane}: 1 key(s) destroyed"
    assert "jane@example.com" not in erased.stdout

    assert b"".join(read_lines(store)) == before  # the log itself is untouched
    verify = cli("verify", "--strict", "--key", vkey, str(store))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("INTACT")

    report = cli("gdpr", "report", "--vault", str(vault), "--key", vkey, "--json", str(store))
    assert report.returncode == 0, report.stdout + report.stderr
    doc = orjson.loads(report.stdout)
    assert doc["intact"] is True
    states = {s["subject"]: s for s in doc["subjects"]}
    assert states[jane]["state"] == "erased"
    assert (states[jane]["records"], states[jane]["erased"]) == (2, 6)
    assert states[jane]["erased_at"]
    assert states[john]["state"] == "readable"
    assert states[john]["readable"] == 3

    text = cli(
        "gdpr",
        "report",
        "--vault",
        str(vault),
        "--key",
        vkey,
        "--subject",
        "jane@example.com",
        str(store),
    )
    assert text.returncode == 0
    lines = text.stdout.strip().splitlines()
    assert lines[0].startswith(f"ERASED {jane}: 2 record(s), 0 readable and 6 erased value(s) at ")
    assert lines[-1].startswith("INTACT")
    assert "jane@example.com" not in text.stdout


def test_report_fails_on_a_tampered_log(tmp_path: Path) -> None:
    vault, store = tmp_path / "vault", tmp_path / "store"
    key = SigningKey.generate("gdpr-tamper")
    key.write(tmp_path / "audit.key")
    run_pipeline([personal("x")], plugins=gdpr(vault), signer=key, sinks=[LocalStore(store)])
    [segment] = iter_segments(store)
    text = b"\n".join(read_lines(store)).decode() + "\n"
    segment.unlink()
    (store / "tampered.jsonl").write_text(text.replace('"UPDATE"', '"DELETE"'))
    report = cli(
        "gdpr", "report", "--vault", str(vault), "--key", f"{tmp_path}/audit.key.vkey", str(store)
    )
    assert report.returncode == 1
    assert "modified" in report.stdout
