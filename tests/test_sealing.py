"""The sealer: chain, checkpoints, rotation, threads; seal → verify round trips."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_audit import _note
from otel_audit._canonical import canonicalize_reference
from otel_audit._merkle import leaf_hash
from otel_audit.errors import SealError
from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.sealing import GENESIS_HASH, SealedRecord, Sealer
from otel_audit.testing import sample_record, seal_stream
from otel_audit.verify import Report, Verifier

KEY = SigningKey.generate("sealing-test")


def verify(records: list[SealedRecord], *keys: SigningKey) -> Report:
    verifier = Verifier([VerifierKey.parse(k.vkey) for k in keys or (KEY,)])
    for s in records:
        verifier.add(orjson.loads(s.line), s.line, f"seq {s.seq}")
    return verifier.finish()


def test_chain_checksum_and_wire_line() -> None:
    _, out = seal_stream(KEY, 5)
    assert [s.seq for s in out] == list(range(len(out)))
    assert out[0].action == "STREAM_START"
    assert out[0].record["integrity"]["prev_hash"] == GENESIS_HASH
    assert out[0].record["integrity"]["vkey"] == KEY.vkey
    for before, after in itertools.pairwise(out):
        assert after.record["integrity"]["prev_hash"] == before.record["metadata"]["checksum"]
    for s in out:
        unsealed = orjson.loads(s.line)
        checksum = unsealed["metadata"].pop("checksum")
        assert s.leaf == leaf_hash(canonicalize_reference(unsealed))
        assert checksum == "sha256:" + s.leaf.hex()
        assert s.line == canonicalize_reference(s.record)
    assert out[-1].action == "STREAM_END"


def test_checkpoint_every_n_signs_the_records_before_it() -> None:
    _, out = seal_stream(KEY, 50, checkpoint_every=10)
    checkpoints = [s for s in out if s.action in ("CHECKPOINT", "STREAM_END")]
    assert len(checkpoints) == 6
    for cp in checkpoints:
        verdict = _note.verify_note(cp.record["integrity"]["checkpoint"], [KEY.verifier()])
        assert verdict.ok
        body = _note.parse_checkpoint(verdict.text)
        assert (body.origin, body.size) == (cp.origin, cp.seq)
    assert verify(out).intact(strict=True)


def test_interval_checkpoint_by_tick_and_clean_close() -> None:
    out: list[SealedRecord] = []
    sealer = Sealer(KEY, out.append, checkpoint_every=10_000, checkpoint_interval_ms=1)
    assert not sealer.tick() or out[-1].action == "CHECKPOINT"
    sealer.seal(sample_record(1))
    threading.Event().wait(0.005)
    sealer.tick()
    assert out[-1].action == "CHECKPOINT"
    assert not sealer.tick()  # nothing unsealed since
    end = sealer.close()
    assert end is not None
    assert end.action == "STREAM_END"
    assert sealer.close() is None
    with pytest.raises(SealError):
        sealer.seal(sample_record(2))
    assert verify(out).intact(strict=True)


def test_key_rotation_overlap_signs_with_both_keys() -> None:
    new_key = SigningKey.generate("sealing-test-2027")
    out: list[SealedRecord] = []
    sealer = Sealer(KEY, out.append, checkpoint_every=5, checkpoint_interval_ms=3_600_000)
    for i in range(7):
        sealer.seal(sample_record(i))
    sealer.rotate(new_key, overlap=2)
    for i in range(20):
        sealer.seal(sample_record(i))
    sealer.close()
    rotation = next(s for s in out if s.action == "KEY_ROTATION")
    assert rotation.record["integrity"]["vkey"] == new_key.vkey
    signers = [
        len(_note.parse_note(s.record["integrity"]["checkpoint"]).signatures)
        for s in out
        if s.seq > rotation.seq and "checkpoint" in s.record["integrity"]
    ]
    assert signers[:2] == [2, 2]
    assert set(signers[2:]) == {1}
    assert verify(out, KEY, new_key).intact(strict=True)
    # the old key alone vouches up to the overlap, not after it
    old_only = verify(out, KEY)
    assert old_only.kinds() == {"unknown_key"}


def test_concurrent_sealing_keeps_one_contiguous_chain() -> None:
    out: list[SealedRecord] = []
    sealer = Sealer(KEY, out.append, checkpoint_every=64)

    def work(base: int) -> None:
        for i in range(300):
            sealer.seal(sample_record(base + i))

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sealer.close()
    assert [s.seq for s in out] == list(range(len(out)))
    assert sum(1 for s in out if s.category != "integrity") == 2400
    assert verify(out).intact(strict=True)


def test_records_with_floats_and_astral_keys_take_the_reference_path() -> None:
    out: list[SealedRecord] = []
    sealer = Sealer(KEY, out.append)
    record = sample_record(3)
    record["change_tracking"] = {
        "before_state": {"limit": 1e21, "\U0001f600": 0.1, "\ue000": -0.0},
        "after_state": {"limit": 2.5},
        "change_reason": "test",
    }
    sealed = sealer.seal(record)
    sealer.close()
    assert b"1e+21" in sealed.line
    assert sealed.line == canonicalize_reference(sealed.record)
    assert verify(out).intact(strict=True)


def test_plain_records_sealed_without_the_type_walk_are_exact() -> None:
    out: list[SealedRecord] = []
    sealer = Sealer(KEY, out.append)
    for i in range(20):
        sealer.seal(sample_record(i), plain=True)
    sealer.close()
    assert all(s.line == canonicalize_reference(s.record) for s in out)
    for s in out:
        record = orjson.loads(s.line)
        del record["metadata"]["checksum"]
        assert s.leaf == leaf_hash(canonicalize_reference(record))
    assert verify(out).intact(strict=True)


@pytest.mark.parametrize(
    "metadata",
    [
        {"risk_level": "LOW"},  # the checksum member comes first
        {"category_hint": "x", "risk_level": "LOW"},  # one member sorts before it
        {"a": 1},  # it comes last
        {},  # the checksum is metadata's only member
    ],
)
def test_line_and_leaf_are_exact_whatever_metadata_holds(
    metadata: dict[str, Any],
) -> None:
    out: list[SealedRecord] = []
    sealer = Sealer(KEY, out.append)
    record = sample_record(5)
    record["metadata"] = metadata
    # look-alikes of the checksum member elsewhere in the record
    record["extensions"] = {
        "metadata": {"checksum": "sha256:" + "0" * 64},
        "note": '"checksum":"sha256:',
    }
    sealed = sealer.seal(record)
    unsealed = orjson.loads(sealed.line)
    checksum = unsealed["metadata"].pop("checksum")
    assert sealed.leaf == leaf_hash(canonicalize_reference(unsealed))
    assert checksum == "sha256:" + sealed.leaf.hex() == sealed.record["metadata"]["checksum"]
    assert sealed.line == canonicalize_reference(sealed.record)
    assert unsealed["extensions"] == record["extensions"]
    sealer.close()
    assert verify(out).intact(strict=True)


_values = st.recursive(
    st.one_of(
        st.text(max_size=20),
        st.integers(-(2**53) + 1, 2**53 - 1),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(state=st.dictionaries(st.text(max_size=8), _values, max_size=5), pick=st.integers(0, 10**6))
def test_seal_verify_round_trip_and_any_single_change_fails(
    state: dict[str, Any], pick: int
) -> None:
    out: list[SealedRecord] = []
    sealer = Sealer(KEY, out.append, checkpoint_every=3)
    for i in range(4):
        record = sample_record(i)
        record["change_tracking"] = {"after_state": state, "change_reason": "property"}
        sealer.seal(record)
    sealer.close()
    assert verify(out).intact(strict=True)

    victim = out[pick % len(out)]
    line = bytearray(victim.line)
    position = pick % len(line)
    line[position] = ord("x") if line[position] != ord("x") else ord("y")
    try:
        damaged = orjson.loads(bytes(line))
    except orjson.JSONDecodeError:
        return  # no longer a record at all: the reader reports it as malformed
    verifier = Verifier([KEY.verifier()])
    for s in out:
        if s is victim:
            verifier.add(damaged, bytes(line), "damaged")
        else:
            verifier.add(orjson.loads(s.line), s.line, "ok")
    assert not verifier.finish().intact()
