"""The frames between the application and its sealing process (see ``_sealer``)."""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Final

__all__ = ["ACK", "BATCH", "CONFIG", "END", "FAILED", "FLUSH", "HELLO", "read_frame", "write_frame"]

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
