"""``AuditProcessor``: the OpenTelemetry front door (a ``LogRecordProcessor``, SDK 1.45).

An OTel log record is an audit record when its body is a map carrying the annotation
(the record's own field names: ``category``, ``action``, ``actor``, ``resource``,
``result``, ``risk_level``, compliance blocks, ...), or a map with the annotation under
``"audit"``. Other log records are ignored. Missing fields are filled from the OTel
context, in the manner of the semantic conventions:

* ``actor.user_id`` / ``actor.session_id`` from the baggage or log attributes
  ``user.id`` / ``session.id``;
* ``context.source_ip`` / ``user_agent`` / ``api_endpoint`` from ``client.address``,
  ``user_agent.original``, ``url.path``; ``context.application`` from the resource's
  ``service.name``; ``context.trace_id`` / ``span_id`` from the active span;
* ``timestamp`` from the log record (UTC, milliseconds), ``category``/``action`` from an
  ``event_name`` of the form ``audit.<category>.<action>``.

The body is copied (the SDK passes it by reference); the record then goes to an
:class:`~otel_audit.pipeline.AuditPipeline`, which seals it off the caller's thread and
never drops it. Nothing raises into the caller except in ``strict`` mode.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import baggage
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.trace import get_current_span

from otel_audit.errors import AuditValidationError
from otel_audit.pipeline import AuditPipeline, internal_log
from otel_audit.plugins import Plugins, load_plugins
from otel_audit.records import new_event_id, utc_timestamp

__all__ = ["AuditProcessor", "record_from_annotation"]

_CONTEXT_KEYS = (
    ("client.address", "source_ip"),
    ("user_agent.original", "user_agent"),
    ("url.path", "api_endpoint"),
)
_SEVERITY_RISK = ((17, "HIGH"), (13, "MEDIUM"))  # OTel SeverityNumber ERROR=17, WARN=13


def _copy(value: Any, depth: int = 0) -> Any:
    """A deep copy of a JSON-like value; odd leaves are kept for the validator to report."""
    if depth > 64:
        return value
    if isinstance(value, Mapping):
        return {k: _copy(v, depth + 1) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_copy(v, depth + 1) for v in value]
    return value


def record_from_annotation(
    annotation: Mapping[str, Any],
    *,
    lookup: Mapping[str, Any],
    application: str,
    now_ns: int,
    default_risk: str = "LOW",
) -> dict[str, Any]:
    """An unsealed record from an annotation plus what the context knows (``lookup`` maps
    semantic-convention names such as ``user.id`` to values). Never raises: what is wrong
    is left for the schema to report."""
    record = _copy(annotation)
    record.setdefault("timestamp", utc_timestamp(now_ns))
    record.setdefault("event_id", new_event_id(now_ns))
    record.setdefault("version", "1.0")
    actor = record.get("actor")
    if isinstance(actor, str):
        actor = record["actor"] = {"user_id": actor}
    elif actor is None:
        actor = record["actor"] = {}
    if isinstance(actor, dict):
        for attr, key in (("user.id", "user_id"), ("session.id", "session_id")):
            if key not in actor and isinstance(lookup.get(attr), str):
                actor[key] = lookup[attr]
    context = record.setdefault("context", {})
    if isinstance(context, dict):
        for attr, key in _CONTEXT_KEYS:
            if key not in context and isinstance(lookup.get(attr), str):
                context[key] = lookup[attr]
        context.setdefault("application", application)
        for key in ("trace_id", "span_id"):
            if key not in context and isinstance(lookup.get(key), str):
                context[key] = lookup[key]
    result = record.setdefault("result", {"status": "SUCCESS"})
    if isinstance(result, str):
        record["result"] = {"status": result}
    resource = record.get("resource")
    if isinstance(resource, (list, tuple)) and len(resource) == 2:
        record["resource"] = {"type": resource[0], "id": resource[1]}
    metadata = record.setdefault("metadata", {})
    if isinstance(metadata, dict):
        risk = record.pop("risk_level", None)
        metadata.setdefault("risk_level", risk if risk is not None else default_risk)
    return record  # type: ignore[no-any-return]


class AuditProcessor(LogRecordProcessor):
    """Turns annotated OTel log records into sealed audit records.

    Installed plugins (the ``otel_audit`` entry points) are loaded into a pipeline that
    has none: ``plugins`` is their configuration (a mapping or JSON text; default
    ``OTEL_AUDIT_PLUGINS``) or a ready :class:`~otel_audit.plugins.Plugins`,
    ``disable_plugins`` names plugins not to load (default ``OTEL_AUDIT_DISABLE_PLUGINS``;
    ``"*"``: none at all).
    """

    def __init__(
        self,
        pipeline: AuditPipeline,
        *,
        plugins: Plugins | Mapping[str, Any] | str | None = None,
        disable_plugins: Sequence[str] | str | None = None,
    ) -> None:
        self.pipeline = pipeline
        if isinstance(plugins, Plugins):
            pipeline.plugins = plugins
        elif pipeline.plugins is None:
            pipeline.plugins = load_plugins(plugins, disable=disable_plugins)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        try:
            record = self._record(log_record)
            if record is not None:
                self.pipeline.submit(record)
        except AuditValidationError:
            if self.pipeline.strict:
                raise
        except Exception as exc:
            if self.pipeline.strict:
                raise
            internal_log.warning("otel-audit: audit log record not accepted: %r", exc)

    def _record(self, log_record: ReadWriteLogRecord) -> dict[str, Any] | None:
        otel = log_record.log_record
        body = otel.body
        if not isinstance(body, Mapping):
            return None
        annotation = body.get("audit", body)
        if not isinstance(annotation, Mapping):
            annotation = {"rejected": annotation}
        annotation = dict(annotation)
        event = otel.event_name or ""
        if event.startswith("audit.") and event.count(".") >= 2:
            _, category, action = event.split(".", 2)
            annotation.setdefault("category", category)
            annotation.setdefault("action", action.upper())
        lookup: dict[str, Any] = {}
        for source in (baggage.get_all(otel.context) if otel.context else {}, otel.attributes):
            for key, value in (source or {}).items():
                lookup.setdefault(str(key), value)
        span_context = get_current_span(otel.context).get_span_context()
        if span_context.is_valid:
            lookup["trace_id"] = format(span_context.trace_id, "032x")
            lookup["span_id"] = format(span_context.span_id, "016x")
        resource = log_record.resource
        service = resource.attributes.get("service.name") if resource is not None else None
        severity = otel.severity_number.value if otel.severity_number is not None else 0
        risk = next((level for floor, level in _SEVERITY_RISK if severity >= floor), "LOW")
        return record_from_annotation(
            annotation,
            lookup=lookup,
            application=str(service or self.pipeline.service_name),
            now_ns=otel.timestamp or time.time_ns(),
            default_risk=risk,
        )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """True only when every accepted record is sealed and written (unlike the SDK's
        batch processor, a failed export is reported as False)."""
        return self.pipeline.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        self.pipeline.close()
