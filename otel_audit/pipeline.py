"""The core pipeline shared by the stdlib handler and the OTel processor (DESIGN §2).

``submit`` runs on the application's thread and does only cheap work: in ``strict``
mode it validates (and raises), otherwise it just hands the built record to a bounded
queue. One background thread then validates, seals, and writes to the sinks, in order.

The queue never drops a record. When it is full, ``submit`` waits at most
``max_block_ms``; then the record, and every record after it until the backlog has
been worked off, is appended to a spill file on disk (order is kept: queue, then spill,
then queue again). Spill files left by a crash are replayed at the next start. Each
spill is counted and reported on the internal logger.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from otel_audit.errors import AuditValidationError, Violation
from otel_audit.keys import Signer
from otel_audit.records import build
from otel_audit.schema import validate, validate_unsealed
from otel_audit.sealing import SealedRecord, Sealer

if TYPE_CHECKING:
    from otel_audit.plugins import Plugins

__all__ = ["AuditPipeline", "PipelineStats", "Sink", "check_strictly", "violation_record"]

internal_log = logging.getLogger("otel_audit.internal")
internal_log.propagate = False
if not internal_log.handlers:
    internal_log.addHandler(logging.StreamHandler())  # stderr; never the app's handlers

_WAKE: dict[str, Any] = {}  # queued by flush/close to end the worker's idle wait
_MAX_SAFE_STR = 1024
_MAX_SAFE_ITEMS = 64
_MAX_SAFE_DEPTH = 6


class Sink(Protocol):
    """Where sealed records go. Called from the pipeline's one worker thread, in order."""

    def write(self, batch: Sequence[SealedRecord]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class PipelineStats:
    """Counters, readable at any time (plain ints; a torn read is harmless)."""

    __slots__ = ("sealed", "sink_errors", "spilled", "submitted", "violations")

    def __init__(self) -> None:
        self.submitted = 0
        self.sealed = 0
        self.violations = 0
        self.spilled = 0
        self.sink_errors = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _safe(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy of untrusted input for a violation record."""
    if isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**53):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) and abs(value) < 2**53 else repr(value)
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
        return text if len(text) <= _MAX_SAFE_STR else text[:_MAX_SAFE_STR] + "…[truncated]"
    if depth >= _MAX_SAFE_DEPTH:
        return "…[too deep]"
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_SAFE_ITEMS]
        return {_safe(str(k)): _safe(v, depth + 1) for k, v in items if v is not None}
    if isinstance(value, (list, tuple)):
        return [_safe(v, depth + 1) for v in value[:_MAX_SAFE_ITEMS] if v is not None]
    return _safe(f"<{type(value).__name__}>")


def violation_record(
    offending: Any, violations: Sequence[Violation], *, application: str
) -> dict[str, Any]:
    """The ``security``/``AUDIT_SCHEMA_VIOLATION`` record that stands in for a bad one (§6)."""
    actor = "unknown"
    if isinstance(offending, Mapping):
        given = offending.get("actor")
        user = given.get("user_id") if isinstance(given, Mapping) else given
        if isinstance(user, str) and 0 < len(user) <= 256:
            actor = _safe(user)
    reasons = "; ".join(str(v) for v in violations[:20])
    return build(
        category="security",
        action="AUDIT_SCHEMA_VIOLATION",
        actor=actor,
        resource=("audit_record", "rejected"),
        result={"status": "FAILURE", "reason": _safe(reasons)},
        risk_level="HIGH",
        context={"application": application},
        extensions={
            "violations": [
                {"path": _safe(v.path), "rule": v.rule, "message": _safe(v.message)}
                for v in violations[:50]
            ],
            "rejected": _safe(offending),
        },
    )


def check_strictly(record: dict[str, Any], plugins: Plugins | None) -> None:
    """Strict mode, on the caller's thread: the plugins' record hooks, then the schema;
    :class:`AuditValidationError` for any violation."""
    violations = [] if plugins is None else plugins.prepare(record)
    violations = violations or validate(record, sealed=False)
    if violations:
        raise AuditValidationError(violations)


_NO_HOOK = object()  # a sink without an on_alert attribute


class _Spill:
    """Append-only spill files of unsealed records, replayed in order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.active = False  # while True, every submitted record goes here (keeps order)
        self._file: Any = None
        self._counter = 0

    def pending_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("spill-*.jsonl"))

    def append(self, record: dict[str, Any]) -> None:
        # lock held by caller
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._counter += 1
            name = f"spill-{time.time_ns():020d}-{os.getpid()}-{self._counter:06d}.jsonl"
            self._file = open(self.directory / name, "ab")  # noqa: SIM115 - kept open
        try:
            line = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)
        except (TypeError, ValueError):  # not JSON: keep a safe copy; validation will refuse it
            line = orjson.dumps(_safe(record))
        self._file.write(line + b"\n")
        self._file.flush()

    def seal_current(self) -> None:
        # lock held by caller: the next append starts a new file
        if self._file is not None:
            self._file.close()
            self._file = None


class AuditPipeline:
    """validate → seal → sinks, on one worker thread; ``submit`` from any thread."""

    def __init__(
        self,
        signer: Signer,
        sinks: Sequence[Sink],
        *,
        service_name: str = "unknown_service",
        strict: bool = False,
        checkpoint_every: int = 1024,
        checkpoint_interval_ms: int = 1000,
        previous_checkpoint: str | None = None,
        queue_size: int = 16_384,
        max_block_ms: float = 20.0,
        batch_size: int = 256,
        spill_dir: str | os.PathLike[str] | None = None,
        on_alert: Callable[[str], None] | None = None,
        plugins: Plugins | None = None,
        worker: bool = True,
    ) -> None:
        self.service_name = service_name
        self.strict = strict
        #: compliance plugins: ``prepare`` runs before schema validation (DESIGN §2 step 2)
        self.plugins = plugins
        self.stats = PipelineStats()
        self._sinks = list(sinks)
        for sink in self._sinks:  # a sink's own alerts (OTLP delivery) reach on_alert and plugins
            if getattr(sink, "on_alert", _NO_HOOK) is None:
                sink.on_alert = functools.partial(self.alert, "delivery")  # type: ignore[attr-defined]
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(queue_size)
        self._block_s = max_block_ms / 1000
        self._batch_size = batch_size
        self._tick_s = min(checkpoint_interval_ms / 1000, 0.25)
        self._sealed: list[SealedRecord] = []
        # a configured spill directory is durable: what a crash left there is replayed
        self._replay_at_start = spill_dir is not None
        if spill_dir is None:
            spill_dir = Path(tempfile.gettempdir()) / f"otel-audit-spill-{os.getpid()}"
        self._spill = _Spill(Path(spill_dir))
        self._alert = on_alert
        self._alerts: collections.deque[tuple[str, str]] = collections.deque(maxlen=1000)
        self._cond = threading.Condition()
        self._flush_wanted = 0
        self._flush_done = 0
        self._flush_ok = True
        self._stopping = False
        self._closed = False
        self.sealer = Sealer(
            signer,
            self._sealed.append,
            service_name=service_name,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_ms=checkpoint_interval_ms,
            previous_checkpoint=previous_checkpoint,
        )
        #: ``worker=False``: no thread and no queue; the owner calls :meth:`seal_now`,
        #: :meth:`tick`, :meth:`flush` and :meth:`close`, from one thread at a time
        self._worker: threading.Thread | None = None
        if worker:
            self._worker = threading.Thread(
                target=self._run, name="otel-audit-pipeline", daemon=True
            )
            self._worker.start()
        elif self._replay_at_start:
            self._guarded(lambda: self._replay(self._spill.pending_files()))

    @property
    def origin(self) -> str:
        return self.sealer.origin

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks, in the order each batch is written to them."""
        return tuple(self._sinks)

    # -- the application's side ------------------------------------------------------------

    def submit(self, record: dict[str, Any]) -> None:
        """Queue a built record (the pipeline owns it from now on).

        Strict mode raises :class:`AuditValidationError` here; otherwise this never
        raises for bad input, and blocks at most ``max_block_ms``.
        """
        if self._worker is None:
            raise RuntimeError("this pipeline has no worker (worker=False): call seal_now")
        if self.strict:
            check_strictly(record, self.plugins)
        self.stats.submitted += 1
        if not self._spill.active:
            try:
                self._queue.put(record, timeout=self._block_s)
                return
            except queue.Full:
                pass
        with self._spill.lock:
            if not self._spill.active and not self._queue.full():
                self._queue.put_nowait(record)
                return
            if not self._spill.active:
                self._report(
                    f"audit queue full for {self._block_s * 1000:.0f} ms: spilling to "
                    f"{self._spill.directory} (nothing is dropped)",
                    kind="spill",
                )
            self._spill.active = True
            if self.plugins is not None and not self.strict:
                # redact before the record touches the disk (a card number must not sit
                # in a spill file); the redact hooks are idempotent and run again later
                self.plugins.redact(record)
            self._spill.append(record)
            self.stats.spilled += 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is sealed and written and the sinks are
        flushed. False if that did not happen within ``timeout`` or a sink failed."""
        if self._worker is None:
            return self._flush_now()
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return self._flush_ok
            self._flush_wanted += 1
            ticket = self._flush_wanted
            self._cond.notify_all()
        self._wake()
        with self._cond:
            while self._flush_done < ticket:
                left = deadline - time.monotonic()
                if left <= 0 or not self._worker.is_alive():
                    return False
                self._cond.wait(left)
            ok = self._flush_ok
            self._flush_ok = True
            return ok

    def close(self, timeout: float = 30.0) -> bool:
        """Seal what is queued, write STREAM_END, flush and close the sinks."""
        if self._worker is None:
            if not self._closed:
                self._finish()
            return self._flush_ok
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake()
        self._worker.join(timeout)
        return not self._worker.is_alive() and self._flush_ok

    def _wake(self) -> None:
        """Wake the worker from its idle wait (a full queue means it is busy anyway)."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)

    # -- without a worker (``worker=False``) --------------------------------------------------

    def seal_now(self, records: Sequence[dict[str, Any]]) -> None:
        """Validate, seal and write ``records`` on the calling thread, in order (the
        pipeline owns them from now on); never raises for bad input."""
        self.stats.submitted += len(records)
        self._guarded(lambda: self._seal(records))
        self._write()
        if self._alerts:
            self._send_alerts()

    def tick(self) -> None:
        """Write a checkpoint if ``checkpoint_interval_ms`` has passed since the last one."""
        self._guarded(self.sealer.tick)
        self._write()

    def _flush_now(self) -> bool:
        self._write()
        ok = self._flush_sinks() and self._flush_ok
        self._flush_ok = True
        return ok

    # -- the worker ---------------------------------------------------------------------

    def _run(self) -> None:
        if self._replay_at_start:
            self._guarded(lambda: self._replay(self._spill.pending_files()))
        while True:
            if self._guarded(self._step):
                break
        self._finish()

    def _finish(self) -> None:
        """STREAM_END, then flush and close the sinks (the worker's last step)."""
        self._guarded(self.sealer.close)
        self._write()
        ok = self._flush_sinks()
        for sink in self._sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - a sink must not kill shutdown
                ok = False
                self._report(f"sink {type(sink).__name__} failed to close: {exc!r}", "sink_failed")
        with self._cond:
            self._flush_ok = self._flush_ok and ok
            self._closed = True
            self._flush_done = self._flush_wanted
            self._cond.notify_all()

    def _guarded(self, step: Callable[[], Any]) -> Any:
        """Run one worker step; an unexpected error is reported and the worker goes on."""
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - the worker must outlive any bug
            self._report(f"internal error in the audit pipeline: {exc!r}")
            time.sleep(0.01)
            return False

    def _step(self) -> bool:
        """One round of work; True when the pipeline is stopping and everything is done."""
        batch = self._take()
        if self._alerts:
            self._send_alerts()
        if batch:
            self._seal(batch)
        else:
            self.sealer.tick()
        self._write()
        if self._queue.empty():
            self._drain_spill()
            if self._queue.empty() and not self._spill.active:
                if self._stopping:
                    return True
                self._serve_flush()
        return False

    def _take(self) -> list[dict[str, Any]]:
        try:
            first = self._queue.get(timeout=0 if self._stopping else self._tick_s)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [item for item in batch if item is not _WAKE]

    def _seal(self, batch: Sequence[dict[str, Any]]) -> None:
        plugins = self.plugins
        for record in batch:
            plain = False
            try:
                # strict mode ran the plugins and validated on the caller's thread already
                violations = [] if self.strict or plugins is None else plugins.prepare(record)
                if not violations and not self.strict:
                    violations, plain = validate_unsealed(record)
            except Exception as exc:  # noqa: BLE001 - the validator must never stop sealing
                violations = [Violation("$", "internal", f"validator failed: {exc!r}")]
            if violations:
                self.stats.violations += 1
                try:
                    replacement = violation_record(
                        record, violations, application=self.service_name
                    )
                except Exception:  # noqa: BLE001 - input so odd that even a safe copy fails
                    replacement = violation_record(
                        "<unreadable>", violations, application=self.service_name
                    )
                if plugins is not None:
                    self._redact_violation(plugins, replacement, violations)
                self.sealer.seal(replacement)
            else:
                self.sealer.seal(record, plain=plain)
            self.stats.sealed += 1

    def _redact_violation(
        self, plugins: Plugins, replacement: dict[str, Any], violations: list[Violation]
    ) -> None:
        """The copy of the input in a violation record passes the redact hooks too (a card
        number must not reach a sink through a violation record); if one fails, no copy."""
        if not plugins.redact(replacement):
            replacement.get("extensions", {})["rejected"] = "withheld: a redact hook failed"
            replacement.get("result", {})["reason"] = "withheld: a redact hook failed"
            for item in replacement.get("extensions", {}).get("violations", []):
                item["message"] = "withheld"
        plugin_failures = [v for v in violations if v.rule == "plugin_failed"]
        for failure in plugin_failures:
            self._report(failure.message, kind="plugin_failed")
        rules = sorted({v.rule for v in violations})
        event_id = replacement.get("event_id")
        plugins.alert(
            "violation",
            "an audit record was sealed as a violation",
            {"event_id": event_id, "rules": rules, "count": len(violations)},
        )

    def _write(self) -> None:
        if not self._sealed:
            return
        batch = self._sealed[:]
        self._sealed.clear()
        for sink in self._sinks:
            for attempt in range(5):
                try:
                    sink.write(batch)
                    break
                except Exception as exc:  # noqa: BLE001 - sink errors are reported, not raised
                    self.stats.sink_errors += 1
                    self._report(
                        f"sink {type(sink).__name__} failed (attempt {attempt + 1}): {exc!r}",
                        kind="sink_failed",
                    )
                    time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                self._flush_ok = False

    def _flush_sinks(self) -> bool:
        ok = True
        for sink in self._sinks:
            try:
                sink.flush()
            except Exception as exc:  # noqa: BLE001
                ok = False
                self.stats.sink_errors += 1
                self._report(f"sink {type(sink).__name__} failed to flush: {exc!r}", "sink_failed")
        return ok

    def _serve_flush(self) -> None:
        with self._cond:
            wanted = self._flush_wanted
            if self._flush_done >= wanted:
                return
        ok = self._flush_sinks()
        with self._cond:
            self._flush_ok = self._flush_ok and ok
            self._flush_done = wanted
            self._cond.notify_all()

    def _drain_spill(self) -> None:
        """Replay spilled records in order, then return to the queue."""
        while True:
            with self._spill.lock:
                if not self._spill.active:
                    return
                files = self._spill.pending_files()
                if not files:
                    self._spill.active = False
                    return
                self._spill.seal_current()
            self._replay(files)

    def _replay(self, files: list[Path]) -> None:
        for path in files:
            chunk: list[dict[str, Any]] = []
            with open(path, "rb") as handle:
                for line in handle:
                    try:
                        chunk.append(orjson.loads(line))
                    except orjson.JSONDecodeError:
                        continue  # a torn last line of a crashed spill: it was never accepted
                    if len(chunk) >= self._batch_size:
                        self._seal(chunk)
                        self._write()
                        chunk = []
            if chunk:
                self._seal(chunk)
                self._write()
            if self._flush_sinks():  # durable in the sinks before the spill goes
                path.unlink()

    def alert(self, kind: str, message: str) -> None:
        """Pass an alert raised elsewhere (a sink's own thread, e.g. OTLP delivery) to
        ``on_alert`` and to the plugins' ``otel_audit_alert`` (on the worker thread).
        Thread-safe, never raises; the caller has logged it already. A sink with an
        ``on_alert`` attribute left None is bound to it (kind ``delivery``)."""
        if self._alert is not None:
            with contextlib.suppress(Exception):
                self._alert(message)
        if self.plugins is not None:
            self._alerts.append((kind, message))  # sent by the worker's next step

    def _report(self, message: str, kind: str = "internal") -> None:
        internal_log.disabled = False  # dictConfig(disable_existing_loggers=True) must not mute us
        internal_log.warning("otel-audit: %s", message)
        if self._alert is not None:
            with contextlib.suppress(Exception):  # an alert hook must not break the pipeline
                self._alert(message)
        if self.plugins is not None:  # otel_audit_alert, only ever on the worker thread
            self._alerts.append((kind, message))
            if self._worker is None or threading.current_thread() is self._worker:
                self._send_alerts()

    def _send_alerts(self) -> None:
        plugins = self.plugins
        while self._alerts and plugins is not None:
            kind, message = self._alerts.popleft()
            plugins.alert(kind, message, {"origin": self.sealer.origin})  # never raises
