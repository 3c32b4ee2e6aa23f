"""PCI DSS plugin for otel-audit (entry point ``pci`` on the ``otel_audit`` group).

Masks primary account numbers everywhere in a record before it is sealed, checks the
requirement 10.2.2 audit-trail elements on records about cardholder data, keeps them at
least a year, and reports requirement 10.2.1 event-type coverage
(``otel-audit pci coverage``).
"""

from otel_audit_pci._coverage import EVENT_TYPES, coverage, event_types
from otel_audit_pci._pan import luhn_valid, mask_pans
from otel_audit_pci._plugin import PciPlugin, missing_elements
from otel_audit_pci._redact import mask_record

__all__ = [
    "EVENT_TYPES",
    "PciPlugin",
    "coverage",
    "event_types",
    "luhn_valid",
    "mask_pans",
    "mask_record",
    "missing_elements",
    "plugin",
]

#: The instance the entry point registers (one per process; ``otel_audit_configure``
#: gives it its settings).
plugin = PciPlugin()
