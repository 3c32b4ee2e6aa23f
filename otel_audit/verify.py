"""Verification: prove from whatever a backend kept that nothing was changed (DESIGN §5).

Records may come in any order and batching, from any number of files. The verifier
groups them by origin, orders them by seq, recomputes every RFC 6962 leaf hash, chain
link, Merkle root and C2SP checkpoint signature, follows each stream's link to its
predecessor, and reports findings in the manner of CloudTrail's ``validate-logs``.

Finding kinds (severity ``error`` unless noted):

==========================  ================================================================
``modified``                the record's content does not match its ``metadata.checksum``
``missing``                 seq numbers absent from a stream (a range)
``duplicate``               two different records claim one seq (a byte-identical copy,
                            as at-least-once delivery produces, is a *warning*)
``chain_break``             ``prev_hash`` does not name the previous record's checksum
``bad_signature``           a checkpoint signature by a known key does not verify
``unknown_key``             a checkpoint carries no signature by any key given
``inconsistent_checkpoint`` a signed checkpoint disagrees with the records (root, size, origin)
``unsealed_tail``           records after the last checkpoint: a *warning* for an open stream
                            (live or crashed), an error after STREAM_END
``missing_stream``          a stream that a later stream links to is absent
``malformed``               a line or record that is not an audit record
``torn_line``               a file's last line is cut short (a crash mid-write): *warning*
==========================  ================================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from otel_audit._canonical import canonicalize
from otel_audit._inputs import read_into
from otel_audit._merkle import CompactRange
from otel_audit._note import Checkpoint, parse_checkpoint, verify_note
from otel_audit.errors import AuditError
from otel_audit.keys import VerifierKey

__all__ = ["Finding", "Report", "StreamSummary", "Verifier", "verify_paths"]

Severity = Literal["error", "warning"]
_GENESIS = "sha256:" + "0" * 64
_CHECKPOINT_ACTIONS = frozenset({"CHECKPOINT", "STREAM_END"})
_LEAF_PREFIX = hashlib.sha256(b"\x00")  # RFC 6962 §2.1 leaf: SHA-256(0x00 || data)


@dataclass(frozen=True)
class Finding:
    """One problem, located by origin and an inclusive seq range (where known)."""

    kind: str
    detail: str
    origin: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    severity: Severity = "error"
    where: str | None = None  # file:line of the offending input, where there is one

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "severity": self.severity}
        for key in ("origin", "first_seq", "last_seq", "where"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["detail"] = self.detail
        return out

    def __str__(self) -> str:
        loc = ""
        if self.origin is not None:
            loc = f" origin={self.origin}"
        if self.first_seq is not None:
            seqs = (
                str(self.first_seq)
                if self.last_seq in (None, self.first_seq)
                else f"{self.first_seq}-{self.last_seq}"
            )
            loc += f" seq={seqs}"
        if self.where:
            loc += f" at {self.where}"
        label = "FAIL" if self.severity == "error" else "WARN"
        return f"{label} {self.kind}{loc}: {self.detail}"


@dataclass
class StreamSummary:
    """What the verifier saw of one origin."""

    origin: str
    records: int = 0
    first_seq: int = 0
    last_seq: int = -1
    checkpoints: int = 0
    verified_checkpoints: int = 0
    closed: bool = False
    signed_size: int = 0  # tree size of the last checkpoint whose root matched
    keys: set[str] = field(default_factory=set)
    first_damage: int | None = None  # lowest seq with an error finding

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoints": self.checkpoints,
            "verified_checkpoints": self.verified_checkpoints,
            "closed": self.closed,
            "signed_size": self.signed_size,
            "keys": sorted(self.keys),
        }


@dataclass
class Report:
    findings: list[Finding]
    streams: list[StreamSummary]
    records: int
    duplicates: int
    files: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def intact(self, *, strict: bool = False) -> bool:
        """True when nothing is wrong; ``strict`` also fails on warnings."""
        return not (self.findings if strict else self.errors)

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def summary(self, *, strict: bool = False) -> str:
        """The verdict line, e.g. ``INTACT: 3,506 records in 2 stream(s) ...``."""
        closed = sum(1 for s in self.streams if s.closed)
        checkpoints = sum(s.verified_checkpoints for s in self.streams)
        verdict = "INTACT" if self.intact(strict=strict) else "INTEGRITY FAILURE"
        return (
            f"{verdict}: {self.records:,} records in {len(self.streams)} stream(s) "
            f"({closed} closed) from {self.files} file(s); {checkpoints} checkpoints "
            f"verified; {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        )

    def to_json(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "intact": self.intact(strict=strict),
            "records": self.records,
            "duplicates": self.duplicates,
            "streams": [s.to_json() for s in self.streams],
            "findings": [f.to_json() for f in self.findings],
        }


class _Entry:
    """What the verifier keeps of one record: a few fields, not the record."""

    __slots__ = (
        "action",
        "checksum",
        "intact",
        "leaf",
        "line",
        "note",
        "prev",
        "previous",
        "where",
    )

    def __init__(
        self,
        leaf: bytes,
        checksum: str,
        prev: str,
        intact: bool,
        where: str,
        line: bytes | None,
    ) -> None:
        self.leaf = leaf
        self.checksum = checksum
        self.prev = prev
        self.intact = intact
        self.where = where
        self.line = line
        self.action: str | None = None
        self.note: str | None = None
        self.previous: str | None = None


def leaf_of(record: Mapping[str, Any], line: bytes | None = None) -> tuple[bytes, bool]:
    """RFC 6962 leaf hash of a sealed record and whether it matches ``metadata.checksum``.

    When ``line`` is the record's wire form (RFC 8785 with the checksum member), the
    canonical bytes are that line without the checksum member; a hash match then proves
    those bytes are what the sealer hashed. Otherwise (a re-encoded record, e.g. an OTLP
    map body) the record is canonicalized afresh.
    """
    metadata = record.get("metadata")
    checksum = metadata.get("checksum") if isinstance(metadata, dict) else None
    if line is not None and isinstance(checksum, str):
        member = b'"checksum":"' + checksum.encode() + b'",'
        digest = _LEAF_PREFIX.copy()
        digest.update(line.replace(member, b"", 1))
        leaf = digest.digest()
        if checksum == "sha256:" + leaf.hex():
            return leaf, True
    unsealed = dict(record)
    if isinstance(metadata, dict):
        unsealed["metadata"] = {k: v for k, v in metadata.items() if k != "checksum"}
    try:
        canonical = canonicalize(unsealed)
    except (AuditError, TypeError, ValueError):
        canonical = repr(unsealed).encode("utf-8", "replace")  # cannot match any checksum
    leaf = hashlib.sha256(b"\x00" + canonical).digest()
    return leaf, checksum == "sha256:" + leaf.hex()


class Verifier:
    """Feed records with :meth:`add` (any order), then call :meth:`finish` once."""

    def __init__(self, keys: Sequence[VerifierKey] = ()) -> None:
        self._keys = list(keys)
        self._streams: dict[str, dict[int, _Entry]] = {}
        self._conflicts: dict[tuple[str, int], list[_Entry]] = {}
        self._findings: list[Finding] = []
        self._records = 0
        self._duplicates = 0
        self._keep_lines = False
        #: called with every record given to :meth:`add` (e.g. a plugin's report command)
        self.on_record: Callable[[Any], None] | None = None

    def keep_lines(self) -> None:
        """Keep each record's wire line (for building inclusion proofs)."""
        self._keep_lines = True

    @property
    def records(self) -> int:
        return self._records

    def problem(self, kind: str, detail: str, where: str, severity: Severity = "error") -> None:
        """Record an input problem found by a reader (malformed or torn line)."""
        self._findings.append(Finding(kind, detail, where=where, severity=severity))

    def add(self, record: Any, line: bytes | None, where: str) -> None:
        """Take one record; ``line`` is its wire form when the input kept it verbatim."""
        self._records += 1
        if self.on_record is not None:
            self.on_record(record)
        try:
            integrity = record["integrity"]
            origin = integrity["origin"]
            seq = integrity["seq"]
            prev = integrity["prev_hash"]
            checksum = record["metadata"]["checksum"]
        except (KeyError, TypeError):
            self.problem("malformed", "not a sealed audit record (no integrity block)", where)
            return
        if not (
            isinstance(origin, str)
            and type(seq) is int
            and seq >= 0
            and isinstance(prev, str)
            and isinstance(checksum, str)
        ):
            self.problem("malformed", "integrity fields have the wrong types", where)
            return
        if line is not None:  # the fast path of leaf_of, inlined: this is the hot loop
            digest = _LEAF_PREFIX.copy()
            digest.update(line.replace(b'"checksum":"' + checksum.encode() + b'",', b"", 1))
            leaf = digest.digest()
            intact = checksum == "sha256:" + leaf.hex()
        if line is None or not intact:
            leaf, intact = leaf_of(record, line)
        entry = _Entry(leaf, checksum, prev, intact, where, line if self._keep_lines else None)
        if record.get("category") == "integrity":
            action = record.get("action")
            entry.action = action if isinstance(action, str) else None
            note = integrity.get("checkpoint")
            entry.note = note if isinstance(note, str) else None
            previous = integrity.get("previous_checkpoint")
            entry.previous = previous if isinstance(previous, str) else None
        stream = self._streams.get(origin)
        if stream is None:
            stream = self._streams[origin] = {}
        have = stream.get(seq)
        if have is None:
            stream[seq] = entry
        elif have.leaf == entry.leaf and have.checksum == checksum and intact:
            self._duplicates += 1
            self._findings.append(
                Finding(
                    "duplicate",
                    "byte-identical copy (at-least-once delivery); counted once",
                    origin,
                    seq,
                    seq,
                    "warning",
                    where,
                )
            )
        else:
            self._conflicts.setdefault((origin, seq), [have]).append(entry)

    def finish(self) -> Report:
        findings = list(self._findings)
        summaries: list[StreamSummary] = []
        links: list[tuple[str, _Entry]] = []
        for origin in sorted(self._streams):
            summary, stream_findings = self._check_stream(origin)
            summaries.append(summary)
            findings.extend(stream_findings)
            first = self._streams[origin].get(0)
            if first is not None and first.previous is not None:
                links.append((origin, first))
        by_origin = {s.origin: s for s in summaries}
        for origin, first in links:
            findings.extend(self._check_link(origin, first, by_origin))
        findings.sort(key=_finding_order)
        return Report(findings, summaries, self._records - self._duplicates, self._duplicates)

    def leaves(self, origin: str) -> list[bytes]:
        """Leaf hashes of one origin from seq 0 up to its first gap."""
        stream = self._streams.get(origin, {})
        out: list[bytes] = []
        while (entry := stream.get(len(out))) is not None:
            out.append(entry.leaf)
        return out

    def entry_line(self, origin: str, seq: int) -> bytes | None:
        entry = self._streams.get(origin, {}).get(seq)
        return None if entry is None else entry.line

    def checkpoints(self, origin: str) -> list[tuple[int, str]]:
        """(seq, note) of every checkpoint record of one origin, in seq order."""
        stream = self._streams.get(origin, {})
        return [
            (seq, e.note)
            for seq, e in sorted(stream.items())
            if e.note is not None and e.action in _CHECKPOINT_ACTIONS
        ]

    # -- one stream -----------------------------------------------------------------------

    def _check_stream(self, origin: str) -> tuple[StreamSummary, list[Finding]]:
        stream = self._streams[origin]
        seqs = sorted(stream)
        out: list[Finding] = []
        summary = StreamSummary(origin, len(seqs), seqs[0], seqs[-1])
        damaged_below: int | None = None  # lowest seq with a finding: roots past it can't match

        def damage(seq: int) -> None:
            nonlocal damaged_below
            if damaged_below is None or seq < damaged_below:
                damaged_below = seq

        for seq, candidates in sorted(
            (s, c) for (o, s), c in self._conflicts.items() if o == origin
        ):
            chosen = self._resolve_conflict(stream, seq, candidates)
            stream[seq] = chosen
            out.append(
                Finding(
                    "duplicate",
                    f"{len(candidates)} different records claim this seq "
                    f"(at {', '.join(c.where for c in candidates)})",
                    origin,
                    seq,
                    seq,
                )
            )
            damage(seq)

        # gaps (RFC-less, plain bookkeeping): seq is contiguous from 0 per origin
        expected = 0
        for seq in seqs:
            if seq > expected:
                out.append(
                    Finding(
                        "missing", f"{seq - expected} record(s) absent", origin, expected, seq - 1
                    )
                )
                damage(expected)
            expected = seq + 1

        modified = [s for s in seqs if not stream[s].intact]
        for first, last in _ranges(modified):
            out.append(
                Finding(
                    "modified",
                    "content does not match metadata.checksum",
                    origin,
                    first,
                    last,
                    where=stream[first].where,
                )
            )
            damage(first)

        for seq in seqs:
            entry = stream[seq]
            if not entry.intact:
                continue
            if seq == 0:
                want: str | None = _GENESIS
            else:
                before = stream.get(seq - 1)
                want = None if before is None else before.checksum
            if want is not None and entry.prev != want:
                out.append(
                    Finding(
                        "chain_break",
                        f"prev_hash {entry.prev[:19]}… does not name the previous record "
                        f"({want[:19]}…)",
                        origin,
                        seq,
                        seq,
                        where=entry.where,
                    )
                )
                damage(seq)

        # Merkle roots and signatures (RFC 6962 §2.1; C2SP tlog-checkpoint, signed-note)
        tree = CompactRange()
        last_cp = -1
        end_seq: int | None = None
        for seq in seqs:
            entry = stream[seq]
            if entry.action in _CHECKPOINT_ACTIONS and entry.note is not None:
                summary.checkpoints += 1
                last_cp = seq
                if entry.action == "STREAM_END":
                    end_seq = seq
                root = tree.root() if tree.size == seq else None
                cp_findings = self._check_checkpoint(origin, seq, entry, root, damaged_below)
                out.extend(cp_findings)
                if not cp_findings:
                    summary.verified_checkpoints += 1
                    summary.signed_size = seq
                elif any(f.kind != "unknown_key" for f in cp_findings):
                    damage(seq)
                summary.keys.update(self._signers_of(entry.note))
            if tree.size == seq:
                tree.append(entry.leaf)

        summary.closed = end_seq is not None
        summary.first_damage = damaged_below
        last = seqs[-1]
        if end_seq is not None and last > end_seq:
            out.append(
                Finding(
                    "unsealed_tail",
                    f"{last - end_seq} record(s) after STREAM_END",
                    origin,
                    end_seq + 1,
                    last,
                )
            )
        elif end_seq is None:
            tail = last - last_cp
            out.append(
                Finding(
                    "unsealed_tail",
                    f"open stream (no STREAM_END; live or crashed): {tail} record(s) after "
                    "the last checkpoint",
                    origin,
                    last_cp + 1 if tail else None,
                    last if tail else None,
                    "warning",
                )
            )
        return summary, out

    def _resolve_conflict(
        self, stream: dict[int, _Entry], seq: int, candidates: list[_Entry]
    ) -> _Entry:
        """Of records claiming one seq, keep the one the chain after it names."""
        after = stream.get(seq + 1)
        for cand in candidates:
            if cand.intact and after is not None and after.prev == cand.checksum:
                return cand
        return next((c for c in candidates if c.intact), candidates[0])

    def _signers_of(self, note: str) -> set[str]:
        try:
            verdict = verify_note(note, self._keys)
        except AuditError:
            return set()
        return set(verdict.verified_by)

    def _check_note(
        self, origin: str, seq: int, note: str, where: str
    ) -> tuple[Checkpoint | None, list[Finding]]:
        try:
            verdict = verify_note(note, self._keys)
            checkpoint = parse_checkpoint(verdict.text)
        except AuditError as exc:
            return None, [
                Finding(
                    "bad_signature",
                    f"unreadable checkpoint note: {exc}",
                    origin,
                    seq,
                    seq,
                    where=where,
                )
            ]
        out: list[Finding] = []
        if verdict.bad:
            out.append(
                Finding(
                    "bad_signature",
                    f"signature by {', '.join(verdict.bad)} does not verify",
                    origin,
                    seq,
                    seq,
                    where=where,
                )
            )
        elif not verdict.verified_by:
            names = ", ".join(verdict.unknown) or "nobody"
            out.append(
                Finding(
                    "unknown_key",
                    f"signed only by keys not given with --key: {names}",
                    origin,
                    seq,
                    seq,
                    where=where,
                )
            )
        return checkpoint, out

    def _check_checkpoint(
        self, origin: str, seq: int, entry: _Entry, root: bytes | None, damaged_below: int | None
    ) -> list[Finding]:
        assert entry.note is not None
        checkpoint, out = self._check_note(origin, seq, entry.note, entry.where)
        if checkpoint is None:
            return out
        problems = []
        if checkpoint.origin != origin:
            problems.append(f"signs origin {checkpoint.origin!r}")
        if checkpoint.size != seq:
            problems.append(f"signs tree size {checkpoint.size}, expected {seq}")
        elif (
            root is not None
            and root != checkpoint.root
            and (damaged_below is None or damaged_below >= seq)
        ):
            problems.append(
                f"signed root {checkpoint.root.hex()[:16]}… differs from the records' "
                f"root {root.hex()[:16]}…"
            )
        if problems:
            out.append(
                Finding(
                    "inconsistent_checkpoint",
                    "; ".join(problems),
                    origin,
                    0,
                    seq - 1,
                    where=entry.where,
                )
            )
        return out

    # -- links between streams (DESIGN §4 "Origin") ------------------------------------------

    def _check_link(
        self, origin: str, first: _Entry, by_origin: dict[str, StreamSummary]
    ) -> list[Finding]:
        assert first.previous is not None
        checkpoint, out = self._check_note(origin, 0, first.previous, first.where)
        if checkpoint is None or out:
            return out
        prev_origin, size = checkpoint.origin, checkpoint.size
        summary = by_origin.get(prev_origin)
        if summary is None:
            return [
                Finding(
                    "missing_stream",
                    f"stream {origin} links to this stream (signed size {size}), "
                    "which is absent from the input",
                    prev_origin,
                    0,
                    max(size - 1, 0),
                )
            ]
        if summary.last_seq < size - 1:
            return [
                Finding(
                    "missing",
                    f"truncated: stream {origin} says this stream had {size} records "
                    "under signature",
                    prev_origin,
                    summary.last_seq + 1,
                    size - 1,
                )
            ]
        leaves = self.leaves(prev_origin)
        damaged = summary.first_damage is not None and summary.first_damage < size
        if len(leaves) >= size and not damaged:
            tree = CompactRange()
            for leaf in leaves[:size]:
                tree.append(leaf)
            if tree.root() != checkpoint.root:
                return [
                    Finding(
                        "inconsistent_checkpoint",
                        f"the checkpoint that stream {origin} carries for this stream does "
                        "not match its records",
                        prev_origin,
                        0,
                        size - 1,
                    )
                ]
        return []


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for seq in seqs:
        if out and out[-1][1] == seq - 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def _finding_order(f: Finding) -> tuple[str, int, str]:
    return (f.origin or "", -1 if f.first_seq is None else f.first_seq, f.kind)


def verify_paths(
    paths: Iterable[str],
    keys: Sequence[VerifierKey] = (),
    *,
    progress: Callable[[int], None] | None = None,
    on_record: Callable[[Any], None] | None = None,
) -> Report:
    """Verify every record in the files and directories named (see docs/format.md §7);
    ``on_record`` sees each record read (parsed JSON, before any check)."""
    verifier = Verifier(keys)
    verifier.on_record = on_record
    files = read_into(verifier, list(paths), progress)
    report = verifier.finish()
    report.files = files
    return report
