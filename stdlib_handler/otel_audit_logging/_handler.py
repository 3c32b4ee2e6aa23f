"""``AuditHandler``: the stdlib ``logging`` front door into the otel-audit pipeline (DESIGN §2).

Only records carrying ``extra={"audit": {...}}`` become audit records; the handler
ignores every other record. On the caller's thread it composes the record (no I/O) and
hands it to an :class:`~otel_audit.pipeline.AuditPipeline`, whose worker validates,
seals and writes it to a :class:`~otel_audit.store.LocalStore`.

The pipeline starts at the first audit record, not at construction: a process that
never audits writes no stream, and a server that configures logging and then forks
workers gets one origin per worker (DESIGN §4). The key file, if configured, is loaded
at construction, so a wrong path fails ``dictConfig`` rather than the first audit call.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Final

from otel_audit.errors import AuditError, AuditValidationError, Violation
from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline, violation_record
from otel_audit.plugins import Plugins, load_plugins
from otel_audit_logging._annotation import Rejected, compose
from otel_audit_logging._config import HandlerSettings, resolve_settings
from otel_audit_logging._context import current_audit_context
from otel_audit_logging._open import GENERATED_KEY_FILE, open_pipeline, report
from otel_audit_logging._process import SealingProcess

__all__ = ["GENERATED_KEY_FILE", "AuditHandler"]

_RETRY_START_S: Final = 1.0  # after a failed start, audit records are lost for this long
_FLUSH_TIMEOUT_S: Final = 30.0

_live: weakref.WeakSet[AuditHandler] = weakref.WeakSet()  # handlers with a running pipeline
_inherited: list[AuditPipeline] = []  # a forked child's copies of its parent's pipelines
_exiting = False


class _Unavailable(Exception):  # noqa: N818 - internal signal: the pipeline cannot run now
    pass


class AuditHandler(logging.Handler):
    """Seal annotated log records into a tamper-evident local audit log.

    ``logger.info("...", extra={"audit": {"category": ..., "action": ..., ...}})``

    Every keyword is optional and falls back to an ``OTEL_AUDIT_*`` environment variable
    (see the README). With ``strict=True`` a bad annotation raises
    :class:`~otel_audit.errors.AuditValidationError` at the log call; otherwise it is
    sealed as a ``security``/``AUDIT_SCHEMA_VIOLATION`` record and the call returns
    normally. No other error ever reaches the application.
    """

    def __init__(
        self,
        *,
        store: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        key_name: str | None = None,
        service_name: str | None = None,
        checkpoint_every: int | str | None = None,
        checkpoint_interval_ms: int | str | None = None,
        fsync_interval_ms: int | str | None = None,
        strict: bool | str | None = None,
        level: int | str | None = None,
        disabled: bool | str | None = None,
        plugins: Mapping[str, Any] | str | None = None,
        disable_plugins: Sequence[str] | str | None = None,
        sinks: Sequence[Mapping[str, Any]] | Mapping[str, Any] | str | None = None,
        otlp_endpoint: str | None = None,
        otlp_protocol: str | None = None,
        otlp_headers: Mapping[str, str] | str | None = None,
        otlp_body: str | None = None,
        sealing: str | None = None,
    ) -> None:
        settings = resolve_settings(
            store=store,
            key_file=key_file,
            key_name=key_name,
            service_name=service_name,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_ms=checkpoint_interval_ms,
            fsync_interval_ms=fsync_interval_ms,
            strict=strict,
            level=level,
            disabled=disabled,
            plugins=plugins,
            disable_plugins=disable_plugins,
            sinks=sinks,
            otlp_endpoint=otlp_endpoint,
            otlp_protocol=otlp_protocol,
            otlp_headers=otlp_headers,
            otlp_body=otlp_body,
            sealing=sealing,
        )
        super().__init__(settings.level)
        self.settings: HandlerSettings = settings
        self._signer: SigningKey | None = None
        if settings.key_file is not None and not settings.disabled:
            self._signer = SigningKey.from_file(settings.key_file, name=settings.key_name)
        # installed plugins (the otel_audit entry points), loaded now so that a broken or
        # misconfigured one fails dictConfig, not the first audit call
        self._plugins: Plugins | None = None
        if not settings.disabled:
            self._plugins = load_plugins(settings.plugins, disable=settings.disable_plugins)
        if settings.otlp_endpoint is not None and not settings.disabled:
            # checked now (dictConfig fails), not when the pipeline starts at the first record
            from otel_audit.otlp import resolve_protocol  # noqa: PLC0415 - loads gRPC

            resolve_protocol(settings.otlp_protocol)
        self._loaded = () if self._plugins is None else tuple(self._plugins.names)
        self._pipeline: AuditPipeline | SealingProcess | None = None
        self._start_lock = threading.Lock()
        self._failed_at = -_RETRY_START_S
        self._start_error = ""

    # -- logging.Handler -------------------------------------------------------------------

    @property
    def strict(self) -> bool:
        return self.settings.strict

    @property
    def plugins(self) -> Plugins | None:
        """The loaded plugins (None when the handler is disabled)."""
        return self._plugins

    @property
    def pipeline(self) -> AuditPipeline | SealingProcess | None:
        """The running pipeline (None before the first audit record and after close):
        a :class:`SealingProcess` with ``sealing="process"``."""
        return self._pipeline

    def emit(self, record: logging.LogRecord) -> None:
        """Seal ``record`` if it carries an ``audit`` annotation; ignore it otherwise."""
        annotation = record.__dict__.get("audit", _ABSENT)
        if annotation is _ABSENT or self.settings.disabled:
            return
        try:
            pipeline = self._pipeline or self._start()
            try:
                prepared = compose(
                    annotation,
                    record,
                    current_audit_context(),
                    application=self.settings.service_name,
                )
            except Rejected as rejected:
                if self.settings.strict:
                    raise AuditValidationError(rejected.violations) from None
                prepared = self._violation(rejected.offending, rejected.violations)
            self._submit(pipeline, prepared)
        except AuditValidationError:
            if self.settings.strict:
                raise
            self.handleError(record)
        except _Unavailable as exc:
            report(logging.ERROR, "audit record LOST (logger %s): %s", record.name, exc)
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise
            self.handleError(record)

    def flush(self) -> bool:  # type: ignore[override]  # logging ignores the result
        """Wait until every audit record so far is sealed and durable; False on failure."""
        pipeline = self._pipeline
        if pipeline is None:
            return True
        return pipeline.flush(_FLUSH_TIMEOUT_S)

    def close(self) -> None:
        """Seal what is queued, write the STREAM_END checkpoint and close the store.

        Idempotent. Logging calls it at interpreter exit (``logging.shutdown``). An audit
        record emitted after ``close`` starts a new stream.
        """
        self.acquire()  # waits for emits in progress (``handle`` holds the same lock)
        try:
            pipeline, self._pipeline = self._pipeline, None
            _live.discard(self)
            if pipeline is not None and not pipeline.close(_FLUSH_TIMEOUT_S):
                report(
                    logging.ERROR,
                    "audit pipeline of %s did not close cleanly (stats %s): %s",
                    self.settings.store,
                    pipeline.stats.as_dict(),
                    "records the sealing process did not acknowledge wait in the spill "
                    "files for the next start"
                    if isinstance(pipeline, SealingProcess)
                    else "a sink did not take everything (OTLP leftovers wait in its spool "
                    "for the next start)",
                )
        finally:
            self.release()
        super().close()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} {str(self.settings.store)!r} ({level})>"

    # -- internals ---------------------------------------------------------------------------

    def _violation(self, offending: Any, violations: list[Violation]) -> dict[str, Any]:
        return violation_record(offending, violations, application=self.settings.service_name)

    def _submit(self, pipeline: AuditPipeline | SealingProcess, prepared: dict[str, Any]) -> None:
        try:
            pipeline.submit(prepared)
        except AuditValidationError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a spill file cannot hold the record
            violation = Violation("$", "internal", f"cannot queue the record: {type(exc).__name__}")
            pipeline.submit(self._violation(prepared, [violation]))

    def _start(self) -> AuditPipeline | SealingProcess:
        with self._start_lock:
            if self._pipeline is not None:
                return self._pipeline
            if _exiting:
                raise _Unavailable("the interpreter is shutting down (audit handlers are closed)")
            if time.monotonic() - self._failed_at < _RETRY_START_S:
                raise _Unavailable(self._start_error)
            try:
                self._pipeline = self._open()
            except (AuditError, OSError, ValueError) as exc:
                self._failed_at = time.monotonic()
                self._start_error = f"cannot start the audit pipeline: {exc}"
                raise _Unavailable(self._start_error) from None
            _live.add(self)
            return self._pipeline

    def _open(self) -> AuditPipeline | SealingProcess:
        if self.settings.sealing == "thread":
            return open_pipeline(self.settings, self._signer, self._plugins)
        added = sorted(set(self._plugins.names if self._plugins else ()) - set(self._loaded))
        if added:
            report(
                logging.WARNING,
                "sealing='process' loads the configured plugins in the sealing process; "
                "the plugins registered on handler.plugins at run time (%s) do not run there",
                ", ".join(added),
            )
        return SealingProcess(self.settings, self._plugins)


_ABSENT: Final = object()


@atexit.register
def _close_at_exit() -> None:
    """Close every running pipeline (runs before ``logging.shutdown``, which is registered
    earlier): covers handlers that logging no longer tracks."""
    global _exiting  # noqa: PLW0603 - one process-wide flag
    _exiting = True
    for handler in list(_live):
        handler.close()


def _after_fork_in_child() -> None:
    """A forked child must not feed its parent's pipeline (its worker thread is gone):
    its next audit record starts a pipeline of its own (its own origin)."""
    for handler in list(_live):
        if isinstance(handler._pipeline, SealingProcess):
            handler._pipeline.forget_after_fork()  # its pipes and spill files are the parent's
        elif handler._pipeline is not None:
            _inherited.append(handler._pipeline)  # never closed here: it is the parent's
        handler._pipeline = None
        handler._start_lock = threading.Lock()
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
