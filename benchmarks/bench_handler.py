"""``logger.info`` throughput and caller latency: AuditHandler against plain JSON logging.

The handlers, in one run, with the same annotated call:

* ``null``        a do-nothing ``logging.Handler`` (the cost of the logging module itself)
* ``json-logger`` python-json-logger's ``JsonFormatter`` on a ``FileHandler`` (no sealing)
* ``audit``       ``AuditHandler`` into a local store: validated, sealed, checkpointed,
                  written and fsynced in groups off the caller's thread (no plugins)
* ``audit+plugins`` the same with the installed compliance plugins (GDPR, HIPAA, SOX,
                  PCI-DSS) running their hooks before sealing, as they do by default
* ``process``, ``process+plugins``  the same two with ``sealing="process"``: validated,
                  sealed and stored by a sealing process beside the benchmark's

Throughput counts until everything is on disk (``flush()`` included for the audit
handlers; with ``sealing="process"`` that is the sealing process's acknowledgement,
after its fsync). Each audit handler logs and flushes one record before the clock
starts, so that the store, the key and the sealing process are open. Latency is the
caller's time per call (p50/p99 of ``perf_counter_ns``). Targets (issue 3): >= 0.8x
json-logger's throughput, p99 caller latency <= 50 µs; the last lines say which audit
rows meet them.

Run: ``.venv/bin/python benchmarks/bench_handler.py [--calls N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from otel_audit.keys import SigningKey
from otel_audit.plugins import load_plugins
from otel_audit.records import build
from otel_audit_logging import AuditHandler

ANNOTATION: dict[str, Any] = {
    "category": "data_access",
    "action": "READ",
    "actor": {"user_id": "alice@example.com", "session_id": "sess_abc123", "role": "admin"},
    "resource": {"type": "customer", "id": "c-12345", "table": "customers"},
    "context": {"source_ip": "198.51.100.7", "api_endpoint": "/api/v1/customers/12345"},
    "result": {"status": "SUCCESS", "response_code": 200, "affected_records": 1},
    "risk_level": "MEDIUM",
    "gdpr_context": {
        "lawful_basis": "contract",
        "data_subject_id": "ds_789",
        "processing_purpose": "customer_service",
    },
}


def prepare_cost(vault: Path, count: int) -> dict[str, float]:
    """µs a record for the plugins' record hooks (``Plugins.prepare``), each plugin alone
    and all four, over built records like the annotation's (median of 3 rounds)."""
    names = ("gdpr", "pci", "hipaa", "sox")
    fields = dict(ANNOTATION)
    risk = fields.pop("risk_level")
    out: dict[str, float] = {}
    for only in (*names, "all four"):
        others = () if only == "all four" else tuple(n for n in names if n != only)
        plugins = load_plugins({"gdpr": {"vault": str(vault)}}, disable=("cef", *others))
        runs = []
        for _ in range(3):
            records = [build(risk_level=risk, **fields) for _ in range(count)]
            start = time.perf_counter()
            for record in records:
                plugins.prepare(record)
            runs.append(time.perf_counter() - start)
        out[only] = statistics.median(runs) / count * 1e6
    return out


class NullHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


def run(
    handler: logging.Handler, calls: int, finish: Callable[[], object]
) -> tuple[float, list[int], float]:
    log = logging.getLogger(f"bench.{id(handler)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    extra = {"audit": ANNOTATION}
    latencies = [0] * calls
    clock = time.perf_counter_ns
    cpu_start = time.process_time()
    start = time.perf_counter()
    for i in range(calls):
        t0 = clock()
        log.info("customer viewed", extra=extra)
        latencies[i] = clock() - t0
    finish()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    log.removeHandler(handler)
    return elapsed, latencies, cpu


#: (row, plugins disabled, sealing)
MODES = (
    ("audit", "*", "thread"),
    ("audit+plugins", "cef", "thread"),
    ("process", "*", "process"),
    ("process+plugins", "cef", "process"),
)


def warm_up(handler: AuditHandler) -> None:
    """Start the pipeline (store, key, and the sealing process) before the clock runs:
    the rows compare steady logging, not a process's one-off start."""
    log = logging.getLogger(f"bench.warm.{id(handler)}")
    log.propagate = False
    log.addHandler(handler)
    log.warning("warm-up", extra={"audit": ANNOTATION})
    handler.flush()
    log.removeHandler(handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, list[int], float]]] = {
        "null": [],
        "json-logger": [],
        "audit": [],
        "audit+plugins": [],
        "process": [],
        "process+plugins": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "bench.key"
        SigningKey.generate("bench").write(key_file)
        for r in range(args.rounds):
            null = NullHandler()
            results["null"].append(run(null, args.calls, lambda: None))

            plain = logging.FileHandler(Path(tmp) / f"plain-{r}.jsonl")
            plain.setFormatter(JsonFormatter())
            results["json-logger"].append(run(plain, args.calls, plain.flush))
            plain.close()

            for name, disabled, sealing in MODES:
                audit = AuditHandler(
                    store=str(Path(tmp) / f"{name}-{r}"),
                    key_file=str(key_file),
                    disable_plugins=disabled,
                    plugins={"gdpr": {"vault": str(Path(tmp) / f"vault-{r}")}},
                    sealing=sealing,
                )
                warm_up(audit)
                results[name].append(run(audit, args.calls, audit.flush))
                audit.close()
        plugin_us = prepare_cost(Path(tmp) / "vault-prepare", args.calls)

    def rate(name: str) -> float:
        return float(args.calls / statistics.median(e for e, _, _ in results[name]))

    def cpu_us(name: str) -> float:
        """Process CPU time (every thread) per call: the GIL makes it the throughput bound."""
        return float(statistics.median(c for _, _, c in results[name]) / args.calls * 1e6)

    def pct(name: str, q: float) -> float:
        merged = sorted(x for _, lat, _ in results[name] for x in lat)
        return merged[int(q * (len(merged) - 1))] / 1000

    base = rate("json-logger")
    print(f"{args.calls:,} logger.info calls per handler, median of {args.rounds} rounds")
    print(
        f"{'handler':14} {'calls/s':>12} {'vs json-logger':>15} {'p50 µs':>8} {'p99 µs':>8} "
        f"{'cpu µs/call':>12}"
    )
    for name in results:
        print(
            f"{name:14} {rate(name):>12,.0f} {rate(name) / base:>14.2f}x "
            f"{pct(name, 0.50):>8.1f} {pct(name, 0.99):>8.1f} {cpu_us(name):>12.1f}"
        )
    print(
        "plugins' record hooks, µs a record: "
        + ", ".join(f"{name} {us:.1f}" for name, us in plugin_us.items())
    )
    for name in ("audit", "process"):
        ratio, p99 = rate(name) / base, pct(name, 0.99)
        print(
            f"targets, {name:7}: throughput >= 0.8x json-logger: "
            f"{'met' if ratio >= 0.8 else 'NOT met'} ({ratio:.2f}x); "
            f"p99 <= 50 µs: {'met' if p99 <= 50 else 'NOT met'} ({p99:.1f} µs)"
        )


if __name__ == "__main__":
    main()
