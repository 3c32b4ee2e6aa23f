"""The sealing process of ``sealing="process"``: validate, seal and store beside the app.

Started by :class:`~otel_audit_logging._process.SealingProcess` as
``python -m otel_audit_logging._sealer IN_FD OUT_FD``. It reads frames from ``IN_FD``
and answers on ``OUT_FD`` (its stdout and stderr stay the application's, for the
internal logger's reports). A frame is a header (kind, sequence number, payload length)
and a payload:

=========  ==========  ===========================================================
direction  kind        payload
=========  ==========  ===========================================================
app →      ``C``       the handler's settings as JSON (first frame only)
app →      ``B`` seq   one batch: records as JSON lines joined by ``\\n``
app →      ``F`` seq   flush: acknowledge up to batch ``seq`` now, not at the interval
sealer →   ``H``       started: ``{"origin": ...}``
sealer →   ``X``       could not start: the reason as text (then the process exits)
sealer →   ``A`` seq   every batch up to ``seq`` is sealed and durable in every sink
sealer →   ``E``       closed (after the app's end of file): ``1`` clean, ``0`` not
=========  ==========  ===========================================================

The pipeline has no worker thread of its own (``worker=False``): the thread that reads a
batch seals it, so the process runs on one thread and never queues. A batch is
acknowledged only after the pipeline's flush (store fsync included): until
then the application keeps it, and sends it again to a new sealing process if this one
dies (at least once). End of file on ``IN_FD`` (the application closed the handler, or
died) seals what was received and writes STREAM_END. SIGINT and SIGTERM are ignored:
sent to the whole process group (a terminal's Ctrl-C, systemd stopping a service), they
are for the application, which closes this process in order; its death closes the pipe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, Final

import orjson

from otel_audit.errors import Violation
from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline, violation_record
from otel_audit.plugins import load_plugins
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
    read_frame,
    split_batch,
    write_frame,
)
from otel_audit_logging._open import open_pipeline

__all__ = ["main"]

_TICK_S: Final = 0.25  # how often a time-based checkpoint is considered while idle


class _Replies:
    """The answer channel, shared by the reader and the acknowledger."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()

    def send(self, kind: bytes, seq: int = 0, payload: bytes = b"") -> None:
        with self.lock:
            write_frame(self.fd, kind, seq, payload)


class _Acknowledger(threading.Thread):
    """Every ``fsync_interval_ms`` (or at once on a flush frame): write a checkpoint if
    one is due, flush the sinks, then acknowledge the last batch sealed before."""

    def __init__(self, pipeline: AuditPipeline, replies: _Replies, interval_s: float) -> None:
        super().__init__(name="otel-audit-sealer-ack", daemon=True)
        self.pipeline = pipeline
        self.replies = replies
        self.interval_s = max(interval_s, 0.005)
        self.lock = threading.Lock()  # one thread at a time drives the pipeline
        self.sealed = 0  # the last batch sealed (set by the reader, under the lock)
        self.acked = 0
        self.wake = threading.Event()
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            self.wake.wait(min(self.interval_s, _TICK_S))
            self.wake.clear()
            with self.lock:
                self.pipeline.tick()
                if self.sealed > self.acked and self.pipeline.flush():
                    self.acknowledge(self.sealed)

    def acknowledge(self, seq: int) -> None:
        # lock held
        self.acked = seq
        try:
            self.replies.send(ACK, seq, orjson.dumps(self.pipeline.stats.as_dict()))
        except OSError:
            self.stopping = True  # the application is gone; end of file follows


def _start(settings: HandlerSettings) -> AuditPipeline:
    signer = None
    if settings.key_file is not None:
        signer = SigningKey.from_file(settings.key_file, name=settings.key_name)
    plugins = load_plugins(settings.plugins, disable=settings.disable_plugins)
    return open_pipeline(settings, signer, plugins, worker=False)


def _records(payload: bytes) -> list[dict[str, Any]]:
    try:
        records = orjson.loads(payload)  # the whole batch at once
    except orjson.JSONDecodeError:
        records = None
    if isinstance(records, list) and all(type(r) is dict for r in records):
        return records
    out = []  # never sent by the handler: each part is sealed, none dropped
    for line in split_batch(payload[len(BATCH_OPEN) : -len(BATCH_CLOSE)]):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if type(record) is not dict:
            violation = Violation("$", "internal", "the sealing process got a part not JSON")
            record = violation_record("<unreadable>", [violation], application="otel-audit")
        out.append(record)
    return out


def main(argv: list[str]) -> int:
    # a terminal's Ctrl-C or a service manager's SIGTERM to the whole group is meant for
    # the application: it closes this process in order (end of file) as it shuts down
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    in_fd, out_fd = int(argv[0]), int(argv[1])
    stream = os.fdopen(in_fd, "rb", buffering=1 << 20)
    replies = _Replies(out_fd)
    frame = read_frame(stream)
    if frame is None or frame[0] != CONFIG:
        return 2
    try:
        settings = HandlerSettings.from_json(orjson.loads(frame[2]))
        pipeline = _start(settings)
    except Exception as exc:  # noqa: BLE001 - reported to the application, which retries
        replies.send(FAILED, 0, f"{type(exc).__name__}: {exc}".encode())
        return 1
    replies.send(HELLO, 0, orjson.dumps({"origin": pipeline.origin}))
    acknowledger = _Acknowledger(pipeline, replies, settings.fsync_interval_ms / 1000)
    acknowledger.start()
    while (frame := read_frame(stream)) is not None:
        kind, seq, payload = frame
        if kind == BATCH:
            records = _records(payload)
            with acknowledger.lock:
                pipeline.seal_now(records)
                acknowledger.sealed = seq
        elif kind == FLUSH:
            acknowledger.wake.set()
    acknowledger.stopping = True
    acknowledger.wake.set()
    acknowledger.join()
    ok = pipeline.close()
    if ok and acknowledger.sealed > acknowledger.acked:
        acknowledger.acknowledge(acknowledger.sealed)  # never raises
    with contextlib.suppress(OSError):  # the application died: the store is closed anyway
        replies.send(END, 0, b"1" if ok else b"0")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
