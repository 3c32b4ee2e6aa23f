"""The OTLP sink's disk spool: batches the collector has not taken yet (DESIGN §6).

A spool is a directory of batch files, oldest first::

    batch-<UTC ns, 20 digits>-<counter, 8 digits>.jsonl   one sealed wire line per line
    .lock                                                 one process at a time (flock)

Each file is written to a hidden temp name, fsynced, renamed into place, and the
directory fsynced: a file is either absent or complete, never torn. The total size is
bounded; :meth:`Spool.append` raises :class:`SpoolFullError` instead of growing past it.
The files are plain JSON Lines of sealed records, so ``otel-audit verify`` reads them as
they are. A new process replays what an earlier one left (names sort in write order).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from otel_audit.errors import AuditError

__all__ = ["Spool", "SpoolFullError"]

_BATCH = re.compile(r"^batch-\d{20}-\d{8}\.jsonl$")
_DIR_MODE = 0o700
_FILE_MODE = 0o600


class SpoolFullError(AuditError):
    """The spool has reached its size bound: the batch was not spooled."""


class Spool:
    """A bounded FIFO of fsynced batch files in one directory, owned by one process."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("spool max_bytes must be at least 1")
        self.directory = Path(directory).absolute()
        self.max_bytes = max_bytes
        os.makedirs(self.directory, mode=_DIR_MODE, exist_ok=True)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        self._lock_fd = -1
        try:
            self._lock_fd = self._take_lock()
            for name in os.listdir(self.directory):
                if name.startswith(".batch-") and name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.directory / name)  # never renamed: never accepted
        except BaseException:
            self.close()
            raise
        self._counter = 0
        self.bytes = sum(p.stat().st_size for p in self.pending())

    def pending(self) -> list[Path]:
        """The batch files, oldest first."""
        return sorted(p for p in self.directory.iterdir() if _BATCH.match(p.name))

    def append(self, lines: Sequence[bytes]) -> Path:
        """Write one batch durably; :class:`SpoolFullError` when it does not fit."""
        data = b"".join(line + b"\n" for line in lines)
        if self.bytes + len(data) > self.max_bytes:
            raise SpoolFullError(
                f"OTLP spool {self.directory} is full ({self.bytes:,} of {self.max_bytes:,} "
                f"bytes): a batch of {len(lines)} record(s) could not be spooled"
            )
        self._counter += 1
        name = f"batch-{time.time_ns():020d}-{self._counter:08d}.jsonl"
        temp = self.directory / f".{name}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
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
        final = self.directory / name
        os.replace(temp, final)
        os.fsync(self._dir_fd)
        self.bytes += len(data)
        return final

    @staticmethod
    def read(path: Path) -> list[bytes]:
        """The wire lines of one batch file."""
        with open(path, "rb") as handle:
            return [line.rstrip(b"\n") for line in handle if line.strip()]

    def remove(self, path: Path) -> None:
        """Delete a delivered batch file."""
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        self.bytes = max(0, self.bytes - size)
        with contextlib.suppress(OSError):
            os.fsync(self._dir_fd)

    def close(self) -> None:
        """Release the directory (idempotent)."""
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1
        if self._dir_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._dir_fd)
            self._dir_fd = -1

    def _take_lock(self) -> int:
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AuditError(
                    f"OTLP spool {self.directory} is in use by another process; each "
                    "process needs its own spool directory"
                ) from None
            raise
        return fd
