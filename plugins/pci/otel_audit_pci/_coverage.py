"""PCI DSS v4.0 requirement 10.2.1: which required event types a log covers.

10.2.1 asks that audit logs capture seven kinds of events (10.2.1.1–10.2.1.7).
:func:`event_types` says which of them one record is an instance of; :func:`coverage`
counts them over a log, so a gap (say, no record of an audit-log access) is visible
before an assessor finds it. The mapping is a heuristic over category, action, actor
role and resource type; it is listed in the README.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from otel_audit.plugins import block

__all__ = ["EVENT_TYPES", "coverage", "event_types"]

EVENT_TYPES: dict[str, str] = {
    "10.2.1.1": "individual user accesses to cardholder data",
    "10.2.1.2": "actions taken by anyone with administrative access",
    "10.2.1.3": "access to audit logs",
    "10.2.1.4": "invalid logical access attempts",
    "10.2.1.5": "changes to identification and authentication credentials",
    "10.2.1.6": "initialization, stopping or pausing of the audit logs",
    "10.2.1.7": "creation and deletion of system-level objects",
}

_CARDHOLDER_CLASSES = frozenset({"PCI", "CARDHOLDER"})
_CARD_TYPES = frozenset({"payment_card", "card", "cardholder", "cardholder_data"})
_ADMIN_ROLES = frozenset({"admin", "administrator", "root", "superuser", "sysadmin", "dba"})
_DENIED = frozenset({"PERMISSION_DENIED", "ACCESS_DENIED", "LOGIN_FAILED", "LOCKOUT"})
_CREDENTIAL_ACTIONS = frozenset(
    {
        "PASSWORD_CHANGE",
        "PASSWORD_RESET",
        "CREDENTIAL_CHANGE",
        "MFA_CHANGE",
        "PERMISSION_CHANGE",
        "ROLE_CHANGE",
        "PRIVILEGE_ESCALATION",
        "USER_CREATE",
        "USER_DELETE",
        "CREATE_USER",
        "DELETE_USER",
    }
)
_ACCOUNT_TYPES = frozenset({"user", "user_account", "account", "credential", "api_key", "role"})
_LOG_LIFECYCLE = frozenset(
    {"STREAM_START", "STREAM_END", "AUDIT_LOG_START", "AUDIT_LOG_STOP", "AUDIT_LOG_PAUSE"}
)
_SYSTEM_OBJECTS = frozenset(
    {"table", "database", "schema", "index", "view", "trigger", "stored_procedure",
     "system_object", "service", "queue"}
)  # fmt: skip


def event_types(record: Mapping[str, Any]) -> set[str]:
    """The 10.2.1.x event types ``record`` is an instance of."""
    category, action = record.get("category"), record.get("action")
    kind = block(record, "resource").get("type")
    status = block(record, "result").get("status")
    role = block(record, "actor").get("role")
    found = set()
    cardholder = (
        block(record, "pci_context").get("cardholder_data") is True
        or block(record, "resource").get("classification") in _CARDHOLDER_CLASSES
        or block(record, "data_access").get("data_classification") in _CARDHOLDER_CLASSES
        or kind in _CARD_TYPES
    )
    if category == "data_access" and cardholder:
        found.add("10.2.1.1")
    if category == "administrative" or (isinstance(role, str) and role.lower() in _ADMIN_ROLES):
        found.add("10.2.1.2")
    if kind == "audit_log" and category != "integrity":
        found.add("10.2.1.3")
    if action in _DENIED or (category in ("authentication", "security") and status == "FAILURE"):
        found.add("10.2.1.4")
    if action in _CREDENTIAL_ACTIONS or (
        kind in _ACCOUNT_TYPES and action in ("CREATE", "UPDATE", "DELETE")
    ):
        found.add("10.2.1.5")
    if action in _LOG_LIFECYCLE:
        found.add("10.2.1.6")
    if kind in _SYSTEM_OBJECTS and action in ("CREATE", "DELETE", "DROP"):
        found.add("10.2.1.7")
    return found


def coverage(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many records of each 10.2.1.x event type (0: not covered)."""
    counts = dict.fromkeys(EVENT_TYPES, 0)
    for record in records:
        if isinstance(record, Mapping):
            for item in event_types(record):
                counts[item] += 1
    return counts
