"""RFC 6962 / RFC 9162 Merkle tree: hashing, compact ranges, inclusion and consistency proofs.

References are to RFC 9162 (Certificate Transparency 2.0), whose §2.1 restates the tree
of RFC 6962 §2.1 and adds verification algorithms:

* §2.1.1  MTH: leaf hash ``SHA-256(0x00 || d)``, node hash ``SHA-256(0x01 || l || r)``,
  empty tree ``SHA-256("")``, split at the largest power of two smaller than ``n``.
* §2.1.3.1 / §2.1.3.2  inclusion proof generation (``PATH``) and verification.
* §2.1.4.1 / §2.1.4.2  consistency proof generation (``SUBPROOF``) and verification.

Every hash here is a 32-byte ``bytes``; leaves are passed as *leaf hashes*
(the output of :func:`leaf_hash`), never as raw data. Checks raise
:class:`~otel_audit.errors.ProofError` (a ``ValueError``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from otel_audit.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256
_NODE_PREFIX = _sha256(b"\x01")  # copied per node on the hot path: ~15% faster than concat
HASH_SIZE = 32
#: §2.1.1: MTH({}) = SHA-256() of the empty string.
EMPTY_ROOT: bytes = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """§2.1.1: MTH({d}) = SHA-256(0x00 || d)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """§2.1.1: MTH(D_n) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return _sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _split(n: int) -> int:
    """§2.1.1: the largest power of two smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """Merkle state of leaves [0, size) in O(log n) hashes (the right-edge perfect subtrees)."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        # Roots of the perfect subtrees of [0, size), largest (leftmost) first: one per set
        # bit of size, so appending leaf `size` merges while the low bit of size is set.
        self._hashes: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: amortised one node hash (a binary counter increment)."""
        if len(leaf) != HASH_SIZE:
            raise ProofError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        hashes = self._hashes
        size = self._size
        self._size = size + 1
        while size & 1:  # merge equal-sized subtrees: §2.1.1 node hash of (left, leaf)
            h = _NODE_PREFIX.copy()
            h.update(hashes.pop())
            h.update(leaf)
            leaf = h.digest()
            size >>= 1
        hashes.append(leaf)

    def root(self) -> bytes:
        """MTH of [0, size): fold the perfect subtrees right to left (§2.1.1 splits)."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        root = hashes[-1]
        for h in reversed(hashes[:-1]):
            root = _sha256(b"\x01" + h + root).digest()
        return root

    def copy(self) -> CompactRange:
        other = CompactRange()
        other._hashes = self._hashes.copy()
        other._size = self._size
        return other


class MerkleTree:
    """All leaf hashes of one log, for proofs (used by the verifier / `prove` command).

    ``_levels[k][i]`` caches the hash of the perfect subtree over leaves
    ``[i * 2**k, (i + 1) * 2**k)``, so any MTH the proofs need costs O(log n) hashes.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        _check_hash(leaf, "leaf hash")
        levels = self._levels
        levels[0].append(leaf)
        level = 0
        # Each completed pair at a level completes one perfect subtree a level up.
        while len(levels[level]) % 2 == 0:
            row = levels[level]
            if level + 1 == len(levels):
                levels.append([])
            levels[level + 1].append(_sha256(b"\x01" + row[-2] + row[-1]).digest())
            level += 1

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for 0 <= lo < hi <= size, per §2.1.1, from the cached subtrees."""
        left: list[bytes] = []
        while True:
            n = hi - lo
            if n & (n - 1) == 0 and lo % n == 0:
                right = self._levels[n.bit_length() - 1][lo // n]
                break
            k = _split(n)
            left.append(self._mth(lo, lo + k))  # a perfect subtree: a cache hit
            lo += k
        for h in reversed(left):
            right = node_hash(h, right)
        return right

    def _check_size(self, size: int, what: str = "size") -> None:
        if not 0 <= size <= self.size:
            raise ProofError(f"{what} {size} out of range [0, {self.size}]")

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all), O(log n)."""
        if size is None:
            size = self.size
        self._check_size(size)
        return self._mth(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """§2.1.3.1 PATH(index, D[0:size]), ordered from the leaf up."""
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf index {index} not in a tree of size {size}")
        lo, hi, path = 0, size, []
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:  # m < k: PATH(m, D[0:k]) : MTH(D[k:n])
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:  # m >= k: PATH(m - k, D[k:n]) : MTH(D[0:k])
                path.append(self._mth(lo, lo + k))
                lo += k
        path.reverse()
        return path

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """§2.1.4.1 PROOF(size1, D[0:size2]); empty when size1 is 0 or equals size2."""
        self._check_size(size2, "size2")
        if not 0 <= size1 <= size2:
            raise ProofError(f"size1 {size1} not in [0, size2 {size2}]")
        if size1 in (0, size2):
            return []
        m, lo, hi, whole, proof = size1, 0, size2, True, []
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
                proof.append(self._mth(lo + k, hi))
                hi = lo + k
            else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
                proof.append(self._mth(lo, lo + k))
                lo, m, whole = lo + k, m - k, False
        if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}; with b = true it is {}
            proof.append(self._mth(lo, hi))
        proof.reverse()
        return proof


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """§2.1.3.2 steps 1-5 less the root comparison: the root ``proof`` implies for ``leaf``."""
    if not 0 <= index < size:  # step 1
        raise ProofError(f"leaf index {index} not in a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, size - 1, leaf  # steps 2-3
    for p in proof:  # step 4
        _check_hash(p, "proof element")
        if sn == 0:  # step 4a
            raise ProofError(f"inclusion proof too long for leaf {index} of {size}")
        if fn & 1 or fn == sn:  # step 4b
            r = _sha256(b"\x01" + p + r).digest()
            while fn and not fn & 1:  # ... until LSB(fn) is set or fn is 0
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1  # step 4c
        sn >>= 1
    if sn != 0:  # step 5, first half
        raise ProofError(f"inclusion proof too short for leaf {index} of {size}")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """§2.1.3.2: raise :class:`ProofError` unless ``proof`` puts ``leaf`` at ``index``."""
    _check_hash(root, "root")
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:  # step 5, second half
        raise ProofError("inclusion proof does not verify", expected=root, actual=computed)


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """§2.1.4.2: raise :class:`ProofError` unless tree ``size2`` extends tree ``size1``."""
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    for p in proof:
        _check_hash(p, "proof element")
    if not 0 <= size1 <= size2:
        raise ProofError(f"size1 {size1} not in [0, size2 {size2}]")
    # Trivial cases outside §2.1.4.2, whose §2.1.4.1 proof is empty (0 < m < n there).
    if size1 in (0, size2):
        if proof:
            raise ProofError(f"consistency proof {size1} -> {size2} must be empty")
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise ProofError("size 0 needs the empty root", expected=EMPTY_ROOT, actual=root1)
        if size1 == size2 and root1 != root2:
            raise ProofError("same size, different roots", expected=root1, actual=root2)
        return
    if not proof:  # step 1
        raise ProofError(f"empty consistency proof {size1} -> {size2}")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # step 2: size1 a power of 2
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # step 6a
            raise ProofError(f"consistency proof too long for {size1} -> {size2}")
        if fn & 1 or fn == sn:  # step 6b
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while fn and not fn & 1:  # ... until LSB(fn) is set or fn is 0
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1  # step 6c
        sn >>= 1
    # step 7
    if sn != 0:
        raise ProofError(f"consistency proof too short for {size1} -> {size2}")
    if fr != root1:
        raise ProofError("consistency proof does not match root1", expected=root1, actual=fr)
    if sr != root2:
        raise ProofError("consistency proof does not match root2", expected=root2, actual=sr)
