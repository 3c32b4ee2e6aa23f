"""Lock the plugin's public surface (a change here is an API change)."""

from __future__ import annotations

import otel_audit_cef


def test_all() -> None:
    assert sorted(otel_audit_cef.__all__) == sorted(
        [
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
    )
    for name in otel_audit_cef.__all__:
        assert hasattr(otel_audit_cef, name)
