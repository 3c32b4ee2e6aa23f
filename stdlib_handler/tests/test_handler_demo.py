"""`otel-audit demo` (added by this distribution's entry point) runs end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_audits_verifies_and_prints_the_recheck_command(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run("demo", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INTACT" in result.stdout
    assert "schema violations sealed instead of lost: 1" in result.stdout
    vkey = out / "audit.key.vkey"
    assert vkey.read_text().startswith("acme-audit-demo+")
    command = result.stdout.strip().splitlines()[-1].split()
    assert command[1:] == ["verify", "--strict", "--key", str(vkey), str(out / "store")]
    again = run(*command[1:])
    assert again.returncode == 0, again.stdout
    # a second demo run starts from an empty store and reuses the key
    assert run("demo", "--out", str(out)).returncode == 0
    assert vkey.read_text().startswith("acme-audit-demo+")
