"""From a log call's ``extra={"audit": {...}}`` annotation to an unsealed audit record.

:func:`compose` runs on the application's thread, so it does only cheap work and never
raises for bad input. It copies the annotation into fresh dicts and lists (the record
never shares a mutable object with the caller), drops ``None`` values like
:func:`otel_audit.records.build`, and fills what the annotation leaves out:

* ``actor`` from the bound :mod:`audit context <otel_audit_logging._context>`; a bound
  ``session_id`` and ``role`` are added when the annotation names the bound actor;
* ``context.source_ip``/``user_agent``/``api_endpoint``/``request_id`` from the binding,
  ``context.application`` = the handler's service name;
* ``result`` = ``{"status": "SUCCESS"}``; ``result.response_code`` from the binding;
* ``metadata.risk_level`` from the log level: CRITICAL → CRITICAL, ERROR → HIGH,
  WARNING → MEDIUM, anything lower → LOW;
* ``extensions.logging`` = ``{"logger": <logger name>, "message": <formatted message,
  at most 4096 characters>, "exception": <exception type, if logged with exc_info>}``
  (the schema's rule: an extension lives under its producer's name), unless the
  annotation's ``extensions`` has a ``logging`` key. The exception's text is left out:
  it may hold data that must not enter an audit record.

Shorthands as in ``build``: ``actor="alice"``, ``resource=("customer", "c-1")``,
``result="FAILURE"``, and a top-level ``risk_level``. Wrongly typed blocks and unknown
keys are kept as given, so that schema validation reports them. When the copy meets a
value that is not plain JSON (a set, bytes, an object, an int beyond ±(2^53−1), a key
that is not a string, nesting deeper than the schema allows), the record is checked at
once on the caller's thread: :class:`Rejected` carries the violations.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import orjson

from otel_audit.errors import Violation
from otel_audit.records import new_event_id, utc_timestamp
from otel_audit.schema import SCHEMA_VERSION, validate
from otel_audit_logging._context import AuditContext

__all__ = ["MAX_MESSAGE_CHARS", "Rejected", "compose", "default_risk"]

MAX_MESSAGE_CHARS: Final = 4096
_TRUNCATED: Final = "…[truncated]"
_MAX_SAFE_INT: Final = 2**53 - 1
_MAX_DEPTH: Final = 20  # above the schema's x-maxDepth of 16: deeper is reported, not copied

# Annotation keys the handler completes with defaults; every other key (category, action,
# the compliance and change blocks, unknown keys for the validator to report) is copied.
_FILLED: Final = frozenset(
    {"actor", "resource", "result", "risk_level", "context", "metadata", "extensions"}
)
# Set by the handler or the sealer, never by an annotation.
_RESERVED: Final = frozenset({"timestamp", "event_id", "version", "integrity"})


class Rejected(Exception):  # noqa: N818 - a control-flow signal, not an error for callers
    """The annotation cannot become a valid record; ``offending`` is what was built."""

    def __init__(self, violations: list[Violation], offending: Any) -> None:
        super().__init__(violations)
        self.violations = violations
        self.offending = offending


def default_risk(levelno: int) -> str:
    """The risk level of a record whose annotation names none (see the module doc)."""
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "HIGH"
    if levelno >= logging.WARNING:
        return "MEDIUM"
    return "LOW"


class _NotPlain(Exception):  # noqa: N818 - internal signal
    pass


def _copy(value: Any, depth: int) -> Any:
    """A fresh copy of plain JSON data without ``None`` in objects; _NotPlain otherwise."""
    kind = type(value)
    if kind is str or kind is bool or kind is float:
        return value
    if kind is int:
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return value
        raise _NotPlain
    if depth >= _MAX_DEPTH:
        raise _NotPlain
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            if item is not None:
                out[key] = _copy(item, depth + 1)
        return out
    if kind is list or kind is tuple:
        return [_copy(item, depth + 1) for item in value]
    raise _NotPlain


# orjson refuses what is not plain JSON (other types, subclasses, non-str keys, ints
# beyond 64 bits, lone surrogates) except UUIDs and enums, which it writes as strings.
_COPY_OPTIONS: Final = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_STRICT_INTEGER
)


def _plain_copy(annotation: Mapping[str, Any]) -> dict[str, Any] | None:
    """A fresh copy through orjson (C speed) when the annotation is plain JSON without
    ``null``; None sends the caller to the walking copy, which also drops ``None``."""
    if type(annotation) is not dict:
        return None
    try:
        data = orjson.dumps(annotation, option=_COPY_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        return None
    if b"null" in data:  # a None to drop (or just the word in a string: the slow path is exact)
        return None
    copied: dict[str, Any] = orjson.loads(data)
    return copied


def _same(value: Any, depth: int) -> Any:
    """The copy function for data that :func:`_plain_copy` has copied already."""
    return value


def _lenient(value: Any, depth: int = 0) -> Any:
    """Like :func:`_copy`, but keeps what is not plain as it is, for the validator to name."""
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {k: _lenient(v, depth + 1) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_lenient(v, depth + 1) for v in value]
    return value


def _message(record: logging.LogRecord) -> str | None:
    try:
        text = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not cost the audit record
        try:
            text = str(record.msg)
        except Exception:  # noqa: BLE001
            return None
    if not isinstance(text, str) or not text:
        return None
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - len(_TRUNCATED)] + _TRUNCATED
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    return text


def compose(
    annotation: Any, record: logging.LogRecord, bound: AuditContext, *, application: str
) -> dict[str, Any]:
    """The unsealed record for ``annotation``; :class:`Rejected` when it is known bad."""
    if type(annotation) is not dict and not isinstance(annotation, Mapping):
        raise Rejected(
            [
                Violation(
                    "$",
                    "type",
                    "the audit annotation must be an object (dict), "
                    f"not {type(annotation).__name__}",
                )
            ],
            annotation,
        )
    try:
        plain = _plain_copy(annotation)
        if plain is not None:
            out = _build(plain, record, bound, application, _same)
        else:
            out = _build(annotation, record, bound, application, _copy)
    except _NotPlain:
        out = _build(annotation, record, bound, application, _lenient)
        try:
            violations = validate(out, sealed=False)
        except Exception as exc:  # noqa: BLE001 - the validator must not break a log call
            violations = [Violation("$", "internal", f"validator failed: {type(exc).__name__}")]
        if not violations:
            # valid after all (e.g. str-based enums): keep plain JSON types only
            try:
                out = orjson.loads(orjson.dumps(out))
            except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
                violations = [Violation("$", "type", f"not JSON data: {exc}")]
        if violations:
            raise Rejected(violations, out) from None
    if not _RESERVED.isdisjoint(annotation.keys()):
        reserved = sorted(k for k in _RESERVED if annotation.get(k) is not None)
        if reserved:
            for key in reserved:
                out[key] = _lenient(annotation[key])
            raise Rejected(
                [
                    Violation(f"$.{k}", "reserved", f"{k} is set by otel-audit, not the annotation")
                    for k in reserved
                ],
                out,
            )
    return out


def _build(
    annotation: Mapping[str, Any],
    record: logging.LogRecord,
    bound: AuditContext,
    application: str,
    copy: Any,
) -> dict[str, Any]:
    now_ns = int(record.created * 1e9)
    out: dict[str, Any] = {
        "timestamp": utc_timestamp(now_ns),
        "event_id": new_event_id(now_ns),
        "version": SCHEMA_VERSION,
    }
    for key, value in annotation.items():
        if value is None or key in _FILLED or key in _RESERVED:
            continue
        if type(key) is not str and copy is _copy:
            raise _NotPlain
        out[key] = copy(value, 1)

    actor = annotation.get("actor")
    if actor is None:
        if bound.actor is not None:
            actor = {"user_id": bound.actor}
    elif isinstance(actor, str):
        actor = {"user_id": copy(actor, 1)}
    else:
        actor = copy(actor, 1)
    if isinstance(actor, dict):
        if "user_id" not in actor and bound.actor is not None:
            actor["user_id"] = bound.actor
        if actor.get("user_id") == bound.actor:
            if bound.session_id is not None:
                actor.setdefault("session_id", bound.session_id)
            if bound.role is not None:
                actor.setdefault("role", bound.role)
    if actor is not None:
        out["actor"] = actor

    resource = annotation.get("resource")
    if isinstance(resource, (tuple, list)) and len(resource) == 2:  # ("type", "id")
        resource = {"type": resource[0], "id": resource[1]}
    if resource is not None:
        out["resource"] = copy(resource, 1)

    context = annotation.get("context")
    context = {} if context is None else copy(context, 1)
    if isinstance(context, dict):
        for name in ("source_ip", "user_agent", "api_endpoint", "request_id"):
            value = getattr(bound, name)
            if value is not None:
                context.setdefault(name, value)
        context.setdefault("application", application)
    out["context"] = context

    result = annotation.get("result")
    if result is None:
        result = {"status": "SUCCESS"}
    elif isinstance(result, str):
        result = {"status": copy(result, 1)}
    else:
        result = copy(result, 1)
    if isinstance(result, dict):
        code = bound.response_code
        if code is not None:
            result.setdefault("response_code", code)
    out["result"] = result

    metadata = annotation.get("metadata")
    metadata = {} if metadata is None else copy(metadata, 1)
    risk = annotation.get("risk_level")
    if isinstance(metadata, dict):
        if risk is not None:
            metadata["risk_level"] = copy(risk, 1)
        else:
            metadata.setdefault("risk_level", default_risk(record.levelno))
    out["metadata"] = metadata

    extensions = annotation.get("extensions")
    extensions = {} if extensions is None else copy(extensions, 1)
    if isinstance(extensions, dict) and "logging" not in extensions:
        origin: dict[str, str] = {}
        if isinstance(record.name, str) and record.name:
            origin["logger"] = record.name
        message = _message(record)
        if message is not None:
            origin["message"] = message
        if record.exc_info and record.exc_info[0] is not None:
            origin["exception"] = record.exc_info[0].__qualname__  # the type: no message
        if origin:
            extensions["logging"] = origin
    out["extensions"] = extensions
    return out
