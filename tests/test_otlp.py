"""OTLPSink against real OTLP receivers (gRPC and HTTP on 127.0.0.1): the wire mapping,
ordering, retry/spool/replay, backup, alerts, truthful flush, and configure()."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from integration.otlp_receiver import OTLPHttpReceiver, OTLPReceiver

import otel_audit
from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.otlp import DeliveryError, OTLPSink, SpoolFullError
from otel_audit.pipeline import AuditPipeline
from otel_audit.sealing import SealedRecord
from otel_audit.store import read_lines
from otel_audit.testing import MemorySink, sample_record, seal_stream
from otel_audit.verify import Report, verify_paths

_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    for name in ("STORE", "KEY_FILE", "OTLP_ENDPOINT", "OTLP_PROTOCOL", "OTLP_HEADERS"):
        monkeypatch.delenv(f"OTEL_AUDIT_{name}", raising=False)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("otlp-test")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(tmp_path / "received.json") as rx:
        yield rx


@pytest.fixture
def key_file(key: SigningKey, tmp_path: Path) -> Path:
    path = tmp_path / "k.key"
    key.write(path)
    return path


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[Callable[..., OTLPSink]]:
    made: list[OTLPSink] = []

    def make(endpoint: str | None, **kwargs: Any) -> OTLPSink:
        kwargs.setdefault("spool_dir", tmp_path / "spool")
        kwargs.setdefault("retry_initial_s", 0.05)
        kwargs.setdefault("retry_max_s", 0.2)
        kwargs.setdefault("timeout_s", 2.0)
        kwargs.setdefault("flush_timeout_s", 5.0)
        sink = OTLPSink(endpoint, **kwargs)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        with contextlib.suppress(DeliveryError):
            sink.close()


def logger_for(handler: logging.Handler) -> logging.Logger:
    """A logger of its own (not propagating) that writes to ``handler``."""
    log = logging.getLogger(f"otlp-test.{time.monotonic_ns()}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return log


def detach(log: logging.Logger, handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


def verify(key: SigningKey, *paths: Path) -> Report:
    return verify_paths([str(p) for p in paths], [VerifierKey.load(key.vkey)])


def received_seqs(rx: OTLPReceiver) -> list[int]:
    seqs = []
    for request in rx.requests:
        for rl in request.resource_logs:
            for scope in rl.scope_logs:
                for log in scope.log_records:
                    attrs = {kv.key: kv.value for kv in log.attributes}
                    seqs.append(attrs["audit.seq"].int_value)
    return seqs


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_one_log_record_per_sealed_record_as_design_2_says(
    key: SigningKey, receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink]
) -> None:
    sealed = seal_stream(key, 20, checkpoint_every=10)[1]
    sink = make_sink(receiver.endpoint, service_name="billing", instance_id="host-1-42")
    sink.write(sealed)
    sink.flush()
    assert receiver.records == len(sealed)
    resource_logs = receiver.requests[0].resource_logs[0]
    resource = {kv.key: kv.value.string_value for kv in resource_logs.resource.attributes}
    assert resource["service.name"] == "billing"
    assert resource["service.instance.id"] == "host-1-42"
    log = resource_logs.scope_logs[0].log_records[1]  # the first sample record
    record = sealed[1].record
    assert log.body.string_value.encode() == sealed[1].line
    assert log.event_name == f"audit.{record['category']}.{record['action'].lower()}"
    attrs = {kv.key: kv.value for kv in log.attributes}
    assert attrs["user.id"].string_value == record["actor"]["user_id"]
    assert attrs["session.id"].string_value == record["actor"]["session_id"]
    assert attrs["client.address"].string_value == record["context"]["source_ip"]
    assert attrs["user_agent.original"].string_value == record["context"]["user_agent"]
    assert attrs["db.collection.name"].string_value == "customers"
    assert attrs["log.record.uid"].string_value == record["event_id"]
    assert attrs["audit.category"].string_value == record["category"]
    assert attrs["audit.action"].string_value == record["action"]
    assert attrs["audit.result"].string_value == record["result"]["status"]
    assert attrs["audit.risk_level"].string_value == record["metadata"]["risk_level"]
    assert attrs["audit.origin"].string_value == sealed[1].origin
    assert attrs["audit.seq"].int_value == 1
    assert log.time_unix_nano // 1_000_000 % 1000 == int(record["timestamp"][20:23])


def test_the_collector_output_verifies(
    key: SigningKey, receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink]
) -> None:
    sealed = seal_stream(key, 500, checkpoint_every=100)[1]
    sink = make_sink(receiver.endpoint)
    for i in range(0, len(sealed), 37):
        sink.write(sealed[i : i + 37])
    sink.flush()
    report = verify(key, receiver.out)
    assert report.findings == []
    assert report.records == len(sealed)
    assert received_seqs(receiver) == list(range(len(sealed)))


def test_http_protobuf_with_map_bodies(key: SigningKey, tmp_path: Path, make_sink: Any) -> None:
    sealed = seal_stream(key, 50, checkpoint_every=20)[1]
    with OTLPHttpReceiver(tmp_path / "http.json") as rx:
        sink = make_sink(rx.url, protocol="http/protobuf", body="map")
        sink.write(sealed)
        sink.flush()
        body = rx.requests[0].resource_logs[0].scope_logs[0].log_records[0].body
        assert body.WhichOneof("value") == "kvlist_value"
        report = verify(key, rx.out)
    assert report.findings == []
    assert report.records == len(sealed)


def test_standard_env_variables_configure_the_exporter(
    key: SigningKey,
    tmp_path: Path,
    make_sink: Callable[..., OTLPSink],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with OTLPHttpReceiver(tmp_path / "http.json") as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
        sink = make_sink(None)
        sink.write(seal_stream(key, 3)[1])
        sink.flush()
        attrs = {
            kv.key: kv.value.string_value
            for kv in rx.requests[0].resource_logs[0].resource.attributes
        }
    assert attrs["service.name"] == "from-env"
    assert attrs["deployment.environment.name"] == "test"
    assert attrs["service.instance.id"]


def test_outage_spools_in_order_alerts_backs_up_and_replays(
    key: SigningKey, receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink], tmp_path: Path
) -> None:
    sealed = seal_stream(key, 300, checkpoint_every=50)[1]
    alerts: list[str] = []
    backup = MemorySink()
    sink = make_sink(receiver.endpoint, backup=backup, on_alert=alerts.append)
    sink.write(sealed[:100])
    sink.flush()
    receiver.refuse = True
    sink.write(sealed[100:150])
    with pytest.raises(DeliveryError, match="not delivered"):
        sink.flush()
    sink.write(sealed[150:250])  # waits behind the spooled batch
    assert sink.pending == 150
    assert sink.stats.spooled == 150
    assert list((tmp_path / "spool").glob("batch-*.jsonl"))
    assert [s.seq for s in backup.records] == list(range(100, 250))
    assert any("OTLP export failed" in a for a in alerts)
    receiver.refuse = False
    sink.write(sealed[250:])
    sink.flush()
    assert received_seqs(receiver) == list(range(len(sealed)))  # order kept, nothing twice
    assert sink.stats.replayed == sink.stats.spooled >= 150
    assert not list((tmp_path / "spool").glob("batch-*.jsonl"))
    assert any("recovered" in a for a in alerts)
    assert verify(key, receiver.out).findings == []


def test_close_while_down_keeps_the_spool_for_the_next_process(
    key: SigningKey, receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink], tmp_path: Path
) -> None:
    sealed = seal_stream(key, 120, checkpoint_every=50)[1]
    receiver.refuse = True
    first = make_sink(receiver.endpoint, flush_timeout_s=1.0)
    first.write(sealed[:60])
    with pytest.raises(DeliveryError):
        first.close()
    receiver.refuse = False
    second = make_sink(receiver.endpoint)  # same spool directory: replays it first
    second.write(sealed[60:])
    second.flush()
    assert received_seqs(receiver) == list(range(len(sealed)))
    assert second.stats.replayed == 60


def test_close_retries_at_once_instead_of_sleeping_out_the_backoff(
    key: SigningKey, receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink]
) -> None:
    sealed = seal_stream(key, 40, checkpoint_every=50)[1]
    receiver.refuse = True
    # the backoff after a failure (10 min) is far longer than close's patience (5 s)
    sink = make_sink(receiver.endpoint, retry_initial_s=600.0, retry_max_s=600.0)
    sink.write(sealed)
    wait_for(lambda: sink.stats.export_failures > 0)
    receiver.refuse = False  # the collector is back while the sender waits out its backoff
    sink.close()  # retries now: raises DeliveryError if the records are still pending
    assert received_seqs(receiver) == list(range(len(sealed)))
    assert sink.stats.replayed == len(sealed)


def test_the_spool_directory_belongs_to_one_sink(
    receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink]
) -> None:
    make_sink(receiver.endpoint)
    with pytest.raises(otel_audit.AuditError, match="in use"):
        make_sink(receiver.endpoint)


def test_a_full_spool_is_a_clear_error_and_an_alert(
    key: SigningKey, receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink]
) -> None:
    sealed = seal_stream(key, 60, checkpoint_every=50)[1]
    alerts: list[str] = []
    receiver.refuse = True
    sink = make_sink(receiver.endpoint, spool_max_bytes=20_000, on_alert=alerts.append)
    sink.write(sealed[:5])
    wait_for(lambda: sink.stats.export_failures > 0)

    def fill() -> None:
        for i in range(5, 60, 5):
            sink.write(sealed[i : i + 5])

    with pytest.raises(SpoolFullError, match="is full"):
        fill()
    assert any("is full" in a for a in alerts)
    assert sink.stats.spool_full > 0


def test_a_batch_the_full_spool_refuses_reaches_the_backup_once(
    key: SigningKey, receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink]
) -> None:
    sealed = seal_stream(key, 10)[1]
    backup = MemorySink()
    # smaller than one batch: the write-ahead copy is refused while the collector is fine
    sink = make_sink(receiver.endpoint, spool_max_bytes=1_000, backup=backup)
    batch = sealed[:5]
    for _ in range(3):  # the pipeline retries a refused write with the same batch
        with pytest.raises(SpoolFullError):
            sink.write(batch)
    assert [s.seq for s in backup.records] == [0, 1, 2, 3, 4]
    assert sink.stats.backed_up == 5


def test_pipeline_flush_and_close_report_false_when_undelivered(
    key: SigningKey, receiver: OTLPReceiver, make_sink: Callable[..., OTLPSink]
) -> None:
    receiver.refuse = True
    sink = make_sink(receiver.endpoint, flush_timeout_s=1.0)
    pipeline = AuditPipeline(key, [sink], checkpoint_interval_ms=50)
    pipeline.submit(sample_record(0))
    assert pipeline.flush(20) is False
    assert pipeline.close(20) is False


def _lines(records: list[SealedRecord]) -> list[bytes]:
    return [s.line for s in records]


def test_configure_delivers_every_record_to_store_and_collector(
    key: SigningKey, key_file: Path, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    setup = otel_audit.configure(
        service_name="orders",
        key_file=key_file,
        store=tmp_path / "store",
        otlp_endpoint=receiver.endpoint,
        checkpoint_interval_ms=50,
    )
    for i in range(40):
        setup.logger.emit(
            body={"actor": f"user-{i}", "resource": ["order", f"o-{i}"]},
            event_name="audit.data_access.read",
        )
    assert setup.flush(20)
    assert setup.shutdown(20)
    store_lines = sorted(read_lines(tmp_path / "store"))
    report = verify(key, receiver.out)
    assert report.findings == []
    assert report.records == len(store_lines) >= 42
    collected = sorted(
        orjson.loads(line)["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"][
            "stringValue"
        ].encode()
        for line in receiver.out.read_bytes().splitlines()[:1]
    )
    assert collected[0] in store_lines


def test_configure_from_env(
    key: SigningKey,
    key_file: Path,
    receiver: OTLPReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_AUDIT_KEY_FILE", str(key_file))
    monkeypatch.setenv("OTEL_AUDIT_OTLP_ENDPOINT", f"http://{receiver.endpoint}")
    monkeypatch.setenv("OTEL_AUDIT_OTLP_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env-svc")
    setup = otel_audit.configure(checkpoint_interval_ms=50)
    setup.logger.emit(body={"actor": "a", "resource": ["t", "1"]}, event_name="audit.security.x")
    assert setup.shutdown(20)
    assert setup.sinks
    assert isinstance(setup.sinks[0], OTLPSink)
    report = verify(key, receiver.out)
    assert report.findings == []
    assert report.records == 3  # START, the record, STREAM_END


@pytest.mark.parametrize("sealing", ["thread", "process"])
def test_handler_ships_to_store_and_collector(
    key: SigningKey, key_file: Path, receiver: OTLPReceiver, tmp_path: Path, sealing: str
) -> None:
    from otel_audit_logging import AuditHandler

    handler = AuditHandler(
        store=tmp_path / "store",
        key_file=key_file,
        otlp_endpoint=receiver.endpoint,
        otlp_protocol="grpc",
        otlp_headers="x-tenant=acme",
        checkpoint_interval_ms=50,
        sealing=sealing,  # "process": the OTLP sink runs in the sealing process
    )
    log = logger_for(handler)
    try:
        for i in range(25):
            log.info(
                "read",
                extra={
                    "audit": {
                        "category": "data_access",
                        "action": "READ",
                        "actor": "alice",
                        "resource": ["doc", str(i)],
                    }
                },
            )
        assert handler.flush()
        # flushed means delivered: STREAM_START and the 25 records are there before close
        assert verify(key, receiver.out).records >= 26
        if sealing == "thread":
            assert isinstance(handler.pipeline, AuditPipeline)
            otlp = handler.pipeline.sinks[0]
            assert isinstance(otlp, OTLPSink)
            assert otlp.stats.delivered >= 26
            assert otlp.pending == 0
    finally:
        detach(log, handler)
    store = verify(key, tmp_path / "store")
    collected = verify(key, receiver.out)
    assert store.findings == collected.findings == []
    assert store.records == collected.records >= 27


_ALERT: dict[str, Any] = {  # an annotation for the tests that send one record
    "category": "security",
    "action": "ALERT",
    "actor": "ids",
    "resource": ["host", "h1"],
}


class _AlertPlugin:
    def __init__(self) -> None:
        self.alerts: list[tuple[str, str]] = []

    @otel_audit.hookimpl
    def otel_audit_alert(self, kind: str, message: str, details: Any) -> None:
        self.alerts.append((kind, message))


def test_handler_delivery_alerts_reach_the_alert_hook(
    key: SigningKey, key_file: Path, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    from otel_audit_logging import AuditHandler

    handler = AuditHandler(
        store=tmp_path / "store",
        key_file=key_file,
        otlp_endpoint=receiver.endpoint,
        disable_plugins="*",
        checkpoint_interval_ms=50,
    )
    assert handler.plugins is not None
    plugin = _AlertPlugin()
    handler.plugins.manager.register(plugin, name="alert-recorder")
    log = logger_for(handler)
    receiver.refuse = True
    try:
        log.info("suspicious", extra={"audit": _ALERT})
        assert handler.flush() is False  # not delivered, truthfully
        wait_for(lambda: any(kind == "delivery" for kind, _ in plugin.alerts))
        receiver.refuse = False
        log.info("suspicious", extra={"audit": _ALERT})
        assert handler.flush()
        wait_for(lambda: any("recovered" in message for _, message in plugin.alerts))
    finally:
        detach(log, handler)
    assert any(
        "OTLP export failed" in message for kind, message in plugin.alerts if kind == "delivery"
    )


def test_configure_delivery_alerts_reach_on_alert(
    key: SigningKey, key_file: Path, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    alerts: list[str] = []
    receiver.refuse = True
    setup = otel_audit.configure(
        key_file=key_file,
        otlp_endpoint=receiver.endpoint,
        otlp_spool_dir=tmp_path / "spool",
        on_alert=alerts.append,
        checkpoint_interval_ms=50,
    )
    try:
        setup.logger.emit(
            body={"actor": "alice", "resource": ["doc", "1"]}, event_name="audit.data_access.read"
        )
        assert setup.flush(10) is False
        wait_for(lambda: any("OTLP export failed" in a for a in alerts))
        receiver.refuse = False
    finally:
        assert setup.shutdown(30)  # the collector is back: everything delivered at the end
    assert verify(key, receiver.out).findings == []


def test_handler_rejects_a_bad_exporter_setting_at_construction(
    key: SigningKey, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_audit_logging import AuditHandler

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")  # standard, not supported
    with pytest.raises(ValueError, match="http/json"):
        AuditHandler(store=tmp_path / "store", key_file=key_file, otlp_endpoint="127.0.0.1:4317")


def test_handler_keeps_the_store_when_the_otlp_sink_cannot_start(
    key: SigningKey,
    key_file: Path,
    receiver: OTLPReceiver,
    tmp_path: Path,
    make_sink: Callable[..., OTLPSink],
) -> None:
    from otel_audit_logging import AuditHandler

    store = tmp_path / "store"
    make_sink(receiver.endpoint, spool_dir=store / ".otlp-spool")  # the spool is taken
    internal = logging.getLogger("otel_audit.internal")
    messages: list[str] = []
    recorder = logging.Handler()
    recorder.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    internal.addHandler(recorder)
    handler = AuditHandler(store=store, key_file=key_file, otlp_endpoint=receiver.endpoint)
    log = logger_for(handler)
    try:
        log.info("suspicious", extra={"audit": _ALERT})
        assert handler.flush()
    finally:
        detach(log, handler)
        internal.removeHandler(recorder)
    assert any("OTLP delivery to" in m and "is OFF" in m for m in messages)
    assert not any("LOST" in m for m in messages)
    report = verify(key, store)
    assert report.findings == []
    assert report.records == 3  # START, the record, STREAM_END: nothing lost


def test_header_text_is_read_as_the_standard_variable_is() -> None:
    from otel_audit.otlp import _headers

    assert _headers("X-Api-Key=a%20b%2Cc, tenant = acme ,broken") == {
        "x-api-key": "a b,c",  # percent-decoded, so a value can hold a comma
        "tenant": "acme",
    }
    assert _headers({"X-Keep": "as is"}) == {"X-Keep": "as is"}
    assert _headers("") is None


def test_a_batch_goes_out_in_requests_below_the_receivers_limit(
    key: SigningKey, make_sink: Callable[..., OTLPSink], tmp_path: Path
) -> None:
    sealed = seal_stream(key, 300, checkpoint_every=100)[1]  # ~400 KB of lines
    limit = 64 * 1024
    with OTLPReceiver(tmp_path / "small.json", max_message_bytes=limit) as small:
        sink = make_sink(small.endpoint, max_request_bytes=limit // 2)
        sink.write(sealed)  # one batch, far over the receiver's limit
        sink.flush()
        assert len(small.requests) > 1
        assert all(r.ByteSize() <= limit for r in small.requests)
        assert received_seqs(small) == list(range(len(sealed)))
        assert verify(key, small.out).findings == []


def test_a_request_over_the_receivers_limit_is_refused(
    key: SigningKey, make_sink: Callable[..., OTLPSink], tmp_path: Path
) -> None:
    sealed = seal_stream(key, 300, checkpoint_every=100)[1]
    with OTLPReceiver(tmp_path / "small.json", max_message_bytes=64 * 1024) as small:
        sink = make_sink(small.endpoint, flush_timeout_s=2.0)  # default: 3 MiB requests
        sink.write(sealed)
        with pytest.raises(DeliveryError):
            sink.flush()
        assert small.requests == []  # why the sink must cut batches to the receiver's size
