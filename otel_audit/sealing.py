"""The sealer: hash chain, Merkle tree and signed checkpoints over one stream (DESIGN §4).

One :class:`Sealer` is one *origin*: a stream of records numbered ``seq`` 0, 1, 2, ...
Each record gets ``integrity = {origin, seq, prev_hash}`` and
``metadata.checksum = "sha256:" + hex(SHA-256(0x00 || C(r)))`` where ``C`` is the
RFC 8785 form of the record without the checksum (an RFC 6962 §2.1 leaf hash).
The leaf hashes form an RFC 6962 Merkle tree kept as a compact range; every
``checkpoint_every`` records or ``checkpoint_interval_ms`` (when anything is unsealed),
on key rotation and on close, the sealer signs a C2SP tlog-checkpoint of the tree and
emits it as a record of its own (``category: integrity``). The checkpoint record at
seq *k* signs tree size *k*: the records 0..k-1 before it.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from otel_audit._canonical import _ORJSON_OPTIONS, _fast_path, canonicalize_reference
from otel_audit._merkle import CompactRange
from otel_audit._note import Checkpoint, sign_note
from otel_audit.errors import SealError
from otel_audit.keys import Signer
from otel_audit.records import new_event_id, utc_timestamp

__all__ = [
    "GENESIS_HASH",
    "SealedRecord",
    "Sealer",
    "make_origin",
]

#: ``prev_hash`` of every stream's first record (DESIGN §4): 64 zeros.
GENESIS_HASH = "sha256:" + "0" * 64

# Actions of the log's own records (category "integrity").
STREAM_START = "STREAM_START"
CHECKPOINT = "CHECKPOINT"
STREAM_END = "STREAM_END"
KEY_ROTATION = "KEY_ROTATION"
CHECKPOINT_ACTIONS = frozenset({CHECKPOINT, STREAM_END})

_ORIGIN_UNSAFE = re.compile(r"[^A-Za-z0-9._~:@/-]+")


def make_origin(service_name: str, instance_id: str | None = None) -> str:
    """``<service.name>/<service.instance.id>/<uuid>``: a new origin for every process start.

    C2SP tlog-checkpoint forbids spaces and ``+`` in an origin; anything outside a
    conservative URL-path alphabet is replaced by ``_``.
    """
    instance = instance_id or f"{socket.gethostname()}-{os.getpid()}"
    parts = (service_name or "unknown_service", instance, uuid.uuid4().hex)
    return "/".join(_ORIGIN_UNSAFE.sub("_", p) for p in parts)


class SealedRecord:
    """A sealed, immutable record: the dict, its wire line and its leaf hash."""

    __slots__ = ("leaf", "line", "origin", "record", "seq")

    def __init__(self, record: dict[str, Any], line: bytes, leaf: bytes) -> None:
        integrity = record["integrity"]
        self.origin: str = integrity["origin"]
        self.seq: int = integrity["seq"]
        self.record = record
        #: RFC 8785 form of the record including ``metadata.checksum``: the body on every wire.
        self.line = line
        #: RFC 6962 leaf hash (32 bytes).
        self.leaf = leaf

    @property
    def category(self) -> str:
        return str(self.record["category"])

    @property
    def action(self) -> str:
        return str(self.record["action"])

    def __repr__(self) -> str:
        return f"SealedRecord(origin={self.origin!r}, seq={self.seq}, action={self.action!r})"


class Sealer:
    """Seals records of one origin, in order, from any number of threads.

    ``sink`` is called with every :class:`SealedRecord` (the caller's records and the
    sealer's own integrity records) under the sealer's lock, so it sees emission order;
    it must be cheap (append to a queue) and must not call back into the sealer.
    ``seal`` takes ownership of the record dict: it adds ``integrity`` and
    ``metadata.checksum`` in place and the dict must not be changed afterwards.
    """

    def __init__(
        self,
        signer: Signer,
        sink: Callable[[SealedRecord], None],
        *,
        origin: str | None = None,
        service_name: str = "unknown_service",
        checkpoint_every: int = 1024,
        checkpoint_interval_ms: int = 1000,
        previous_checkpoint: str | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if checkpoint_interval_ms < 1:
            raise ValueError("checkpoint_interval_ms must be at least 1")
        self.origin = origin or make_origin(service_name)
        self._service = service_name
        self._signers: list[Signer] = [signer]
        self._overlap = 0  # checkpoints still to sign with the retiring key too
        self._sink = sink
        self._every = checkpoint_every
        self._interval_ns = checkpoint_interval_ms * 1_000_000
        self._clock = clock_ns
        self._lock = threading.Lock()
        self._range = CompactRange()
        self._prev = GENESIS_HASH
        self._closed = False
        self._unsealed = 0  # records after the last checkpoint, not counting checkpoints
        self._last_cp_ns = time.monotonic_ns()
        #: The newest signed checkpoint note (persist it so the next stream can link to it).
        self.last_checkpoint: str | None = None
        start: dict[str, Any] = {"vkey": signer.vkey}
        if previous_checkpoint is not None:
            start["previous_checkpoint"] = previous_checkpoint
        with self._lock:
            self._seal_locked(self._own_record(STREAM_START), start)

    @property
    def size(self) -> int:
        """Number of records sealed so far (the next seq)."""
        return self._range.size

    @property
    def closed(self) -> bool:
        return self._closed

    def seal(self, record: dict[str, Any], *, plain: bool = False) -> SealedRecord:
        """Seal one record (schema-valid, JSON types only) and pass it to the sink.

        ``plain=True`` says the record holds only exact dict, list, str, int and bool values,
        as :func:`otel_audit.schema.validate_unsealed` reports; it saves the sealer's own
        check of that. Any other value under a wrong ``plain=True`` (a float, a tuple, an
        enum) may be written in a form that is not RFC 8785.
        """
        with self._lock:
            if self._closed:
                raise SealError("sealer is closed")
            sealed = self._seal_locked(record, None, plain)
            if self._unsealed >= self._every or (
                time.monotonic_ns() - self._last_cp_ns >= self._interval_ns
            ):
                self._checkpoint_locked(CHECKPOINT)
            return sealed

    def tick(self) -> bool:
        """Checkpoint if the interval has passed with records unsealed; True if it did.

        Call it periodically from a background thread (the pipeline does).
        """
        with self._lock:
            if (
                self._closed
                or not self._unsealed
                or time.monotonic_ns() - self._last_cp_ns < self._interval_ns
            ):
                return False
            self._checkpoint_locked(CHECKPOINT)
            return True

    def checkpoint(self) -> SealedRecord:
        """Emit a checkpoint now (e.g. before a segment rotation)."""
        with self._lock:
            if self._closed:
                raise SealError("sealer is closed")
            return self._checkpoint_locked(CHECKPOINT)

    def rotate(self, new_signer: Signer, *, overlap: int = 2) -> None:
        """Switch to ``new_signer``; the next ``overlap`` checkpoints carry both signatures.

        An in-band KEY_ROTATION record names the new vkey; the checkpoint right after it is
        signed by both keys, so the retiring key vouches for its successor.
        """
        if overlap < 1:
            raise ValueError("overlap must be at least 1")
        with self._lock:
            if self._closed:
                raise SealError("sealer is closed")
            old = self._signers[-1]
            self._signers = [old, new_signer]
            self._overlap = overlap
            self._seal_locked(
                self._own_record(KEY_ROTATION),
                {"vkey": new_signer.vkey, "vkeys": [old.vkey, new_signer.vkey]},
            )
            self._checkpoint_locked(CHECKPOINT)

    def close(self) -> SealedRecord | None:
        """Emit the final STREAM_END checkpoint; idempotent (None when already closed)."""
        with self._lock:
            if self._closed:
                return None
            sealed = self._checkpoint_locked(STREAM_END)
            self._closed = True
            return sealed

    # -- internals (lock held) ----------------------------------------------------------

    def _seal_locked(
        self, record: dict[str, Any], extra: dict[str, Any] | None, plain: bool = False
    ) -> SealedRecord:
        integrity = {"origin": self.origin, "seq": self._range.size, "prev_hash": self._prev}
        if extra:
            integrity.update(extra)
        record["integrity"] = integrity
        metadata = record["metadata"]
        metadata.pop("checksum", None)
        canonical = _fast_path(record, plain)
        fast = canonical is not None
        if canonical is None:
            canonical = canonicalize_reference(record)
        leaf = hashlib.sha256(b"\x00" + canonical).digest()  # RFC 6962 §2.1 leaf
        checksum = "sha256:" + leaf.hex()
        metadata["checksum"] = checksum
        # Adding one ASCII string member keeps the fast path's conditions (plain types,
        # key order), so orjson's output stays RFC 8785 without a second type walk.
        line = (
            orjson.dumps(record, option=_ORJSON_OPTIONS) if fast else canonicalize_reference(record)
        )
        self._range.append(leaf)
        self._prev = checksum
        self._unsealed += 1
        sealed = SealedRecord(record, line, leaf)
        self._sink(sealed)
        return sealed

    def _own_record(self, action: str) -> dict[str, Any]:
        now = self._clock()
        return {
            "timestamp": utc_timestamp(now),
            "event_id": new_event_id(now),
            "version": "1.0",
            "category": "integrity",
            "action": action,
            "actor": {"user_id": self._service, "type": "service"},
            "resource": {"type": "audit_log", "id": self.origin},
            "context": {"application": "otel-audit"},
            "result": {"status": "SUCCESS"},
            "metadata": {"risk_level": "LOW"},
        }

    def _checkpoint_locked(self, action: str) -> SealedRecord:
        # tlog-checkpoint of records 0..size-1; this record becomes leaf `size`.
        size = self._range.size
        body = Checkpoint(origin=self.origin, size=size, root=self._range.root()).body()
        try:
            note = sign_note(body, self._signers)
        except Exception as exc:  # noqa: BLE001 - a KMS/HSM signer may fail; never leak details
            raise SealError(f"checkpoint signing failed: {type(exc).__name__}") from None
        if self._overlap:
            self._overlap -= 1
            if not self._overlap:
                self._signers = self._signers[-1:]
        self.last_checkpoint = note
        self._last_cp_ns = time.monotonic_ns()
        sealed = self._seal_locked(self._own_record(action), {"checkpoint": note})
        self._unsealed = 0
        return sealed
