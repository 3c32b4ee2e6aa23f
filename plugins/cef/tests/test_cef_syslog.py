"""Syslog framing (RFC 5424, RFC 3164) and delivery to real receivers on 127.0.0.1
over UDP (RFC 5426), TCP (RFC 6587 octet counting) and TLS (RFC 5425)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cef_listeners import Pki, StreamListener, UdpListener, wait_until
from cef_support import one_line, parse, record_with, seal

from otel_audit.sealing import SealedRecord
from otel_audit_cef import CefSyslogSink, SyslogFramer, format_cef, make_sink
from otel_audit_cef._transport import _closed_by_peer, tls_context
from otel_audit_cef.syslog import truncate_utf8

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
RFC5424_SEVERITY = {"CRITICAL": 2, "HIGH": 4, "MEDIUM": 5, "LOW": 6}


@pytest.fixture
def records() -> list[SealedRecord]:
    risks = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    return seal(
        [
            record_with(
                metadata__risk_level=risk,
                timestamp=f"2024-0{n + 1}-0{n + 5}T0{n}:30:45.{n}23Z",
                actor__user_id=f"user {n} | a=b \\ \n",
            )
            for n, risk in enumerate(risks)
        ]
    )


def expected_message(sealed: SealedRecord, syslog_format: str, facility: int) -> bytes:
    """The exact message, written out from RFC 5424 §6 / RFC 3164 §4 by hand."""
    record = sealed.record
    pri = facility * 8 + RFC5424_SEVERITY[record["metadata"]["risk_level"]]
    moment = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    if syslog_format == "rfc5424":
        head = f"<{pri}>1 {record['timestamp']} host-1 otel-audit 4242 CEF - "
    else:
        stamp = f"{MONTHS[moment.month - 1]} {moment.day:>2} {moment:%H:%M:%S}"
        head = f"<{pri}>{stamp} host-1 otel-audit: "
    return (head + format_cef(sealed)).encode()


def options(port: int, protocol: str, syslog_format: str, **more: Any) -> dict[str, Any]:
    base = {
        "address": f"127.0.0.1:{port}",
        "protocol": protocol,
        "syslog_format": syslog_format,
        "hostname": "host-1.example.com" if syslog_format == "rfc3164" else "host-1",
        "procid": "4242",
        "facility": "local4",
        "timeout": "5",
    }
    return base | more


def test_rfc5424_exact() -> None:
    record = record_with(timestamp="2024-01-05T04:03:02.001Z", metadata__risk_level="HIGH")
    framer = SyslogFramer(hostname="h", app_name="app", procid="7", facility="authpriv")
    line = format_cef(record)
    assert framer.message(record, line) == (
        b"<84>1 2024-01-05T04:03:02.001Z h app 7 CEF - " + line.encode()
    )


def test_rfc3164_exact_pads_the_day() -> None:
    record = record_with(timestamp="2024-01-05T04:03:02.001Z", metadata__risk_level="CRITICAL")
    framer = SyslogFramer(
        syslog_format="rfc3164", hostname="web-1.prod.example", app_name="app", facility=16
    )
    line = format_cef(record)
    assert framer.message(record, line) == b"<130>Jan  5 04:03:02 web-1 app: " + line.encode()


def test_header_fields_are_printable_ascii() -> None:
    framer = SyslogFramer(hostname="bad host\n", app_name="", procid="p id", msgid="x" * 40)
    prefix = framer.prefix(record_with(timestamp="2024-01-05T04:03:02.001Z"))
    assert prefix == b"<85>1 2024-01-05T04:03:02.001Z bad_host_ - p_id " + b"x" * 32 + b" - "


def test_utf8_bom_option() -> None:
    record = record_with(timestamp="2024-01-05T04:03:02.001Z")
    framer = SyslogFramer(hostname="h", procid="1", utf8_bom=True)
    assert framer.message(record, "CEF:0|x").endswith(b" CEF - \xef\xbb\xbfCEF:0|x")


@pytest.mark.parametrize(
    ("name", "number"), [("kern", 0), ("authpriv", 10), ("audit", 13), ("local7", 23), ("5", 5)]
)
def test_facility_names(name: str, number: int) -> None:
    record = record_with(metadata__risk_level="LOW")
    assert SyslogFramer(facility=name).prefix(record).startswith(f"<{number * 8 + 6}>".encode())


@pytest.mark.parametrize("bad", ["local8", "24", "-1", ""])
def test_bad_facility(bad: str) -> None:
    with pytest.raises(ValueError, match="facility"):
        SyslogFramer(facility=bad)


def test_truncate_utf8_boundaries() -> None:
    assert truncate_utf8("ab😀", 5) == b"ab"  # never half a character
    assert truncate_utf8("ab\\\\cd", 4) == b"ab\\\\"  # a whole escape stays
    assert truncate_utf8("ab\\\\cd", 3) == b"ab"  # half an escape goes
    assert truncate_utf8("abc\\=", 4) == b"abc"


@pytest.fixture
def udp() -> Iterator[UdpListener]:
    listener = UdpListener()
    yield listener
    listener.close()


@pytest.mark.parametrize("syslog_format", ["rfc5424", "rfc3164"])
def test_udp_one_datagram_per_record(
    udp: UdpListener, records: list[SealedRecord], syslog_format: str
) -> None:
    sink = make_sink(options(udp.port, "udp", syslog_format))
    sink.write(records)
    sink.flush()
    sink.close()
    datagrams = udp.receive(len(records))
    assert datagrams == [expected_message(s, syslog_format, 20) for s in records]
    for datagram in datagrams:
        assert one_line(datagram.decode())


def test_udp_datagram_is_size_bounded(udp: UdpListener) -> None:
    (sealed,) = seal([record_with(result__reason="\\" * 3000, context__user_agent="😀" * 900)])
    sink = make_sink(options(udp.port, "udp", "rfc5424", max_message_bytes="1000"))
    sink.write([sealed])
    sink.close()
    (datagram,) = udp.receive(1)
    full = expected_message(sealed, "rfc5424", 20)
    assert len(datagram) <= 1000 < len(full)
    assert full.startswith(datagram)
    text = datagram.decode("utf-8")  # cut on a character boundary
    ext = parse(text[text.index("CEF:0|") :])["extension"]
    assert ext["cs2"] == sealed.record["metadata"]["checksum"]  # identifying fields first
    assert ext["cs4"] == str(sealed.seq)


@pytest.mark.parametrize("syslog_format", ["rfc5424", "rfc3164"])
def test_tcp_octet_counting(records: list[SealedRecord], syslog_format: str) -> None:
    listener = StreamListener()
    try:
        sink = make_sink(options(listener.port, "tcp", syslog_format))
        sink.write(records[:1])
        sink.write(records[1:])
        sink.close()
        (frames,) = listener.frames(len(records))
        assert frames == [expected_message(s, syslog_format, 20) for s in records]
        raw = bytes(listener.received[0])
        assert raw.startswith(b"%d <" % len(frames[0]))
    finally:
        listener.close()


@pytest.mark.parametrize("syslog_format", ["rfc5424", "rfc3164"])
def test_tls_octet_counting_with_verified_certificate(
    tmp_path: Path, records: list[SealedRecord], syslog_format: str
) -> None:
    pki = Pki(tmp_path)
    listener = StreamListener(pki.server_context())
    try:
        sink = make_sink(options(listener.port, "tls", syslog_format, tls_ca_file=str(pki.ca_file)))
        sink.write(records)
        sink.close()
        (frames,) = listener.frames(len(records))
        assert frames == [expected_message(s, syslog_format, 20) for s in records]
        assert listener.errors == []
    finally:
        listener.close()


def test_tls_refuses_an_unknown_ca_unless_verification_is_off(
    tmp_path: Path, records: list[SealedRecord]
) -> None:
    pki, other = Pki(tmp_path / "server"), Pki(tmp_path / "other", "other")
    listener = StreamListener(pki.server_context())
    try:
        sink = make_sink(options(listener.port, "tls", "rfc5424", tls_ca_file=str(other.ca_file)))
        with pytest.raises(ssl.SSLCertVerificationError):
            sink.write(records)
        sink.close()
        insecure = make_sink(
            options(listener.port, "tls", "rfc5424", tls_ca_file=str(other.ca_file),
                    tls_verify="false")
        )  # fmt: skip
        insecure.write(records)
        insecure.close()
        frames = listener.frames(len(records))
        assert frames[-1] == [expected_message(s, "rfc5424", 20) for s in records]
    finally:
        listener.close()


def test_tls_checks_the_host_name(tmp_path: Path, records: list[SealedRecord]) -> None:
    pki = Pki(tmp_path)
    listener = StreamListener(pki.server_context())
    try:
        sink = make_sink(
            options(listener.port, "tls", "rfc5424", tls_ca_file=str(pki.ca_file),
                    tls_server_name="siem.example.com")
        )  # fmt: skip
        with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
            sink.write(records)
        sink.close()
    finally:
        listener.close()


def test_tls_context_defaults() -> None:
    context = tls_context()
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.mark.parametrize("protocol", ["tcp", "tls"])
def test_stream_reconnects_after_the_receiver_closed(
    tmp_path: Path, records: list[SealedRecord], protocol: str
) -> None:
    pki = Pki(tmp_path)
    listener = StreamListener(pki.server_context() if protocol == "tls" else None)
    try:
        sink = make_sink(options(listener.port, protocol, "rfc5424", tls_ca_file=str(pki.ca_file)))
        assert isinstance(sink, CefSyslogSink)
        sink.write(records[:2])
        listener.frames(2)
        listener.drop_connections()
        transport: Any = sink._transport
        wait_until(lambda: _closed_by_peer(transport._sock), "the client to see the close")
        sink.write(records[2:])
        sink.close()
        frames = listener.frames(len(records))
        expected = [expected_message(s, "rfc5424", 20) for s in records]
        assert frames == [expected[:2], expected[2:]]
    finally:
        listener.close()


def test_write_raises_while_the_receiver_is_down_then_recovers(
    records: list[SealedRecord],
) -> None:
    first = StreamListener()
    port = first.port
    sink = make_sink(options(port, "tcp", "rfc5424"))
    assert isinstance(sink, CefSyslogSink)
    second = None
    try:
        sink.write(records[:1])
        first.frames(1)
        first.close()  # receiver gone: the connection is closed and nothing listens
        transport: Any = sink._transport
        wait_until(lambda: _closed_by_peer(transport._sock), "the client to see the close")
        with pytest.raises(ConnectionRefusedError):
            sink.write(records[1:])
        second = StreamListener(port=port)
        sink.write(records[1:])
        (frames,) = second.frames(len(records) - 1)
        assert frames == [expected_message(s, "rfc5424", 20) for s in records[1:]]
    finally:
        sink.close()
        if second is not None:
            second.close()


def test_nothing_listening_raises() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sink = make_sink(options(port, "tcp", "rfc5424"))
    with pytest.raises(ConnectionRefusedError):
        sink.write(seal([record_with()]))
    sink.close()


@pytest.mark.parametrize("protocol", ["tcp", "tls"])
def test_one_connection_for_many_writes(
    tmp_path: Path, records: list[SealedRecord], protocol: str
) -> None:
    """TLS 1.3 session tickets arrive after the handshake: not a reason to reconnect."""
    pki = Pki(tmp_path)
    listener = StreamListener(pki.server_context() if protocol == "tls" else None)
    try:
        sink = make_sink(options(listener.port, protocol, "rfc5424", tls_ca_file=str(pki.ca_file)))
        for index, sealed in enumerate(records):
            sink.write([sealed])
            listener.frames(index + 1)
        sink.close()
        assert len(listener.received) == 1
    finally:
        listener.close()
