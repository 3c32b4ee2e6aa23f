"""The ``otel-audit`` console script, run as a real process."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_audit.keys import SigningKey
from otel_audit.sealing import SealedRecord
from otel_audit.testing import seal_stream

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "otel_audit"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[SealedRecord]]:
    """A key file (+ .vkey) and a JSON Lines log of two linked streams."""
    root = tmp_path_factory.mktemp("cli")
    key_file = root / "audit.key"
    result = run("keygen", "--name", "cli-test", "--out", str(key_file))
    assert result.returncode == 0, result.stderr
    key = SigningKey.from_file(key_file)
    first, a = seal_stream(key, 1500, checkpoint_every=256)
    _, b = seal_stream(key, 700, checkpoint_every=256, previous_checkpoint=first.last_checkpoint)
    log = root / "audit.jsonl"
    log.write_bytes(b"".join(s.line + b"\n" for s in a + b))
    return key_file, log, a + b


def test_keygen_writes_a_private_key_0600_and_prints_the_vkey(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    result = run("keygen", "--name", "ops-2026", "--out", str(out))
    assert result.returncode == 0
    vkey = result.stdout.strip()
    assert vkey.startswith("ops-2026+")
    assert "\n" not in vkey
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert (tmp_path / "k.pem.vkey").read_text().strip() == vkey
    assert b"PRIVATE KEY" in out.read_bytes()
    again = run("keygen", "--name", "ops-2026", "--out", str(out))
    assert again.returncode == 2
    assert "Traceback" not in again.stderr


def test_keygen_creates_the_key_directory_private(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "audit.key"  # as the README shows it, keys/ not there yet
    result = run("keygen", "--name", "ops-2026", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(out.parent).st_mode) == 0o700
    assert (tmp_path / "keys" / "audit.key.vkey").read_text().strip() == result.stdout.strip()


def test_verify_intact_log_exits_0(sealed: tuple[Path, Path, list[SealedRecord]]) -> None:
    key_file, log, records = sealed
    result = run("verify", "--key", f"{key_file}.vkey", str(log))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INTACT" in result.stdout
    assert f"{len(records):,} records in 2 stream(s)" in result.stdout


def test_verify_json_names_kind_origin_and_seq(
    sealed: tuple[Path, Path, list[SealedRecord]], tmp_path: Path
) -> None:
    key_file, log, records = sealed
    victim = records[300]
    lines = log.read_bytes().splitlines(keepends=True)
    lines = [line for line in lines if line.rstrip(b"\n") != victim.line]
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"".join(lines))
    vkey = (Path(f"{key_file}.vkey")).read_text().strip()
    result = run("verify", "--json", "--key", vkey, str(damaged))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["intact"] is False
    assert {
        "kind": "missing",
        "origin": victim.origin,
        "first_seq": victim.seq,
        "last_seq": victim.seq,
    }.items() <= report["findings"][0].items()


def test_unknown_key_fails(sealed: tuple[Path, Path, list[SealedRecord]]) -> None:
    _, log, _ = sealed
    other = SigningKey.generate("cli-test")
    result = run("verify", "--key", other.vkey, str(log))
    assert result.returncode == 1
    assert "unknown_key" in result.stdout


def test_usage_and_unreadable_input_exit_2_with_one_line(tmp_path: Path) -> None:
    missing = run("verify", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1
    assert "Traceback" not in missing.stderr
    bad_key = run("verify", "--key", "not-a-vkey", str(tmp_path))
    assert bad_key.returncode == 2
    assert "Traceback" not in bad_key.stderr
    skey = SigningKey.generate("oops").skey()
    leaked = run("verify", "--key", skey, str(tmp_path))
    assert leaked.returncode == 2
    assert skey.split("+")[-1][:8] not in leaked.stderr + leaked.stdout
    assert run("verify").returncode == 2
    assert run("frobnicate").returncode == 2


def test_open_stream_is_a_warning_unless_strict(
    sealed: tuple[Path, Path, list[SealedRecord]], tmp_path: Path
) -> None:
    key_file, _, records = sealed
    first_stream = [r for r in records if r.origin == records[0].origin]
    open_log = tmp_path / "open.jsonl"
    open_log.write_bytes(b"".join(s.line + b"\n" for s in first_stream[:-1]))
    lenient = run("verify", "--key", f"{key_file}.vkey", str(open_log))
    assert lenient.returncode == 0
    assert "WARN unsealed_tail" in lenient.stdout
    strict = run("verify", "--strict", "--key", f"{key_file}.vkey", str(open_log))
    assert strict.returncode == 1


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {
        "kvlistValue": {"values": [{"key": k, "value": _any_value(v)} for k, v in value.items()]}
    }


def test_otlp_json_and_gzip_directories_verify(
    sealed: tuple[Path, Path, list[SealedRecord]], tmp_path: Path
) -> None:
    """Collector file-exporter lines (string and map bodies, any batching) plus gzip."""
    key_file, _, records = sealed
    backend = tmp_path / "backend"
    backend.mkdir()
    batches = []
    for start in range(0, 1200, 100):
        log_records = []
        for i, sealed_record in enumerate(records[start : start + 100]):
            body = (
                _any_value(sealed_record.record)
                if i % 7 == 0
                else {"stringValue": sealed_record.line.decode()}
            )
            log_records.append({"timeUnixNano": "1", "body": body})
        batches.append(
            json.dumps(
                {
                    "resourceLogs": [
                        {
                            "resource": {"attributes": []},
                            "scopeLogs": [{"scope": {}, "logRecords": log_records}],
                        }
                    ]
                }
            )
        )
    (backend / "otlp.json").write_text("\n".join(reversed(batches)) + "\n")
    with gzip.open(backend / "rest.jsonl.gz", "wb") as handle:
        handle.write(b"".join(s.line + b"\n" for s in records[1200:]))
    result = run("verify", "--key", f"{key_file}.vkey", str(backend))
    assert result.returncode == 0, result.stdout
    assert f"{len(records):,} records" in result.stdout


def test_prove_and_verify_proof(
    sealed: tuple[Path, Path, list[SealedRecord]], tmp_path: Path
) -> None:
    key_file, log, records = sealed
    target = records[123]
    proved = run("prove", "--origin", target.origin, "--seq", str(target.seq), str(log))
    assert proved.returncode == 0, proved.stderr
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(proved.stdout)
    ok = run("verify-proof", "--key", f"{key_file}.vkey", str(proof_file))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK:")

    doc = json.loads(proved.stdout)
    doc["record"] = doc["record"].replace("SUCCESS", "FAILURE")
    proof_file.write_text(json.dumps(doc))
    bad = run("verify-proof", "--key", f"{key_file}.vkey", str(proof_file))
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAIL:")

    doc = json.loads(proved.stdout)
    doc["proof"][0] = doc["proof"][1]
    proof_file.write_text(json.dumps(doc))
    assert run("verify-proof", "--key", f"{key_file}.vkey", str(proof_file)).returncode == 1
