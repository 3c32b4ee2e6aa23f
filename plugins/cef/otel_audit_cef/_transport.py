"""Syslog transports: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425).

* UDP: one message per datagram (RFC 5426 §3.1); the caller bounds its size.
* TCP and TLS: octet-counting framing, ``MSG-LEN SP SYSLOG-MSG`` (RFC 6587 §3.4.1,
  RFC 5425 §4.3), so a message may hold any byte and never splits or merges.
* TLS: :mod:`ssl` with TLS 1.2 as the minimum and certificate plus host name
  verification on (RFC 5425 §5), unless it is explicitly turned off.

A failed send closes the connection and raises :class:`OSError`; the next send opens a
new one. Before each send on a stream, a connection the peer has closed (EOF, reset or
TLS close_notify) is replaced first, so a restarted receiver does not swallow the next
batch.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Sequence

__all__ = ["StreamTransport", "UdpTransport", "tls_context"]


def tls_context(
    *,
    ca_file: str | None = None,
    verify: bool = True,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext:
    """A client context: system CAs (or ``ca_file``), TLS ≥ 1.2, verification on unless
    ``verify`` is False; ``cert_file``/``key_file`` for mutual TLS (RFC 5425 §5.1)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


class UdpTransport:
    """Datagrams to ``host:port`` over a connected UDP socket (so that an ICMP port
    unreachable surfaces as ``ConnectionRefusedError`` on a later send)."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM
            )[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.timeout)
                sock.connect(address)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def send(self, messages: Sequence[bytes]) -> None:
        with self._lock:
            sock = self._connect()
            try:
                for message in messages:
                    sock.send(message)
            except OSError:
                self._drop()
                raise

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class StreamTransport:
    """Octet-counted messages over TCP, or TLS when ``context`` is given."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._context = context
        self._server_hostname = server_hostname or host
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        if self._sock is not None and _closed_by_peer(self._sock):
            self._drop()
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self._context is not None:
                try:
                    sock = self._context.wrap_socket(sock, server_hostname=self._server_hostname)
                except BaseException:
                    sock.close()
                    raise
            self._sock = sock
        return self._sock

    def send(self, messages: Sequence[bytes]) -> None:
        # RFC 6587 §3.4.1 / RFC 5425 §4.3: SYSLOG-FRAME = MSG-LEN SP SYSLOG-MSG
        data = b"".join(b"%d %b" % (len(message), message) for message in messages)
        with self._lock:
            sock = self._connect()
            try:
                sock.sendall(data)
            except OSError:
                self._drop()
                raise

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when the peer has closed the connection (EOF, reset, TLS close_notify).

    A readable socket is not enough: a TLS 1.3 server sends session tickets after the
    handshake (RFC 8446 §4.6.1). So read what is there without blocking; a syslog
    receiver sends no application data, and anything it does send is discarded.
    """
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        data = sock.recv(4096)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return False  # only TLS records without application data
    except OSError:
        return True
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return data == b""
