"""Sealed audit record → one ArcSight CEF line (Implementing ArcSight CEF, rev. 25/26).

    CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension

The mapping is documented in the plugin's README. The line is a *view* of the record for
a SIEM; the sealed record (its checksum, origin and seq are in the line) stays the
evidence that ``otel-audit verify`` checks.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from importlib import metadata
from typing import Any

from otel_audit.plugins import block
from otel_audit.sealing import SealedRecord
from otel_audit_cef._escape import escape_extension, escape_header

__all__ = [
    "CEF_SEVERITY",
    "DEFAULT_PRODUCT",
    "DEFAULT_VENDOR",
    "CefFormatter",
    "cef_severity",
    "format_cef",
]

DEFAULT_VENDOR = "otel-audit"
DEFAULT_PRODUCT = "otel-audit"

#: metadata.risk_level → CEF Severity (0-10). Each value sits in the ArcSight band of the
#: same name: Low 0-3, Medium 4-6, High 7-8, Very-High 9-10 (CEF rev. 25, "Severity").
CEF_SEVERITY: Mapping[str, int] = {"LOW": 3, "MEDIUM": 5, "HIGH": 8, "CRITICAL": 10}
#: Severity of a record without a known risk level (never a schema-valid record).
UNKNOWN_SEVERITY = 5

# Header field lengths (CEF rev. 25, "Header"): Device Vendor/Product 63, Device Version 31,
# Device Event Class ID 1023, Name 512.
_VENDOR_MAX = 63
_PRODUCT_MAX = 63
_VERSION_MAX = 31
_SIGNATURE_MAX = 1023
_NAME_MAX = 512

# Extension key → maximum length (CEF rev. 25, "ArcSight Extension Dictionary").
_LIMITS: Mapping[str, int] = {
    "externalId": 40,
    "cat": 1023,
    "act": 63,
    "outcome": 63,
    "suser": 1023,
    "spriv": 1023,
    "shost": 1023,
    "dvchost": 100,
    "dproc": 1023,
    "request": 1023,
    "requestClientApplication": 1023,
    "reason": 1023,
    "msg": 1023,
    "flexString1": 1023,
    "flexString2": 1023,
    "cs1": 4000,
    "cs2": 4000,
    "cs3": 4000,
    "cs4": 4000,
    "cs5": 4000,
    "cs6": 4000,
}
_LABEL_MAX = 1023
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def cef_severity(record: Mapping[str, Any]) -> int:
    """CEF Severity of ``record`` from ``metadata.risk_level`` (see :data:`CEF_SEVERITY`)."""
    meta = record.get("metadata")
    risk = meta.get("risk_level") if isinstance(meta, Mapping) else None
    return CEF_SEVERITY.get(risk, UNKNOWN_SEVERITY) if isinstance(risk, str) else UNKNOWN_SEVERITY


def _text(value: Any) -> str:
    """Any JSON value as text: strings as they are, lists comma-joined, objects as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):  # str() refuses more than 4300 digits
        return str(value) if value.bit_length() <= 1024 else "<integer too large>"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(item) for item in value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _int(value: Any) -> int | None:
    """An integer that fits CEF's Long (cnN, rt), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


def _epoch_ms(timestamp: Any) -> int | None:
    """RFC 3339 → milliseconds since the epoch (CEF ``rt`` accepts that form)."""
    if not isinstance(timestamp, str):
        return None
    text = timestamp.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _source(ip: Any) -> tuple[str, str] | None:
    """``("src", ip)`` for an IPv4/IPv6 address, else ``("shost", value)``: CEF ``src``
    holds an address only, so anything else (a host name, an address with a zone)
    goes to ``shost`` rather than being lost."""
    if ip is None:
        return None
    text = _text(ip)
    try:
        if "%" not in text:
            return "src", str(ipaddress.ip_address(text))
    except ValueError:
        pass
    return "shost", text


def _pairs(record: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(CEF key, raw value) in output order; None values are skipped by the caller.

    Short, fixed-form fields come first and free text last, so a size-bounded transport
    that has to cut a line keeps the identifying fields.
    """
    actor, resource = block(record, "actor"), block(record, "resource")
    context, result = block(record, "context"), block(record, "result")
    meta, integrity = block(record, "metadata"), block(record, "integrity")

    yield "rt", _epoch_ms(record.get("timestamp"))
    yield "externalId", record.get("event_id")
    yield "cat", record.get("category")
    yield "act", record.get("action")
    yield "outcome", result.get("status")
    yield "suser", actor.get("user_id")
    source = _source(context.get("source_ip"))
    if source is not None:
        yield source
    yield "cs1Label", "resource"
    yield "cs1", _resource(resource)
    yield "cs2Label", "checksum"
    yield "cs2", meta.get("checksum")
    yield "cs3Label", "origin"
    yield "cs3", integrity.get("origin")
    yield "cs4Label", "seq"
    yield "cs4", integrity.get("seq")
    yield "flexString2Label", "prev_hash"
    yield "flexString2", integrity.get("prev_hash")
    tags = meta.get("compliance_tags")
    if tags is not None:
        yield "cs5Label", "compliance_tags"
        yield "cs5", tags
    for key, label, value in (
        ("cn1", "affected_records", result.get("affected_records")),
        ("cn2", "response_code", result.get("response_code")),
        ("cn3", "retention_years", meta.get("retention_years")),
    ):
        number = _int(value)
        if number is not None:
            yield key + "Label", label
            yield key, number
    if actor.get("session_id") is not None:
        yield "flexString1Label", "session_id"
        yield "flexString1", actor.get("session_id")
    yield "spriv", actor.get("role")
    yield "dvchost", context.get("hostname")
    yield "dproc", context.get("application")
    yield "reason", result.get("error_code")
    yield "request", context.get("api_endpoint")
    yield "requestClientApplication", context.get("user_agent")
    label, value = _cs6(record, resource, integrity)
    if value is not None:
        yield "cs6Label", label
        yield "cs6", value
    yield "msg", result.get("reason")


def _resource(resource: Mapping[str, Any]) -> str | None:
    kind, ident = resource.get("type"), resource.get("id")
    if kind is None and ident is None:
        return None
    return f"{_text(kind if kind is not None else '')}:{_text(ident if ident is not None else '')}"


def _cs6(
    record: Mapping[str, Any], resource: Mapping[str, Any], integrity: Mapping[str, Any]
) -> tuple[str, Any]:
    """cs6 carries what matters most for the record's kind: the signed checkpoint note on
    CHECKPOINT/STREAM_END records, the signer's vkey on STREAM_START/KEY_ROTATION, the
    data classification on ordinary records."""
    if integrity.get("checkpoint") is not None:
        return "checkpoint", integrity["checkpoint"]
    if integrity.get("vkey") is not None:
        return "vkey", integrity["vkey"]
    return "classification", resource.get("classification")


def _extension(record: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for key, value in _pairs(record):
        if value is None:
            continue
        if _int(value) is not None:
            parts.append(f"{key}={value}")
        else:
            parts.append(f"{key}={escape_extension(_text(value), _LIMITS.get(key, _LABEL_MAX))}")
    return " ".join(parts)


class CefFormatter:
    """Formats sealed records as CEF lines; vendor, product and version are configurable.

    ``format`` accepts a :class:`~otel_audit.sealing.SealedRecord` or a record mapping and
    returns exactly one line, without a line break, for any input.
    """

    def __init__(
        self,
        *,
        vendor: str = DEFAULT_VENDOR,
        product: str = DEFAULT_PRODUCT,
        version: str | None = None,
    ) -> None:
        if version is None:
            try:
                version = metadata.version("otel-audit")
            except metadata.PackageNotFoundError:
                version = "0"
        # the fixed part of every header, escaped once
        fixed = (
            escape_header(vendor, _VENDOR_MAX),
            escape_header(product, _PRODUCT_MAX),
            escape_header(version, _VERSION_MAX),
        )
        self._prefix = "CEF:0|" + "|".join(fixed) + "|"

    def format(self, record: SealedRecord | Mapping[str, Any]) -> str:
        data = record.record if isinstance(record, SealedRecord) else record
        category = _text(data.get("category", ""))
        action = _text(data.get("action", ""))
        signature = escape_header(f"{category}:{action}", _SIGNATURE_MAX)
        # Name: the OTel event name of the record (DESIGN §2), audit.<category>.<action>
        name = escape_header(f"audit.{category}.{action.lower()}", _NAME_MAX)
        return f"{self._prefix}{signature}|{name}|{cef_severity(data)}|{_extension(data)}"


_DEFAULT = CefFormatter()


def format_cef(record: SealedRecord | Mapping[str, Any]) -> str:
    """:meth:`CefFormatter.format` with the default vendor, product and version."""
    return _DEFAULT.format(record)
