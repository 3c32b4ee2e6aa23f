"""``sealing="process"``: validation, sealing and the store in a process beside the app.

The in-process pipeline (``sealing="thread"``) seals on a worker thread, which shares
the application's GIL: every record's validation and sealing is CPU the application's
threads wait for. Here the caller's thread only serializes the composed record (orjson)
and appends it to a buffer; a feeder thread writes batches of them to a pipe, and a
sealing process (:mod:`otel_audit_logging._sealer`) validates, seals and stores them on
another core. DESIGN §2 asks for sealing off the caller's thread, in order: one sealing
process per handler keeps the order of the records it is given.

Nothing is lost when either side fails:

* every batch stays in memory here until the sealing process acknowledges it as sealed
  and durable (its pipeline flushed, the store fsynced);
* a sealing process that dies is replaced at once (with a back-off while it cannot
  start), and the new one is sent every unacknowledged batch again: at least once, so
  a record the dead process had already stored appears in both streams, with the same
  ``event_id``; the new stream links to the old one (DESIGN §4);
* when ``max_pending`` records are in memory, ``submit`` waits at most ``max_block_ms``
  and then appends to spill files under ``<store>/.spill-sealer/`` (order is kept:
  memory, then spill, then memory again); each file is deleted once the sealing process
  has acknowledged all of it. A spill file is locked (``flock``) by the process that
  writes it, so the next process that opens the handler sends the files a crashed one
  left behind.

Records still in memory when the application itself is killed are lost, as with the
in-process queue; ``close`` and ``flush`` wait for the acknowledgements.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from otel_audit.errors import Violation
from otel_audit.pipeline import PipelineStats, check_strictly, violation_record
from otel_audit.plugins import Plugins
from otel_audit.schema import validate
from otel_audit_logging._config import HandlerSettings
from otel_audit_logging._frames import (
    ACK,
    BATCH,
    BATCH_CLOSE,
    BATCH_OPEN,
    CONFIG,
    END,
    FAILED,
    FLUSH,
    HELLO,
    join_batch,
    read_frame,
    split_batch,
    write_frame,
)
from otel_audit_logging._open import report

__all__ = ["SPILL_DIR", "SealingProcess"]

#: Spill files of the application's side, inside the configured store directory.
SPILL_DIR: Final = ".spill-sealer"
_SPILL_FILE_LINES: Final = 4096
_PIPE_BYTES: Final = 1 << 20
_IDLE_S: Final = 0.25
_BACKOFF_S: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_REAP_S: Final = 5.0


@dataclass(slots=True)
class _Batch:
    seq: int
    inside: bytes  # the records' lines joined (the frame adds the array's brackets)
    count: int  # records in it
    own: int  # of them, records submitted to this object (not a crashed process's spill)
    done: Path | None = None  # a spill file wholly sent once this batch is acknowledged


class _Spill:
    """Append-only spill files of serialized records, each locked by its writer."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.active = False  # while True, every submitted record goes to the spill
        self.ready: collections.deque[tuple[Path, bool]] = collections.deque()  # (file, own)
        self._locks: dict[Path, int] = {}
        self._file: Any = None
        self._path: Path | None = None
        self._lines = 0
        self._counter = 0

    def append(self, line: bytes) -> None:
        if self._file is None or self._lines >= _SPILL_FILE_LINES:
            self.seal_current()
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._counter += 1
            name = f"spill-{time.time_ns():020d}-{os.getpid()}-{self._counter:06d}.jsonl"
            self._path = self.directory / name
            self._file = open(self._path, "ab")  # noqa: SIM115 - kept open while written
            self._lock(self._path)
            self._lines = 0
        self._file.write(line + b"\n")
        self._file.flush()  # in the kernel: survives this process being killed
        self._lines += 1

    def seal_current(self) -> None:
        """Stop writing the current file and queue it for sending."""
        if self._file is not None and self._path is not None:
            self._file.close()
            self.ready.append((self._path, True))
            self._file = None
            self._path = None

    def claim_orphans(self) -> None:
        """Queue the spill files of processes that are gone (their lock is free)."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("spill-*.jsonl")):
            if path in self._locks:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # its owner just finished with it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process's file
                continue
            self._locks[path] = fd
            self.ready.append((path, False))

    def discard(self, path: Path) -> None:
        """Delete a file whose records are all acknowledged, then release its lock."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fd = self._locks.pop(path, None)
        if fd is not None:
            os.close(fd)

    def forget(self) -> None:
        """After fork, in the child: close the parent's files without touching them."""
        for fd in self._locks.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._locks.clear()
        self._file = None

    def _lock(self, path: Path) -> None:
        # a descriptor of its own: the lock outlives the writing handle until discard
        lock_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        self._locks[path] = lock_fd


def read_spill(path: Path) -> list[bytes]:
    """The whole lines of a spill file (a torn last line was never accepted)."""
    data = path.read_bytes()
    end = data.rfind(b"\n")
    return [line for line in data[: end + 1].split(b"\n") if line]


class _Child:
    """One sealing process and its two pipes."""

    def __init__(self, settings: HandlerSettings, owner: SealingProcess) -> None:
        to_child, from_parent = os.pipe()  # the sealing process reads what we write
        from_child, to_parent = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "otel_audit_logging._sealer", str(to_child), str(to_parent)],
                pass_fds=(to_child, to_parent),
                stdin=subprocess.DEVNULL,
                env=_child_environment(),
            )
        except BaseException:
            for fd in (from_parent, from_child):
                os.close(fd)
            raise
        finally:
            os.close(to_child)
            os.close(to_parent)
        self.fd = from_parent
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        self.alive = True
        self.started = False  # said HELLO
        self.end: bool | None = None  # the END frame's verdict
        self.failure = ""
        self.stats: dict[str, int] = {}
        self._owner = owner
        self._stream = os.fdopen(from_child, "rb")
        self.reader = threading.Thread(
            target=self._read, name="otel-audit-sealer-acks", daemon=True
        )
        self.reader.start()
        self.send(CONFIG, 0, orjson.dumps(settings.to_json()))

    def send(self, kind: bytes, seq: int = 0, *parts: bytes) -> None:
        if not self.alive:
            return
        try:
            write_frame(self.fd, kind, seq, *parts)
        except OSError:
            self.alive = False  # the reader sees the end of file and wakes the feeder

    def send_batch(self, batch: _Batch) -> None:
        self.send(BATCH, batch.seq, BATCH_OPEN, batch.inside, BATCH_CLOSE)

    def close_input(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.alive = False

    def reap(self) -> int:
        self.close_input()
        try:
            return self.process.wait(_REAP_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def _read(self) -> None:
        owner = self._owner
        with self._stream:
            while (frame := read_frame(self._stream)) is not None:
                kind, seq, payload = frame
                if kind == ACK:
                    self.stats = orjson.loads(payload)
                    owner._acknowledged(seq, self.stats)
                elif kind == HELLO:
                    hello = orjson.loads(payload)
                    self.started = True
                    owner._started(hello["origin"])
                elif kind == FAILED:
                    self.failure = payload.decode("utf-8", "replace")
                elif kind == END:
                    self.end = payload == b"1"
        self.alive = False
        owner._wake_feeder()

    def forget(self) -> None:
        """After fork, in the child: this process is the parent's."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            os.close(self._stream.fileno())
        self.alive = False


def _child_environment() -> dict[str, str]:
    # the sealing process imports what this process imports (a test's or a tool's
    # sys.path may be more than the interpreter's default)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


class SealingProcess:
    """The handler's pipeline when ``sealing="process"``: ``submit``/``flush``/``close``."""

    def __init__(
        self,
        settings: HandlerSettings,
        plugins: Plugins | None,
        *,
        max_pending: int = 65_536,
        batch_size: int = 256,
        linger_ms: float = 5.0,
        max_block_ms: float = 20.0,
    ) -> None:
        self.settings = settings
        self.strict = settings.strict
        self.plugins = plugins
        self.stats = PipelineStats()
        #: the current sealing process's origin ("" until it has started)
        self.origin = ""
        #: sealing processes started after the first (each a new origin)
        self.restarts = 0
        self._max = max_pending
        self._batch_size = batch_size
        self._linger_s = linger_ms / 1000
        self._block_s = max_block_ms / 1000
        # reentrant: a signal handler that raises on the application's thread (SIGTERM ->
        # SystemExit) may leave this lock held by that thread, or make it release once
        # too often; an RLock lets the same thread's close() take it again, and refuses
        # a release by a thread that does not hold it (another thread's plain Lock
        # would be freed under it, and all three threads then deadlocked at exit)
        lock = threading.RLock()
        self._work = threading.Condition(lock)  # the feeder waits here
        self._room = threading.Condition(lock)  # submit (memory full), flush and close wait here
        self._buf: list[bytes] = []
        self._in_memory = 0  # records in _buf and in unacknowledged batches
        self._unacked: collections.deque[_Batch] = collections.deque()
        self._seq = 0
        self._submitted = 0  # records accepted by submit
        self._durable = 0  # of them, acknowledged by a sealing process
        self._flush_wanted = False
        self._closing = False
        self._closed: bool | None = None  # close's verdict, once the feeder is done
        self._base_stats: dict[str, int] = {}
        self._failures = 0
        self._retry_at = 0.0
        self._spill = _Spill(settings.store / SPILL_DIR)
        self._child: _Child | None = None
        self._feeder = threading.Thread(
            target=self._run, name="otel-audit-sealer-feed", daemon=True
        )
        self._feeder.start()

    @property
    def pid(self) -> int | None:
        """The current sealing process's pid (None while none runs)."""
        child = self._child
        return child.process.pid if child is not None and child.alive else None

    # -- the application's side ------------------------------------------------------------

    def submit(self, record: dict[str, Any]) -> None:
        """Hand a composed record to the sealing process (owned from now on).

        Strict mode runs the plugins and validates here, and raises
        :class:`AuditValidationError`; otherwise this never raises for bad input, and
        waits at most ``max_block_ms`` for room before spilling to disk.
        """
        if self.strict:
            check_strictly(record, self.plugins)
        line = self._serialize(record)
        with self._work:
            self._submitted += 1
            self.stats.submitted += 1
            if not self._spill.active:
                if self._in_memory < self._max or self._room.wait_for(
                    self._has_room, self._block_s
                ):
                    buf = self._buf
                    buf.append(line)
                    self._in_memory += 1
                    if len(buf) == 1 or len(buf) == self._batch_size:
                        self._work.notify()
                    return
                self._spill.active = True
                self._report(
                    f"{self._in_memory} audit records wait for the sealing process: "
                    f"spilling to {self._spill.directory} (nothing is dropped)"
                )
            try:
                if self.plugins is not None and not self.strict:
                    # a card number must not sit in a spill file: redact first (the redact
                    # hooks are idempotent and run again in the sealing process)
                    self._spill_redacted(record)
                else:
                    self._spill.append(line)
            except BaseException:
                self._submitted -= 1  # not accepted: flush must not wait for it
                raise
            self.stats.spilled += 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every record submitted so far is sealed and durable (acknowledged
        by the sealing process). False if that did not happen within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._work:
            target = self._submitted
            if self._durable >= target:
                return True
            self._flush_wanted = True
            self._work.notify()
            while self._durable < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed is not None:
                    return self._durable >= target
                self._room.wait(left)
            return True

    def close(self, timeout: float = 30.0) -> bool:
        """Send everything, end the sealing process's input (it seals what it has, writes
        STREAM_END and exits) and wait for it. False if that did not happen cleanly
        within ``timeout``; records not acknowledged by then go to the spill files, for
        the next process that opens this store."""
        deadline = time.monotonic() + timeout
        with self._work:
            self._closing = True
            self._work.notify()
            while self._closed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._room.wait(left)
            if self._closed is not None:
                return self._closed
            self._closed = False
            self._work.notify()
            self._rescue()
        return False

    def forget_after_fork(self) -> None:
        """In a forked child: close the parent's pipes and spill files (never its process)."""
        if self._child is not None:
            self._child.forget()
        self._spill.forget()

    # -- the feeder thread -----------------------------------------------------------------

    def _run(self) -> None:
        with self._work:
            self._spill.claim_orphans()
        while True:
            try:
                if not self._step():
                    return
            except Exception as exc:  # noqa: BLE001 - the feeder must outlive any bug
                self._report(f"internal error feeding the sealing process: {exc!r}")
                time.sleep(0.05)

    def _step(self) -> bool:
        """One round; False once the sealing process has closed (or close gave up)."""
        with self._work:
            self._wait_for_work()
            if self._closed is not None:
                return False
            lines, self._buf = self._buf, []
            flush, self._flush_wanted = self._flush_wanted, False
            closing = self._closing
            if closing and not lines and self._nothing_left():
                self._closed = True  # no process left, and nothing one would need to seal
                self._room.notify_all()
                return False
        child = self._running_child()
        if lines:
            self._send(_Batch(0, join_batch(lines), len(lines), len(lines)), child)
        self._drain_spill(child, everything=closing)
        if child is None:
            return True
        if flush:
            child.send(FLUSH, self._seq)
        if closing:
            return self._finish(child)
        return True

    def _wait_for_work(self) -> None:
        # lock held
        while self._closed is None:
            child = self._child
            if child is None or not child.alive:
                if not (self._buf or self._unacked or self._closing or self._flush_wanted):
                    self._work.wait(_IDLE_S)  # nothing to send: start when there is
                    continue
                wait_s = self._retry_at - time.monotonic()
                if wait_s <= 0:
                    return
                self._work.wait(wait_s)  # backing off after a failed start
                continue
            if self._closing or self._flush_wanted or len(self._buf) >= self._batch_size:
                return
            if self._buf:
                self._work.wait(self._linger_s)  # let a batch fill up, or send what came
                return
            if (self._spill.ready or self._spill.active) and self._in_memory < self._max // 2:
                return
            self._work.wait(_IDLE_S)

    def _running_child(self) -> _Child | None:
        """The live sealing process, started (again) if needed; None while backing off."""
        child = self._child
        if child is not None and child.alive:
            return child
        if child is not None:
            self._child = None
            self._lost(child, child.reap())
        if time.monotonic() < self._retry_at:
            return None
        try:
            child = _Child(self.settings, self)
        except OSError as exc:
            self._failed_start(f"cannot start the sealing process: {exc}")
            return None
        if self.origin:
            self.restarts += 1
        with self._work:
            self._child = child
            resend = list(self._unacked)
        for batch in resend:  # in order; a new process acknowledges them anew
            child.send_batch(batch)
        return child

    def _lost(self, child: _Child, code: int) -> None:
        with self._work:
            waiting = sum(batch.count for batch in self._unacked)
            for name, value in child.stats.items():
                self._base_stats[name] = self._base_stats.get(name, 0) + value
        if not child.started:
            self._failed_start(
                f"the sealing process could not start (exit code {code}): "
                f"{child.failure or 'no reason given; see its output above'}"
            )
        elif child.end is None:
            self._failures = 0
            self._report(
                f"the sealing process {child.process.pid} (origin {self.origin}) ended "
                f"with exit code {code}; starting another and sending it the {waiting} "
                f"records not yet acknowledged (any it had stored appear in both streams)"
            )

    def _failed_start(self, message: str) -> None:
        delay = _BACKOFF_S[min(self._failures, len(_BACKOFF_S) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + delay
        with self._work:
            waiting = self._in_memory
        self._report(f"{message}; retrying in {delay:g} s ({waiting} records kept, none dropped)")

    def _send(self, batch: _Batch, child: _Child | None) -> None:
        with self._work:
            self._seq += 1
            batch.seq = self._seq
            self._unacked.append(batch)
        if child is not None:
            child.send_batch(batch)

    def _drain_spill(self, child: _Child | None, *, everything: bool) -> None:
        """Send spill files in order while memory has room (at close: all of them)."""
        spill = self._spill
        while True:
            with self._work:
                if not spill.ready:
                    if not spill.active:
                        return
                    spill.seal_current()  # under the lock: no record is appended meanwhile
                    if not spill.ready:
                        spill.active = False
                        return
                if self._in_memory >= self._max // 2 and not everything:
                    return
                path, own = spill.ready.popleft()
            lines = read_spill(path)
            if not lines:
                spill.discard(path)
                continue
            with self._work:
                self._in_memory += len(lines)
            for start in range(0, len(lines), self._batch_size):
                chunk = lines[start : start + self._batch_size]
                last = start + self._batch_size >= len(lines)
                own_count = len(chunk) if own else 0
                done = path if last else None
                self._send(_Batch(0, join_batch(chunk), len(chunk), own_count, done), child)

    def _finish(self, child: _Child) -> bool:
        """Everything is sent: end the input and wait for the verdict (or a restart)."""
        child.close_input()
        child.reader.join()
        code = child.reap()
        if child.end is None:  # it died: a new process gets the rest, and closes too
            with self._work:
                self._child = None
            self._lost(child, code)
            return True
        with self._work:
            self._child = None
            self._closed = child.end and code == 0 and not self._unacked
            if self._unacked:  # a sink failed at close: kept for the next start
                self._rescue()
            self._room.notify_all()
        return False

    # -- called from the acknowledgement reader ----------------------------------------------

    def _acknowledged(self, seq: int, stats: dict[str, int]) -> None:
        done: list[Path] = []
        with self._work:
            while self._unacked and self._unacked[0].seq <= seq:
                batch = self._unacked.popleft()
                self._in_memory -= batch.count
                self._durable += batch.own
                if batch.done is not None:
                    done.append(batch.done)
            for name in ("sealed", "violations", "sink_errors"):
                setattr(self.stats, name, self._base_stats.get(name, 0) + stats.get(name, 0))
            self._room.notify_all()
            self._work.notify()
        for path in done:
            self._spill.discard(path)

    def _started(self, origin: str) -> None:
        self._failures = 0
        self.origin = origin

    def _wake_feeder(self) -> None:
        with self._work:
            self._work.notify()

    # -- internals ---------------------------------------------------------------------------

    def _nothing_left(self) -> bool:
        # lock held
        child = self._child
        dead = child is None or not child.alive
        return dead and not (self._unacked or self._spill.ready or self._spill.active)

    def _has_room(self) -> bool:
        return self._in_memory < self._max

    def _serialize(self, record: dict[str, Any]) -> bytes:
        try:
            return orjson.dumps(record)
        except TypeError:  # e.g. a lone surrogate: what the validator says of it is sealed
            violations = validate(record, sealed=False) or [
                Violation("$", "type", "the record cannot be serialized as JSON")
            ]
            application = self.settings.service_name
            return orjson.dumps(violation_record(record, violations, application=application))

    def _spill_redacted(self, record: dict[str, Any]) -> None:
        assert self.plugins is not None
        self.plugins.redact(record)
        self._spill.append(self._serialize(record))

    def _rescue(self) -> None:
        """close gave up (lock held): what is not acknowledged goes to the spill files."""
        try:
            for batch in self._unacked:
                for line in split_batch(batch.inside):
                    self._spill.append(line)
                if batch.done is not None:  # its unacknowledged lines are in the new file
                    self._spill.discard(batch.done)
            for line in self._buf:
                self._spill.append(line)
            self._spill.seal_current()
        except OSError as exc:
            report(logging.ERROR, "audit records LOST at close: cannot spill them: %s", exc)
        self._unacked.clear()
        self._buf = []

    def _report(self, message: str) -> None:
        report(logging.WARNING, message)
