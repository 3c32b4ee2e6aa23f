"""Tests of otel_audit._merkle (RFC 9162 §2.1).

Three independent checks: published vectors (tests/data/merkle/*.json, each file names its
source), a naive reference written here straight from the recursive definitions of
RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH) and §2.1.4.1 (SUBPROOF), and systematic tamperings
of valid proofs in the style of transparency-dev/merkle's proof tests.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_audit._merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from otel_audit.errors import ProofError

DATA = Path(__file__).parent / "data" / "merkle"


def _load(name: str) -> dict[str, Any]:
    with (DATA / name).open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    assert data["source"]
    return data


def _hexes(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def _desc(case: dict[str, Any]) -> str:
    return str(case["desc"])


# --- Naive reference: RFC 9162 §2.1 recursive definitions over raw leaf inputs ----------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return _sha(b"")
    if len(d) == 1:
        return _sha(b"\x00" + d[0])
    k = _k(len(d))
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def _inputs(n: int, salt: bytes = b"") -> list[bytes]:
    return [salt + i.to_bytes(4, "big") for i in range(n)]


# --- Published vectors ------------------------------------------------------------------

ROOTS = _load("roots.json")
LEAF_INPUTS = _hexes(ROOTS["leaf_inputs"])
REF_LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]
REF_TREE = MerkleTree(REF_LEAVES)
INCLUSION = _load("inclusion.json")["cases"]
CONSISTENCY = _load("consistency.json")["cases"]
EDGE = _load("edge_cases.json")


@pytest.mark.parametrize("case", _load("leaf_hashes.json")["cases"], ids=_desc)
def test_published_leaf_hash(case: dict[str, Any]) -> None:
    data, want = bytes.fromhex(case["input"]), bytes.fromhex(case["leaf_hash"])
    assert _sha(b"\x00" + data) == want
    assert leaf_hash(data) == want


@pytest.mark.parametrize("case", ROOTS["cases"], ids=_desc)
def test_published_root(case: dict[str, Any]) -> None:
    size, want = case["size"], bytes.fromhex(case["root"])
    assert ref_mth(LEAF_INPUTS[:size]) == want
    assert REF_TREE.root(size) == want
    cr = CompactRange()
    for leaf in REF_LEAVES[:size]:
        cr.append(leaf)
    assert cr.size == size
    assert cr.root() == want


@pytest.mark.parametrize("case", INCLUSION, ids=_desc)
def test_published_inclusion(case: dict[str, Any]) -> None:
    index, size, root = case["index"], case["size"], bytes.fromhex(case["root"])
    proof = _hexes(case["proof"])
    assert ref_path(index, LEAF_INPUTS[:size]) == proof
    assert REF_TREE.inclusion_proof(index, size) == proof
    assert root_from_inclusion_proof(index, size, REF_LEAVES[index], proof) == root
    verify_inclusion(index, size, REF_LEAVES[index], proof, root)


@pytest.mark.parametrize("case", CONSISTENCY, ids=_desc)
def test_published_consistency(case: dict[str, Any]) -> None:
    size1, size2, proof = case["size1"], case["size2"], _hexes(case["proof"])
    root1, root2 = bytes.fromhex(case["root1"]), bytes.fromhex(case["root2"])
    assert (root1, root2) == (ref_mth(LEAF_INPUTS[:size1]), ref_mth(LEAF_INPUTS[:size2]))
    assert ref_subproof(size1, LEAF_INPUTS[:size2], True) == proof
    assert REF_TREE.consistency_proof(size1, size2) == proof
    verify_consistency(size1, size2, root1, root2, proof)


SYMBOLS = {"EMPTY": EMPTY_ROOT, "A": b"\xaa" * 32, "B": b"\xbb" * 32, "SHORT": b"\xaa" * 31}
SYMBOLS["NONE"] = b""


@pytest.mark.parametrize("case", EDGE["inclusion"], ids=_desc)
def test_inclusion_edge_case(case: dict[str, Any]) -> None:
    def run() -> None:
        verify_inclusion(
            case["index"],
            case["size"],
            SYMBOLS[case["leaf"]],
            [SYMBOLS[p] for p in case["proof"]],
            SYMBOLS[case["root"]],
        )

    if case["valid"]:
        run()
    else:
        with pytest.raises(ProofError):
            run()


@pytest.mark.parametrize("case", EDGE["consistency"], ids=_desc)
def test_consistency_edge_case(case: dict[str, Any]) -> None:
    def run() -> None:
        verify_consistency(
            case["size1"],
            case["size2"],
            SYMBOLS[case["root1"]],
            SYMBOLS[case["root2"]],
            [SYMBOLS[p] for p in case["proof"]],
        )

    if case["valid"]:
        run()
    else:
        with pytest.raises(ProofError):
            run()


# --- Generated trees against the reference ----------------------------------------------


def test_all_small_proofs_match_reference() -> None:
    data = _inputs(33, b"ref")
    leaves = [leaf_hash(d) for d in data]
    tree = MerkleTree(leaves)
    for n in range(1, len(data) + 1):
        root = ref_mth(data[:n])
        for i in range(n):
            proof = tree.inclusion_proof(i, n)
            assert proof == ref_path(i, data[:n]), (i, n)
            verify_inclusion(i, n, leaves[i], proof, root)
        for m in range(n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == (ref_subproof(m, data[:n], True) if 0 < m < n else []), (m, n)
            verify_consistency(m, n, ref_mth(data[:m]), root, proof)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(0, 300), salt=st.binary(max_size=8))
def test_roots_agree_for_every_prefix(n: int, salt: bytes) -> None:
    data = _inputs(n, salt)
    want = [ref_mth(data[:k]) for k in range(n + 1)]
    tree, cr = MerkleTree(), CompactRange()
    assert cr.root() == tree.root() == want[0] == EMPTY_ROOT
    for k, d in enumerate(data, 1):
        tree.append(leaf_hash(d))
        cr.append(leaf_hash(d))
        assert cr.size == tree.size == k
        assert cr.root() == tree.root() == want[k]
    assert [tree.root(k) for k in range(n + 1)] == want


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 300), salt=st.binary(max_size=8), data=st.data())
def test_every_proof_verifies(n: int, salt: bytes, data: st.DataObject) -> None:
    leaves = [leaf_hash(d) for d in _inputs(n, salt)]
    tree = MerkleTree(leaves)
    for size in {n, data.draw(st.integers(1, n), label="size")}:
        root = tree.root(size)
        for i in range(size):
            verify_inclusion(i, size, leaves[i], tree.inclusion_proof(i, size), root)
        for m in range(size + 1):
            verify_consistency(m, size, tree.root(m), root, tree.consistency_proof(m, size))


def test_compact_range_copy_is_independent() -> None:
    cr = CompactRange()
    for leaf in REF_LEAVES[:5]:
        cr.append(leaf)
    snapshot = cr.copy()
    for leaf in REF_LEAVES[5:]:
        cr.append(leaf)
    assert (snapshot.size, snapshot.root()) == (5, REF_TREE.root(5))
    assert (cr.size, cr.root()) == (8, REF_TREE.root(8))
    snapshot.append(REF_LEAVES[5])
    assert snapshot.root() == REF_TREE.root(6)
    assert cr.root() == REF_TREE.root(8)


def test_node_hash() -> None:
    assert node_hash(REF_LEAVES[0], REF_LEAVES[1]) == REF_TREE.root(2)


# --- Malformed arguments and error details ----------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: REF_TREE.inclusion_proof(8, 8), id="proof index == size"),
        pytest.param(lambda: REF_TREE.inclusion_proof(-1, 8), id="proof negative index"),
        pytest.param(lambda: REF_TREE.inclusion_proof(0, 9), id="proof size > tree"),
        pytest.param(lambda: REF_TREE.inclusion_proof(0, 0), id="proof in empty tree"),
        pytest.param(lambda: REF_TREE.consistency_proof(5, 3), id="consistency size1 > size2"),
        pytest.param(lambda: REF_TREE.consistency_proof(3, 9), id="consistency size2 > tree"),
        pytest.param(lambda: REF_TREE.consistency_proof(-1, 3), id="consistency negative"),
        pytest.param(lambda: REF_TREE.root(9), id="root size > tree"),
        pytest.param(lambda: REF_TREE.root(-1), id="root negative size"),
        pytest.param(lambda: MerkleTree([b"short"]), id="tree leaf not 32 bytes"),
        pytest.param(lambda: CompactRange().append(b"x" * 33), id="range leaf not 32 bytes"),
    ],
)
def test_malformed_arguments(call: Callable[[], object]) -> None:
    with pytest.raises(ProofError):
        call()


def test_error_carries_expected_and_computed_roots() -> None:
    proof = REF_TREE.inclusion_proof(5, 8)
    wrong = REF_TREE.root(7)
    with pytest.raises(ValueError, match="expected") as info:
        verify_inclusion(5, 8, REF_LEAVES[5], proof, wrong)
    assert isinstance(info.value, ProofError)
    assert (info.value.expected, info.value.actual) == (wrong, REF_TREE.root(8))
    with pytest.raises(ProofError) as info:
        verify_consistency(6, 8, REF_TREE.root(6), wrong, REF_TREE.consistency_proof(6, 8))
    assert (info.value.expected, info.value.actual) == (wrong, REF_TREE.root(8))


def test_trivial_consistency_proofs_are_empty() -> None:
    for n in range(9):
        assert REF_TREE.consistency_proof(0, n) == []
        assert REF_TREE.consistency_proof(n, n) == []
        verify_consistency(0, n, EMPTY_ROOT, REF_TREE.root(n), [])
        verify_consistency(n, n, REF_TREE.root(n), REF_TREE.root(n), [])


# --- Systematic tamperings (cf. transparency-dev/merkle proof/verify_test.go) -----------
#
# Each tampering yields variants of a valid proof that must all raise ProofError. Sizes are
# tampered only by * 2 and // 2, which always change the proof length: a size off by one
# may legitimately share the proof shape (leaf 0 of 3 and of 4 hash the same way), and it
# is the signed root, not the proof, that binds the size.

SOME = _sha(b"some other hash")


def _flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def _proof_tampers(proof: list[bytes], extra: Sequence[bytes]) -> dict[str, list[bytes]]:
    """Proof-list tamperings shared by both proof kinds; ``extra`` are hashes to splice in."""
    out: dict[str, list[bytes]] = {}
    for i, p in enumerate(proof):
        out[f"proof[{i}] bit flipped"] = [*proof[:i], _flip(p), *proof[i + 1 :]]
    for i in range(len(proof) - 1):
        if proof[i] != proof[i + 1]:
            out[f"proof[{i}] <-> proof[{i + 1}]"] = [
                *proof[:i],
                proof[i + 1],
                proof[i],
                *proof[i + 2 :],
            ]
    if proof:
        out["last element dropped"] = proof[:-1]
        out["first element dropped"] = proof[1:]
        out["empty proof"] = []
        out["element truncated"] = [proof[0][:31], *proof[1:]]
        out["element inserted"] = [proof[0], SOME, *proof[1:]]
        out["proof[0] prepended"] = [proof[0], *proof]
    out["empty element appended"] = [*proof, b""]
    for j, h in enumerate([*extra, SOME]):
        out[f"hash {j} appended"] = [*proof, h]
        out[f"hash {j} prepended"] = [h, *proof]
    return out


InclusionCase = tuple[int, int, bytes, list[bytes], bytes]  # index, size, leaf, proof, root
ConsistencyCase = tuple[int, int, bytes, bytes, list[bytes]]  # size1, size2, root1, root2, proof
GEN_DATA = _inputs(50, b"tamper")
GEN_LEAVES = [leaf_hash(d) for d in GEN_DATA]
GEN_TREE = MerkleTree(GEN_LEAVES)


def _inclusion_bases() -> list[tuple[str, InclusionCase]]:
    bases: list[tuple[str, InclusionCase]] = []
    for c in INCLUSION:
        i, n = c["index"], c["size"]
        bases.append((c["desc"], (i, n, REF_LEAVES[i], _hexes(c["proof"]), REF_TREE.root(n))))
    pairs = [(0, 2), (1, 2), (3, 4), (6, 7), (17, 33), (32, 33), (0, 50), (31, 50), (48, 50)]
    for i, n in pairs:
        proof, root = GEN_TREE.inclusion_proof(i, n), GEN_TREE.root(n)
        bases.append((f"gen {i} of {n}", (i, n, GEN_LEAVES[i], proof, root)))
    return bases


def _inclusion_tampers() -> list[Any]:
    params = []
    for name, (i, n, leaf, proof, root) in _inclusion_bases():
        verify_inclusion(i, n, leaf, proof, root)  # the base is valid
        variants: dict[str, InclusionCase] = {
            "index + 1": (i + 1, n, leaf, proof, root),
            "index - 1": (i - 1, n, leaf, proof, root),
            "index ^ 1": (i ^ 1, n, leaf, proof, root),
            "index ^ 2": (i ^ 2, n, leaf, proof, root),
            "size * 2": (i, n * 2, leaf, proof, root),
            "size // 2": (i, n // 2, leaf, proof, root),
            "index, size swapped": (n, i, leaf, proof, root),
            "wrong leaf": (i, n, leaf_hash(b"WrongLeaf"), proof, root),
            "leaf bit flipped": (i, n, _flip(leaf), proof, root),
            "wrong root": (i, n, leaf, proof, SOME),
            "empty root": (i, n, leaf, proof, EMPTY_ROOT),
            "root bit flipped": (i, n, leaf, proof, _flip(root, 0)),
        }
        for what, bad in _proof_tampers(proof, [root, leaf]).items():
            variants[what] = (i, n, leaf, bad, root)
        params += [pytest.param(*v, id=f"{name}: {what}") for what, v in variants.items()]
    return params


@pytest.mark.parametrize(("index", "size", "leaf", "proof", "root"), _inclusion_tampers())
def test_tampered_inclusion_fails(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, proof, root)


def _consistency_bases() -> list[tuple[str, ConsistencyCase]]:
    bases: list[tuple[str, ConsistencyCase]] = []
    for c in CONSISTENCY:
        if c["proof"]:  # as upstream, only non-trivial proofs are tampered with
            r1, r2 = bytes.fromhex(c["root1"]), bytes.fromhex(c["root2"])
            bases.append((c["desc"], (c["size1"], c["size2"], r1, r2, _hexes(c["proof"]))))
    for m, n in [(1, 2), (3, 7), (4, 8), (5, 6), (7, 50), (16, 50), (31, 32), (13, 47)]:
        proof, r1, r2 = GEN_TREE.consistency_proof(m, n), GEN_TREE.root(m), GEN_TREE.root(n)
        bases.append((f"gen {m} -> {n}", (m, n, r1, r2, proof)))
    return bases


def _consistency_tampers() -> list[Any]:
    params = []
    for name, (m, n, r1, r2, proof) in _consistency_bases():
        verify_consistency(m, n, r1, r2, proof)  # the base is valid
        variants: dict[str, ConsistencyCase] = {
            "size1 + 1": (m + 1, n, r1, r2, proof),
            "size1 - 1": (m - 1, n, r1, r2, proof),
            "size1 ^ 2": (m ^ 2, n, r1, r2, proof),
            "size2 * 2": (m, n * 2, r1, r2, proof),
            "size2 // 2": (m, n // 2, r1, r2, proof),
            "sizes swapped": (n, m, r1, r2, proof),
            "wrong root1": (m, n, SOME, r2, proof),
            "wrong root2": (m, n, r1, SOME, proof),
            "root1 bit flipped": (m, n, _flip(r1, 4), r2, proof),
            "root2 bit flipped": (m, n, r1, _flip(r2, 4), proof),
            "roots swapped": (m, n, r2, r1, proof),
        }
        for what, bad in _proof_tampers(proof, [r1, r2]).items():
            variants[what] = (m, n, r1, r2, bad)
        params += [pytest.param(*v, id=f"{name}: {what}") for what, v in variants.items()]
    return params


@pytest.mark.parametrize(("size1", "size2", "root1", "root2", "proof"), _consistency_tampers())
def test_tampered_consistency_fails(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> None:
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, root1, root2, proof)


# --- Scale ------------------------------------------------------------------------------


def test_proofs_on_100k_leaves_are_fast() -> None:
    n = 100_000
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = MerkleTree(leaves)
    start = time.perf_counter()
    root, old_root = tree.root(), tree.root(65_537)
    inclusion = tree.inclusion_proof(77_777, n)
    consistency = tree.consistency_proof(65_537, n)
    elapsed = time.perf_counter() - start
    verify_inclusion(77_777, n, leaves[77_777], inclusion, root)
    verify_consistency(65_537, n, old_root, root, consistency)
    cr = CompactRange()
    for leaf in leaves:
        cr.append(leaf)
    assert cr.root() == root
    assert elapsed < 0.1  # O(log n) each: in practice well under a millisecond


def test_overlong_inclusion_proof_is_rejected_before_hashing_past_the_root() -> None:
    proof = [*REF_TREE.inclusion_proof(5, 8), SOME]
    with pytest.raises(ProofError, match="too long"):  # §2.1.3.2 step 4a
        root_from_inclusion_proof(5, 8, REF_LEAVES[5], proof)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: root_from_inclusion_proof(0, 2, b"", [SOME]), id="leaf"),
        pytest.param(lambda: root_from_inclusion_proof(0, 2, SOME, [b"x"]), id="inclusion path"),
        pytest.param(lambda: verify_inclusion(0, 1, SOME, [], SOME[:31]), id="inclusion root"),
        pytest.param(lambda: verify_consistency(1, 2, SOME, SOME, [SOME[:31]]), id="cons path"),
        pytest.param(lambda: verify_consistency(1, 2, b"", SOME, [SOME]), id="root1"),
        pytest.param(lambda: verify_consistency(1, 2, SOME, b"", [SOME]), id="root2"),
        pytest.param(lambda: MerkleTree().append(SOME + b"x"), id="tree append"),
        pytest.param(lambda: CompactRange().append(SOME[:1]), id="range append"),
    ],
)
def test_hashes_must_be_32_bytes(call: Callable[[], object]) -> None:
    with pytest.raises(ProofError, match="must be 32 bytes"):
        call()


def test_subtree_hash_of_any_range() -> None:
    # Proofs only ask for aligned ranges, but the cached-subtree lookup must not assume it.
    for lo in range(len(GEN_DATA)):
        for hi in range(lo + 1, min(lo + 20, len(GEN_DATA)) + 1):
            assert GEN_TREE._mth(lo, hi) == ref_mth(GEN_DATA[lo:hi]), (lo, hi)
