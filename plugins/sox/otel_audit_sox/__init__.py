"""SOX plugin for otel-audit (entry point ``sox`` on the ``otel_audit`` group)."""

from otel_audit_sox._plugin import SoxPlugin

__all__ = ["SoxPlugin", "plugin"]

#: The instance the entry point registers (one per process).
plugin = SoxPlugin()
