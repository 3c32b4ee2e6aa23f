"""otel-audit-cef: ArcSight CEF output for otel-audit.

A formatter (:class:`CefFormatter`), file and syslog sinks (UDP, TCP, TLS; RFC 5424 or
RFC 3164 framing), an OpenTelemetry logs exporter (``OTEL_LOGS_EXPORTER=cef``) and the
pluggy hooks ``otel_audit_format``/``otel_audit_sink`` for the name ``cef``.
"""

from otel_audit_cef.cef import CEF_SEVERITY, CefFormatter, cef_severity, format_cef
from otel_audit_cef.exporter import CefLogExporter, options_from_env
from otel_audit_cef.sink import CefFileSink, CefSyslogSink, make_sink
from otel_audit_cef.syslog import SYSLOG_SEVERITY, SyslogFramer

__version__ = "0.1.0"

__all__ = [
    "CEF_SEVERITY",
    "SYSLOG_SEVERITY",
    "CefFileSink",
    "CefFormatter",
    "CefLogExporter",
    "CefSyslogSink",
    "SyslogFramer",
    "__version__",
    "cef_severity",
    "format_cef",
    "make_sink",
    "options_from_env",
]
