"""Requirement 10.2.1 coverage: the function and ``otel-audit pci coverage`` on a store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from pci_support import card_record

from otel_audit.keys import SigningKey
from otel_audit.records import build
from otel_audit.store import LocalStore
from otel_audit.testing import run_pipeline
from otel_audit_pci import EVENT_TYPES, coverage, event_types


def _event(category: str, action: str, kind: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "category": category,
        "action": action,
        "actor": "ops@shop.example",
        "resource": (kind, f"{kind}-1"),
        "result": "SUCCESS",
        "risk_level": "LOW",
        "context": {"source_ip": "192.0.2.8"},
    }
    fields.update(extra)
    return build(**fields)


ONE_OF_EACH = {
    "10.2.1.1": card_record(),
    "10.2.1.2": _event("administrative", "CONFIG_CHANGE", "setting"),
    "10.2.1.3": _event("data_access", "READ", "audit_log"),
    "10.2.1.4": _event("authentication", "LOGIN", "user_account", result="FAILURE"),
    "10.2.1.5": _event("administrative", "PASSWORD_RESET", "credential"),
    "10.2.1.7": _event("administrative", "DROP", "table"),
}


@pytest.mark.parametrize("item", sorted(ONE_OF_EACH))
def test_each_event_type_is_recognised(item: str) -> None:
    assert item in event_types(ONE_OF_EACH[item])


def test_an_ordinary_read_is_no_10_2_1_event() -> None:
    assert event_types(_event("data_access", "READ", "order")) == set()


def test_coverage_counts_and_shows_gaps() -> None:
    counts = coverage([ONE_OF_EACH["10.2.1.1"], ONE_OF_EACH["10.2.1.1"], {"not": "a record"}])
    assert counts["10.2.1.1"] == 2
    assert [k for k, n in counts.items() if n == 0] == [k for k in EVENT_TYPES if k != "10.2.1.1"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_audit", "pci", "coverage", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.integration
def test_the_command_reads_a_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "full")
    # the log's own STREAM_START/STREAM_END records are 10.2.1.6
    run_pipeline(list(ONE_OF_EACH.values()), signer=SigningKey.generate("cov"), sinks=[store])
    result = _cli("--json", str(tmp_path / "full"))
    assert result.returncode == 0, result.stdout + result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["covered"] is True
    assert all(doc["event_types"][k] >= 1 for k in EVENT_TYPES)

    partial = LocalStore(tmp_path / "partial")
    run_pipeline([ONE_OF_EACH["10.2.1.4"]], sinks=[partial])
    result = _cli(str(tmp_path / "partial"))
    assert result.returncode == 1
    assert "ok   10.2.1.4 invalid logical access attempts: 1 record(s)" in result.stdout
    assert "MISS 10.2.1.3 access to audit logs: 0 record(s)" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("NOT COVERED (10.2.1.1, 10.2.1.2")
