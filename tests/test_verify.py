"""The tamper matrix (issue 2 §8): every kind of damage is found and located."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pytest

from otel_audit import _note
from otel_audit._inputs import read_into
from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.sealing import SealedRecord
from otel_audit.testing import seal_stream
from otel_audit.verify import Report, Verifier, leaf_of

Lines = list[bytes]


@dataclass(frozen=True)
class Log:
    key: SigningKey
    a: list[SealedRecord]  # first stream
    b: list[SealedRecord]  # second stream, linked to the first

    @property
    def lines(self) -> Lines:
        return [s.line for s in self.a + self.b]

    @property
    def origin_a(self) -> str:
        return self.a[0].origin

    @property
    def origin_b(self) -> str:
        return self.b[0].origin


@pytest.fixture(scope="module")
def log() -> Log:
    key = SigningKey.generate("tamper-test")
    sealer_a, a = seal_stream(key, 5_000)
    _, b = seal_stream(key, 5_000, previous_checkpoint=sealer_a.last_checkpoint)
    assert len(a) + len(b) >= 10_000
    return Log(key, a, b)


def check(lines: Lines, key: SigningKey, *, keys: list[VerifierKey] | None = None) -> Report:
    verifier = Verifier([VerifierKey.parse(key.vkey)] if keys is None else keys)
    for number, line in enumerate(lines, start=1):
        verifier.add(orjson.loads(line), line, f"test:{number}")
    return verifier.finish()


def located(report: Report, kind: str, origin: str, seq: int) -> bool:
    return any(
        f.kind == kind
        and f.severity == "error"
        and f.origin == origin
        and f.first_seq is not None
        and f.first_seq <= seq <= (f.last_seq if f.last_seq is not None else f.first_seq)
        for f in report.findings
    )


def index_of(lines: Lines, origin: str, seq: int) -> int:
    for i, line in enumerate(lines):
        integrity = orjson.loads(line)["integrity"]
        if integrity["origin"] == origin and integrity["seq"] == seq:
            return i
    raise AssertionError(f"no record {origin} {seq}")


def edit(lines: Lines, i: int, change: Callable[[dict[str, object]], None]) -> Lines:
    record = orjson.loads(lines[i])
    change(record)
    return [*lines[:i], orjson.dumps(record, option=orjson.OPT_SORT_KEYS), *lines[i + 1 :]]


def reseal(record: dict[str, object]) -> bytes:
    """What an attacker without the key can do: recompute the record's own checksum."""
    metadata = record["metadata"]
    assert isinstance(metadata, dict)
    metadata.pop("checksum", None)
    leaf, _ = leaf_of(record)
    metadata["checksum"] = "sha256:" + leaf.hex()
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def test_untouched_log_is_intact(log: Log) -> None:
    report = check(log.lines, log.key)
    assert report.findings == []
    assert report.intact(strict=True)
    assert report.records == len(log.a) + len(log.b)
    assert [s.closed for s in report.streams] == [True, True]
    assert sum(s.verified_checkpoints for s in report.streams) >= 10


def test_shuffled_lines_are_still_intact(log: Log) -> None:
    lines = log.lines
    random.Random(7).shuffle(lines)
    assert check(lines, log.key).findings == []


def test_one_byte_changed_in_a_field(log: Log) -> None:
    i = index_of(log.lines, log.origin_a, 1234)
    tampered = list(log.lines)
    tampered[i] = tampered[i].replace(b'"role":"admin"', b'"role":"admim"', 1)
    assert tampered[i] != log.lines[i]
    report = check(tampered, log.key)
    assert located(report, "modified", log.origin_a, 1234)
    assert not report.intact()


def test_one_record_deleted(log: Log) -> None:
    lines = log.lines
    del lines[index_of(lines, log.origin_a, 2000)]
    report = check(lines, log.key)
    assert located(report, "missing", log.origin_a, 2000)
    assert not located(report, "missing", log.origin_a, 2001)


def test_range_deleted(log: Log) -> None:
    lines = log.lines
    start = index_of(lines, log.origin_b, 100)
    del lines[start : start + 100]
    report = check(lines, log.key)
    finding = next(f for f in report.errors if f.kind == "missing")
    assert (finding.origin, finding.first_seq, finding.last_seq) == (log.origin_b, 100, 199)


def test_two_records_contents_swapped(log: Log) -> None:
    lines = log.lines
    i, j = index_of(lines, log.origin_a, 10), index_of(lines, log.origin_a, 11)
    ri, rj = orjson.loads(lines[i]), orjson.loads(lines[j])
    for field in ("actor", "resource", "context", "event_id"):
        ri[field], rj[field] = rj[field], ri[field]
    lines[i], lines[j] = orjson.dumps(ri), orjson.dumps(rj)
    report = check(lines, log.key)
    assert located(report, "modified", log.origin_a, 10)
    assert located(report, "modified", log.origin_a, 11)


def test_forged_record_inserted_at_an_existing_seq(log: Log) -> None:
    lines = log.lines
    forged = orjson.loads(lines[index_of(lines, log.origin_a, 3000)])
    forged["actor"] = {"user_id": "mallory@example.com"}
    lines.append(reseal(forged))
    report = check(lines, log.key)
    assert located(report, "duplicate", log.origin_a, 3000)


def test_forged_record_appended_after_stream_end(log: Log) -> None:
    lines = log.lines
    last = orjson.loads(log.a[-1].line)
    forged = orjson.loads(log.a[5].line)
    forged["integrity"] = {
        "origin": log.origin_a,
        "seq": last["integrity"]["seq"] + 1,
        "prev_hash": last["metadata"]["checksum"],
    }
    lines.append(reseal(forged))
    report = check(lines, log.key)
    assert located(report, "unsealed_tail", log.origin_a, last["integrity"]["seq"] + 1)


def test_record_duplicated_verbatim(log: Log) -> None:
    """A byte-identical copy is what at-least-once delivery produces: a warning, not a
    failure (issue 4: "duplicates from retries are harmless"); --strict fails on it."""
    lines = log.lines
    lines.insert(17, lines[index_of(lines, log.origin_b, 42)])
    report = check(lines, log.key)
    assert report.intact()
    assert not report.intact(strict=True)
    dup = [f for f in report.findings if f.kind == "duplicate"]
    assert [(f.origin, f.first_seq, f.severity) for f in dup] == [(log.origin_b, 42, "warning")]
    assert report.records == len(log.lines)


def test_tail_truncated_past_a_checkpoint(log: Log) -> None:
    """Cutting the first stream's tail is proven by the checkpoint the second one carries."""
    cut = 4000
    lines = [s.line for s in log.a[: cut + 1]] + [s.line for s in log.b]
    report = check(lines, log.key)
    assert located(report, "missing", log.origin_a, cut + 1)
    assert located(report, "missing", log.origin_a, log.a[-2].seq)


def test_tail_truncated_on_the_newest_stream_is_an_open_stream(log: Log) -> None:
    """Nothing after the newest stream can vouch for its end: a warning, strict fails."""
    lines = [s.line for s in log.a] + [s.line for s in log.b[:3000]]
    report = check(lines, log.key)
    assert report.intact()
    assert not report.intact(strict=True)
    tail = next(f for f in report.findings if f.kind == "unsealed_tail")
    assert tail.origin == log.origin_b
    assert tail.severity == "warning"


def test_checkpoint_removed(log: Log) -> None:
    cp = next(s for s in log.a if s.action == "CHECKPOINT")
    lines = [line for line in log.lines if line != cp.line]
    report = check(lines, log.key)
    assert located(report, "missing", log.origin_a, cp.seq)


def _checkpoint_index(lines: Lines, log: Log) -> tuple[int, int]:
    cp = next(s for s in log.a if s.action == "CHECKPOINT")
    return index_of(lines, log.origin_a, cp.seq), cp.seq


def test_checkpoint_signature_altered(log: Log) -> None:
    lines = log.lines
    i, seq = _checkpoint_index(lines, log)

    def flip(record: dict[str, object]) -> None:
        integrity = record["integrity"]
        assert isinstance(integrity, dict)
        note: str = integrity["checkpoint"]
        head, sig = note.rsplit(" ", 1)
        sig = ("B" if sig[10] == "A" else "A").join((sig[:10], sig[11:]))
        integrity["checkpoint"] = f"{head} {sig}"

    report = check(edit(lines, i, flip), log.key)
    assert located(report, "bad_signature", log.origin_a, seq)


def test_checkpoint_resigned_with_unknown_key(log: Log) -> None:
    lines = log.lines
    i, seq = _checkpoint_index(lines, log)
    mallory = SigningKey.generate("tamper-test")  # same name, other key

    def resign(record: dict[str, object]) -> None:
        integrity = record["integrity"]
        assert isinstance(integrity, dict)
        text = _note.parse_note(integrity["checkpoint"]).text
        integrity["checkpoint"] = _note.sign_note(text, [mallory])

    report = check(edit(lines, i, resign), log.key)
    assert located(report, "unknown_key", log.origin_a, seq)


def test_whole_origin_deleted(log: Log) -> None:
    report = check([s.line for s in log.b], log.key)
    assert any(f.kind == "missing_stream" and f.origin == log.origin_a for f in report.errors)


def test_integrity_seq_rewritten(log: Log) -> None:
    lines = log.lines
    i = index_of(lines, log.origin_a, 500)

    def renumber(record: dict[str, object]) -> None:
        integrity = record["integrity"]
        assert isinstance(integrity, dict)
        integrity["seq"] = 50_000

    report = check(edit(lines, i, renumber), log.key)
    assert located(report, "missing", log.origin_a, 500)
    assert located(report, "modified", log.origin_a, 50_000)


def test_without_the_key_every_checkpoint_is_unknown(log: Log) -> None:
    report = check(log.lines, log.key, keys=[])
    assert report.kinds() == {"unknown_key"}
    assert not report.intact()


def test_consistent_rewrite_is_caught_by_the_signed_root(log: Log) -> None:
    """An attacker without the key changes one record and re-seals every record after it:
    each record then matches its checksum and chain, but no signed root matches."""
    records = [orjson.loads(s.line) for s in log.a]
    records[100]["actor"] = {"user_id": "mallory@example.com"}
    lines = [s.line for s in log.a[:100]]
    prev = records[99]["metadata"]["checksum"]
    for record in records[100:]:
        record["integrity"]["prev_hash"] = prev
        line = reseal(record)
        prev = orjson.loads(line)["metadata"]["checksum"]
        lines.append(line)
    report = check(lines, log.key)
    first_cp = next(s.seq for s in log.a if s.action == "CHECKPOINT")
    assert located(report, "inconsistent_checkpoint", log.origin_a, first_cp - 1)
    assert report.kinds() == {"inconsistent_checkpoint"}


def test_reader_flags_a_torn_last_line(log: Log, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "torn.jsonl"
    body = b"\n".join(s.line for s in log.a[:50]) + b"\n" + log.a[50].line[:40]
    path.write_bytes(body)
    verifier = Verifier([VerifierKey.parse(log.key.vkey)])
    read_into(verifier, [str(path)])
    report = verifier.finish()
    assert report.intact()
    assert {f.kind for f in report.warnings} >= {"torn_line", "unsealed_tail"}
