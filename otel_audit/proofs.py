"""Inclusion proofs for single records (RFC 9162 §2.1.3) against a signed checkpoint.

A proof document is self-contained JSON: the record's wire line, its leaf index, the
audit path, and the signed checkpoint note it leads to. Anyone with the vkey can check
it with :func:`verify_inclusion_proof` (``otel-audit verify-proof``) without the log.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson

from otel_audit._merkle import MerkleTree, root_from_inclusion_proof
from otel_audit._note import parse_checkpoint, verify_note
from otel_audit.errors import AuditError, InputError, ProofError
from otel_audit.keys import VerifierKey
from otel_audit.verify import Verifier, leaf_of

__all__ = ["PROOF_FORMAT", "build_inclusion_proof", "verify_inclusion_proof"]

PROOF_FORMAT = "otel-audit-inclusion-proof/1"


def build_inclusion_proof(verifier: Verifier, origin: str, seq: int) -> dict[str, Any]:
    """Proof that record ``seq`` of ``origin`` is in the tree of the latest checkpoint after it.

    ``verifier`` must have been fed with :meth:`Verifier.keep_lines` on.
    """
    line = verifier.entry_line(origin, seq)
    if line is None:
        raise InputError(f"no record with origin {origin!r} and seq {seq} in the input")
    leaves = verifier.leaves(origin)
    usable = [(k, note) for k, note in verifier.checkpoints(origin) if seq < k <= len(leaves)]
    if not usable:
        raise InputError(f"no checkpoint after seq {seq} covers the record yet")
    size, note = usable[-1]
    proof = MerkleTree(leaves[:size]).inclusion_proof(seq, size)
    return {
        "format": PROOF_FORMAT,
        "origin": origin,
        "seq": seq,
        "tree_size": size,
        "record": line.decode("utf-8"),
        "proof": [base64.b64encode(h).decode("ascii") for h in proof],
        "checkpoint": note,
    }


def verify_inclusion_proof(doc: Any, keys: Sequence[VerifierKey]) -> str:
    """Check a proof document; returns a one-line description, raises ProofError if it fails."""
    try:
        if doc.get("format") != PROOF_FORMAT:
            raise InputError("not an otel-audit inclusion proof")
        origin, seq, size = doc["origin"], doc["seq"], doc["tree_size"]
        line = doc["record"].encode("utf-8")
        path = [base64.b64decode(h, validate=True) for h in doc["proof"]]
        note = doc["checkpoint"]
        record = orjson.loads(line)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, AuditError):
            raise
        raise InputError(f"malformed proof document: {exc}") from None
    integrity = record.get("integrity") or {}
    if integrity.get("origin") != origin or integrity.get("seq") != seq:
        raise ProofError("the record's integrity block names another origin or seq")
    leaf, intact = leaf_of(record, line)
    if not intact:
        raise ProofError("the record does not match its metadata.checksum")
    verdict = verify_note(note, keys)
    if verdict.bad:
        raise ProofError(f"checkpoint signature by {', '.join(verdict.bad)} does not verify")
    if not verdict.verified_by:
        raise ProofError("checkpoint is not signed by any key given")
    checkpoint = parse_checkpoint(verdict.text)
    if checkpoint.origin != origin or checkpoint.size != size:
        raise ProofError("checkpoint is for another origin or tree size")
    root = root_from_inclusion_proof(seq, size, leaf, path)
    if root != checkpoint.root:
        raise ProofError("audit path does not lead to the signed root", checkpoint.root, root)
    return (
        f"record {origin} seq {seq} is included in the tree of size {size} "
        f"signed by {', '.join(verdict.verified_by)}"
    )
