"""The examples run as real processes; ``otel-audit verify`` accepts what they wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from handler_support import app_records

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _verify(vkey: Path, store: Path) -> None:
    result = _run(["-m", "otel_audit", "verify", "--strict", "--key", str(vkey), str(store)], store)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("INTACT: ")


@pytest.mark.parametrize("via", ["argv", "env"])
def test_minimal_app(tmp_path: Path, via: str) -> None:
    store = tmp_path / "audit-log"
    if via == "argv":
        result = _run([str(EXAMPLES / "minimal_app.py"), str(store)], tmp_path)
    else:
        result = _run([str(EXAMPLES / "minimal_app.py")], tmp_path, OTEL_AUDIT_STORE=str(store))
    assert result.returncode == 0, result.stderr
    assert "generated the development signing key" in result.stderr
    _verify(store / "audit.key.vkey", store)
    actions = [r["action"] for r in app_records(store)]
    assert actions == ["LOGIN", "READ", "UPDATE", "EXPORT"]


def test_logging_dictconfig(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run([str(EXAMPLES / "logging_dictconfig.py"), str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "an ordinary warning: not audited" in result.stderr
    _verify(out / "signing.key.vkey", out / "audit-log")
    actions = [r["action"] for r in app_records(out / "audit-log")]
    assert actions == ["PERMISSION_CHANGE", "CONFIG_CHANGE", "BACKUP_ROTATE"]
