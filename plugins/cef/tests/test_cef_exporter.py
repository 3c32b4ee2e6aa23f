"""CefLogExporter through the OpenTelemetry SDK: LoggerProvider + processors, the
``opentelemetry_logs_exporter`` entry point, and OTEL_LOGS_EXPORTER=cef auto-configuration."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from cef_listeners import StreamListener
from opentelemetry.sdk._configuration import _import_exporters
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)

from otel_audit.keys import SigningKey
from otel_audit.sealing import SealedRecord
from otel_audit.testing import seal_stream
from otel_audit_cef import CefFileSink, CefLogExporter, format_cef, make_sink, options_from_env
from otel_audit_cef.exporter import ENVIRONMENT


@pytest.fixture
def records() -> list[SealedRecord]:
    _, out = seal_stream(SigningKey.generate("cef-otel"), 5, checkpoint_every=3)
    return out


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_string_and_map_bodies_through_a_logger_provider(
    tmp_path: Path, records: list[SealedRecord]
) -> None:
    path = tmp_path / "audit.cef"
    exporter = CefLogExporter(CefFileSink(path))
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("audit")
    for index, sealed in enumerate(records):
        if index % 2:
            logger.emit(body=sealed.line.decode())  # the wire form (DESIGN §2)
        else:
            logger.emit(body=orjson.loads(sealed.line))  # the body="map" option
        if index == 1:
            logger.emit(body="an ordinary log line")
            logger.emit(body={"integrity": "not an audit record"})
            logger.emit(body='{"integrity": {"origin": "x"}}')
    provider.shutdown()
    assert exporter.skipped == 3
    assert path.read_text().splitlines() == [format_cef(s) for s in records]


def test_configured_from_the_environment_over_tcp(
    monkeypatch: pytest.MonkeyPatch, records: list[SealedRecord]
) -> None:
    listener = StreamListener()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_CEF_ENDPOINT", f"127.0.0.1:{listener.port}")
        monkeypatch.setenv("OTEL_EXPORTER_CEF_PROTOCOL", "tcp")
        monkeypatch.setenv("OTEL_EXPORTER_CEF_SYSLOG_FORMAT", "rfc3164")
        monkeypatch.setenv("OTEL_EXPORTER_CEF_HOSTNAME", "app-host")
        monkeypatch.setenv("OTEL_EXPORTER_CEF_APP_NAME", "billing")
        monkeypatch.setenv("OTEL_EXPORTER_CEF_TIMEOUT", "5000")
        provider = LoggerProvider()
        provider.add_log_record_processor(BatchLogRecordProcessor(CefLogExporter()))
        logger = provider.get_logger("audit")
        for sealed in records:
            logger.emit(body=sealed.line.decode())
        assert provider.force_flush()
        (frames,) = listener.frames(len(records))
        provider.shutdown()
    finally:
        listener.close()
    assert [f.split(b" app-host billing: ", 1)[1].decode() for f in frames] == [
        format_cef(s) for s in records
    ]


def test_failed_export_is_reported_not_swallowed(records: list[SealedRecord]) -> None:
    probe = StreamListener()
    port = probe.port
    probe.close()  # nothing listens on the port any more
    memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("audit").emit(body=records[0].line.decode())
    provider.shutdown()
    exporter = CefLogExporter(make_sink({"address": f"127.0.0.1:{port}", "protocol": "tcp"}))
    assert exporter.export(memory.get_finished_logs()) == LogRecordExportResult.FAILURE
    exporter.shutdown()


def test_missing_configuration_fails_at_start() -> None:
    with pytest.raises(ValueError, match="exactly one of 'path' or 'address'"):
        CefLogExporter()


def test_options_from_env() -> None:
    env = {
        "OTEL_EXPORTER_CEF_ENDPOINT": "siem:6514",
        "OTEL_EXPORTER_CEF_PROTOCOL": "tls",
        "OTEL_EXPORTER_CEF_CERTIFICATE": "/etc/ca.pem",
        "OTEL_EXPORTER_CEF_TLS_VERIFY": "true",
        "OTEL_EXPORTER_CEF_TIMEOUT": "2500",
        "OTEL_EXPORTER_CEF_PATH": "",
        "UNRELATED": "x",
    }
    assert options_from_env(env) == {
        "address": "siem:6514",
        "protocol": "tls",
        "tls_ca_file": "/etc/ca.pem",
        "tls_verify": "true",
        "timeout": "2.5",
    }


def test_entry_point_lookup() -> None:
    (entry,) = importlib.metadata.entry_points(group="opentelemetry_logs_exporter", name="cef")
    assert entry.load() is CefLogExporter
    # what the SDK's auto-configuration does with OTEL_LOGS_EXPORTER=cef
    _, _, logs = _import_exporters([], [], ["cef"])
    assert logs == {"cef": CefLogExporter}


def test_otel_logs_exporter_cef_auto_configuration(
    tmp_path: Path, records: list[SealedRecord]
) -> None:
    """A fresh interpreter configured only by environment variables, as opentelemetry-instrument
    would configure it."""
    path = tmp_path / "auto.cef"
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_bytes(b"".join(s.line + b"\n" for s in records))
    script = textwrap.dedent(
        """
        import sys
        from opentelemetry._logs import get_logger_provider
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        _OTelSDKConfigurator().configure()
        provider = get_logger_provider()
        logger = provider.get_logger("audit")
        for line in open(sys.argv[1], encoding="utf-8"):
            logger.emit(body=line.rstrip("\\n"))
        provider.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {
        "OTEL_LOGS_EXPORTER": "cef",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_EXPORTER_CEF_PATH": str(path),
        "OTEL_EXPORTER_CEF_VENDOR": "Acme",
    }
    done = subprocess.run(
        [sys.executable, "-c", script, str(bodies)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = path.read_text().splitlines()
    assert lines == [format_cef(s).replace("CEF:0|otel-audit|", "CEF:0|Acme|", 1) for s in records]
