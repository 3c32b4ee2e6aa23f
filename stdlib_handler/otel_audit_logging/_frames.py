"""The frames between the application and its sealing process (see ``_sealer``)."""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Final

__all__ = [
    "ACK",
    "BATCH",
    "CONFIG",
    "END",
    "FAILED",
    "FLUSH",
    "HELLO",
    "batch_lines",
    "batch_payload",
    "read_frame",
    "write_frame",
]

#: kind (1 byte), sequence number, payload length (big-endian)
HEADER: Final = struct.Struct(">cQI")
CONFIG, BATCH, FLUSH = b"C", b"B", b"F"
HELLO, FAILED, ACK, END = b"H", b"X", b"A", b"E"


def write_frame(fd: int, kind: bytes, seq: int = 0, payload: bytes = b"") -> None:
    """Write one whole frame to ``fd`` (blocking; OSError when the other side is gone)."""
    data = memoryview(HEADER.pack(kind, seq, len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def read_frame(stream: BinaryIO) -> tuple[bytes, int, bytes] | None:
    """The next ``(kind, seq, payload)``; None at end of file (a torn frame counts as one)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    kind, seq, size = HEADER.unpack(header)
    payload = stream.read(size) if size else b""
    if len(payload) < size:
        return None
    return kind, seq, payload


# A batch is one JSON array, so that the sealing process parses it in one orjson call.
# Its records are joined by ",\n": orjson never writes a raw newline, so the separator
# cannot occur inside a record and the lines can be split out again.
_SEPARATOR: Final = b",\n"


def batch_payload(lines: list[bytes]) -> bytes:
    """The payload of a batch frame: the records' JSON lines as one JSON array."""
    return b"[" + _SEPARATOR.join(lines) + b"]"


def batch_lines(payload: bytes) -> list[bytes]:
    """The JSON lines of a batch payload, as :func:`batch_payload` joined them."""
    return payload[1:-1].split(_SEPARATOR)
