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
import os
import statistics
import time
from collections.abc import Callable

import orjson

from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.schema import validate_unsealed
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

    def seal(keep: list[bytes] | None = None) -> None:
        # Like the local store, hand the lines on in batches of 256 (one write each) and
        # keep nothing: holding every line (or sealed dict) would measure page faults and
        # garbage-collector walks of a growing heap instead of sealing.
        batch: list[bytes] = []
        out = os.open(os.devnull, os.O_WRONLY)

        def sink(sealed: SealedRecord) -> None:
            batch.append(sealed.line)
            if len(batch) >= 256:
                os.write(out, b"\n".join(batch))
                if keep is not None:
                    keep.extend(batch)
                batch.clear()

        sealer = Sealer(key, sink, service_name="bench")
        for i in range(n):  # as the pipeline does
            record = sample_record(i)
            violations, plain = validate_unsealed(record)
            if violations:
                raise SystemExit("sample record is invalid")
            sealer.seal(record, plain=plain)
        sealer.close()
        os.write(out, b"\n".join(batch))
        os.close(out)
        if keep is not None:
            keep.extend(batch)

    def build() -> None:
        for i in range(n):
            sample_record(i)

    def build_validate() -> None:
        for i in range(n):
            if validate_unsealed(sample_record(i))[0]:
                raise SystemExit("sample record is invalid")

    seal_s = timed(seal, args.rounds)
    seal(lines)  # once more, untimed, keeping the lines for verify
    build_s = timed(build, args.rounds)
    validate_s = timed(build_validate, args.rounds)
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

    def parse() -> None:
        loads = orjson.loads
        for line in lines:
            loads(line)

    floor_s = timed(floor, args.rounds)
    verify_s = timed(verify, args.rounds)
    parse_s = timed(parse, args.rounds)
    print(f"{n:,} records of median {size:.0f} bytes, median of {args.rounds} rounds, one core")
    print(f"{'floor (1 SHA-256/record)':28} {n / floor_s:>12,.0f} records/s   1.00x")
    for name, secs, target in (("seal", seal_s, 100_000), ("verify", verify_s, 150_000)):
        rate = n / secs
        print(
            f"{name:28} {rate:>12,.0f} records/s   {floor_s / secs:.3f}x of floor   "
            f"({secs / n * 1e6:.2f} µs/record; target {target:,}/s: "
            f"{'met' if rate >= target else 'NOT met'})"
        )
    # Where the time goes (each part measured on its own, so the parts need not add up).
    us = 1e6 / n
    print(
        f"seal, by part: build {build_s * us:.2f} µs + validate {(validate_s - build_s) * us:.2f}"
        f" µs + canonicalize/hash/Merkle/checkpoints {(seal_s - validate_s) * us:.2f} µs"
    )
    print(
        f"verify, by part: parse (orjson.loads) {parse_s * us:.2f} µs + leaf/chain/Merkle/"
        f"signatures {(verify_s - parse_s) * us:.2f} µs"
    )


if __name__ == "__main__":
    main()
