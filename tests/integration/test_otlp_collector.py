"""Through a real collector: app → OTLP → rotel → OTLP/gRPC → a real receiver → verify.

rotel (``pip install rotel``, its ``rotel-agent`` binary) runs in the foreground with
``collector-config/rotel/agent.env`` (endpoints replaced by free ports on 127.0.0.1);
the receiver (``otlp_receiver.py``) writes what it accepts as OTLP/JSON lines, and
``otel-audit verify`` runs as a real process over that file. The app is the
``AuditHandler`` path or the ``otel_audit.configure()`` path, in this process or in a
child. Faults: the backend stopped for ~8 s, rotel SIGKILLed and restarted, the app
SIGKILLed and restarted. Every wait is bounded; nothing depends on timing to pass.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import otel_audit
from integration.otlp_receiver import OTLPReceiver, free_port
from otel_audit.keys import SigningKey
from otel_audit.store import read_lines
from otel_audit_logging import AuditHandler

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
AGENT_ENV = REPO / "collector-config" / "rotel" / "agent.env"
CLI = [sys.executable, "-m", "otel_audit"]


def rotel_binary() -> Path:
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        pytest.fail("rotel is not installed: pip install -e '.[test]' (it is in the test extra)")
    path = Path(spec.origin).parent / "rotel-agent"
    if not os.access(path, os.X_OK):
        pytest.fail(f"rotel's binary {path} is missing or not executable")
    return path


def agent_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for raw in AGENT_ENV.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            env[name] = value
    return env


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Rotel:
    """One rotel-agent process in the foreground (restartable on the same ports)."""

    def __init__(self, tmp: Path, backend: str) -> None:
        self.tmp = tmp
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.backend = backend
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Rotel:
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        env.update(agent_env())
        env.update(
            ROTEL_OTLP_GRPC_ENDPOINT=self.grpc,
            ROTEL_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{self.http_port}",
            ROTEL_OTLP_EXPORTER_ENDPOINT=f"http://{self.backend}",
            ROTEL_PID_FILE=str(self.tmp / "rotel.pid"),
            ROTEL_LOG_FILE=str(self.tmp / "rotel.log"),
        )
        env.pop("ROTEL_DAEMON", None)  # foreground: the fixture owns the process
        self.log = self.tmp / f"rotel-{self.starts}.out"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(rotel_binary()), "start"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while not (port_open(self.grpc_port) and port_open(self.http_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"rotel did not start; its output:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(tmp_path / "backend.json") as rx:
        yield rx


@pytest.fixture
def collector(tmp_path: Path, receiver: OTLPReceiver) -> Iterator[Rotel]:
    agent = Rotel(tmp_path, receiver.endpoint).start()
    yield agent
    agent.stop()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "audit.key"
    path.parent.mkdir()
    SigningKey.generate("otlp-collector-test").write(path)
    return path


def verify(key_file: Path, *paths: Path) -> tuple[int, dict[str, Any]]:
    """``otel-audit verify --json`` as a real process."""
    out = subprocess.run(
        [*CLI, "verify", "--json", "--key", f"{key_file}.vkey", *map(str, paths)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr.decode()
    return out.returncode, orjson.loads(out.stdout)


def received_bodies(path: Path) -> set[bytes]:
    """The bodies in the receiver's complete lines (it may be writing the last one)."""
    bodies: set[bytes] = set()
    if not path.exists():  # nothing received yet
        return bodies
    data = path.read_bytes()
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        for rl in orjson.loads(line)["resourceLogs"]:
            for scope in rl.get("scopeLogs", ()):
                for log in scope.get("logRecords", ()):
                    bodies.add(log["body"]["stringValue"].encode())
    return bodies


def annotation(i: int) -> dict[str, Any]:
    return {
        "category": "data_access",
        "action": "READ",
        "actor": {"user_id": f"user-{i % 7}", "session_id": f"s-{i}"},
        "resource": {"type": "invoice", "id": f"inv-{i}", "table": "invoices"},
        "context": {"source_ip": "192.0.2.7", "api_endpoint": "/invoices"},
        "result": {"status": "SUCCESS", "response_code": 200},
        "risk_level": "LOW",
    }


class Recorder(logging.Handler):
    """Keeps the messages of the internal (non-propagating) logger."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def audit_logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"otlp-collector-test.{time.monotonic_ns()}")
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        handler.close()


@pytest.fixture
def attach(
    tmp_path: Path, key_file: Path, collector: Rotel, audit_logger: logging.Logger
) -> Callable[..., AuditHandler]:
    """An AuditHandler on ``audit_logger``: store ``tmp_path/store``, OTLP/gRPC to rotel."""

    def make(**options: Any) -> AuditHandler:
        handler = AuditHandler(
            store=tmp_path / "store", key_file=key_file, otlp_endpoint=collector.grpc, **options
        )
        audit_logger.addHandler(handler)
        return handler

    return make


def detach(log: logging.Logger, handler: AuditHandler) -> None:
    log.removeHandler(handler)
    handler.close()


def assert_backend_has_the_store(key_file: Path, store: Path, receiver: OTLPReceiver) -> None:
    """Every record the store holds arrives at the backend, and the backend's copy verifies."""
    stored = set(read_lines(store))
    wait_for(lambda: received_bodies(receiver.out) >= stored, 60, "every stored record")
    code, report = verify(key_file, receiver.out)
    assert code == 0, report["findings"]
    assert report["records"] == len(stored)


def test_handler_over_grpc_through_rotel(
    tmp_path: Path,
    key_file: Path,
    receiver: OTLPReceiver,
    attach: Callable[..., AuditHandler],
    audit_logger: logging.Logger,
) -> None:
    handler = attach(checkpoint_every=100, checkpoint_interval_ms=100)
    for i in range(500):
        audit_logger.info("invoice read", extra={"audit": annotation(i)})
    detach(audit_logger, handler)
    assert_backend_has_the_store(key_file, tmp_path / "store", receiver)
    assert len(set(read_lines(tmp_path / "store"))) >= 502  # START, 500, checkpoints, END


def test_configure_over_http_through_rotel(
    tmp_path: Path, key_file: Path, receiver: OTLPReceiver, collector: Rotel
) -> None:
    setup = otel_audit.configure(
        service_name="orders",
        key_file=key_file,
        otlp_endpoint=collector.http,
        otlp_protocol="http/protobuf",
        otlp_spool_dir=tmp_path / "spool",
        checkpoint_every=100,
        checkpoint_interval_ms=100,
    )
    for i in range(300):
        setup.logger.emit(body=annotation(i), event_name="audit.data_access.read")
    assert setup.shutdown(30)
    wait_for(lambda: receiver.records >= 302, 30, "every record at the backend")
    code, report = verify(key_file, receiver.out)
    assert code == 0, report["findings"]
    assert report["records"] >= 302
    assert report["streams"][0]["closed"]


def test_backend_down_for_seconds_mid_stream(
    tmp_path: Path,
    key_file: Path,
    receiver: OTLPReceiver,
    attach: Callable[..., AuditHandler],
    audit_logger: logging.Logger,
) -> None:
    handler = attach(checkpoint_interval_ms=100)
    for i in range(200):
        audit_logger.info("before", extra={"audit": annotation(i)})
    assert handler.flush()
    wait_for(lambda: receiver.records >= 200, 30, "the first records at the backend")
    receiver.stop()
    outage_end = time.monotonic() + 8
    i = 200
    while time.monotonic() < outage_end:  # the app goes on while the backend is down
        audit_logger.info("during", extra={"audit": annotation(i)})
        i += 1
        time.sleep(0.01)
    receiver.start()
    for j in range(100):
        audit_logger.info("after", extra={"audit": annotation(i + j)})
    detach(audit_logger, handler)
    assert_backend_has_the_store(key_file, tmp_path / "store", receiver)


def test_collector_sigkilled_and_restarted(
    tmp_path: Path,
    key_file: Path,
    receiver: OTLPReceiver,
    collector: Rotel,
    attach: Callable[..., AuditHandler],
    audit_logger: logging.Logger,
) -> None:
    internal = logging.getLogger("otel_audit.internal")
    alerts = Recorder()
    internal.addHandler(alerts)
    handler = attach(checkpoint_interval_ms=3_600_000)  # no timed checkpoint before the kill
    for i in range(200):
        audit_logger.info("before", extra={"audit": annotation(i)})
    assert handler.flush()
    # rotel keeps what it accepted in memory only (it has no persistent queue): a SIGKILL
    # loses what it acknowledged but did not pass on yet, so kill it once it passed all on
    before = set(read_lines(tmp_path / "store"))
    wait_for(
        lambda: received_bodies(receiver.out) >= before, 30, "the first records at the backend"
    )
    collector.kill()
    for i in range(200, 400):  # accepted by the app while no collector listens
        audit_logger.info("while the collector is dead", extra={"audit": annotation(i)})
    assert handler.flush() is False  # truthfully: not delivered
    spool = tmp_path / "store" / ".otlp-spool"
    assert list(spool.glob("batch-*.jsonl"))  # waiting on disk
    assert any("OTLP export failed" in m for m in alerts.messages)
    collector.start()
    for i in range(400, 500):
        audit_logger.info("after", extra={"audit": annotation(i)})
    detach(audit_logger, handler)
    assert_backend_has_the_store(key_file, tmp_path / "store", receiver)
    internal.removeHandler(alerts)
    assert any("recovered" in m for m in alerts.messages)
    assert not list(spool.glob("batch-*.jsonl"))


APP = r"""
import logging, sys, time
from otel_audit_logging import AuditHandler

store, key_file, endpoint, first, count = sys.argv[1:6]
handler = AuditHandler(store=store, key_file=key_file, otlp_endpoint=endpoint,
                       checkpoint_every=50, checkpoint_interval_ms=50, service_name="crashy")
log = logging.getLogger("app")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(handler)
i = int(first)
end = i + int(count) if int(count) else None
while end is None or i < end:
    log.info("x", extra={"audit": {"category": "data_access", "action": "READ",
             "actor": "u-%d" % (i % 5), "resource": {"type": "doc", "id": "d-%d" % i},
             "context": {"source_ip": "192.0.2.1"}, "risk_level": "LOW"}})
    i += 1
    if i % 50 == 0:
        print(i, flush=True)
        time.sleep(0.02)
handler.close()
print("closed", flush=True)
"""


def test_app_sigkilled_mid_stream_and_restarted(
    tmp_path: Path, key_file: Path, receiver: OTLPReceiver, collector: Rotel
) -> None:
    store = tmp_path / "store"

    def app(first: int, count: int) -> subprocess.Popen[bytes]:
        args = [str(store), str(key_file), collector.grpc, str(first), str(count)]
        return subprocess.Popen(
            [sys.executable, "-c", APP, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )

    crashing = app(0, 0)  # logs until killed
    try:
        wait_for(lambda: receiver.records >= 300, 45, "the app's records at the backend")
    finally:
        crashing.send_signal(signal.SIGKILL)
        crashing.wait(10)
        assert crashing.stdout is not None
        crashing.stdout.close()
    restarted = app(1_000_000, 200)
    out, _ = restarted.communicate(timeout=60)
    assert b"closed" in out
    stored = set(read_lines(store))
    wait_for(lambda: received_bodies(receiver.out) >= stored, 60, "every stored record")
    code, report = verify(key_file, receiver.out)
    kinds = {f["kind"] for f in report["findings"] if f["severity"] == "error"}
    assert code == 0, report["findings"]
    assert kinds == set()
    warnings = {f["kind"] for f in report["findings"]}
    assert warnings <= {"unsealed_tail", "duplicate"}  # the killed stream is open
    assert sorted(stream["closed"] for stream in report["streams"]) == [False, True]
    assert report["records"] >= len(stored)
