"""The frames between the application and its sealing process (see ``_sealer``)."""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Final

__all__ = [
    "ACK",
    "BATCH",
    "BATCH_CLOSE",
    "BATCH_OPEN",
    "CONFIG",
    "END",
    "FAILED",
    "FLUSH",
    "HELLO",
    "join_batch",
    "read_frame",
    "split_batch",
    "write_frame",
]

#: kind (1 byte), sequence number, payload length (big-endian)
HEADER: Final = struct.Struct(">cQI")
CONFIG, BATCH, FLUSH = b"C", b"B", b"F"
HELLO, FAILED, ACK, END = b"H", b"X", b"A", b"E"


def write_frame(fd: int, kind: bytes, seq: int = 0, *parts: bytes) -> None:
    """Write one whole frame, its payload made of ``parts``, to ``fd`` (blocking; OSError
    when the other side is gone). ``writev``: a batch is not copied into one buffer."""
    header = HEADER.pack(kind, seq, sum(map(len, parts)))
    chunks = (header, *parts)
    written = os.writev(fd, chunks)
    if written < sum(map(len, chunks)):  # cut short (a signal): write the rest
        data = memoryview(b"".join(chunks))[written:]
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


# A batch is one JSON array, so that the sealing process parses it in one orjson call:
# its payload is "[", the records' JSON lines joined by ",\n", and "]". orjson never
# writes a raw newline, so the separator cannot occur inside a record and the lines can
# be split out again.
BATCH_OPEN: Final = b"["
BATCH_CLOSE: Final = b"]"
_SEPARATOR: Final = b",\n"


def join_batch(lines: list[bytes]) -> bytes:
    """The inside of a batch's array: the records' JSON lines joined."""
    return _SEPARATOR.join(lines)


def split_batch(inside: bytes) -> list[bytes]:
    """The JSON lines that :func:`join_batch` joined."""
    return inside.split(_SEPARATOR)
