"""Shared helpers of the PCI plugin tests."""

from __future__ import annotations

from typing import Any

from otel_audit.plugins import Plugins, load_plugins
from otel_audit.records import build
from otel_audit_pci import PciPlugin


def pci_plugins(settings: dict[str, Any] | None = None, *, cef: bool = False) -> Plugins:
    """A fresh PCI plugin (own settings) through a real plugin manager; with ``cef``, the
    installed plugins too except the installed ``pci`` instance."""
    plugin = ("pci-test", PciPlugin())
    config = {"pci": settings or {}}
    if cef:  # the installed cef plugin (entry point), and this pci instance
        return load_plugins(config, disable=["pci", "gdpr", "hipaa", "sox"], extra=[plugin])
    return load_plugins(config, entry_points=False, extra=[plugin])


def card_record(**extra: Any) -> dict[str, Any]:
    """A complete record about cardholder data (every 10.2.2 element present)."""
    fields: dict[str, Any] = {
        "category": "data_access",
        "action": "READ",
        "actor": {"user_id": "clerk@shop.example"},
        "resource": {"type": "payment_card", "id": "card-77", "classification": "PCI"},
        "result": "SUCCESS",
        "risk_level": "MEDIUM",
        "context": {"source_ip": "198.51.100.4", "application": "checkout"},
    }
    fields.update(extra)
    return build(**fields)
