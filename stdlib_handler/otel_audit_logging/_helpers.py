"""Typed one-liners for the common audit events, over any ``logging.Logger``.

Each helper logs one record with an ``audit`` annotation, so it goes through whatever
:class:`~otel_audit_logging.AuditHandler` the logger reaches (and is ignored by its other
handlers' audit logic). The actor defaults to the bound :func:`audit_context`; pass
``actor=`` to name someone else. ``risk_level=`` overrides the default risk:

=========================  ======================  ===========  ===================================
helper                     category / action       level        default risk
=========================  ======================  ===========  ===================================
audit_login                authentication/LOGIN    INFO/WARNING LOW; MEDIUM when it failed
audit_lockout              authentication/LOCKOUT  WARNING      HIGH
audit_read                 data_access/READ        INFO         LOW; MEDIUM for sensitive data
audit_create               data_access/CREATE      INFO         LOW; MEDIUM for sensitive data
audit_update               data_access/UPDATE      INFO         MEDIUM; HIGH for sensitive data
audit_delete               data_access/DELETE      WARNING      HIGH
audit_permission_change    administrative/...      WARNING      HIGH
audit_config_change        administrative/...      WARNING      HIGH
audit_batch                data_access/BATCH_...   INFO/WARNING LOW; MEDIUM when any item failed
=========================  ======================  ===========  ===================================

"Sensitive" is a ``classification`` of PII, PHI, PCI, FINANCIAL, CONFIDENTIAL or
RESTRICTED. The logger must be enabled for the level (an audit logger set to WARNING
drops INFO events like any other record).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from otel_audit.records import RiskLevel
from otel_audit_logging._context import current_audit_context

__all__ = [
    "SENSITIVE_CLASSIFICATIONS",
    "audit_batch",
    "audit_config_change",
    "audit_create",
    "audit_delete",
    "audit_lockout",
    "audit_login",
    "audit_permission_change",
    "audit_read",
    "audit_update",
]

SENSITIVE_CLASSIFICATIONS: Final = frozenset(
    {"PII", "PHI", "PCI", "FINANCIAL", "CONFIDENTIAL", "RESTRICTED"}
)


def _emit(
    logger: logging.Logger, level: int, message: str, args: tuple[Any, ...], audit: dict[str, Any]
) -> None:
    # stacklevel 3: the record names the helper's caller, not this module
    logger.log(level, message, *args, extra={"audit": audit}, stacklevel=3)


def _risk(given: RiskLevel | None, classification: str | None, normal: str, raised: str) -> str:
    if given is not None:
        return given
    return raised if classification in SENSITIVE_CLASSIFICATIONS else normal


def _resource(
    resource_type: str, resource_id: str, table: str | None, classification: str | None
) -> dict[str, Any]:
    return {
        "type": resource_type,
        "id": resource_id,
        "table": table,
        "classification": classification,
    }


def _present(**values: Any) -> dict[str, Any] | None:
    """The given values without ``None``; None when nothing is left (no empty block)."""
    kept = {k: v for k, v in values.items() if v is not None}
    return kept or None


def _changes(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str | None,
    approver: str | None,
    ticket: str | None,
) -> dict[str, Any] | None:
    return _present(
        before_state=before,
        after_state=after,
        change_reason=reason,
        approver=approver,
        change_ticket=ticket,
    )


def audit_login(
    logger: logging.Logger,
    user: str,
    *,
    success: bool,
    reason: str | None = None,
    mfa: bool | None = None,
    method: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """A login attempt by ``user`` (the claimed identity); ``reason`` says why it failed.

    ``method`` (e.g. ``password``, ``sso``) and ``mfa`` go to ``extensions``. Never pass
    the password or any credential.
    """
    _emit(
        logger,
        logging.INFO if success else logging.WARNING,
        "login succeeded for %s" if success else "login failed for %s",
        (user,),
        {
            "category": "authentication",
            "action": "LOGIN",
            "actor": user,
            "resource": {"type": "user_account", "id": user},
            "result": {"status": "SUCCESS" if success else "FAILURE", "reason": reason},
            "risk_level": risk_level or ("LOW" if success else "MEDIUM"),
            "extensions": {"auth_method": method, "mfa": mfa},
        },
    )


def audit_lockout(
    logger: logging.Logger,
    user: str,
    *,
    failed_attempts: int | None = None,
    reason: str | None = None,
    actor: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """The account ``user`` was locked; the actor is ``actor``, the bound actor, or ``system``."""
    who = actor or current_audit_context().actor
    _emit(
        logger,
        logging.WARNING,
        "account %s locked",
        (user,),
        {
            "category": "authentication",
            "action": "LOCKOUT",
            "actor": who if who is not None else {"user_id": "system", "type": "system"},
            "resource": {"type": "user_account", "id": user},
            "result": {"status": "SUCCESS", "reason": reason},
            "risk_level": risk_level or "HIGH",
            "extensions": {"failed_attempts": failed_attempts},
        },
    )


def audit_read(
    logger: logging.Logger,
    resource_type: str,
    resource_id: str,
    *,
    records: int | None = None,
    table: str | None = None,
    classification: str | None = None,
    fields: Iterable[str] | None = None,
    purpose: str | None = None,
    actor: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """A read of ``resource_type``/``resource_id`` returning ``records`` records."""
    _emit(
        logger,
        logging.INFO,
        "read %s %s",
        (resource_type, resource_id),
        {
            "category": "data_access",
            "action": "READ",
            "actor": actor,
            "resource": _resource(resource_type, resource_id, table, classification),
            "result": {"status": "SUCCESS", "affected_records": records},
            "risk_level": _risk(risk_level, classification, "LOW", "MEDIUM"),
            "data_access": _present(
                record_count=records,
                data_classification=classification,
                fields=None if fields is None else list(dict.fromkeys(fields)),
                purpose=purpose,
            ),
        },
    )


def audit_create(
    logger: logging.Logger,
    resource_type: str,
    resource_id: str,
    *,
    after: Mapping[str, Any] | None = None,
    table: str | None = None,
    classification: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """``resource_type``/``resource_id`` was created (``after``: its initial state)."""
    _emit(
        logger,
        logging.INFO,
        "created %s %s",
        (resource_type, resource_id),
        {
            "category": "data_access",
            "action": "CREATE",
            "actor": actor,
            "resource": _resource(resource_type, resource_id, table, classification),
            "result": {"status": "SUCCESS", "affected_records": 1},
            "risk_level": _risk(risk_level, classification, "LOW", "MEDIUM"),
            "change_tracking": _changes(None, after, reason, None, None),
        },
    )


def audit_update(
    logger: logging.Logger,
    resource_type: str,
    resource_id: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
    approver: str | None = None,
    ticket: str | None = None,
    table: str | None = None,
    classification: str | None = None,
    actor: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """``resource_type``/``resource_id`` changed from ``before`` to ``after``."""
    _emit(
        logger,
        logging.INFO,
        "updated %s %s",
        (resource_type, resource_id),
        {
            "category": "data_access",
            "action": "UPDATE",
            "actor": actor,
            "resource": _resource(resource_type, resource_id, table, classification),
            "result": {"status": "SUCCESS", "affected_records": 1},
            "risk_level": _risk(risk_level, classification, "MEDIUM", "HIGH"),
            "change_tracking": _changes(before, after, reason, approver, ticket),
        },
    )


def audit_delete(
    logger: logging.Logger,
    resource_type: str,
    resource_id: str,
    *,
    before: Mapping[str, Any] | None = None,
    reason: str | None = None,
    approver: str | None = None,
    ticket: str | None = None,
    table: str | None = None,
    classification: str | None = None,
    actor: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """``resource_type``/``resource_id`` was deleted (``before``: its last state)."""
    _emit(
        logger,
        logging.WARNING,
        "deleted %s %s",
        (resource_type, resource_id),
        {
            "category": "data_access",
            "action": "DELETE",
            "actor": actor,
            "resource": _resource(resource_type, resource_id, table, classification),
            "result": {"status": "SUCCESS", "affected_records": 1},
            "risk_level": risk_level or "HIGH",
            "change_tracking": _changes(before, None, reason, approver, ticket),
        },
    )


def audit_permission_change(
    logger: logging.Logger,
    subject: str,
    *,
    before: Iterable[str] = (),
    after: Iterable[str] = (),
    reason: str | None = None,
    approver: str | None = None,
    ticket: str | None = None,
    actor: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """The permissions (or roles) of account ``subject`` changed from ``before`` to ``after``."""
    old, new = sorted(set(before)), sorted(set(after))
    _emit(
        logger,
        logging.WARNING,
        "permissions of %s changed: granted %s, revoked %s",
        (subject, sorted(set(new) - set(old)), sorted(set(old) - set(new))),
        {
            "category": "administrative",
            "action": "PERMISSION_CHANGE",
            "actor": actor,
            "resource": {"type": "user_account", "id": subject},
            "risk_level": risk_level or "HIGH",
            "change_tracking": _changes(
                {"permissions": old}, {"permissions": new}, reason, approver, ticket
            ),
        },
    )


def audit_config_change(
    logger: logging.Logger,
    setting: str,
    *,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
    approver: str | None = None,
    ticket: str | None = None,
    actor: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """Configuration ``setting`` changed from ``before`` to ``after`` (JSON values).

    Never pass secret values: log that a secret changed, not what it is.
    """
    _emit(
        logger,
        logging.WARNING,
        "configuration %s changed",
        (setting,),
        {
            "category": "administrative",
            "action": "CONFIG_CHANGE",
            "actor": actor,
            "resource": {"type": "configuration", "id": setting},
            "risk_level": risk_level or "HIGH",
            "change_tracking": _changes(
                None if before is None else {"value": before},
                None if after is None else {"value": after},
                reason,
                approver,
                ticket,
            ),
        },
    )


def audit_batch(
    logger: logging.Logger,
    batch_id: str,
    *,
    total: int,
    succeeded: int,
    failed: int,
    duration_ms: float,
    errors: Iterable[str] = (),
    action: str = "BATCH_PROCESS",
    resource_type: str = "batch",
    actor: str | None = None,
    risk_level: RiskLevel | None = None,
) -> None:
    """A batch job's outcome: SUCCESS without failures, FAILURE when nothing succeeded,
    PARTIAL otherwise. ``errors`` is a short summary (e.g. ``["validation_failed: 13"]``)."""
    if failed == 0:
        status = "SUCCESS"
    elif succeeded == 0:
        status = "FAILURE"
    else:
        status = "PARTIAL"
    summary = list(errors)
    _emit(
        logger,
        logging.WARNING if failed else logging.INFO,
        "batch %s: %d of %d succeeded, %d failed",
        (batch_id, succeeded, total, failed),
        {
            "category": "data_access",
            "action": action,
            "actor": actor,
            "resource": {"type": resource_type, "id": batch_id},
            "result": {"status": status, "affected_records": succeeded},
            "risk_level": risk_level or ("MEDIUM" if failed else "LOW"),
            "batch_context": {
                "batch_id": batch_id,
                "total_records": total,
                "successful_records": succeeded,
                "failed_records": failed,
                "processing_duration_ms": duration_ms,
                "error_summary": summary or None,
            },
        },
    )
