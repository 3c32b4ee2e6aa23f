"""An OpenTelemetry ``LogRecordExporter`` that writes sealed audit records as CEF.

Registered on the ``opentelemetry_logs_exporter`` entry-point group as ``cef``, so
``OTEL_LOGS_EXPORTER=cef`` selects it in the SDK's auto-configuration, which builds it
without arguments: it then reads its settings from the environment
(:data:`ENVIRONMENT`). A log record is exported when its body is a sealed audit record,
either the wire form as a JSON string (DESIGN §2) or the structured map; any other log
record is skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_audit_cef.sink import CefFileSink, CefSyslogSink, make_sink

__all__ = ["ENVIRONMENT", "CefLogExporter", "options_from_env"]

internal_log = logging.getLogger("otel_audit.internal")
internal_log.propagate = False  # never the application's handlers (see pipeline.py)

#: Environment variable → sink option (see the README for each option).
ENVIRONMENT: Mapping[str, str] = {
    "OTEL_EXPORTER_CEF_PATH": "path",
    "OTEL_EXPORTER_CEF_ENDPOINT": "address",
    "OTEL_EXPORTER_CEF_PROTOCOL": "protocol",
    "OTEL_EXPORTER_CEF_SYSLOG_FORMAT": "syslog_format",
    "OTEL_EXPORTER_CEF_FACILITY": "facility",
    "OTEL_EXPORTER_CEF_APP_NAME": "app_name",
    "OTEL_EXPORTER_CEF_HOSTNAME": "hostname",
    "OTEL_EXPORTER_CEF_TIMEOUT": "timeout",
    "OTEL_EXPORTER_CEF_MAX_MESSAGE_BYTES": "max_message_bytes",
    "OTEL_EXPORTER_CEF_CERTIFICATE": "tls_ca_file",
    "OTEL_EXPORTER_CEF_TLS_VERIFY": "tls_verify",
    "OTEL_EXPORTER_CEF_TLS_SERVER_NAME": "tls_server_name",
    "OTEL_EXPORTER_CEF_CLIENT_CERTIFICATE": "tls_cert_file",
    "OTEL_EXPORTER_CEF_CLIENT_KEY": "tls_key_file",
    "OTEL_EXPORTER_CEF_VENDOR": "vendor",
    "OTEL_EXPORTER_CEF_PRODUCT": "product",
    "OTEL_EXPORTER_CEF_VERSION": "version",
}


def options_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The sink options set in ``environ`` (default: ``os.environ``).

    ``OTEL_EXPORTER_CEF_TIMEOUT`` is in milliseconds, like ``OTEL_EXPORTER_OTLP_TIMEOUT``.
    """
    env = os.environ if environ is None else environ
    options = {opt: env[var] for var, opt in ENVIRONMENT.items() if env.get(var, "") != ""}
    if "timeout" in options:
        options["timeout"] = str(float(options["timeout"]) / 1000.0)
    return options


class CefLogExporter(LogRecordExporter):
    """Formats log records that carry a sealed audit record as CEF into a CEF sink.

    ``sink`` defaults to one built from the environment (:func:`options_from_env`);
    a missing or bad configuration raises ``ValueError`` here, at start-up.
    """

    def __init__(self, sink: CefFileSink | CefSyslogSink | None = None) -> None:
        self._sink = sink if sink is not None else make_sink(options_from_env())
        self.skipped = 0  # log records that were not sealed audit records

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        records = []
        for log in batch:
            record = audit_body(log.log_record.body)
            if record is None:
                self.skipped += 1
            else:
                records.append(record)
        try:
            self._sink.write(records)
        except (OSError, ValueError) as exc:
            internal_log.error("otel-audit CEF exporter: %r", exc)
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            self._sink.flush()
        except (OSError, ValueError) as exc:
            internal_log.error("otel-audit CEF exporter: %r", exc)
            return False
        return True

    def shutdown(self) -> None:
        try:
            self._sink.close()
        except OSError as exc:
            internal_log.error("otel-audit CEF exporter: %r", exc)


def audit_body(body: Any) -> Mapping[str, Any] | None:
    """The sealed audit record in a log record body (JSON string or map), else None."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        if '"integrity"' not in body:
            return None
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(body, Mapping):
        return None
    integrity, metadata = body.get("integrity"), body.get("metadata")
    if not (
        isinstance(integrity, Mapping)
        and "origin" in integrity
        and "seq" in integrity
        and isinstance(metadata, Mapping)
        and "checksum" in metadata
    ):
        return None
    return body
