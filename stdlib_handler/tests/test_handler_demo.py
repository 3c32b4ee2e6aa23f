"""`otel-audit demo` (added by this distribution's entry point) runs end to end."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_audit.store import read_lines

pytestmark = pytest.mark.integration


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # the demo shows the installed plugins (the test environment disables them)
        env={k: v for k, v in os.environ.items() if k != "OTEL_AUDIT_DISABLE_PLUGINS"},
    )


def test_demo_audits_verifies_and_prints_the_recheck_command(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run("demo", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INTACT" in result.stdout
    assert "schema violations sealed instead of lost: 1" in result.stdout
    assert "PCI:  card number masked before sealing: '4111 11** **** 1111'" in result.stdout
    stored = b"\n".join(read_lines(out / "store"))
    assert b"4111 1111 1111 1111" not in stored
    assert b"4111 11** **** 1111" in stored
    assert "SOX:  compliance violations sealed: 1 (sox.separation_of_duties)" in result.stdout
    gdpr = [line.strip() for line in result.stdout.splitlines() if "ds_" in line]
    assert gdpr[0].startswith("GDPR: erased ds_")
    assert gdpr[1].startswith("ERASED ds_")
    assert "2 record(s), 0 readable and 4 erased value(s)" in gdpr[1]
    assert "jane.roe@example.org" not in result.stdout
    if importlib.util.find_spec("otel_audit_cef") is not None:
        cef = (out / "audit.cef").read_text().splitlines()
        assert f"CEF:  {len(cef)} lines written beside the store" in result.stdout
        assert all(line.startswith("CEF:0|") for line in cef)
    vkey = out / "audit.key.vkey"
    assert vkey.read_text().startswith("acme-audit-demo+")
    command = result.stdout.strip().splitlines()[-1].split()
    assert command[1:] == ["verify", "--strict", "--key", str(vkey), str(out / "store")]
    again = run(*command[1:])
    assert again.returncode == 0, again.stdout
    # a second demo run starts from an empty store and reuses the key
    assert run("demo", "--out", str(out)).returncode == 0
    assert vkey.read_text().startswith("acme-audit-demo+")
