"""A tiny application writing audit records through AuditHandler.

    python examples/minimal_app.py [STORE_DIR]        (default: $OTEL_AUDIT_STORE or ./audit-log)
    otel-audit verify --key STORE_DIR/audit.key.vkey STORE_DIR

Without a configured key the handler generates a development key in the store (and says
so on stderr); production sets key_file= or OTEL_AUDIT_KEY_FILE.
"""

from __future__ import annotations

import logging
import os
import sys

from otel_audit_logging import AuditHandler, audit_context, audit_login, audit_read, audit_update

store = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OTEL_AUDIT_STORE", "./audit-log")
audit = logging.getLogger("minimal_app.audit")
audit.setLevel(logging.INFO)  # audit events are INFO and above: keep them enabled
audit.addHandler(AuditHandler(store=store, service_name="minimal-app"))

with audit_context(actor="alice@example.com", session_id="sess-1", source_ip="192.0.2.10"):
    audit_login(audit, "alice@example.com", success=True, mfa=True)
    audit_read(audit, "customer", "c-42", records=1)
    audit_update(audit, "customer", "c-42", before={"tier": "silver"}, after={"tier": "gold"})
    export = {"category": "data_access", "action": "EXPORT", "resource": ("report", "2024-01")}
    audit.info("exported the monthly report", extra={"audit": export})
audit.info("not an audit record: ignored by the audit handler")
print(f"audit log in {store}; verify: otel-audit verify --key {store}/audit.key.vkey {store}")
# logging.shutdown() at exit closes the handler: it seals the rest and writes STREAM_END
