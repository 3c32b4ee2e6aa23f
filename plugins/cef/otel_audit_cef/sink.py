"""CEF sinks for the otel-audit pipeline (``write(batch)``, ``flush()``, ``close()``).

* :class:`CefFileSink` appends one CEF line per record to a file; ``flush`` fsyncs.
* :class:`CefSyslogSink` sends one syslog message per record over UDP, TCP or TLS.

Both raise from ``write`` (``OSError``) so that the pipeline retries and reports; a
syslog sink reconnects on its next write. :func:`make_sink` builds either from the
options of ``otel_audit_sink(name="cef", options=...)``, which may all be strings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from otel_audit.sealing import SealedRecord
from otel_audit_cef._transport import StreamTransport, UdpTransport, tls_context
from otel_audit_cef.cef import CefFormatter
from otel_audit_cef.syslog import SyslogFramer

__all__ = ["OPTIONS", "CefFileSink", "CefSyslogSink", "make_sink", "parse_address"]

Item = SealedRecord | Mapping[str, Any]

#: Every option :func:`make_sink` accepts (anything else is a configuration error).
OPTIONS = frozenset(
    {
        "path", "address", "protocol", "syslog_format", "facility", "app_name", "hostname",
        "procid", "msgid", "utf8_bom", "timeout", "max_message_bytes",
        "tls_ca_file", "tls_verify", "tls_server_name", "tls_cert_file", "tls_key_file",
        "vendor", "product", "version",
    }
)  # fmt: skip
PROTOCOLS = ("udp", "tcp", "tls")
DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}  # RFC 5426 §3.3, RFC 6587, RFC 5425 §4.1
#: UDP payload bound: RFC 5426 §3.2 lets a receiver truncate above 2048 octets, but
#: common receivers (rsyslog, syslog-ng, ArcSight) take 8 KiB; RFC 3164 §4.1 says 1024.
DEFAULT_UDP_MAX = {"rfc5424": 8192, "rfc3164": 1024}
_FILE_MODE = 0o640


def _record(item: Item) -> Mapping[str, Any]:
    return item.record if isinstance(item, SealedRecord) else item


class CefFileSink:
    """Appends CEF lines (``\\n``-terminated) to ``path``; ``flush`` and ``close`` fsync."""

    def __init__(self, path: str | os.PathLike[str], formatter: CefFormatter | None = None) -> None:
        self.path = os.fspath(path)
        self._formatter = formatter or CefFormatter()
        self._lock = threading.Lock()
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE
        )

    def write(self, batch: Sequence[Item]) -> None:
        if not batch:
            return
        data = "".join(self._formatter.format(item) + "\n" for item in batch).encode("utf-8")
        with self._lock:
            fd = self._open_fd()
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]

    def flush(self) -> None:
        with self._lock:
            os.fsync(self._open_fd())

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"CEF file sink {self.path!r} is closed")
        return self._fd


class CefSyslogSink:
    """Sends each record as one syslog message carrying its CEF line.

    ``max_message_bytes`` bounds a UDP datagram (the CEF line is cut to fit, at a
    character boundary and never inside an escape); streams are not bounded.
    """

    def __init__(
        self,
        transport: UdpTransport | StreamTransport,
        framer: SyslogFramer | None = None,
        formatter: CefFormatter | None = None,
        *,
        max_message_bytes: int | None = None,
    ) -> None:
        self._transport = transport
        self._framer = framer or SyslogFramer()
        self._formatter = formatter or CefFormatter()
        self._max = max_message_bytes

    def write(self, batch: Sequence[Item]) -> None:
        if not batch:
            return
        messages = [
            self._framer.message(_record(item), self._formatter.format(item), self._max)
            for item in batch
        ]
        self._transport.send(messages)

    def flush(self) -> None:
        """Nothing is buffered: each ``write`` has handed its messages to the kernel."""

    def close(self) -> None:
        self._transport.close()


def parse_address(address: str, protocol: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, or a bare host (default port of ``protocol``)."""
    text = address.strip()
    host, port = text, str(DEFAULT_PORTS[protocol])
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"bad syslog address {address!r}: missing ']'")
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise ValueError(f"bad syslog address {address!r}")
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad syslog address {address!r}: expected host:port")
    return host, int(port)


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"option {name!r} must be a boolean, not {value!r}")


def _given(options: Mapping[str, Any], name: str, default: Any) -> Any:
    """The option's value, or ``default`` when it is absent, None or an empty string."""
    value = options.get(name)
    return default if value is None or value == "" else value


def _str(options: Mapping[str, Any], name: str) -> str | None:
    value = _given(options, name, None)
    return None if value is None else str(value)


def make_sink(options: Mapping[str, Any]) -> CefFileSink | CefSyslogSink:
    """A CEF sink from options (values may be strings); see the README for each option.

    Exactly one of ``path`` (a file) or ``address`` (syslog ``host:port``) is required.
    """
    unknown = set(options) - OPTIONS
    if unknown:
        raise ValueError(f"unknown CEF sink option(s): {', '.join(sorted(unknown))}")
    formatter = CefFormatter(
        vendor=_str(options, "vendor") or "otel-audit",
        product=_str(options, "product") or "otel-audit",
        version=_str(options, "version"),
    )
    path, address = _str(options, "path"), _str(options, "address")
    if path is not None and address is None:
        return CefFileSink(path, formatter)
    if address is None or path is not None:
        raise ValueError("the CEF sink needs exactly one of 'path' or 'address'")
    protocol = (_str(options, "protocol") or "udp").lower()
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    syslog_format = (_str(options, "syslog_format") or "rfc5424").lower()
    framer = SyslogFramer(
        syslog_format=syslog_format,
        facility=_given(options, "facility", "authpriv"),
        hostname=_str(options, "hostname"),
        app_name=_str(options, "app_name") or "otel-audit",
        procid=_str(options, "procid"),
        msgid=_str(options, "msgid") or "CEF",
        utf8_bom=_bool(_given(options, "utf8_bom", False), "utf8_bom"),
    )
    host, port = parse_address(address, protocol)
    verify = _bool(_given(options, "tls_verify", True), "tls_verify")
    timeout = float(_given(options, "timeout", 10.0))
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    transport: UdpTransport | StreamTransport
    max_bytes: int | None = None
    if protocol == "udp":
        transport = UdpTransport(host, port, timeout=timeout)
        max_bytes = int(_given(options, "max_message_bytes", DEFAULT_UDP_MAX[syslog_format]))
        if max_bytes < 480:  # RFC 5426 §3.2: every receiver takes 480 octets
            raise ValueError("max_message_bytes must be at least 480")
    else:
        context = None
        if protocol == "tls":
            context = tls_context(
                ca_file=_str(options, "tls_ca_file"),
                verify=verify,
                cert_file=_str(options, "tls_cert_file"),
                key_file=_str(options, "tls_key_file"),
            )
        transport = StreamTransport(
            host,
            port,
            timeout=timeout,
            context=context,
            server_hostname=_str(options, "tls_server_name"),
        )
    return CefSyslogSink(transport, framer, formatter, max_message_bytes=max_bytes)
