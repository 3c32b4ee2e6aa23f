"""Readers for what backends keep: JSON Lines of records and OTLP/JSON batches.

Each line of a file is detected on its own: a sealed record (one JSON object per line,
as the local store and `jq -c` write it) or an OTLP/JSON export request
(``{"resourceLogs": [...]}``, the OpenTelemetry Collector file exporter's format, where
64-bit integers are strings). A record body may be a JSON string (our default wire form,
kept verbatim so its bytes can be checked directly) or an OTLP ``kvlistValue`` map.
Files ending in ``.gz`` (closed store segments) are read through gzip.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from otel_audit.errors import InputError

if TYPE_CHECKING:
    from otel_audit.verify import Verifier

__all__ = ["iter_input_files", "read_into"]

_SUFFIXES = (".jsonl", ".json", ".ndjson", ".log", ".otlp")
_COMPRESSED = (".gz",)


def iter_input_files(paths: list[str]) -> Iterator[Path]:
    """Files named, and the record files under directories named (sorted, recursive)."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for sub in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in sub.relative_to(path).parts)
                if not hidden and sub.is_file() and _looks_like_records(sub):
                    yield sub
        elif path.is_file():
            yield path
        else:
            raise InputError(f"{name}: no such file or directory")


def _looks_like_records(path: Path) -> bool:
    name = path.name
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.endswith(_SUFFIXES)


def _open(path: Path) -> IO[bytes]:
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None


def read_into(
    verifier: Verifier,
    paths: list[str],
    progress: Callable[[int], None] | None = None,
    every: int = 100_000,
) -> int:
    """Feed every record under ``paths`` to ``verifier``; returns the number of files read."""
    files = 0
    next_report = every
    for path in iter_input_files(paths):
        files += 1
        try:
            with _open(path) as handle:
                _read_lines(verifier, handle, str(path))
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot read: {exc}") from None
        if progress is not None and verifier.records >= next_report:
            progress(verifier.records)
            next_report = verifier.records + every
    return files


def _read_lines(verifier: Verifier, handle: IO[bytes], name: str) -> None:
    for number, raw in enumerate(handle, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            if not raw.endswith(b"\n"):
                verifier.problem(
                    "torn_line", "last line is cut short (crash mid-write)", where, "warning"
                )
            else:
                verifier.problem("malformed", "line is not JSON", where)
            continue
        if not isinstance(obj, dict):
            verifier.problem("malformed", "line is not a JSON object", where)
        elif "resourceLogs" in obj:
            _read_otlp(verifier, obj, where)
        else:
            verifier.add(obj, line, where)


def _read_otlp(verifier: Verifier, batch: dict[str, Any], where: str) -> None:
    """OTLP/JSON ``ExportLogsServiceRequest``: resourceLogs → scopeLogs → logRecords."""
    index = 0
    try:
        for resource_logs in batch["resourceLogs"]:
            for scope_logs in resource_logs.get("scopeLogs") or ():
                for log_record in scope_logs.get("logRecords") or ():
                    index += 1
                    _read_body(verifier, log_record.get("body") or {}, f"{where}#{index}")
    except (AttributeError, TypeError):
        verifier.problem("malformed", "OTLP/JSON batch has an unexpected shape", where)


def _read_body(verifier: Verifier, body: dict[str, Any], where: str) -> None:
    text = body.get("stringValue")
    if isinstance(text, str):
        data = text.encode("utf-8", "surrogatepass")
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            verifier.problem("malformed", "log body is not a JSON record", where)
            return
        verifier.add(record, data, where)
    elif "kvlistValue" in body:
        try:
            verifier.add(any_value(body), None, where)
        except (KeyError, TypeError, ValueError):
            verifier.problem("malformed", "log body map cannot be decoded", where)
    else:
        verifier.problem("malformed", "log body is neither a string nor a map", where)


def any_value(value: dict[str, Any]) -> Any:
    """An OTLP/JSON ``AnyValue`` as a plain JSON value (intValue arrives as a string)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"].get("values") or ())]
    if "kvlistValue" in value:
        return {
            kv["key"]: any_value(kv.get("value") or {})
            for kv in (value["kvlistValue"].get("values") or ())
        }
    raise ValueError("unsupported AnyValue")
