"""Seal and verify throughput on one core, against the floor measured in the same run.

seal   = build a ~1 KB record + validate + RFC 8785 + leaf hash + chain + Merkle + checkpoints
verify = parse each line + recompute leaf, chain, Merkle roots, checkpoint signatures
floor  = one SHA-256 of the same canonical bytes per record (nothing can be cheaper)

Run: ``.venv/bin/python benchmarks/bench_seal.py [--records N] [--rounds R]``.
Figures are medians over the rounds; targets (issue 2): seal >= 100,000/s, verify >= 150,000/s.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable

import orjson

from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.schema import validate
from otel_audit.sealing import SealedRecord, Sealer
from otel_audit.testing import sample_record
from otel_audit.verify import Verifier


def timed(fn: Callable[[], object], rounds: int) -> float:
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.records
    key = SigningKey.generate("bench")
    lines: list[bytes] = []

    def seal() -> None:
        # Like a real sink, keep only the lines: holding every sealed dict would make the
        # garbage collector re-walk a growing heap and measure that instead of sealing.
        out: list[bytes] = []

        def sink(sealed: SealedRecord) -> None:
            out.append(sealed.line)

        sealer = Sealer(key, sink, service_name="bench")
        for i in range(n):
            record = sample_record(i)
            if validate(record, sealed=False):
                raise SystemExit("sample record is invalid")
            sealer.seal(record)
        sealer.close()
        lines[:] = out

    seal_s = timed(seal, args.rounds)
    size = statistics.median(len(line) for line in lines)

    def floor() -> None:
        sha256 = hashlib.sha256
        for line in lines:
            sha256(line).digest()

    vkey = VerifierKey.parse(key.vkey)

    def verify() -> None:
        verifier = Verifier([vkey])
        loads, add = orjson.loads, verifier.add
        for line in lines:
            add(loads(line), line, "bench")
        report = verifier.finish()
        if not report.intact(strict=True):
            raise SystemExit(f"verification failed: {report.findings[:3]}")

    floor_s = timed(floor, args.rounds)
    verify_s = timed(verify, args.rounds)
    print(f"{n:,} records of median {size:.0f} bytes, median of {args.rounds} rounds, one core")
    print(f"{'floor (1 SHA-256/record)':28} {n / floor_s:>12,.0f} records/s   1.00x")
    for name, secs, target in (("seal", seal_s, 100_000), ("verify", verify_s, 150_000)):
        rate = n / secs
        print(
            f"{name:28} {rate:>12,.0f} records/s   {floor_s / secs:.3f}x of floor   "
            f"({secs / n * 1e6:.2f} µs/record; target {target:,}/s: "
            f"{'met' if rate >= target else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
