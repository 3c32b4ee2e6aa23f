"""The hooks a plugin may implement (pluggy, project name ``otel_audit``).

A plugin is any object or module with functions named like the specs below and marked
with :data:`hookimpl`; an installed distribution registers it on the ``otel_audit``
entry-point group. Hooks are always called with keyword arguments, so a plugin may
accept only the arguments it needs, and a spec may gain arguments later without
breaking it (pluggy's own rule).

Order (DESIGN §2): ``enrich`` → ``redact`` → ``validate`` → ``classify_risk`` /
``retention`` run on the pipeline's worker thread *before* sealing, on a private copy
of the record. After sealing, plugins see frozen data only (``format``, sinks, alerts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from otel_audit.errors import Violation
    from otel_audit.keys import Signer
    from otel_audit.sealing import SealedRecord

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "otel_audit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(historic=True)
def otel_audit_configure(config: Mapping[str, Any]) -> None:
    """Receive this plugin's settings once, also when registered late (historic).

    ``config`` maps each plugin name to its own settings mapping (possibly empty);
    a plugin reads ``config.get(<its name>, {})`` and must not mutate it.
    """


@hookspec
def otel_audit_enrich(record: dict[str, Any]) -> None:
    """Add to ``record`` in place (compliance tags, context a plugin knows about)."""


@hookspec
def otel_audit_redact(record: dict[str, Any]) -> None:
    """Remove or mask sensitive values in ``record`` in place (e.g. card numbers)."""


@hookspec
def otel_audit_validate(record: Mapping[str, Any]) -> Sequence[Violation] | None:
    """Return the rules ``record`` breaks (empty or None: none).

    Any violation turns the record into a sealed ``AUDIT_SCHEMA_VIOLATION`` record, or
    an :class:`~otel_audit.errors.AuditValidationError` in strict mode (DESIGN §6).
    """


@hookspec
def otel_audit_classify_risk(record: Mapping[str, Any]) -> str | None:
    """Return a risk level (CRITICAL, HIGH, MEDIUM, LOW) or None; the highest one wins,
    and it never lowers the level the record already has."""


@hookspec
def otel_audit_retention(record: Mapping[str, Any]) -> int | None:
    """Return the minimum retention in years this plugin requires, or None; the longest
    wins, and it never shortens ``metadata.retention_years`` already set."""


@hookspec(firstresult=True)
def otel_audit_format(record: SealedRecord, format_name: str) -> str | None:
    """Render a sealed record for the output named ``format_name`` (e.g. ``"cef"``).

    Return None when this plugin does not provide ``format_name``; the first plugin
    that returns a string wins. The returned text is one line without a line break.
    """


@hookspec(firstresult=True)
def otel_audit_sink(name: str, options: Mapping[str, Any]) -> Any:
    """Return a new sink (``write(batch)``, ``flush()``, ``close()``; see
    :class:`otel_audit.pipeline.Sink`) when ``name`` is one this plugin provides."""


@hookspec(firstresult=True)
def otel_audit_signer(name: str, options: Mapping[str, Any]) -> Signer | None:
    """Return a :class:`~otel_audit.keys.Signer` (a KMS or HSM key in place of a key
    file) when ``name`` is one this plugin provides."""


@hookspec
def otel_audit_alert(kind: str, message: str, details: Mapping[str, Any]) -> None:
    """Receive an internal alert. ``kind`` is one of ``violation`` (a record was sealed
    as a violation; ``details``: event_id, rules, count), ``plugin_failed``, ``spill``,
    ``sink_failed``, ``delivery`` (OTLP export failed, spool full, delivery recovered),
    ``internal`` (details: origin). Called on the pipeline's worker
    thread, never the application's; must not block for long."""
