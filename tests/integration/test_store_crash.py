"""SIGKILL a process sealing into a LocalStore, again and again, then verify the directory.

Each round is a real child process that seals records as fast as it can into the same
store directory and is killed with SIGKILL at a random moment (seeded, so a failure can
be replayed). A final round shuts down cleanly. ``otel-audit verify`` then runs as a
real process over the directory: the only findings allowed are warnings (an open stream
per crashed round, at most one torn last line per segment file), and every stream links
to the one before it.
"""

from __future__ import annotations

import gzip
import itertools
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from otel_audit.keys import SigningKey
from otel_audit.store import iter_segments

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 20260103
CRASH_ROUNDS = 6
CLEAN_RECORDS = 500
CLI = [sys.executable, "-m", "otel_audit"]

CHILD = r"""
import sys
from otel_audit.keys import SigningKey
from otel_audit.sealing import Sealer
from otel_audit.store import LocalStore
from otel_audit.testing import sample_record

directory, key_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
store = LocalStore(directory, fsync_interval_ms=2, max_segment_bytes=256 * 1024)
out = []
sealer = Sealer(
    SigningKey.from_file(key_file),
    out.append,
    service_name="crash-test",
    checkpoint_every=50,
    checkpoint_interval_ms=20,
    previous_checkpoint=store.previous_checkpoint(),
)
i = 0
while sealer.last_checkpoint is None:  # one durable checkpoint before saying "ready"
    sealer.seal(sample_record(i))
    i += 1
store.write(out)
out.clear()
store.flush()
print(sealer.origin, flush=True)
while mode == "crash" or i < int(sys.argv[4]):
    sealer.seal(sample_record(i))
    i += 1
    if len(out) >= 32:
        store.write(out)
        out.clear()
sealer.close()
store.write(out)
store.close()
print("closed", flush=True)
"""


def start(directory: Path, key_file: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start a child and wait (bounded) for the origin it prints once it is sealing."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(key_file), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if not ready:
        proc.kill()
        pytest.fail("child did not start sealing within 60 s")
    origin = proc.stdout.readline().strip()
    if not origin:
        proc.wait(timeout=10)
        pytest.fail(f"child exited early: {proc.stderr.read() if proc.stderr else ''}")
    return proc, origin


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def read_store(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Complete lines of every segment file, parsed (a torn last line is skipped)."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for path in iter_segments(directory):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        lines = data.split(b"\n")
        assert lines[-1] == b"" or path.suffix == ".jsonl", f"{path.name}: torn but closed"
        by_file[path.name] = [orjson.loads(line) for line in lines[:-1]]
    return by_file


def test_sigkill_loses_only_an_unsealed_tail(tmp_path: Path) -> None:
    key_file = tmp_path / "crash.key"
    SigningKey.generate("crash-test").write(key_file)
    store = tmp_path / "store"
    rng = random.Random(SEED)
    origins: list[str] = []

    for _ in range(CRASH_ROUNDS):
        proc, origin = start(store, key_file, "crash")
        try:
            origins.append(origin)
            time.sleep(rng.uniform(0.2, 1.5))
            assert proc.poll() is None, proc.communicate(timeout=10)[1]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
        finally:
            stop(proc)

    proc, origin = start(store, key_file, "clean", str(CLEAN_RECORDS))
    try:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "closed"
        origins.append(origin)
    finally:
        stop(proc)

    result = subprocess.run(
        [*CLI, "verify", "--json", "--key", f"{key_file}.vkey", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[:4000] + result.stderr
    report = orjson.loads(result.stdout)
    findings = report["findings"]
    assert [f for f in findings if f["severity"] != "warning"] == []
    assert {f["kind"] for f in findings} <= {"unsealed_tail", "torn_line"}

    # one open stream per crashed round, the clean round closed
    open_streams = sorted(f["origin"] for f in findings if f["kind"] == "unsealed_tail")
    assert open_streams == sorted(origins[:-1])
    streams = {s["origin"]: s for s in report["streams"]}
    assert sorted(streams) == sorted(origins)
    assert all(
        streams[o]["records"] > 1 and streams[o]["verified_checkpoints"] > 0 for o in origins
    )
    assert streams[origins[-1]]["closed"]
    assert streams[origins[-1]]["records"] >= CLEAN_RECORDS

    # a torn line is the last line of its own file, at most once per file
    by_file = read_store(store)
    torn = [f["where"].rsplit(":", 1) for f in findings if f["kind"] == "torn_line"]
    assert len({name for name, _ in torn}) == len(torn)
    for name, line in torn:
        assert int(line) == len(by_file[Path(name).name]) + 1

    # no file holds records of two processes: a new process never appends to an old file
    # (a segment created by a rotation just before the kill may hold nothing at all)
    for name, records in by_file.items():
        assert len({r["integrity"]["origin"] for r in records}) <= 1, name

    # every stream's STREAM_START carries its predecessor's last durable checkpoint
    starts = {
        r["integrity"]["origin"]: r
        for records in by_file.values()
        for r in records
        if r["integrity"]["seq"] == 0
    }
    assert "previous_checkpoint" not in starts[origins[0]]["integrity"]
    for before, after in itertools.pairwise(origins):
        note = starts[after]["integrity"]["previous_checkpoint"]
        linked_origin, size = note.split("\n")[:2]
        assert linked_origin == before
        assert 0 < int(size) <= streams[before]["last_seq"]
