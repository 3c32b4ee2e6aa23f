"""Real syslog receivers on 127.0.0.1 for the transport tests, and a throwaway PKI.

Every wait is bounded (``WAIT`` seconds) and every socket is closed by ``close``.
"""

from __future__ import annotations

import datetime
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WAIT = 10.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def octet_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """Split RFC 6587 octet-counted frames (``LEN SP MSG``); returns frames and the rest."""
    frames = []
    while data:
        length, space, rest = data.partition(b" ")
        if not space:
            break
        if not length.isdigit():
            raise AssertionError(f"not octet counting: {data[:40]!r}")
        size = int(length)
        if len(rest) < size:
            break
        frames.append(rest[:size])
        data = rest[size:]
    return frames, data


class UdpListener:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(WAIT)
        self.port: int = self.sock.getsockname()[1]

    def receive(self, count: int) -> list[bytes]:
        return [self.sock.recv(65535) for _ in range(count)]

    def close(self) -> None:
        self.sock.close()


class StreamListener:
    """Accepts TCP (or TLS, with ``context``) connections; keeps each one's bytes."""

    def __init__(self, context: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.context = context
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.received: list[bytearray] = []
        self.errors: list[BaseException] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready or self._stop.is_set():
                continue
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(WAIT)
            if self.context is not None:
                try:
                    conn = self.context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    self.errors.append(exc)
                    conn.close()
                    continue
            buffer = bytearray()
            with self._lock:
                self.received.append(buffer)
                self._conns.append(conn)
            thread = threading.Thread(target=self._read, args=(conn, buffer), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, conn: socket.socket, buffer: bytearray) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([conn], [], [], 0.05)
                if not ready and not (isinstance(conn, ssl.SSLSocket) and conn.pending()):
                    continue
                chunk = conn.recv(65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            with self._lock:
                buffer.extend(chunk)

    def frames(self, count: int) -> list[list[bytes]]:
        """Wait for ``count`` complete frames in all; the frames of each connection."""

        def parsed() -> list[list[bytes]]:
            with self._lock:
                return [octet_frames(bytes(buffer))[0] for buffer in self.received]

        wait_until(lambda: sum(map(len, parsed())) >= count, f"{count} syslog frames")
        return parsed()

    def drop_connections(self) -> None:
        """Close every accepted connection from the server side (a receiver restart)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)
        self.drop_connections()
        self.sock.close()


class Pki:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (PEM files)."""

    def __init__(self, directory: Path, name: str = "test") -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / f"{name}-ca.pem"
        self.cert_file = directory / f"{name}-server.pem"
        self.key_file = directory / f"{name}-server.key"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context
