"""The pluggy hooks, the file sink, sink options, and the plugin in the real pipeline."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

import pluggy
import pytest
from cef_listeners import StreamListener
from cef_support import one_line, parse, record_with, seal

from otel_audit import hookspecs
from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline
from otel_audit.plugins import load_plugins
from otel_audit.testing import sample_record, seal_stream
from otel_audit.verify import Verifier
from otel_audit_cef import CefFileSink, CefSyslogSink, format_cef, make_sink, plugin
from otel_audit_cef._transport import StreamTransport, UdpTransport


@pytest.fixture
def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="cef")
    pm.check_pending()
    return pm


def test_entry_point_is_registered() -> None:
    (entry,) = importlib.metadata.entry_points(group="otel_audit", name="cef")
    assert entry.load() is plugin


def test_format_hook(manager: pluggy.PluginManager) -> None:
    (sealed,) = seal([record_with(actor__user_id="x|y=z\n")])
    assert manager.hook.otel_audit_format(record=sealed, format_name="cef") == format_cef(sealed)
    assert manager.hook.otel_audit_format(record=sealed, format_name="leef") is None


def test_sink_hook(manager: pluggy.PluginManager, tmp_path: Path) -> None:
    sink = manager.hook.otel_audit_sink(name="cef", options={"path": str(tmp_path / "a.cef")})
    assert isinstance(sink, CefFileSink)
    sink.close()
    assert manager.hook.otel_audit_sink(name="otlp", options={}) is None


def test_configure_sets_vendor_product_version(manager: pluggy.PluginManager) -> None:
    manager.hook.otel_audit_configure.call_historic(
        kwargs={"config": {"cef": {"vendor": "Acme", "product": "Ledger", "version": 2}}}
    )
    try:
        (sealed,) = seal([record_with()])
        line = manager.hook.otel_audit_format(record=sealed, format_name="cef")
        assert line.startswith("CEF:0|Acme|Ledger|2|")
    finally:
        plugin.otel_audit_configure(config={})
    line = plugin.otel_audit_format(record=sealed, format_name="cef")
    assert line is not None
    assert line.startswith("CEF:0|otel-audit|otel-audit|")


def test_through_the_plugin_manager(tmp_path: Path) -> None:
    plugins = load_plugins({}, disable=[], environ={})
    assert "cef" in plugins.names
    (sealed,) = seal([record_with(result__reason="a\r\nb")])
    assert plugins.format(sealed, "cef") == format_cef(sealed)
    (sink,) = plugins.sinks(f"cef:path={tmp_path / 'audit.cef'}")
    assert isinstance(sink, CefFileSink)
    sink.write([sealed])
    sink.close()
    assert (tmp_path / "audit.cef").read_text() == format_cef(sealed) + "\n"


def test_file_sink_appends_one_line_per_record(tmp_path: Path) -> None:
    key = SigningKey.generate("cef-file")
    _, records = seal_stream(key, 5, checkpoint_every=2)
    path = tmp_path / "audit.cef"
    for half in (records[:3], records[3:]):  # a second sink appends
        sink = make_sink({"path": str(path)})
        sink.write(half)
        sink.flush()
        sink.close()
    lines = path.read_bytes().decode().split("\n")
    assert lines[-1] == ""
    assert lines[:-1] == [format_cef(s) for s in records]
    assert [parse(line)["extension"]["cs4"] for line in lines[:-1]] == [str(s.seq) for s in records]
    assert oct(path.stat().st_mode & 0o777) == oct(0o640 & ~_umask())


def test_file_sink_raises_after_close(tmp_path: Path) -> None:
    sink = CefFileSink(tmp_path / "x.cef")
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        sink.write(seal([record_with()]))


def test_file_sink_write_error_is_raised(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        CefFileSink(tmp_path)


def test_string_options() -> None:
    sink = make_sink(
        {
            "address": "[::1]:6514",
            "protocol": "TLS",
            "syslog_format": "RFC3164",
            "facility": "17",
            "timeout": "2.5",
            "tls_verify": "false",
            "utf8_bom": "0",
            "vendor": "V",
        }
    )
    assert isinstance(sink, CefSyslogSink)
    transport: Any = sink._transport
    assert isinstance(transport, StreamTransport)
    assert (transport.host, transport.port, transport.timeout) == ("::1", 6514, 2.5)
    sink.close()
    udp = make_sink({"address": "localhost", "max_message_bytes": "2048"})
    assert isinstance(udp._transport, UdpTransport)  # type: ignore[union-attr]
    assert (udp._transport.port, udp._max) == (514, 2048)  # type: ignore[union-attr]
    udp.close()
    kern = make_sink({"address": "localhost", "facility": 0, "timeout": "", "utf8_bom": None})
    assert kern._framer.facility == 0  # type: ignore[union-attr]
    assert kern._transport.timeout == 10.0  # type: ignore[union-attr]
    kern.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one"),
        ({"path": "/tmp/x", "address": "h:1"}, "exactly one"),
        ({"address": "h:1", "protocol": "http"}, "protocol"),
        ({"address": "h:99999"}, "address"),
        ({"address": "[::1"}, "address"),
        ({"address": "h:1", "syslog_format": "rfc9999"}, "syslog_format"),
        ({"address": "h:1", "tls_verify": "maybe"}, "boolean"),
        ({"address": "h:1", "max_message_bytes": "100"}, "480"),
        ({"address": "h:1", "timeout": "0"}, "timeout"),
        ({"adress": "h:1"}, "unknown CEF sink option"),
    ],
)
def test_bad_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_sink(options)


def test_in_the_real_pipeline_over_tcp() -> None:
    """The real pipeline's worker writes every sealed record, its own included, as CEF."""
    key = SigningKey.generate("cef-pipeline")
    listener = StreamListener()
    sink = make_sink({"address": f"127.0.0.1:{listener.port}", "protocol": "tcp"})
    captured: list[Any] = []

    class Tee:  # keeps what the pipeline sealed, to compare with what arrived
        def write(self, batch: Any) -> None:
            captured.extend(batch)

        def flush(self) -> None: ...

        def close(self) -> None: ...

    pipeline = AuditPipeline(key, [sink, Tee()], service_name="svc", checkpoint_every=4)
    try:
        for i in range(10):
            pipeline.submit(sample_record(i))
        assert pipeline.flush(timeout=10)
        assert pipeline.close(timeout=10)
        frames = [f for conn in listener.frames(len(captured)) for f in conn]
    finally:
        listener.close()
    lines = [frame.decode().split(" - ", 1)[1] for frame in frames]
    assert lines == [format_cef(s) for s in captured]
    assert all(one_line(line) for line in lines)
    assert {s.action for s in captured} >= {"STREAM_START", "CHECKPOINT", "STREAM_END"}
    # the seq/checksum columns a SIEM keeps are those of a verifiable stream
    verifier = Verifier([key.verifier()])
    for sealed in captured:
        verifier.add(sealed.record, sealed.line, "pipeline")
    assert verifier.finish().intact(strict=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
