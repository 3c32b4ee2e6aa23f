"""The local append-only store: the embedded default sink when no collector exists.

A store is a directory of JSON Lines *segments*, one sealed record per line, exactly
as the sealer produced it (``SealedRecord.line`` + ``\\n``)::

    audit-000001-20260103T120000Z-4242.jsonl.gz   closed segment (compressed)
    audit-000002-20260103T130000Z-4242.jsonl      active segment, or the last one of a crash
    .state.json                                   last durable checkpoint (hidden)
    .lock                                         one writer at a time (flock)

``audit-<counter>-<UTC start>-<pid>``: the counter is store-wide and grows across
processes, so names sort in write order (:func:`iter_segments` sorts numerically).

Durability rules (DESIGN §6):

* Files are created with ``O_EXCL`` and only ever appended to (``O_APPEND``); a new
  process never appends to an old segment, so a line torn by a crash stays the last line
  of its own file (``torn_line``, a warning, for the verifier).
* Group commit: :meth:`LocalStore.write` appends with ``os.write`` and fsyncs once
  ``fsync_interval_ms`` have passed since the last fsync; a background flusher fsyncs a
  segment left dirty by the last write within that interval. ``flush`` and ``close``
  always fsync. Creating a file also fsyncs the directory.
* ``.state.json`` is rewritten atomically (temp file, fsync, rename, fsync directory)
  only *after* the segment holding a checkpoint record has been fsynced, so it never
  names a checkpoint that is not on disk. The next process passes that note to
  ``Sealer(previous_checkpoint=...)`` and its stream links to ours.
* Rotation (size or age) fsyncs and closes the segment, then (``compress=True``) writes
  ``<name>.gz`` through a hidden temp file (fsync, rename, fsync directory) and deletes
  the ``.jsonl``. :meth:`LocalStore.close` compresses the active segment the same way,
  so every ``.jsonl`` left in a store is an active or crashed segment. A crash between
  the rename and the delete leaves both files; the next start removes the ``.jsonl``
  once it has checked that the ``.gz`` holds exactly the same bytes.

Nothing here reads or rewrites old segments' content beyond that check; verification is
``otel-audit verify DIR`` (which skips the hidden files).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import gzip
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_audit.errors import AuditError, StoreError
from otel_audit.sealing import CHECKPOINT_ACTIONS, SealedRecord
from otel_audit.verify import leaf_of

__all__ = ["LocalStore", "StoreLogExporter", "iter_segments", "open_store", "read_lines"]

internal_log = logging.getLogger("otel_audit.internal")
internal_log.propagate = False  # never the application's handlers (see pipeline.py)

STATE_FILE = ".state.json"
LOCK_FILE = ".lock"
STATE_VERSION = 1
_STATE_MAX_BYTES = 1 << 20
_GZIP_LEVEL = 6
_COPY_CHUNK = 1 << 20
_DIR_MODE = 0o750
_FILE_MODE = 0o640
WORKER_DIR = "worker-{:02d}"  # a slot of a store shared by several processes
_MAX_SLOTS = 256
_SEGMENT = re.compile(r"^audit-(\d{6,})-(\d{8}T\d{6}Z)-(\d+)\.jsonl(\.gz)?$")
_OUR_TEMP = re.compile(r"^\.(audit-\d{6,}-\d{8}T\d{6}Z-\d+\.jsonl\.gz|state\.json)\.tmp$")


class _StoreBusyError(StoreError):
    """Another process holds the store's lock."""


def open_store(directory: str | os.PathLike[str], **options: Any) -> LocalStore:
    """A :class:`LocalStore` in ``directory``, or in its first free worker slot.

    Several processes may share one configured store (a pre-fork server's workers, a
    parent and its children): the first takes ``directory`` itself, each other one the
    first ``worker-NN/`` subdirectory whose lock is free. A restarted worker reuses a
    free slot, so its new stream links to the stream last written there (DESIGN §4:
    one origin per process); ``otel-audit verify DIR`` reads the slots too.
    """
    base = Path(directory)
    busy: StoreError | None = None
    for slot in range(_MAX_SLOTS + 1):
        path = base if slot == 0 else base / WORKER_DIR.format(slot)
        try:
            return LocalStore(path, **options)
        except _StoreBusyError as exc:
            busy = exc
    raise StoreError(f"{busy}; all {_MAX_SLOTS} worker slots are in use too")


def iter_segments(directory: str | os.PathLike[str]) -> list[Path]:
    """The store's segment files (``.jsonl`` and ``.jsonl.gz``) in write order."""
    found: list[tuple[int, str, Path]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _SEGMENT.match(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                found.append((int(match.group(1)), entry.name, Path(entry.path)))
    return [path for _, _, path in sorted(found)]


def read_lines(directory: str | os.PathLike[str]) -> Iterator[bytes]:
    """Every complete line of the store's segments, in write order (a torn last line of a
    crashed segment is skipped: ``otel-audit verify`` reports it)."""
    for path in iter_segments(directory):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    yield line[:-1]


class LocalStore:
    """An append-only directory of segment files; one writer process at a time.

    :meth:`write` is meant for one background thread (the pipeline's), in order;
    every public method is thread-safe. OSError from the file system propagates; the
    segment it happened in is abandoned (closed as is) and the next write starts a new
    one, so earlier lines are never touched again. A write that fails part-way may have
    stored a prefix of its batch; retrying the batch then stores byte-identical copies,
    which the verifier counts once (a ``duplicate`` warning).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync_interval_ms: int = 50,
        max_segment_bytes: int = 64 * 2**20,
        max_segment_age_s: float = 3600.0,
        compress: bool = True,
    ) -> None:
        if fsync_interval_ms < 0:
            raise ValueError("fsync_interval_ms must not be negative")
        if max_segment_bytes < 1:
            raise ValueError("max_segment_bytes must be at least 1")
        if not max_segment_age_s > 0:
            raise ValueError("max_segment_age_s must be positive")
        self.directory = Path(directory).absolute()  # immune to a later chdir
        self._interval_ns = fsync_interval_ms * 1_000_000
        self._max_bytes = max_segment_bytes
        self._max_age_ns = int(min(max_segment_age_s, 1e9) * 1e9)
        self._compress = compress
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._fd: int | None = None  # active segment
        self._name = ""
        self._size = 0
        self._opened_ns = 0
        self._dirty = False
        self._last_sync_ns = time.monotonic_ns()
        # (origin, note, segment) of the newest checkpoint written but not yet fsynced
        self._pending: tuple[str, str, str] | None = None
        self._deferred: OSError | None = None  # a background fsync failure, raised later

        os.makedirs(self.directory, mode=_DIR_MODE, exist_ok=True)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._lock_fd = _take_lock(self.directory)
        except BaseException:
            os.close(self._dir_fd)
            raise
        try:
            self._previous = self._read_state()
            self._recover()
            segments = iter_segments(self.directory)
            last = _SEGMENT.match(segments[-1].name) if segments else None
            self._counter = int(last.group(1)) if last else 0
        except BaseException:
            self._release()
            raise
        self._flusher = threading.Thread(
            target=self._flush_loop, name="otel-audit-store-fsync", daemon=True
        )
        self._flusher.start()
        # closed segments waiting for gzip, and the thread compressing them (None when idle)
        self._to_compress: collections.deque[str] = collections.deque()
        self._compressor: threading.Thread | None = None

    # -- public API ----------------------------------------------------------------------

    def previous_checkpoint(self) -> str | None:
        """The last durable checkpoint note written by the previous process, if any.

        Read once at start (before this store writes anything); pass it to
        ``Sealer(previous_checkpoint=...)``.
        """
        return self._previous

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def active_segment(self) -> Path | None:
        """The segment being appended to (None before the first write or after close)."""
        with self._lock:
            return None if self._fd is None else self.directory / self._name

    def write(self, batch: Sequence[SealedRecord]) -> None:
        """Append the records' lines, in order; fsync when the interval has passed."""
        for sealed in batch:
            if b"\n" in sealed.line:
                raise StoreError(
                    f"record {sealed.origin} seq {sealed.seq}: its wire line contains a "
                    "newline; refusing to write it"
                )
        with self._lock:
            self._check_usable()
            if not batch:
                return
            now = time.monotonic_ns()
            if self._fd is not None and now - self._opened_ns >= self._max_age_ns:
                self._rotate_locked()
            chunk: list[bytes] = []
            chunk_bytes = 0
            checkpoint: tuple[str, str] | None = None
            for sealed in batch:
                need = len(sealed.line) + 1
                if chunk_bytes and self._size + chunk_bytes + need > self._max_bytes:
                    self._append_locked(chunk, checkpoint)
                    chunk, chunk_bytes, checkpoint = [], 0, None
                if not chunk_bytes and self._size and self._size + need > self._max_bytes:
                    self._rotate_locked()
                chunk.append(sealed.line)
                chunk.append(b"\n")
                chunk_bytes += need
                note = _checkpoint_note(sealed)
                if note is not None:
                    checkpoint = (sealed.origin, note)
            self._append_locked(chunk, checkpoint)
            if time.monotonic_ns() - self._last_sync_ns >= self._interval_ns:
                self._sync_locked()
            else:
                self._wake.notify()

    def flush(self) -> None:
        """Write out and fsync now (and record a checkpoint written since in the state)."""
        with self._lock:
            self._check_usable()
            self._sync_locked()

    def close(self) -> None:
        """Flush, fsync, close (and compress) the active segment, release the lock.

        Idempotent. The lock is released even when the final fsync fails (which raises).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        self._flusher.join()
        try:
            with self._lock:
                if self._deferred is not None:
                    error, self._deferred = self._deferred, None
                    raise error
                if self._fd is not None:
                    self._rotate_locked()
        finally:
            compressor = self._compressor  # set and cleared under the lock
            if compressor is not None:
                compressor.join()  # every closed segment compressed before the lock goes
            with self._lock:
                self._abandon_locked()
                self._release()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.directory)!r}, closed={self._closed})"

    # -- segments (lock held) ------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError(f"local store {self.directory} is closed")
        if self._deferred is not None:
            error, self._deferred = self._deferred, None
            raise error

    def _open_locked(self) -> None:
        self._counter += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"audit-{self._counter:06d}-{stamp}-{os.getpid()}.jsonl"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL
        fd = os.open(self.directory / name, flags, _FILE_MODE)
        try:
            os.fsync(self._dir_fd)  # the new name is durable before any record in it
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._name, self._size = fd, name, 0
        self._opened_ns = time.monotonic_ns()

    def _append_locked(self, chunk: list[bytes], checkpoint: tuple[str, str] | None) -> None:
        if not chunk:
            return
        if self._fd is None:
            self._open_locked()
        assert self._fd is not None
        data = memoryview(b"".join(chunk))
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
                self._size += written
                self._dirty = True
        except BaseException:
            self._abandon_locked()
            raise
        if checkpoint is not None:
            self._pending = (checkpoint[0], checkpoint[1], self._name)

    def _sync_locked(self) -> None:
        if self._fd is not None and self._dirty:
            try:
                os.fsync(self._fd)
            except BaseException:
                self._abandon_locked()  # after a failed fsync the page cache is not trusted
                raise
            self._dirty = False
        self._last_sync_ns = time.monotonic_ns()
        if self._pending is not None:
            origin, note, segment = self._pending
            self._pending = None
            try:
                self._write_state(origin, note, segment)
            except OSError as exc:  # the old state still names a durable checkpoint
                internal_log.warning(
                    "otel-audit store %s: cannot update %s: %s", self.directory, STATE_FILE, exc
                )

    def _rotate_locked(self) -> None:
        """fsync and close the active segment, then have it compressed (if configured).

        Compression runs on a thread of its own: gzip of a full segment takes about a
        second, which would hold up every write behind it. ``close`` waits for it.
        """
        if self._fd is None:
            return
        self._sync_locked()
        fd, name = self._fd, self._name
        self._fd, self._name, self._size = None, "", 0
        os.close(fd)
        if self._compress:
            self._to_compress.append(name)
            if self._compressor is None:
                self._compressor = threading.Thread(
                    target=self._compress_loop, name="otel-audit-store-gzip", daemon=True
                )
                self._compressor.start()

    def _compress_loop(self) -> None:
        while True:
            with self._lock:
                if not self._to_compress:
                    self._compressor = None
                    return
                name = self._to_compress.popleft()
            try:
                self._compress_segment(name)
            except OSError as exc:  # the .jsonl is intact and stays; nothing is lost
                internal_log.warning(
                    "otel-audit store %s: cannot compress %s: %s", self.directory, name, exc
                )

    def _abandon_locked(self) -> None:
        """Close the active segment as it is; the next write starts a new one."""
        self._pending = None  # may not be durable: keep the state's older checkpoint
        self._dirty = False
        if self._fd is not None:
            fd, self._fd, self._name, self._size = self._fd, None, "", 0
            with contextlib.suppress(OSError):
                os.close(fd)

    def _compress_segment(self, name: str) -> None:
        source = self.directory / name
        final = self.directory / f"{name}.gz"
        temp = self.directory / f".{name}.gz.tmp"
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        fd = os.open(temp, flags, _FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as raw:
                with (
                    gzip.GzipFile(
                        filename=name, mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0
                    ) as packed,
                    open(source, "rb") as plain,
                ):
                    shutil.copyfileobj(plain, packed, _COPY_CHUNK)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        os.fsync(self._dir_fd)  # the .gz is durable under its name before the .jsonl goes
        source.unlink()
        os.fsync(self._dir_fd)

    # -- state ---------------------------------------------------------------------------

    def _write_state(self, origin: str, note: str, segment: str) -> None:
        state = {
            "version": STATE_VERSION,
            "origin": origin,
            "last_checkpoint": note,
            "segment": segment,
        }
        data = orjson.dumps(state, option=orjson.OPT_SORT_KEYS) + b"\n"
        temp = self.directory / f"{STATE_FILE}.tmp"
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        fd = os.open(temp, flags, _FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        os.close(fd)
        os.replace(temp, self.directory / STATE_FILE)
        os.fsync(self._dir_fd)

    def _read_state(self) -> str | None:
        path = self.directory / STATE_FILE
        try:
            with open(path, "rb") as handle:
                data = handle.read(_STATE_MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            internal_log.warning(
                "otel-audit store %s: cannot read %s (%s); the new stream will not link "
                "to the previous one",
                self.directory,
                STATE_FILE,
                exc.strerror or exc,
            )
            return None
        note: Any = None
        try:
            state = orjson.loads(data) if len(data) <= _STATE_MAX_BYTES else None
            if isinstance(state, dict) and state.get("version") == STATE_VERSION:
                note = state.get("last_checkpoint")
        except orjson.JSONDecodeError:
            pass
        if isinstance(note, str) and note:
            return note
        internal_log.warning(
            "otel-audit store %s: %s is corrupt or of an unknown version; ignoring it (the "
            "new stream will not link to the previous one)",
            self.directory,
            STATE_FILE,
        )
        return None

    # -- start-up and shutdown -----------------------------------------------------------

    def _recover(self) -> None:
        """Remove our own stale temp files; finish a compression cut short by a crash."""
        names = set(os.listdir(self.directory))
        changed = False
        for name in names:
            if _OUR_TEMP.match(name):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / name).unlink()
                    changed = True
        for name in sorted(names):
            if not (_SEGMENT.match(name) and name.endswith(".jsonl") and f"{name}.gz" in names):
                continue
            plain, packed = self.directory / name, self.directory / f"{name}.gz"
            if _same_content(plain, packed):
                plain.unlink()
                changed = True
            else:
                internal_log.warning(
                    "otel-audit store %s: %s and %s differ; keeping both",
                    self.directory,
                    name,
                    packed.name,
                )
        if changed:
            os.fsync(self._dir_fd)

    def _flush_loop(self) -> None:
        """fsync a segment that the last write left dirty, once the interval has passed."""
        with self._lock:
            while not self._closed:
                if not self._dirty:
                    self._wake.wait()
                    continue
                wait_ns = self._last_sync_ns + self._interval_ns - time.monotonic_ns()
                if wait_ns > 0:
                    self._wake.wait(wait_ns / 1e9)
                    continue
                try:
                    self._sync_locked()
                except OSError as exc:
                    self._deferred = exc
                    internal_log.error(
                        "otel-audit store %s: background fsync failed: %s", self.directory, exc
                    )

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        with contextlib.suppress(OSError):
            os.close(self._dir_fd)


def _take_lock(directory: Path) -> int:
    path = directory / LOCK_FILE
    flags = os.O_RDWR | os.O_CREAT
    fd = os.open(path, flags, _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = b""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 32, 0).strip()
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            who = f" (pid {holder.decode('ascii', 'replace')})" if holder.isdigit() else ""
            raise _StoreBusyError(
                f"local store {directory} is in use by another process{who}; "
                "each process needs its own store directory"
            ) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass  # the pid is only a hint for the error message above
    return fd


def _same_content(plain: Path, packed: Path) -> bool:
    try:
        with open(plain, "rb") as a, gzip.open(packed, "rb") as b:
            while True:
                left = a.read(_COPY_CHUNK)
                right = b.read(_COPY_CHUNK)
                if left != right:
                    return False
                if not left:
                    return True
    except (OSError, EOFError):
        return False


def _checkpoint_note(sealed: SealedRecord) -> str | None:
    record = sealed.record
    if record.get("category") != "integrity" or record.get("action") not in CHECKPOINT_ACTIONS:
        return None
    note = record["integrity"].get("checkpoint")
    return note if isinstance(note, str) else None


class StoreLogExporter(LogRecordExporter):
    """An OTel ``LogRecordExporter`` that writes sealed records into a :class:`LocalStore`.

    For pipelines that already carry sealed records as OTel log records: a record whose
    body is a sealed audit record as a JSON string (the wire form, DESIGN §2) is written
    verbatim; other log records are skipped. ``shutdown`` closes the store.
    """

    def __init__(self, store: LocalStore) -> None:
        self._store = store

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        sealed = [s for s in map(_sealed_body, batch) if s is not None]
        try:
            self._store.write(sealed)
        except (OSError, AuditError) as exc:
            internal_log.error("otel-audit store exporter: %s", exc)
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            self._store.flush()
        except (OSError, AuditError) as exc:
            internal_log.error("otel-audit store exporter: %s", exc)
            return False
        return True

    def shutdown(self) -> None:
        try:
            self._store.close()
        except (OSError, AuditError) as exc:
            internal_log.error("otel-audit store exporter: %s", exc)


def _sealed_body(log: ReadableLogRecord) -> SealedRecord | None:
    body = log.log_record.body
    if not isinstance(body, str) or '"integrity"' not in body:
        return None
    line = body.encode("utf-8", "surrogatepass")
    if b"\n" in line:
        return None  # not the canonical wire form: could forge a second line
    try:
        record = orjson.loads(line)
        integrity = record["integrity"]
        if not (
            isinstance(integrity["origin"], str)
            and type(integrity["seq"]) is int
            and isinstance(record["metadata"]["checksum"], str)
        ):
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    leaf, _ = leaf_of(record, line)  # a mismatch is the verifier's to report, not ours
    return SealedRecord(record, line, leaf)
