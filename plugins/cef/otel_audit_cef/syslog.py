"""Syslog message framing for CEF lines: RFC 5424 and RFC 3164 (BSD).

    RFC 5424 §6:  <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
    RFC 3164 §4:  <PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG

PRI = facility * 8 + severity (RFC 5424 §6.2.1); the severity comes from the record's
``metadata.risk_level`` (:data:`SYSLOG_SEVERITY`). TIMESTAMP is the record's own time
(when the audited event happened), in UTC. The transport framing (RFC 6587 octet
counting, RFC 5426 datagrams) is in :mod:`otel_audit_cef._transport`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "FACILITIES",
    "SYSLOG_SEVERITY",
    "SyslogFramer",
    "parse_facility",
    "syslog_severity",
    "truncate_utf8",
]

#: RFC 5424 §6.2.1 Table 1, plus the usual names (``security`` is 4 as in syslog.h's
#: LOG_AUTH alias; ``audit`` is 13, "log audit").
FACILITIES: Mapping[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "security": 4, "syslog": 5,
    "lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12,
    "audit": 13, "alert": 14, "clock": 15,
    **{f"local{n}": 16 + n for n in range(8)},
}  # fmt: skip

#: metadata.risk_level → syslog severity (RFC 5424 §6.2.1 Table 2):
#: CRITICAL → 2 Critical, HIGH → 4 Warning, MEDIUM → 5 Notice, LOW → 6 Informational.
SYSLOG_SEVERITY: Mapping[str, int] = {"CRITICAL": 2, "HIGH": 4, "MEDIUM": 5, "LOW": 6}
UNKNOWN_SEVERITY = 5
FORMATS = ("rfc5424", "rfc3164")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_PRINTUSASCII = re.compile(r"[^!-~]")  # RFC 5424 §6: PRINTUSASCII = %d33-126
_NOT_TAG = re.compile(r"[^!-~]|[:\[\]]")  # RFC 3164 §4.1.3: the TAG ends at ':' or '['
_BOM = b"\xef\xbb\xbf"


def parse_facility(value: int | str) -> int:
    """A facility number from a name (``local0``), a number or a numeric string."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, str) and value.strip().lower() in FACILITIES:
        return FACILITIES[value.strip().lower()]
    else:
        raise ValueError(f"unknown syslog facility {value!r}")
    if not 0 <= number <= 23:
        raise ValueError(f"syslog facility {number} is outside 0..23")
    return number


def _field(value: str, limit: int, pattern: re.Pattern[str] = _NOT_PRINTUSASCII) -> str:
    """A header field: PRINTUSASCII only (others → ``_``), at most ``limit`` characters,
    NILVALUE ``-`` when empty (RFC 5424 §6.2)."""
    text = pattern.sub("_", value)[:limit]
    return text or "-"


def truncate_utf8(line: str, max_bytes: int) -> bytes:
    """``line`` as UTF-8 cut to at most ``max_bytes`` bytes: on a character boundary and
    never after half of a CEF escape (an odd run of trailing backslashes loses one)."""
    data = line.encode("utf-8")
    if len(data) <= max_bytes:
        return data
    cut = data[: max(max_bytes, 0)].decode("utf-8", "ignore")  # drops a split character
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:
        cut = cut[:-1]
    return cut.encode("utf-8")


def _moment(record: Mapping[str, Any]) -> datetime:
    stamp = record.get("timestamp")
    if isinstance(stamp, str):
        text = stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is not None:
                return moment.astimezone(timezone.utc)
        except (ValueError, OverflowError):
            pass
    return datetime.now(timezone.utc)


def syslog_severity(record: Mapping[str, Any]) -> int:
    """Syslog severity of ``record`` from ``metadata.risk_level`` (:data:`SYSLOG_SEVERITY`)."""
    meta = record.get("metadata")
    risk = meta.get("risk_level") if isinstance(meta, Mapping) else None
    if not isinstance(risk, str):
        return UNKNOWN_SEVERITY
    return SYSLOG_SEVERITY.get(risk, UNKNOWN_SEVERITY)


class SyslogFramer:
    """Builds one syslog message (bytes) around one CEF line.

    ``hostname`` defaults to this host's name (RFC 3164: its first label only),
    ``procid`` to this process id. With ``utf8_bom`` the RFC 5424 MSG starts with a BOM
    (MSG-UTF8, §6.4); by default it is sent as MSG-ANY, which CEF receivers expect.
    """

    def __init__(
        self,
        *,
        syslog_format: str = "rfc5424",
        facility: int | str = "authpriv",
        hostname: str | None = None,
        app_name: str = "otel-audit",
        procid: str | None = None,
        msgid: str = "CEF",
        utf8_bom: bool = False,
    ) -> None:
        if syslog_format not in FORMATS:
            raise ValueError(f"syslog_format must be one of {FORMATS}, not {syslog_format!r}")
        self.syslog_format = syslog_format
        self.facility = parse_facility(facility)
        host = hostname if hostname is not None else socket.gethostname()
        self._bom = _BOM if utf8_bom and syslog_format == "rfc5424" else b""
        if syslog_format == "rfc5424":
            # RFC 5424 §6.2.4-6.2.7: HOSTNAME 255, APP-NAME 48, PROCID 128, MSGID 32
            self._fixed = " ".join(
                (
                    _field(host, 255),
                    _field(app_name, 48),
                    _field(procid if procid is not None else str(os.getpid()), 128),
                    _field(msgid, 32),
                    "-",  # no STRUCTURED-DATA
                )
            )
        else:
            # RFC 3164 §4.1.2: HOSTNAME without the domain (an IP address stays whole);
            # §4.1.3: TAG at most 32 characters, then ": " and the CONTENT.
            if not _is_ip(host):
                host = host.split(".", 1)[0]
            self._fixed = f"{_field(host, 255)} {_field(app_name, 32, _NOT_TAG)}:"

    def prefix(self, record: Mapping[str, Any]) -> bytes:
        """Everything of the message before the CEF line (including the separating space)."""
        pri = self.facility * 8 + syslog_severity(record)
        moment = _moment(record)
        if self.syslog_format == "rfc5424":
            # RFC 5424 §6.2.3: RFC 3339 full-date "T" full-time, here UTC with milliseconds
            stamp = (
                f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment:%H:%M:%S}"
                f".{moment.microsecond // 1000:03d}Z"
            )
            return f"<{pri}>1 {stamp} {self._fixed} ".encode("ascii") + self._bom
        # RFC 3164 §4.1.2: "Mmm dd hh:mm:ss", the day space-padded
        stamp = f"{_MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S}"
        return f"<{pri}>{stamp} {self._fixed} ".encode("ascii")

    def message(self, record: Mapping[str, Any], line: str, max_bytes: int | None = None) -> bytes:
        """The whole message; with ``max_bytes`` the CEF line is cut to fit (see
        :func:`truncate_utf8`)."""
        head = self.prefix(record)
        if max_bytes is None:
            return head + line.encode("utf-8")
        return head + truncate_utf8(line, max_bytes - len(head))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
