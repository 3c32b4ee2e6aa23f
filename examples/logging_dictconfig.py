"""Configure AuditHandler with logging.config.dictConfig (the same keys work from JSON/YAML).

    python examples/logging_dictconfig.py OUT_DIR
    otel-audit verify --key OUT_DIR/signing.key.vkey OUT_DIR/audit-log

The signing key lives outside the audit log it signs; in production create it once with
``otel-audit keygen --name <name> --out <file>`` and keep it away from the log's readers.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from pathlib import Path

from otel_audit.keys import SigningKey
from otel_audit_logging import audit_config_change, audit_context, audit_permission_change

out = Path(sys.argv[1] if len(sys.argv) > 1 else "dictconfig-demo")
key_file = out / "signing.key"
if not key_file.exists():
    out.mkdir(parents=True, exist_ok=True)
    SigningKey.generate("dictconfig-example").write(key_file)  # = otel-audit keygen

logging.config.dictConfig(
    {
        "version": 1,
        # keep loggers created before this call (including otel-audit's internal one)
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain"},
            "audit": {
                "class": "otel_audit_logging.AuditHandler",
                "level": "INFO",
                "store": str(out / "audit-log"),
                "key_file": str(key_file),
                "service_name": "dictconfig-example",
                "checkpoint_every": 100,
                "strict": False,
            },
        },
        "loggers": {
            # audit records also show on the console; the console shows the message only
            "app.audit": {"handlers": ["audit", "console"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
    }
)

log = logging.getLogger("app.audit")
with audit_context(actor="ops@example.com", source_ip="2001:db8::7", role="admin"):
    audit_permission_change(log, "bob", before=["viewer"], after=["viewer", "editor"])
    audit_config_change(log, "session_timeout_s", before=900, after=3600, ticket="CHG-42")
    rotate = {"category": "administrative", "action": "BACKUP_ROTATE", "resource": ("backup", "n1")}
    log.info("rotated backups", extra={"audit": rotate})
logging.getLogger("app").warning("an ordinary warning: not audited")
