"""The one error hierarchy of otel-audit.

::

    AuditError
    ├── AuditValidationError (ValueError)     a record breaks the schema or a plugin rule
    ├── CanonicalizationError (ValueError)    a value has no RFC 8785 form (NaN, big int, ...)
    ├── KeyFormatError (ValueError)            a key file or vkey string is malformed
    ├── NoteError (ValueError)                a signed note or checkpoint is malformed
    ├── ProofError (ValueError)               an inclusion/consistency proof does not verify
    ├── PluginError                           a plugin failed, is misconfigured or misspells a hook
    ├── SealError                             the sealer cannot seal (closed, signer failed)
    ├── StoreError                            the local store cannot be used (locked, closed)
    └── InputError (ValueError)               verifier input cannot be read or parsed

Messages never contain key material or secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuditError",
    "AuditValidationError",
    "CanonicalizationError",
    "InputError",
    "KeyFormatError",
    "NoteError",
    "PluginError",
    "ProofError",
    "SealError",
    "StoreError",
    "Violation",
]


class AuditError(Exception):
    """Base of every error raised by otel-audit."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (a JSON path such as ``$.actor.user_id``) and which rule."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} ({self.rule})"


class AuditValidationError(AuditError, ValueError):
    """A record does not conform to the schema or to a compliance plugin's rules."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = list(violations)
        shown = "; ".join(str(v) for v in self.violations[:5])
        more = len(self.violations) - 5
        super().__init__(
            f"invalid audit record: {shown}" + (f" (+{more} more)" if more > 0 else "")
        )


class CanonicalizationError(AuditError, ValueError):
    """A value cannot be put in RFC 8785 canonical form."""


class KeyFormatError(AuditError, ValueError):
    """A private key file, C2SP skey or vkey string is malformed."""


class NoteError(AuditError, ValueError):
    """A C2SP signed note or tlog checkpoint is malformed."""


class ProofError(AuditError, ValueError):
    """A Merkle proof does not verify; carries the expected and the computed root."""

    def __init__(self, message: str, expected: bytes | None = None, actual: bytes | None = None):
        self.expected = expected
        self.actual = actual
        if expected is not None and actual is not None:
            message = f"{message}: expected {expected.hex()}, computed {actual.hex()}"
        super().__init__(message)


class PluginError(AuditError):
    """A plugin raised, returned something invalid, is misconfigured, or implements a hook
    that does not exist. ``plugin`` names it (None when no single plugin is to blame)."""

    def __init__(self, message: str, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(message)


class SealError(AuditError):
    """The sealer cannot seal a record (it is closed, or its signer failed)."""


class StoreError(AuditError):
    """The local store cannot be used: locked by another process, closed, or misused."""


class InputError(AuditError, ValueError):
    """Verifier input cannot be read or parsed."""
