"""The OTLP form of a sealed record (DESIGN §2 "On the wire"), and a fast encoder for it.

One :class:`~otel_audit.sealing.SealedRecord` is one OTel log record: the body is the
sealed line as a JSON string (or, with ``body="map"``, the record as a map),
``event_name`` is ``audit.<category>.<action lower-case>``, severity follows
``risk_level``, and flat attributes (semantic conventions, then ``audit.*``) serve
search. :func:`log_records` gives SDK ``ReadableLogRecord`` objects for any OTel
exporter; :class:`RequestEncoder` writes the same OTLP ``ExportLogsServiceRequest``
directly in protobuf wire form (opentelemetry-proto ``logs/v1/logs.proto``), several
times cheaper than the SDK's encoder, and a test proves both give equal messages.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_instrumentation_scope,
    _encode_resource,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from otel_audit.sealing import SealedRecord

__all__ = ["BodyMode", "RequestEncoder", "log_records", "make_resource"]

BodyMode = Literal["string", "map"]
_SCOPE = InstrumentationScope("otel_audit", "0.1.0")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_UTC = _dt.timezone.utc
_NO_FLAGS = TraceFlags(0)
_SEVERITY = {
    "LOW": (SeverityNumber.INFO, "INFO"),
    "MEDIUM": (SeverityNumber.INFO, "INFO"),
    "HIGH": (SeverityNumber.WARN, "WARN"),
    "CRITICAL": (SeverityNumber.ERROR, "ERROR"),
}
_DEFAULT_SEVERITY = (SeverityNumber.INFO, "INFO")


# -- SealedRecord → OTel log record -----------------------------------------------------------


class _Resource(Resource):
    """A Resource whose hash is computed once: the SDK encoder hashes it per record."""

    def __init__(self, base: Resource) -> None:
        super().__init__(dict(base.attributes), base.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


def _timestamp_ns(text: Any) -> int:
    """``2024-01-15T14:30:45.123Z`` → ns since the epoch (0 when unreadable)."""
    if not isinstance(text, str) or not text.endswith("Z"):
        return 0
    try:
        moment = _dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=_UTC)
    except ValueError:
        return 0
    return (moment - _EPOCH) // _dt.timedelta(microseconds=1) * 1000


def _hex_id(value: Any, width: int) -> int:
    if isinstance(value, str) and len(value) == width:
        with contextlib.suppress(ValueError):
            return int(value, 16)
    return 0


def _attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """The flat search attributes of DESIGN §2 (semantic conventions, then ``audit.*``)."""
    attrs: dict[str, Any] = {}
    actor = record.get("actor")
    if isinstance(actor, Mapping):
        for key, attr in (("user_id", "user.id"), ("session_id", "session.id")):
            value = actor.get(key)
            if isinstance(value, str):
                attrs[attr] = value
    context = record.get("context")
    if isinstance(context, Mapping):
        for key, attr in (
            ("source_ip", "client.address"),
            ("user_agent", "user_agent.original"),
            ("api_endpoint", "url.path"),
        ):
            value = context.get(key)
            if isinstance(value, str):
                attrs[attr] = value
    result = record.get("result")
    if isinstance(result, Mapping):
        code = result.get("response_code")
        if type(code) is int:
            attrs["http.response.status_code"] = code
    resource = record.get("resource")
    if isinstance(resource, Mapping) and isinstance(resource.get("table"), str):
        attrs["db.collection.name"] = resource["table"]
    if isinstance(record.get("event_id"), str):
        attrs["log.record.uid"] = record["event_id"]
    attrs["audit.category"] = str(record.get("category"))
    attrs["audit.action"] = str(record.get("action"))
    if isinstance(result, Mapping) and isinstance(result.get("status"), str):
        attrs["audit.result"] = result["status"]
    metadata = record.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("risk_level"), str):
        attrs["audit.risk_level"] = metadata["risk_level"]
    integrity = record["integrity"]
    attrs["audit.origin"] = integrity["origin"]
    attrs["audit.seq"] = integrity["seq"]
    return attrs


class _Fields:
    """The log record fields of DESIGN §2 other than body and attributes."""

    __slots__ = ("event_name", "severity", "severity_text", "span_id", "timestamp", "trace_id")

    def __init__(self, record: Mapping[str, Any]) -> None:
        context = record.get("context")
        context = context if isinstance(context, Mapping) else {}
        metadata = record.get("metadata")
        risk = metadata.get("risk_level") if isinstance(metadata, Mapping) else None
        self.severity, self.severity_text = _SEVERITY.get(risk, _DEFAULT_SEVERITY)  # type: ignore[arg-type]
        self.timestamp = _timestamp_ns(record.get("timestamp"))
        self.trace_id = _hex_id(context.get("trace_id"), 32)
        self.span_id = _hex_id(context.get("span_id"), 16)
        self.event_name = f"audit.{record.get('category')}.{str(record.get('action')).lower()}"


def _log_record(
    record: Mapping[str, Any], line: bytes, resource: Resource, body: BodyMode
) -> ReadableLogRecord:
    # The SDK's LogRecord.__init__ looks up the current context and span on every call;
    # the exporter's encoder reads plain attributes only, so set them directly.
    log = LogRecord.__new__(LogRecord)
    f = _Fields(record)
    log.__dict__.update(
        timestamp=f.timestamp,
        observed_timestamp=f.timestamp,
        context=None,
        trace_id=f.trace_id,
        span_id=f.span_id,
        trace_flags=_NO_FLAGS,
        severity_text=f.severity_text,
        severity_number=f.severity,
        body=line.decode("utf-8") if body == "string" else record,
        attributes=_attributes(record),
        event_name=f.event_name,
        exception=None,
    )
    readable = ReadableLogRecord.__new__(ReadableLogRecord)  # frozen dataclass: no setattr
    readable.__dict__.update(
        log_record=log, resource=resource, instrumentation_scope=_SCOPE, limits=None
    )
    return readable


def log_records(
    batch: Sequence[SealedRecord], resource: Resource, *, body: BodyMode = "string"
) -> list[ReadableLogRecord]:
    """The OTel log records (SDK ``ReadableLogRecord``) that carry ``batch`` (DESIGN §2)."""
    return [_log_record(s.record, s.line, resource, body) for s in batch]


def make_resource(
    service_name: str | None = None,
    instance_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Resource:
    """``Resource.create`` (so ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` apply)
    with ``service.name`` and ``service.instance.id`` always set."""
    given: dict[str, Any] = dict(attributes or {})
    if service_name:
        given["service.name"] = service_name
    if instance_id:
        given["service.instance.id"] = instance_id
    resource = Resource.create(given)
    if not resource.attributes.get("service.instance.id"):
        # opentelemetry-sdk >= 1.45 sets a random one itself; older ones leave it out
        fallback = f"{socket.gethostname()}-{os.getpid()}"
        resource = resource.merge(Resource({"service.instance.id": fallback}))
    return _Resource(resource)


# -- protobuf wire form ----------------------------------------------------------------------
# Protocol Buffers encoding (protobuf.dev/programming-guides/encoding): a tag byte is
# (field number << 3) | wire type, wire type 0 varint, 1 fixed64, 2 length-delimited.
# Field numbers from opentelemetry-proto: collector/logs/v1 ExportLogsServiceRequest
# (resource_logs 1); logs/v1 ResourceLogs (resource 1, scope_logs 2, schema_url 3),
# ScopeLogs (scope 1, log_records 2), LogRecord (time_unix_nano 1, severity_number 2,
# severity_text 3, body 5, attributes 6, trace_id 9, span_id 10,
# observed_time_unix_nano 11, event_name 12); common/v1 KeyValue (key 1, value 2),
# AnyValue (string_value 1, bool_value 2, int_value 3). Zero and empty plain fields are
# left out, as proto3 serializers do; a oneof member (AnyValue's) is always written.

_fixed64 = struct.Struct("<Q").pack


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64: two's complement, ten bytes
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _length(payload: bytes) -> bytes:
    n = len(payload)
    return bytes((n,)) if n < 0x80 else _varint(n)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` is one byte: field numbers below 16)."""
    return bytes((tag,)) + _length(payload) + payload


_HEADS: dict[str, bytes] = {}  # attribute name → KeyValue.key field + KeyValue.value tag


def _attribute(key: str, value: Any) -> bytes:
    """One ``LogRecord.attributes`` field: a KeyValue holding ``value``."""
    head = _HEADS.get(key)
    if head is None:
        head = _HEADS[key] = _field(0x0A, key.encode()) + b"\x12"
    # AnyValue is a oneof: the chosen field is written even when it is zero or empty
    if type(value) is str:
        data = value.encode()
        n = len(data)
        size = len(head) + n + 3
        if size < 0x80:  # the common case: every length fits one byte
            return b"\x32" + bytes((size,)) + head + bytes((n + 2, 0x0A, n)) + data
        any_value = _field(0x0A, data)
    elif type(value) is bool:
        any_value = b"\x10\x01" if value else b"\x10\x00"
    else:  # int (the only other type _attributes makes)
        any_value = b"\x18" + _varint(value)
    return _field(0x32, head + _length(any_value) + any_value)


def _log_record_bytes(record: Mapping[str, Any], line: bytes) -> bytes:
    f = _Fields(record)
    parts = [b"\x09" + _fixed64(f.timestamp) if f.timestamp else b""]
    parts.append(b"\x10" + _varint(f.severity.value))
    parts.append(_field(0x1A, f.severity_text.encode()))
    parts.append(_field(0x2A, _field(0x0A, line)))  # body: AnyValue.string_value
    parts.extend(_attribute(key, value) for key, value in _attributes(record).items())
    if f.trace_id:
        parts.append(_field(0x4A, f.trace_id.to_bytes(16, "big")))
    if f.span_id:
        parts.append(_field(0x52, f.span_id.to_bytes(8, "big")))
    if f.timestamp:
        parts.append(b"\x59" + _fixed64(f.timestamp))
    parts.append(_field(0x62, f.event_name.encode()))
    return _field(0x12, b"".join(parts))  # ScopeLogs.log_records


class RequestEncoder:
    """Encodes batches of sealed records for one resource as OTLP requests (string body).

    The result equals ``encode_logs(log_records(batch, resource))`` of the SDK."""

    def __init__(self, resource: Resource) -> None:
        scope = _field(0x0A, _encode_instrumentation_scope(_SCOPE).SerializeToString())
        self._resource = _field(0x0A, _encode_resource(resource).SerializeToString())
        self._schema = _field(0x1A, resource.schema_url.encode()) if resource.schema_url else b""
        self._scope = scope

    def encode(self, batch: Sequence[tuple[Mapping[str, Any], bytes]]) -> bytes:
        """``batch`` of (record, sealed line) pairs → serialized ExportLogsServiceRequest."""
        scope_logs = self._scope + b"".join(_log_record_bytes(r, line) for r, line in batch)
        resource_logs = self._resource + _field(0x12, scope_logs) + self._schema
        return _field(0x0A, resource_logs)

    def request(self, batch: Sequence[tuple[Mapping[str, Any], bytes]]) -> Any:
        """The same as an ``ExportLogsServiceRequest`` message."""
        return ExportLogsServiceRequest.FromString(self.encode(batch))
