"""otel-audit: schema-conformant, tamper-evident audit records for OpenTelemetry.

The public surface is re-exported here; everything in ``_``-modules is private.
"""

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

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "AuditError",
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
    "hookimpl",
    "load_plugins",
    "new_event_id",
    "schema",
    "utc_timestamp",
    "validate",
    "verify_paths",
]
