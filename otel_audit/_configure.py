"""``otel_audit.configure()``: one call from nothing to a sealed audit log (local and/or OTLP).

For applications that use OpenTelemetry logs: it builds the sinks (a
:class:`~otel_audit.store.LocalStore`, an :class:`~otel_audit.otlp.OTLPSink`, or both —
then every record goes to both), the :class:`~otel_audit.pipeline.AuditPipeline` and an
:class:`~otel_audit.processor.AuditProcessor` on an audit ``LoggerProvider`` (a new one,
or the application's own with ``logger_provider=``). ``service_name``, ``key_file``,
``key_name``, ``store`` and the ``otlp_*`` keywords fall back to ``OTEL_AUDIT_*``
variables (``OTEL_AUDIT_STORE``, ``OTEL_AUDIT_OTLP_ENDPOINT``, ...; see docs/otlp.md),
then ``service_name`` to ``OTEL_SERVICE_NAME``; the other keywords have no variable.
With neither a store nor an OTLP endpoint the store is ``./audit-log``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry._logs import Logger
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource

from otel_audit.errors import AuditError, KeyFormatError
from otel_audit.keys import Signer, SigningKey
from otel_audit.otlp import OTLPSink
from otel_audit.pipeline import AuditPipeline, Sink
from otel_audit.processor import AuditProcessor
from otel_audit.store import LocalStore

__all__ = ["AuditSetup", "configure"]

internal_log = logging.getLogger("otel_audit.internal")
DEFAULT_STORE = "./audit-log"
DEFAULT_STATE = "./otel-audit-state"  # spool, spill and development key without a store
_DEV_KEY = "audit.key"


@dataclass
class AuditSetup:
    """What :func:`configure` built. ``logger.emit(body={...audit annotation...})`` audits."""

    provider: LoggerProvider
    pipeline: AuditPipeline
    processor: AuditProcessor
    sinks: list[Sink] = field(default_factory=list)

    @property
    def logger(self) -> Logger:
        """An OTel logger of the audit provider (scope ``otel_audit``)."""
        return self.provider.get_logger("otel_audit")

    def flush(self, timeout: float = 30.0) -> bool:
        """True only when every record so far is sealed and delivered to every sink."""
        return self.pipeline.flush(timeout)

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Seal the STREAM_END, deliver, close the sinks; False if anything was not delivered
        (OTLP leftovers wait in the spool for the next start)."""
        ok = self.pipeline.close(timeout)
        self.provider.shutdown()
        return ok


def _env(name: str, given: Any, environ: Mapping[str, str]) -> Any:
    if given is not None:
        return given
    value = environ.get(f"OTEL_AUDIT_{name.upper()}", "").strip()
    return value or None


def configure(
    *,
    service_name: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    key_name: str | None = None,
    store: str | os.PathLike[str] | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    otlp_headers: Mapping[str, str] | str | None = None,
    otlp_body: str | None = None,
    otlp_spool_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    checkpoint_every: int = 1024,
    checkpoint_interval_ms: int = 1000,
    on_alert: Callable[[str], None] | None = None,
    logger_provider: LoggerProvider | None = None,
    signer: Signer | None = None,
    environ: Mapping[str, str] | None = None,
) -> AuditSetup:
    """Set up sealed audit logging on an OTel ``LoggerProvider`` (see the module docstring).

    ``otlp_endpoint="env"`` sends over OTLP configured by the standard
    ``OTEL_EXPORTER_OTLP_*`` variables alone.
    """
    env = os.environ if environ is None else environ
    service = (
        _env("service_name", service_name, env)
        or env.get("OTEL_SERVICE_NAME", "").strip()
        or "unknown_service"
    )
    store_dir = _env("store", store, env)
    endpoint = _env("otlp_endpoint", otlp_endpoint, env)
    if store_dir is None and endpoint is None:
        store_dir = DEFAULT_STORE
    state = Path(store_dir if store_dir is not None else DEFAULT_STATE).expanduser().absolute()
    key_path = _env("key_file", key_file, env)
    name = _env("key_name", key_name, env)
    if signer is None:
        signer = (
            SigningKey.from_file(key_path, name=name)
            if key_path is not None
            else _development_key(state, name)
        )

    sinks: list[Sink] = []
    local: LocalStore | None = None
    try:
        if endpoint is not None:
            spool = _env("otlp_spool_dir", otlp_spool_dir, env) or state / ".otlp-spool"
            sinks.append(
                OTLPSink(
                    None if endpoint == "env" else endpoint,
                    protocol=_env("otlp_protocol", otlp_protocol, env),
                    headers=_env("otlp_headers", otlp_headers, env),
                    body=_env("otlp_body", otlp_body, env) or "string",
                    service_name=service,
                    spool_dir=spool,
                )
            )
        # after the OTLP sink: its fsynced spool holds a batch before the store can record
        # a checkpoint that vouches for it (a crash leaves no gap on the OTLP side)
        if store_dir is not None:
            local = LocalStore(state)
            sinks.append(local)
        pipeline = AuditPipeline(
            signer,
            sinks,
            service_name=service,
            strict=strict,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_ms=checkpoint_interval_ms,
            previous_checkpoint=local.previous_checkpoint() if local is not None else None,
            spill_dir=state / ".spill",
            on_alert=on_alert,
        )
    except BaseException:
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - report, keep the original error
                internal_log.warning("otel-audit: closing %r failed: %r", sink, exc)
        raise
    provider = logger_provider or LoggerProvider(
        resource=Resource.create({"service.name": service})
    )
    processor = AuditProcessor(pipeline)
    provider.add_log_record_processor(processor)
    return AuditSetup(provider, pipeline, processor, sinks)


def _development_key(directory: Path, name: str | None) -> SigningKey:
    """``<directory>/audit.key``, created if needed, with a loud warning (development only)."""
    path = directory / _DEV_KEY
    try:
        key = SigningKey.from_file(path, name=name)
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        key = SigningKey.generate(name or "otel-audit-dev")
        try:
            key.write(path)
        except FileExistsError:
            key = SigningKey.from_file(path, name=name)
    except KeyFormatError as exc:
        raise AuditError(f"cannot load the development key {path}: {exc}") from None
    internal_log.disabled = False
    internal_log.warning(
        "otel-audit: using the development signing key %s; configure key_file= "
        "(OTEL_AUDIT_KEY_FILE) for production; verify with --key %s.vkey",
        path,
        path,
    )
    return key
