"""HIPAA plugin for otel-audit (entry point ``hipaa`` on the ``otel_audit`` group)."""

from otel_audit_hipaa._plugin import HipaaPlugin

__all__ = ["HipaaPlugin", "plugin"]

#: The instance the entry point registers (one per process).
plugin = HipaaPlugin()
