"""otel-audit: schema-conformant, tamper-evident audit records for OpenTelemetry.

The public surface is re-exported here; everything in ``_``-modules is private.
"""

from typing import TYPE_CHECKING, Any

from otel_audit.errors import (
    AuditError,
    AuditValidationError,
    CanonicalizationError,
    InputError,
    KeyFormatError,
    NoteError,
    PluginError,
    ProofError,
    SealError,
    StoreError,
    Violation,
)
from otel_audit.hookspecs import hookimpl
from otel_audit.keys import Signer, SigningKey, VerifierKey
from otel_audit.plugins import Plugins, load_plugins
from otel_audit.records import build, new_event_id, utc_timestamp
from otel_audit.schema import SCHEMA_VERSION, schema, validate
from otel_audit.sealing import SealedRecord, Sealer
from otel_audit.verify import Finding, Report, Verifier, verify_paths

if TYPE_CHECKING:
    from otel_audit._configure import AuditSetup, configure

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "AuditError",
    "AuditSetup",
    "AuditValidationError",
    "CanonicalizationError",
    "Finding",
    "InputError",
    "KeyFormatError",
    "NoteError",
    "PluginError",
    "Plugins",
    "ProofError",
    "Report",
    "SealError",
    "SealedRecord",
    "Sealer",
    "Signer",
    "SigningKey",
    "StoreError",
    "Verifier",
    "VerifierKey",
    "Violation",
    "__version__",
    "build",
    "configure",
    "hookimpl",
    "load_plugins",
    "new_event_id",
    "schema",
    "utc_timestamp",
    "validate",
    "verify_paths",
]


def __getattr__(name: str) -> Any:
    # configure() needs the OTel SDK; the verifier's modules must not import it (lazy)
    if name in ("configure", "AuditSetup"):
        from otel_audit import _configure  # noqa: PLC0415 - lazy on purpose

        return getattr(_configure, name)
    raise AttributeError(f"module 'otel_audit' has no attribute {name!r}")
