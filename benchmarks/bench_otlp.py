"""OTLP/gRPC end-to-end throughput and loss: the bare OTel SDK against AuditHandler.

Two pipelines, one run, one receiver, the same annotated ``logger.info`` call:

* ``otel-sdk`` the bare OpenTelemetry SDK: ``LoggingHandler`` → ``BatchLogRecordProcessor``
               (default settings: queue 2,048, batch 512, 1 s delay) → ``OTLPLogExporter``
               (gRPC). When the caller logs faster than the exporter ships, the full queue
               drops records (that is the SDK's design, not a fault of this benchmark).
* ``audit``    ``AuditHandler`` with ``otlp_endpoint=`` (gRPC), no plugins: validated,
               sealed, checkpointed off the caller's thread, then shipped through the same
               ``OTLPLogExporter`` by the OTLP sink (durable spool) *and* written to the
               local store. The handler has no OTLP-only mode: the store always keeps a
               copy (and is the reference for what should have arrived), so this row
               measures store + OTLP.

The receiver is one OTLP/gRPC ``LogsService`` server on 127.0.0.1 in a child process
(as a collector would be: its work does not compete for this process's GIL), started
once and used by both rows. It only counts: log records, the integrity records among
them (``event_name`` ``audit.integrity.*``: STREAM_START, CHECKPOINT, STREAM_END) and
distinct ``(audit.origin, audit.seq)`` pairs, so duplicates from a retry are not counted
as delivered.

Each round, per row, the rows alternating: log N records; shut the pipeline down
(``otel-sdk``: ``force_flush()`` + ``shutdown()``; ``audit``: ``flush()``, which returns
once every app record is stored and acknowledged by the receiver, then ``close()``, which
does the same for STREAM_END and then compresses the store's segment); wait until the
receiver's count has not changed for 0.5 s (at most 10 s). Times run from the first log
call: ``e2e s`` until the receiver accepted the last record (its own clock stamp),
``done s`` until the shutdown returned (for ``audit`` this includes compressing the
store segment after the last delivery). ``sent/s`` = N / the logging loop alone (the
caller's rate); ``offered/s`` = N / e2e; ``delivered/s`` = app records received / e2e
(the bare SDK only gets credit for what arrived). lost = N - app records received (for
``audit`` also integrity records in the store - received). Target (issue text):
delivered/s audit/otel-sdk >= 1.0 with 0 audit records lost. Nothing is asserted.

Run: ``.venv/bin/python benchmarks/bench_otlp.py [--records N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import orjson
from bench_handler import ANNOTATION  # the same call as bench_handler.py (this directory)
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otel_audit.keys import SigningKey
from otel_audit.store import read_lines
from otel_audit_logging import AuditHandler

STABLE_S = 0.5  # the receiver count must not change for this long after shutdown ...
SETTLE_MAX_S = 10.0  # ... waiting at most this long


# -- the receiver (child process) -------------------------------------------------------------


@dataclass
class Counts:
    records: int = 0  # log records accepted
    integrity: int = 0  # of which event_name audit.integrity.*
    distinct: int = 0  # distinct (audit.origin, audit.seq) among audit.* records
    distinct_integrity: int = 0  # of which integrity records
    requests: int = 0
    last_at: float = 0.0  # time.monotonic() of the last accepted request (0: none)


class _Servicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = Counts()
        self.seen: set[tuple[str, int]] = set()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
        records = integrity = 0
        keys: list[tuple[str, int, bool]] = []
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for log in scope_logs.log_records:
                    records += 1
                    name = log.event_name
                    if not name.startswith("audit."):
                        continue  # the bare SDK's records: no identity to deduplicate by
                    is_integrity = name.startswith("audit.integrity.")
                    integrity += is_integrity
                    origin, seq = "", -1
                    for attr in log.attributes:
                        if attr.key == "audit.seq":
                            seq = attr.value.int_value
                        elif attr.key == "audit.origin":
                            origin = attr.value.string_value
                    keys.append((origin, seq, is_integrity))
        with self.lock:
            c = self.counts
            for origin, seq, is_integrity in keys:
                if (origin, seq) not in self.seen:
                    self.seen.add((origin, seq))
                    c.distinct += 1
                    c.distinct_integrity += is_integrity
            c.records += records
            c.integrity += integrity
            c.requests += 1
            c.last_at = time.monotonic()
        return logs_service_pb2.ExportLogsServiceResponse()

    def snapshot(self, reset: bool) -> Counts:
        with self.lock:
            counts = Counts(**vars(self.counts))
            if reset:
                self.counts = Counts()
                self.seen.clear()
            return counts


def _serve(conn: Connection) -> None:
    """The child process: serve OTLP/gRPC until told to stop; answer count requests."""
    servicer = _Servicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        conn.send(0)
        return
    server.start()
    conn.send(port)
    while (command := conn.recv()) != "stop":
        # a plain dict: the child's classes live in __mp_main__, unknown to the parent
        conn.send(vars(servicer.snapshot(reset=command == "reset")))
    server.stop(grace=None).wait(5)
    conn.send("stopped")


class Receiver:
    """The counting receiver in a spawned child process (``endpoint`` is 127.0.0.1:PORT)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that runs gRPC
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), name="otlp-receiver", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(60):
            self.close()
            raise SystemExit("the OTLP receiver did not start")
        port = self._conn.recv()
        if not port:
            self.close()
            raise SystemExit("cannot bind the OTLP receiver to 127.0.0.1")
        self.endpoint = f"127.0.0.1:{port}"

    def counts(self, *, reset: bool = False) -> Counts:
        self._conn.send("reset" if reset else "read")
        return Counts(**self._conn.recv())

    def settle(self) -> Counts:
        """The counts once they have not changed for ``STABLE_S`` (at most ``SETTLE_MAX_S``)."""
        deadline = time.monotonic() + SETTLE_MAX_S
        last = self.counts()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.counts()
            if now.records != last.records:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= STABLE_S:
                break
        return last

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send("stop")
                if self._conn.poll(10):
                    self._conn.recv()
            except (OSError, EOFError):
                pass
            self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._conn.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- one round -----------------------------------------------------------------------------


@dataclass
class Round:
    records: int  # app records logged
    loop_s: float  # the logging loop alone
    e2e_s: float  # first log call → the receiver took the last record
    done_s: float  # first log call → the shutdown (finish) returned
    received: int  # app records received (distinct for audit)
    integrity_expected: int = 0
    integrity_received: int = 0
    duplicates: int = 0  # copies beyond the first (audit only: they have an identity)
    clean: bool = True  # flush/close reported success
    notes: list[str] = field(default_factory=list)


def drive(
    handler: logging.Handler,
    name: str,
    records: int,
    finish: Callable[[], bool],
    receiver: Receiver,
) -> tuple[Round, Counts]:
    """Log ``records`` annotated records through ``handler``, then ``finish()`` (shut the
    pipeline down, True on success); the round's timings and the receiver's counts."""
    log = logging.getLogger(f"bench.otlp.{name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    extra = {"audit": ANNOTATION}
    receiver.counts(reset=True)
    start = time.monotonic()
    for _ in range(records):
        log.info("customer viewed", extra=extra)
    loop_end = time.monotonic()
    ok = finish()
    done = time.monotonic()
    log.removeHandler(handler)
    handler.close()
    counts = receiver.settle()
    # the receiver stamps time.monotonic() in its own process: CLOCK_MONOTONIC, one clock
    # for the whole machine on Linux, so the stamps compare with ours
    last = counts.last_at if counts.records else done
    timing = Round(records, loop_end - start, last - start, done - start, counts.records)
    timing.clean = ok
    return timing, counts


def run_sdk(receiver: Receiver, records: int) -> Round:
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False
    )
    exporter = OTLPLogExporter(endpoint=receiver.endpoint, insecure=True)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))  # default settings
    with warnings.catch_warnings():
        # opentelemetry-sdk 1.45 deprecates its LoggingHandler in favour of
        # opentelemetry-instrumentation-logging (not a dependency here); it is still the
        # SDK's own stdlib bridge and works unchanged, so silence just that warning.
        warnings.filterwarnings("ignore", "`LoggingHandler`", DeprecationWarning)
        handler = LoggingHandler(logger_provider=provider)

    def finish() -> bool:
        flushed = bool(provider.force_flush())
        provider.shutdown()  # also shuts the exporter (its gRPC channel) down
        return flushed

    result, _ = drive(handler, "sdk", records, finish, receiver)
    return result


def run_audit(receiver: Receiver, records: int, tmp: Path, key_file: Path, r: int) -> Round:
    store = tmp / f"store-{r}"
    handler = AuditHandler(
        store=str(store),
        key_file=str(key_file),
        service_name="bench",
        otlp_endpoint=receiver.endpoint,
        otlp_protocol="grpc",
        disable_plugins="*",  # no plugins, like bench_handler.py's "audit" row
    )
    stats: dict[str, int] = {}

    def finish() -> bool:
        flushed = handler.flush()  # every app record sealed, stored and acknowledged
        pipeline = handler.pipeline
        if pipeline is None:
            return False
        stats.update(pipeline.stats.as_dict())
        handler.close()  # STREAM_END, stored and acknowledged too
        return flushed and pipeline.flush(0)  # a closed pipeline answers how close went

    result, counts = drive(handler, "audit", records, finish, receiver)
    stored_app = stored_integrity = 0
    for line in read_lines(store):
        if orjson.loads(line).get("category") == "integrity":
            stored_integrity += 1
        else:
            stored_app += 1
    result.received = counts.distinct - counts.distinct_integrity
    result.integrity_expected = stored_integrity
    result.integrity_received = counts.distinct_integrity
    result.duplicates = counts.records - counts.distinct
    if stored_app != records:
        result.notes.append(f"the store holds {stored_app:,} app records of {records:,}")
    if stats.get("spilled"):
        result.notes.append(f"{stats['spilled']:,} records spilled to disk (none dropped)")
    if stats.get("sink_errors"):
        result.notes.append(f"{stats['sink_errors']:,} sink errors")
    return result


# -- the report -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # the SDK warns "Queue full, dropping Log." once per 20 s; the receiver counts the loss
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
    results: dict[str, list[Round]] = {"otel-sdk": [], "audit": []}
    with tempfile.TemporaryDirectory() as tmp_name, Receiver() as receiver:
        tmp = Path(tmp_name)
        key_file = tmp / "bench.key"
        SigningKey.generate("bench").write(key_file)
        for r in range(args.rounds):
            results["otel-sdk"].append(run_sdk(receiver, args.records))
            results["audit"].append(run_audit(receiver, args.records, tmp, key_file, r))

    def median(name: str, rate: Callable[[Round], float]) -> float:
        return float(statistics.median(rate(x) for x in results[name]))

    def sent(x: Round) -> float:
        return x.records / x.loop_s

    def offered(x: Round) -> float:
        return x.records / x.e2e_s

    def delivered(x: Round) -> float:
        return x.received / x.e2e_s

    print(
        f"{args.records:,} annotated logger.info calls per pipeline and round, OTLP/gRPC to "
        f"one receiver process on 127.0.0.1; {args.rounds} rounds: record counts are totals, "
        "times and rates medians"
    )
    print(
        f"{'pipeline':9} {'app records':>12} {'sent/s':>10} {'received':>10} {'lost':>8} "
        f"{'e2e s':>6} {'done s':>6} {'offered/s':>10} {'delivered/s':>12}"
    )
    for name, rounds in results.items():
        logged = sum(x.records for x in rounds)
        received = sum(x.received for x in rounds)
        print(
            f"{name:9} {logged:>12,} {median(name, sent):>10,.0f} {received:>10,} "
            f"{logged - received:>8,} {statistics.median(x.e2e_s for x in rounds):>6.2f} "
            f"{statistics.median(x.done_s for x in rounds):>6.2f} "
            f"{median(name, offered):>10,.0f} {median(name, delivered):>12,.0f}"
        )
    audit = results["audit"]
    integrity_expected = sum(x.integrity_expected for x in audit)
    integrity_received = sum(x.integrity_received for x in audit)
    duplicates = sum(x.duplicates for x in audit)
    print(
        f"audit integrity records (STREAM_START, CHECKPOINT, STREAM_END): stored "
        f"{integrity_expected:,}, received {integrity_received:,}, lost "
        f"{integrity_expected - integrity_received:,}; duplicate deliveries {duplicates:,}"
    )
    for name, rounds in results.items():
        for r, x in enumerate(rounds):
            for note in ([] if x.clean else ["flush/close reported failure"]) + x.notes:
                print(f"note: {name} round {r + 1}: {note}")
    ratio = median("audit", delivered) / median("otel-sdk", delivered)
    offered_ratio = median("audit", offered) / median("otel-sdk", offered)
    lost = sum(x.records - x.received for x in audit) + integrity_expected - integrity_received
    print(
        f"audit/otel-sdk: delivered/s {ratio:.2f}x, offered/s {offered_ratio:.2f}x, "
        f"sent/s {median('audit', sent) / median('otel-sdk', sent):.2f}x"
    )
    print(
        f"targets: delivered throughput >= 1.0x otel-sdk: {'met' if ratio >= 1.0 else 'NOT met'} "
        f"({ratio:.2f}x); audit lost 0: {'met' if lost == 0 else 'NOT met'} ({lost:,} lost)"
    )


if __name__ == "__main__":
    main()
