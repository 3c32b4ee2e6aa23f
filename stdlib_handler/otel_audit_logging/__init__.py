"""otel-audit for stdlib ``logging``: a handler, context binding, typed helpers, middleware.

::

    log = logging.getLogger("app.audit")
    log.addHandler(AuditHandler(store="/var/lib/app/audit", key_file="/etc/app/audit.key"))
    with audit_context(actor="alice@example.com", source_ip="192.0.2.10"):
        audit_read(log, "customer", "c-42", records=1)

Everything in ``_``-modules is private; this module re-exports the public surface.
"""

from otel_audit_logging._context import (
    AuditBinding,
    AuditContext,
    audit_context,
    bind_audit_context,
    current_audit_context,
    reset_audit_context,
)
from otel_audit_logging._handler import AuditHandler
from otel_audit_logging._helpers import (
    audit_batch,
    audit_config_change,
    audit_create,
    audit_delete,
    audit_lockout,
    audit_login,
    audit_permission_change,
    audit_read,
    audit_update,
)
from otel_audit_logging._middleware import AuditASGIMiddleware, AuditWSGIMiddleware

__version__ = "0.1.0"

__all__ = [
    "AuditASGIMiddleware",
    "AuditBinding",
    "AuditContext",
    "AuditHandler",
    "AuditWSGIMiddleware",
    "__version__",
    "audit_batch",
    "audit_config_change",
    "audit_context",
    "audit_create",
    "audit_delete",
    "audit_lockout",
    "audit_login",
    "audit_permission_change",
    "audit_read",
    "audit_update",
    "bind_audit_context",
    "current_audit_context",
    "reset_audit_context",
]
