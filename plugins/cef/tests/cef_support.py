"""Test helpers: an independent CEF parser, the expected value of a field, records.

The parser is ``cefp`` (PyPI), not ours: it unescapes header (``\\|``, ``\\\\``) and
extension (``\\=``, ``\\\\``, ``\\n``, ``\\r``) values. ``expected`` restates the
documented rules (sanitize, UTF-16 length limit) without using the plugin's code.
"""

from __future__ import annotations

import copy
from typing import Any

import cefp  # type: ignore[import-untyped]

from otel_audit.keys import SigningKey
from otel_audit.sealing import SealedRecord, Sealer
from otel_audit.testing import sample_record

# Characters the plugin replaces by a space (C0 but TAB/CR/LF, DEL, C1, U+2028/9).
_SPACED = {*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029}


def parse(line: str) -> dict[str, Any]:
    """The line parsed by cefp: header fields and the extension dict."""
    parsed: dict[str, Any] = cefp.CEFParser.parse(line)
    return parsed


def expected(value: str, limit: int, *, header: bool = False) -> str:
    """What a field holding ``value`` must read back as (README "Escaping and lengths")."""
    out = []
    for char in value:
        code = ord(char)
        if code in _SPACED or (header and char in "\r\n"):
            out.append(" ")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(char)
    text = "".join(out)
    # at most `limit` UTF-16 code units; a pair cut in half is dropped whole
    return text.encode("utf-16-le")[: 2 * limit].decode("utf-16-le", "ignore")


def one_line(line: str) -> bool:
    """No reader splits it: no CR/LF and nothing str.splitlines() breaks on."""
    return "\n" not in line and "\r" not in line and line.splitlines() == [line]


def record_with(**fields: Any) -> dict[str, Any]:
    """A sample record with ``block.field`` (``__`` for the dot) values replaced."""
    record = copy.deepcopy(sample_record(7))
    for name, value in fields.items():
        target = record
        *path, last = name.split("__")
        for part in path:
            target = target.setdefault(part, {})
        target[last] = value
    return record


def seal(records: list[dict[str, Any]], key: SigningKey | None = None) -> list[SealedRecord]:
    """Seal ``records`` (no schema check) into a new stream; returns only theirs."""
    out: list[SealedRecord] = []
    sealer = Sealer(
        key or SigningKey.generate("cef-test"),
        out.append,
        service_name="cef-test",
        checkpoint_interval_ms=3_600_000,
    )
    mine = [sealer.seal(record) for record in records]
    sealer.close()
    return mine
