"""Shared helpers of the otel-audit-logging tests: read a store back, verify it."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from otel_audit._inputs import read_into
from otel_audit.keys import VerifierKey
from otel_audit.store import iter_segments
from otel_audit.verify import Report, Verifier

INTEGRITY_ACTIONS = frozenset({"STREAM_START", "CHECKPOINT", "STREAM_END", "KEY_ROTATION"})


def read_records(store: Path) -> list[dict[str, Any]]:
    """Every sealed record in the store, in write order."""
    out: list[dict[str, Any]] = []
    for segment in iter_segments(store):
        data = segment.read_bytes()
        if segment.name.endswith(".gz"):
            data = gzip.decompress(data)
        out.extend(orjson.loads(line) for line in data.splitlines() if line)
    return out


def app_records(store: Path) -> list[dict[str, Any]]:
    """The records that are not the log's own integrity records."""
    return [r for r in read_records(store) if r["category"] != "integrity"]


def verify(store: Path, vkey_file: Path) -> Report:
    """Verify everything under ``store`` with the key in ``vkey_file``."""
    verifier = Verifier([VerifierKey.load(str(vkey_file))])
    read_into(verifier, [str(store)])
    return verifier.finish()


def assert_intact(store: Path, vkey_file: Path) -> Report:
    report = verify(store, vkey_file)
    assert report.intact(strict=True), [str(f) for f in report.findings]
    assert report.streams, "no stream in the store"
    assert all(s.closed for s in report.streams), "a stream has no STREAM_END"
    return report
