"""Readers for what backends keep: JSON Lines of records, OTLP/JSON and OTLP protobuf.

Each line of a file is detected on its own: a sealed record (one JSON object per line,
as the local store and `jq -c` write it) or an OTLP/JSON export request
(``{"resourceLogs": [...]}``, the OpenTelemetry Collector file exporter's format, where
64-bit integers are strings). A record body may be a JSON string (our default wire form,
kept verbatim so its bytes can be checked directly) or an OTLP ``kvlistValue`` map.
Files ending in ``.gz`` (closed store segments) are read through gzip.

OTLP protobuf captures (docs/otlp.md): a ``.binpb`` or ``.pb`` file holds one serialized
``ExportLogsServiceRequest`` (what an OTLP/HTTP request body or a gRPC message carries);
a ``.binpbs`` file holds a stream of them, each preceded by its length as a protobuf
varint (the "length-delimited" framing of Java's ``writeDelimitedTo`` and Go's
``protodelim``). A ``.binpb``/``.pb`` file that is not one message is read as a stream.
The protobuf classes are imported only when such a file is read, so the verifier runs
without the OTel packages otherwise.
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

_SUFFIXES = (".jsonl", ".json", ".ndjson", ".log", ".otlp", ".binpb", ".pb", ".binpbs")
_PROTOBUF = (".binpb", ".pb")
_PROTOBUF_STREAM = (".binpbs",)
_MAX_MESSAGE = 256 * 2**20
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
        plain = path.name[:-3] if path.name.endswith(".gz") else path.name
        try:
            with _open(path) as handle:
                if plain.endswith(_PROTOBUF + _PROTOBUF_STREAM):
                    _read_protobuf(verifier, handle.read(), str(path), plain.endswith(_PROTOBUF))
                else:
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


# -- OTLP protobuf -------------------------------------------------------------------------


def _read_protobuf(verifier: Verifier, data: bytes, name: str, single: bool) -> None:
    """One ``ExportLogsServiceRequest`` (``single``), else a varint-length-delimited stream."""
    # imported here: the verifier must not need the OTel packages for other inputs
    from google.protobuf.message import DecodeError  # noqa: PLC0415
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: PLC0415
        ExportLogsServiceRequest,
    )

    if single:
        request = ExportLogsServiceRequest()
        try:
            request.ParseFromString(data)
        except DecodeError:
            pass
        else:
            if request.resource_logs or not data:  # else: a stream's length prefix parsed
                _read_request(verifier, request, f"{name}#1")  # as an unknown field
                return
    offset, number = 0, 0
    while offset < len(data):
        number += 1
        where = f"{name}#{number}"
        size, offset, ok = _varint(data, offset)
        if not ok or size > _MAX_MESSAGE or offset + size > len(data):
            verifier.problem(
                "torn_line" if ok and size <= _MAX_MESSAGE else "malformed",
                "protobuf message cut short (crash mid-write)"
                if ok and size <= _MAX_MESSAGE
                else "not an OTLP protobuf capture (bad length prefix)",
                where,
                "warning" if ok and size <= _MAX_MESSAGE else "error",
            )
            return
        request = ExportLogsServiceRequest()
        try:
            request.ParseFromString(data[offset : offset + size])
        except DecodeError:
            verifier.problem("malformed", "not an ExportLogsServiceRequest", where)
        else:
            _read_request(verifier, request, where)
        offset += size


def _varint(data: bytes, offset: int) -> tuple[int, int, bool]:
    value, shift = 0, 0
    while offset < len(data) and shift < 64:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset, True
        shift += 7
    return value, offset, False


def _read_request(verifier: Verifier, request: Any, where: str) -> None:
    index = 0
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for log_record in scope_logs.log_records:
                index += 1
                here = f"{where}.{index}"
                body = log_record.body
                kind = body.WhichOneof("value")
                if kind == "string_value":
                    data = body.string_value.encode("utf-8", "surrogatepass")
                    try:
                        record = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        verifier.problem("malformed", "log body is not a JSON record", here)
                        continue
                    verifier.add(record, data, here)
                elif kind == "kvlist_value":
                    try:
                        verifier.add(_pb_value(body), None, here)
                    except (KeyError, TypeError, ValueError):
                        verifier.problem("malformed", "log body map cannot be decoded", here)
                else:
                    verifier.problem("malformed", "log body is neither a string nor a map", here)


def _pb_value(value: Any) -> Any:
    """An OTLP protobuf ``AnyValue`` as a plain JSON value."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    raise ValueError(f"unsupported AnyValue {kind}")
