"""``sealing="process"``: records sealed by a real sealing process, which is killed,
cannot start, falls behind, and outlives a killed application, and nothing is lost."""

from __future__ import annotations

import gzip
import logging
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from handler_support import app_records, assert_intact, verify
from test_handler_bad_input import BAD, GOOD

from otel_audit.errors import AuditValidationError
from otel_audit.records import build
from otel_audit.store import iter_segments
from otel_audit_logging import AuditHandler, audit_read
from otel_audit_logging._config import HandlerSettings, resolve_settings
from otel_audit_logging._frames import join_batch, split_batch
from otel_audit_logging._process import SPILL_DIR, SealingProcess
from otel_audit_logging._sealer import _records

MakeHandler = Callable[..., AuditHandler]
MakeLogger = Callable[[logging.Handler], logging.Logger]

SEED = 20261204
KILLS = 5


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def sealing_process(handler: AuditHandler) -> SealingProcess:
    pipeline = handler.pipeline
    assert isinstance(pipeline, SealingProcess)
    return pipeline


def acknowledged_beyond(sealer: SealingProcess, count: int) -> Callable[[], bool]:
    return lambda: sealer.stats.sealed > count


def replaced(sealer: SealingProcess, pid: int) -> Callable[[], bool]:
    return lambda: sealer.pid != pid


def whole_records(store: Path) -> list[dict[str, Any]]:
    """Every record of every segment, without a torn last line (a SIGKILL mid-write)."""
    out = []
    for segment in iter_segments(store):
        data = segment.read_bytes()
        if segment.name.endswith(".gz"):
            data = gzip.decompress(data)
        out += [orjson.loads(line) for line in data.split(b"\n")[:-1]]
    return out


def item(actor: str, item_id: str) -> dict[str, Any]:
    return build(
        category="data_access",
        action="READ",
        actor=actor,
        resource=("item", item_id),
        result="SUCCESS",
        risk_level="LOW",
        context={"application": "handler-test"},
    )


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["resource"]["id"] for r in records]


@pytest.fixture
def internal_log() -> Iterator[list[str]]:
    """What the handler reports on the core's internal logger."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    collect = Collect()
    logger = logging.getLogger("otel_audit.internal")
    logger.addHandler(collect)
    yield messages
    logger.removeHandler(collect)


def test_records_are_sealed_in_another_process_in_order(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler(sealing="process", checkpoint_every=100)
    log = make_logger(handler)
    for i in range(1000):
        audit_read(log, "item", f"item-{i}", actor="alice")
    sealer = sealing_process(handler)
    assert handler.flush() is True
    assert sealer.pid is not None
    assert sealer.pid != os.getpid()
    assert sealer.stats.as_dict() == {
        "sealed": 1000,
        "sink_errors": 0,
        "spilled": 0,
        "submitted": 1000,
        "violations": 0,
    }
    # flush() returned: every record is in the store's file already, before close
    assert ids(app_records(store)) == [f"item-{i}" for i in range(1000)]
    handler.close()
    assert sealer.pid is None
    report = assert_intact(store, vkey_file)
    assert [s.origin for s in report.streams] == [sealer.origin]
    assert report.streams[0].records == 1000 + 2 + 1000 // 100  # start, end, checkpoints


def test_the_setting_comes_from_keyword_or_environment(
    make_handler: MakeHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_handler().settings.sealing == "thread"
    monkeypatch.setenv("OTEL_AUDIT_SEALING", "process")
    assert make_handler().settings.sealing == "process"
    assert make_handler(sealing="thread").settings.sealing == "thread"
    monkeypatch.setenv("OTEL_AUDIT_SEALING", "fork")
    with pytest.raises(ValueError, match="OTEL_AUDIT_SEALING"):
        make_handler()


def test_settings_cross_to_the_sealing_process_unchanged(tmp_path: Path) -> None:
    settings = resolve_settings(
        store=tmp_path / "s",
        key_file=tmp_path / "k",
        checkpoint_every="7",
        strict="true",
        plugins='{"gdpr": {"vault": "/v"}}',
        disable_plugins="sox, pci",
        sinks="cef:path=/x/audit.cef",
        otlp_endpoint="127.0.0.1:4317",
        otlp_headers={"authorization": "Bearer t"},
        sealing="process",
        environ={},
    )
    again = HandlerSettings.from_json(orjson.loads(orjson.dumps(settings.to_json())))
    assert again == settings


def test_bad_annotations_become_violation_records_sealed_by_the_sealing_process(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler(sealing="process")
    log = make_logger(handler)
    for annotation in BAD.values():
        log.info("bad", extra={"audit": annotation})  # must not raise
        log.info("good", extra={"audit": GOOD})
    assert handler.flush() is True
    handler.close()
    records = app_records(store)
    assert [r["action"] for r in records] == ["AUDIT_SCHEMA_VIOLATION", "READ"] * len(BAD)
    assert all(r["extensions"]["violations"] for r in records[::2])
    assert_intact(store, vkey_file)


def test_strict_mode_raises_at_the_call_and_seals_the_rest(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler(sealing="process", strict=True)
    log = make_logger(handler)
    for annotation in BAD.values():
        with pytest.raises(AuditValidationError):
            log.info("bad", extra={"audit": annotation})
    log.info("good", extra={"audit": GOOD})
    handler.close()
    assert [r["action"] for r in app_records(store)] == ["READ"]
    assert_intact(store, vkey_file)


def test_a_killed_sealing_process_is_replaced_and_nothing_is_lost(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler(sealing="process", checkpoint_every=50, fsync_interval_ms=5)
    log = make_logger(handler)
    rng = random.Random(SEED)
    kill_at = sorted(rng.sample(range(200, 6000), KILLS))
    origins: list[str] = []
    sealed = 0
    audit_read(log, "item", "item-0", actor="alice")
    sealer = sealing_process(handler)  # the same object all along
    for i in range(1, 6000):
        audit_read(log, "item", f"item-{i}", actor="alice")
        if kill_at and i == kill_at[0]:
            kill_at.pop(0)
            # a process that has started and acknowledged records, then killed mid-stream
            wait_for(lambda: sealer.origin and sealer.origin not in origins, "a started sealer")
            wait_for(acknowledged_beyond(sealer, sealed), "acknowledgements")
            sealed = sealer.stats.sealed
            origins.append(sealer.origin)
            pid = sealer.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            wait_for(replaced(sealer, pid), "the replacement")
    assert handler.flush() is True
    handler.close()
    origins.append(sealer.origin)
    assert sealer.restarts == KILLS

    # every record is stored; one the dead process had stored but not yet acknowledged
    # is stored again by its successor, in another stream
    stored = [r for r in whole_records(store) if r["category"] != "integrity"]
    assert set(ids(stored)) == {f"item-{i}" for i in range(6000)}
    by_stream: dict[str, list[str]] = {}
    for record in stored:
        by_stream.setdefault(record["integrity"]["origin"], []).append(record["resource"]["id"])
    assert list(by_stream) == origins
    for stream_ids in by_stream.values():
        numbers = [int(x.split("-")[1]) for x in stream_ids]
        assert numbers == sorted(set(numbers))  # in order, no duplicate within a stream

    # the killed streams are open with an unsealed tail; the last one is closed; each
    # new stream links to the one before
    report = verify(store, vkey_file)
    assert report.intact(strict=False), [str(f) for f in report.findings]
    assert {f.kind for f in report.findings} <= {"unsealed_tail", "torn_line"}
    closed = {s.origin: s.closed for s in report.streams}
    assert closed == {o: o == origins[-1] for o in origins}
    starts = [r for r in whole_records(store) if r["action"] == "STREAM_START"]
    for before, start in zip(origins, starts[1:], strict=False):
        assert start["integrity"]["previous_checkpoint"].split("\n")[0] == before


_APP = """
import logging, sys
from otel_audit_logging import AuditHandler, audit_read

handler = AuditHandler(store=sys.argv[1], key_file=sys.argv[2], sealing="process",
                       checkpoint_every=50, disable_plugins="*")
log = logging.getLogger("app")
log.addHandler(handler)
log.setLevel(logging.INFO)
i = 0
for i in range(300):
    audit_read(log, "item", f"item-{i}", actor="app")
assert handler.flush()
print(handler.pipeline.pid, flush=True)
while True:
    i += 1
    audit_read(log, "item", f"item-{i}", actor="app")
"""


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped


@pytest.mark.parametrize("round_", range(3))
def test_a_killed_application_leaves_a_closed_stream(
    store: Path, key_file: Path, vkey_file: Path, round_: int
) -> None:
    app = subprocess.Popen(
        [sys.executable, "-c", _APP, str(store), str(key_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        ready, _, _ = select.select([app.stdout], [], [], 60)
        assert ready, "the application did not start logging within 60 s"
        sealer_pid = int(app.stdout.readline())
        time.sleep(random.Random(SEED + round_).uniform(0.05, 0.5))
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=10)
    finally:
        if app.poll() is None:
            app.kill()
        _, err = app.communicate(timeout=10)
    # the sealing process reads end of file: it seals what it got, writes STREAM_END, exits
    wait_for(lambda: _gone(sealer_pid), "the sealing process to exit")
    assert "LOST" not in err, err
    assert_intact(store, vkey_file)
    stored = ids(app_records(store))
    assert stored[:300] == [f"item-{i}" for i in range(300)]  # acknowledged before the kill
    assert stored == [f"item-{i}" for i in range(len(stored))]


def test_sigterm_to_the_process_group_closes_one_stream_in_order(
    store: Path, key_file: Path, vkey_file: Path
) -> None:
    # a service manager stops the whole group; the application exits on SIGTERM and
    # its handlers close at exit, while the sealing process ignores the signal
    code = _APP.replace(
        "import logging, sys",
        "import logging, signal, sys\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))",
    )
    app = subprocess.Popen(
        [sys.executable, "-c", code, str(store), str(key_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert app.stdout is not None
        ready, _, _ = select.select([app.stdout], [], [], 60)
        assert ready, "the application did not start logging within 60 s"
        sealer_pid = int(app.stdout.readline())
        time.sleep(0.2)  # while it logs on
        os.killpg(app.pid, signal.SIGTERM)
        _, err = app.communicate(timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate(timeout=10)
    assert app.returncode == 0, err
    assert "ended with exit code" not in err, err  # the sealing process was not replaced
    wait_for(lambda: _gone(sealer_pid), "the sealing process to exit")
    report = assert_intact(store, vkey_file)
    assert len(report.streams) == 1
    stored = ids(app_records(store))
    assert len(stored) >= 300  # what was acknowledged before the signal, and more
    assert stored == [f"item-{i}" for i in range(len(stored))]


def test_records_wait_while_the_sealing_process_cannot_start(
    make_handler: MakeHandler,
    make_logger: MakeLogger,
    tmp_path: Path,
    vkey_file: Path,
    internal_log: list[str],
) -> None:
    store = tmp_path / "store"
    store.write_text("a file where the store's directory should be")
    handler = make_handler(store=store, sealing="process")
    log = make_logger(handler)
    for i in range(50):
        audit_read(log, "item", f"item-{i}", actor="alice")
    assert sealing_process(handler).flush(timeout=1.0) is False  # nothing is durable yet
    wait_for(lambda: any("could not start" in m for m in internal_log), "a report")
    report = next(m for m in internal_log if "could not start" in m)
    assert "50 records kept, none dropped" in report
    assert str(store) in report  # the reason, from the sealing process
    store.unlink()  # the operator fixes it; the back-off retries
    assert handler.flush() is True
    handler.close()
    assert ids(app_records(store)) == [f"item-{i}" for i in range(50)]
    assert_intact(store, vkey_file)


def _settings(store: Path, key_file: Path) -> HandlerSettings:
    return resolve_settings(
        store=store, key_file=key_file, disable_plugins="*", sealing="process", environ={}
    )


def test_an_overflow_spills_to_disk_in_order_and_the_files_go_once_sealed(
    store: Path, key_file: Path, vkey_file: Path, internal_log: list[str]
) -> None:
    sealer = SealingProcess(_settings(store, key_file), None, max_pending=32, max_block_ms=0)
    for i in range(3000):
        sealer.submit(item("alice", f"item-{i}"))
    assert sealer.stats.spilled > 0
    assert any("spilling to" in m for m in internal_log)
    assert sealer.flush(timeout=60) is True
    assert sealer.close(timeout=60) is True
    assert ids(app_records(store)) == [f"item-{i}" for i in range(3000)]
    assert list((store / SPILL_DIR).iterdir()) == []
    assert_intact(store, vkey_file)


def test_spill_files_a_dead_application_left_are_sealed_by_the_next(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    spill = store / SPILL_DIR
    spill.mkdir(parents=True)
    lines = [orjson.dumps(item("bob", f"left-{i}")) for i in range(3)]
    # the last line was torn by the kill: its write never returned, so it was never accepted
    (spill / "spill-00000000000000000001-1-000001.jsonl").write_bytes(
        b"\n".join(lines) + b'\n{"category": "data_acc'
    )
    handler = make_handler(sealing="process")
    log = make_logger(handler)
    audit_read(log, "item", "new-0", actor="alice")
    assert handler.flush() is True
    handler.close()
    assert Counter(ids(app_records(store))) == {"left-0": 1, "left-1": 1, "left-2": 1, "new-0": 1}
    assert list(spill.iterdir()) == []
    assert_intact(store, vkey_file)


def test_plugins_registered_at_run_time_are_reported_as_not_carried(
    make_handler: MakeHandler, make_logger: MakeLogger, internal_log: list[str]
) -> None:
    class Local:
        pass

    handler = make_handler(sealing="process")
    assert handler.plugins is not None
    handler.plugins.manager.register(Local(), name="local-only")
    audit_read(make_logger(handler), "item", "x", actor="alice")
    assert any("local-only" in m and "do not run there" in m for m in internal_log)
    assert handler.flush() is True


def test_no_segment_is_written_by_the_application_process(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path
) -> None:
    handler = make_handler(sealing="process")
    audit_read(make_logger(handler), "item", "x", actor="alice")
    sealer = sealing_process(handler)
    assert handler.flush() is True
    (segment,) = iter_segments(store)
    assert segment.name.endswith(f"-{sealer.pid}.jsonl")  # the store names its writer


def test_a_batch_is_one_json_array_that_splits_back_into_its_lines() -> None:
    records = [item("alice", f"a,\nb\\n-{i}") for i in range(3)]  # separators inside values
    lines = [orjson.dumps(r) for r in records]
    payload = b"[" + join_batch(lines) + b"]"
    assert orjson.loads(payload) == records
    assert split_batch(join_batch(lines)) == lines
    assert _records(payload) == records


def test_a_damaged_batch_is_sealed_part_by_part() -> None:
    good = [orjson.dumps(item("alice", f"i-{i}")) for i in range(3)]
    payload = b"[" + join_batch([good[0], b'{"category": "secu', good[2], b"[1, 2]"]) + b"]"
    parts = _records(payload)
    assert [p["action"] for p in parts] == [
        "READ",
        "AUDIT_SCHEMA_VIOLATION",
        "READ",
        "AUDIT_SCHEMA_VIOLATION",
    ]
    assert [p["resource"]["id"] for p in parts[::2]] == ["i-0", "i-2"]
