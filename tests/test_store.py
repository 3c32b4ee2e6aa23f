"""The local append-only store: real files, real locks, read back by the real verifier."""

from __future__ import annotations

import gzip
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from otel_audit._inputs import read_into
from otel_audit.errors import AuditError
from otel_audit.keys import SigningKey
from otel_audit.sealing import SealedRecord
from otel_audit.store import LocalStore, StoreLogExporter, iter_segments, open_store
from otel_audit.testing import seal_stream
from otel_audit.verify import Report, Verifier


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("store-test")


def verify(key: SigningKey, *paths: Path) -> Report:
    verifier = Verifier([key.verifier()])
    read_into(verifier, [str(p) for p in paths])
    return verifier.finish()


def write_in_batches(store: LocalStore, records: Sequence[SealedRecord], size: int = 37) -> None:
    for start in range(0, len(records), size):
        store.write(records[start : start + size])


def wire(records: Sequence[SealedRecord]) -> bytes:
    return b"".join(s.line + b"\n" for s in records)


def read_segment(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()


def stored_bytes(directory: Path) -> bytes:
    return b"".join(read_segment(p) for p in iter_segments(directory))


def state(directory: Path) -> dict[str, object]:
    data = orjson.loads((directory / ".state.json").read_bytes())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def internal_messages() -> Iterator[list[str]]:
    """Messages on the (non-propagating) internal logger."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("otel_audit.internal")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def test_round_trip_is_intact_and_byte_exact(key: SigningKey, tmp_path: Path) -> None:
    sealer, records = seal_stream(key, 500, checkpoint_every=64)
    store = LocalStore(tmp_path / "store")
    assert store.previous_checkpoint() is None
    write_in_batches(store, records)
    store.close()

    segments = iter_segments(tmp_path / "store")
    assert [p.suffix for p in segments] == [".gz"]  # close compresses the active segment
    assert stored_bytes(tmp_path / "store") == wire(records)
    report = verify(key, tmp_path / "store")
    assert report.intact(strict=True), report.findings
    assert report.records == len(records)
    assert [s.closed for s in report.streams] == [True]
    assert state(tmp_path / "store") == {
        "version": 1,
        "origin": sealer.origin,
        "last_checkpoint": sealer.last_checkpoint,
        "segment": segments[0].name.removesuffix(".gz"),
    }


def test_writes_go_on_while_a_closed_segment_is_being_compressed(
    key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compressing = threading.Event()
    release = threading.Event()
    original = LocalStore._compress_segment

    def held(self: LocalStore, name: str) -> None:
        compressing.set()
        release.wait()  # held until every write below has returned
        original(self, name)

    monkeypatch.setattr(LocalStore, "_compress_segment", held)
    _, records = seal_stream(key, 600, checkpoint_every=100)
    store = LocalStore(tmp_path, max_segment_bytes=40_000)

    def write_all() -> None:
        write_in_batches(store, records, size=50)
        store.flush()

    writer = threading.Thread(target=write_all)
    try:
        writer.start()
        writer.join(30)
        assert compressing.is_set()  # segments were rotated and handed to the compressor
        assert not writer.is_alive(), "a write waited for the compression"
    finally:
        release.set()
        writer.join(30)
    store.close()
    assert all(p.name.endswith(".jsonl.gz") for p in iter_segments(tmp_path))
    assert stored_bytes(tmp_path) == wire(records)


def test_size_rotation_makes_compressed_segments_in_order(key: SigningKey, tmp_path: Path) -> None:
    _, records = seal_stream(key, 600, checkpoint_every=100)
    limit = 40_000
    store = LocalStore(tmp_path, max_segment_bytes=limit)
    write_in_batches(store, records, size=50)
    active = store.active_segment
    assert active is not None
    assert active.suffix == ".jsonl"
    # closed segments are compressed on the store's own thread, not in write()
    deadline = time.monotonic() + 30
    while any(p.suffix == ".jsonl" for p in iter_segments(tmp_path) if p != active):
        assert time.monotonic() < deadline, "closed segments not compressed within 30 s"
        time.sleep(0.01)
    closed = [p for p in iter_segments(tmp_path) if p != active]
    assert len(closed) >= 5
    assert all(p.name.endswith(".jsonl.gz") for p in closed)
    store.close()

    segments = iter_segments(tmp_path)
    assert len(segments) == len(closed) + 1
    assert all(p.name.endswith(".jsonl.gz") for p in segments)
    assert sorted(p.name for p in segments) == [p.name for p in segments]
    sizes = [len(read_segment(p)) for p in segments]
    assert max(sizes) <= limit
    assert stored_bytes(tmp_path) == wire(records)  # every line once, in write order
    report = verify(key, tmp_path)
    assert report.intact(strict=True), report.findings
    assert report.records == len(records)
    assert not list(tmp_path.glob("*.jsonl"))


def test_a_record_larger_than_the_limit_gets_a_segment_of_its_own(
    key: SigningKey, tmp_path: Path
) -> None:
    _, records = seal_stream(key, 5)
    with LocalStore(tmp_path, max_segment_bytes=10, compress=False) as store:
        store.write(records)
    segments = iter_segments(tmp_path)
    assert [read_segment(p) for p in segments] == [s.line + b"\n" for s in records]
    assert verify(key, tmp_path).intact(strict=True)


def test_age_rotation(key: SigningKey, tmp_path: Path) -> None:
    _, records = seal_stream(key, 20)
    with LocalStore(tmp_path, max_segment_age_s=0.05) as store:
        store.write(records[:10])
        time.sleep(0.1)
        store.write(records[10:])
        assert len(iter_segments(tmp_path)) == 2
    assert stored_bytes(tmp_path) == wire(records)


def test_uncompressed_store_verifies(key: SigningKey, tmp_path: Path) -> None:
    _, records = seal_stream(key, 300)
    with LocalStore(tmp_path, max_segment_bytes=30_000, compress=False) as store:
        write_in_batches(store, records)
    segments = iter_segments(tmp_path)
    assert len(segments) > 1
    assert all(p.suffix == ".jsonl" for p in segments)
    assert verify(key, tmp_path).intact(strict=True)


def test_restart_links_the_next_stream_to_the_previous_one(key: SigningKey, tmp_path: Path) -> None:
    first, a = seal_stream(key, 250, checkpoint_every=64)
    with LocalStore(tmp_path) as store:
        write_in_batches(store, a)

    second_store = LocalStore(tmp_path)
    assert second_store.previous_checkpoint() == first.last_checkpoint
    second, b = seal_stream(key, 120, previous_checkpoint=second_store.previous_checkpoint())
    write_in_batches(second_store, b)
    second_store.close()

    assert b[0].record["integrity"]["previous_checkpoint"] == first.last_checkpoint
    report = verify(key, tmp_path)
    assert report.intact(strict=True), report.findings
    assert sorted(s.origin for s in report.streams) == sorted([first.origin, second.origin])
    assert len(iter_segments(tmp_path)) == 2  # the new process never appended to the old file

    # the link is checked: without the first stream the verifier misses it
    old = next(p for p in iter_segments(tmp_path) if first.origin.encode() in read_segment(p))
    old.unlink()
    assert "missing_stream" in verify(key, tmp_path).kinds()


def test_state_names_a_checkpoint_only_after_it_is_fsynced(key: SigningKey, tmp_path: Path) -> None:
    sealer, records = seal_stream(key, 100, checkpoint_every=30, close=False)
    store = LocalStore(tmp_path, fsync_interval_ms=60_000)
    store.write(records)  # holds checkpoints, but the interval has not passed: no fsync
    assert not (tmp_path / ".state.json").exists()
    store.flush()
    assert state(tmp_path)["last_checkpoint"] == sealer.last_checkpoint
    assert state(tmp_path)["origin"] == sealer.origin
    store.close()
    assert LocalStore(tmp_path).previous_checkpoint() == sealer.last_checkpoint


def test_the_background_flusher_fsyncs_an_idle_segment(key: SigningKey, tmp_path: Path) -> None:
    sealer, records = seal_stream(key, 10, checkpoint_every=5, close=False)
    assert records[0].action == "STREAM_START"
    with LocalStore(tmp_path, fsync_interval_ms=200) as store:
        store.write(records[:1])
        store.flush()
        assert not (tmp_path / ".state.json").exists()  # no checkpoint written yet
        # right after an fsync: this write leaves its checkpoints to the flusher, and
        # nothing calls the store again until the state shows they are on disk
        store.write(records[1:])
        deadline = time.monotonic() + 10
        while not (tmp_path / ".state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state(tmp_path)["last_checkpoint"] == sealer.last_checkpoint


def test_a_second_store_on_the_same_directory_is_refused(key: SigningKey, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    try:
        with pytest.raises(AuditError, match=rf"in use by another process \(pid {os.getpid()}\)"):
            LocalStore(tmp_path)
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\n"
                "from otel_audit.errors import AuditError\n"
                "from otel_audit.store import LocalStore\n"
                "try:\n"
                "    LocalStore(sys.argv[1])\n"
                "except AuditError as exc:\n"
                "    print(exc)\n"
                "    sys.exit(3)\n",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert other.returncode == 3, other.stderr
        assert "in use by another process" in other.stdout
        _, records = seal_stream(key, 3)
        store.write(records)  # the refused attempts did not disturb the holder
    finally:
        store.close()
    LocalStore(tmp_path).close()  # released on close


def test_segments_are_created_exclusively_and_only_grow(key: SigningKey, tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        _, records = seal_stream(key, 60)
        store = LocalStore(tmp_path / "new", compress=False)
        store.write(records[:20])
        active = store.active_segment
        assert active is not None
        before = active.stat()
        prefix = active.read_bytes()
        for start in (20, 40):
            store.write(records[start : start + 20])
            after = active.stat()
            assert (after.st_ino, after.st_dev) == (before.st_ino, before.st_dev)
            assert after.st_size > before.st_size
            assert active.read_bytes().startswith(prefix)
            before, prefix = after, active.read_bytes()
        store.close()
        assert stat.S_IMODE(active.stat().st_mode) == 0o640
        assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o750

        # a restart starts a new segment and leaves the old one alone
        snapshot = (active.stat().st_ino, active.stat().st_size, active.read_bytes())
        with LocalStore(tmp_path / "new", compress=False) as again:
            again.write(records[:1])
            newer = again.active_segment
        assert newer is not None
        assert newer != active
        assert (active.stat().st_ino, active.stat().st_size, active.read_bytes()) == snapshot
        assert iter_segments(tmp_path / "new") == [active, newer]
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"[1, 2]", b'{"version": 99, "last_checkpoint": "x"}', b'{"version":1}'],
)
def test_a_corrupt_state_file_means_no_previous_checkpoint(
    content: bytes, tmp_path: Path, internal_messages: list[str]
) -> None:
    (tmp_path / ".state.json").write_bytes(content)
    with LocalStore(tmp_path) as store:
        assert store.previous_checkpoint() is None
    assert any(".state.json is corrupt" in m for m in internal_messages)


def test_an_interrupted_compression_is_finished_at_start(key: SigningKey, tmp_path: Path) -> None:
    _, records = seal_stream(key, 50)
    with LocalStore(tmp_path, compress=False) as store:
        store.write(records)
    (plain,) = iter_segments(tmp_path)
    # a crash after the .gz was renamed into place but before the .jsonl was deleted
    Path(f"{plain}.gz").write_bytes(gzip.compress(plain.read_bytes()))
    stale_temp = tmp_path / f".{plain.name}.gz.tmp"
    stale_temp.write_bytes(b"half a gzip")
    assert "duplicate" in verify(key, tmp_path).kinds()

    LocalStore(tmp_path).close()
    assert not plain.exists()
    assert not stale_temp.exists()
    assert verify(key, tmp_path).intact(strict=True)


def test_differing_leftovers_are_both_kept(
    key: SigningKey, tmp_path: Path, internal_messages: list[str]
) -> None:
    _, records = seal_stream(key, 50)
    with LocalStore(tmp_path, compress=False) as store:
        store.write(records)
    (plain,) = iter_segments(tmp_path)
    Path(f"{plain}.gz").write_bytes(gzip.compress(wire(records[:10])))
    LocalStore(tmp_path).close()
    assert plain.exists()
    assert any("differ; keeping both" in m for m in internal_messages)


def test_misuse_is_refused(key: SigningKey, tmp_path: Path) -> None:
    _, records = seal_stream(key, 2)
    store = LocalStore(tmp_path)
    forged = SealedRecord(records[1].record, records[1].line + b"\n{}", records[1].leaf)
    with pytest.raises(AuditError, match="newline"):
        store.write([records[0], forged])
    assert store.active_segment is None  # nothing of the batch was written
    store.write([])
    store.close()
    store.close()  # idempotent
    assert store.closed
    with pytest.raises(AuditError, match="closed"):
        store.write(records)
    with pytest.raises(AuditError, match="closed"):
        store.flush()
    with pytest.raises(ValueError, match="max_segment_bytes"):
        LocalStore(tmp_path, max_segment_bytes=0)


def test_iter_segments_ignores_other_files(key: SigningKey, tmp_path: Path) -> None:
    _, records = seal_stream(key, 3)
    with LocalStore(tmp_path, max_segment_bytes=1) as store:
        store.write(records)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "audit-1-x.jsonl").write_text("x")
    names = [p.name for p in iter_segments(tmp_path)]
    assert [int(n.split("-")[1]) for n in names] == list(range(1, len(records) + 1))


def test_otel_exporter_writes_sealed_bodies_only(key: SigningKey, tmp_path: Path) -> None:
    _, records = seal_stream(key, 40)
    store = LocalStore(tmp_path)
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(store)))
    logger = provider.get_logger("audit")
    for index, sealed in enumerate(records):
        logger.emit(body=sealed.line.decode(), event_name=f"audit.{sealed.category.lower()}")
        if index == 3:
            logger.emit(body="an ordinary log line")
            logger.emit(body={"integrity": "a map body is not the wire form"})
            logger.emit(body='{"integrity": {"origin": "x"}}')  # not a sealed record
    provider.shutdown()  # shuts the exporter down, which closes the store
    assert store.closed
    assert stored_bytes(tmp_path) == wire(records)
    assert verify(key, tmp_path).intact(strict=True)


def test_open_store_gives_each_process_a_slot_and_reuses_freed_ones(
    key: SigningKey, tmp_path: Path
) -> None:
    first = open_store(tmp_path)
    second = open_store(tmp_path)
    third = open_store(tmp_path)
    try:
        assert first.directory == tmp_path
        assert second.directory == tmp_path / "worker-01"
        assert third.directory == tmp_path / "worker-02"
        for store in (first, second, third):
            _, records = seal_stream(key, 5, previous_checkpoint=store.previous_checkpoint())
            store.write(records)
    finally:
        second.close()
    again = open_store(tmp_path)  # the freed slot, with its state: the next stream links
    try:
        assert again.directory == tmp_path / "worker-01"
        assert again.previous_checkpoint() is not None
        _, records = seal_stream(key, 5, previous_checkpoint=again.previous_checkpoint())
        again.write(records)
    finally:
        for store in (first, third, again):
            store.close()
    report = verify(key, tmp_path)
    assert report.intact(strict=True), [str(f) for f in report.findings]
    assert len(report.streams) == 4
