"""The pluggy plugin (entry point ``cef`` on the ``otel_audit`` group).

* ``otel_audit_configure``: reads ``vendor``, ``product``, ``version`` from the ``cef``
  settings for the formatter that ``otel_audit_format`` uses.
* ``otel_audit_format(record, format_name="cef")``: the record's CEF line.
* ``otel_audit_sink(name="cef", options)``: a CEF file or syslog sink
  (:func:`otel_audit_cef.sink.make_sink`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_audit.hookspecs import hookimpl
from otel_audit.sealing import SealedRecord
from otel_audit_cef.cef import DEFAULT_PRODUCT, DEFAULT_VENDOR, CefFormatter
from otel_audit_cef.sink import CefFileSink, CefSyslogSink, make_sink

__all__ = ["NAME", "otel_audit_configure", "otel_audit_format", "otel_audit_sink"]

#: The format and sink name this plugin provides.
NAME = "cef"

_formatter = CefFormatter()


@hookimpl
def otel_audit_configure(config: Mapping[str, Any]) -> None:
    global _formatter  # noqa: PLW0603 - one formatter per process, replaced by configuration
    settings = config.get(NAME) or {}
    if not isinstance(settings, Mapping):
        raise TypeError(f"the {NAME!r} plugin settings must be a mapping")
    version = settings.get("version")
    _formatter = CefFormatter(
        vendor=str(settings.get("vendor") or DEFAULT_VENDOR),
        product=str(settings.get("product") or DEFAULT_PRODUCT),
        version=None if version is None else str(version),
    )


@hookimpl
def otel_audit_format(record: SealedRecord, format_name: str) -> str | None:
    return _formatter.format(record) if format_name == NAME else None


@hookimpl
def otel_audit_sink(name: str, options: Mapping[str, Any]) -> CefFileSink | CefSyslogSink | None:
    return make_sink(options) if name == NAME else None
