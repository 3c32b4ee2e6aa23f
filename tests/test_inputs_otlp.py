"""The verifier reads what OTLP backends keep: OTLP/JSON, OTLP protobuf captures (one
request per file, or a length-delimited stream), JSON Lines of bodies; string or map
bodies; any order and batching."""

from __future__ import annotations

import gzip
import random
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from google.protobuf import json_format
from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.otlp import log_records, make_resource
from otel_audit.sealing import SealedRecord
from otel_audit.testing import seal_stream
from otel_audit.verify import Report, verify_paths

COUNT = 300
TOTAL = COUNT + 8  # STREAM_START, 6 checkpoints, STREAM_END


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("inputs-otlp")


@pytest.fixture(scope="module")
def sealed(key: SigningKey) -> list[SealedRecord]:
    out = seal_stream(key, COUNT, checkpoint_every=50)[1]
    assert len(out) == TOTAL
    return out


def requests(sealed: Sequence[SealedRecord], body: str = "string", seed: int = 7) -> list[bytes]:
    """Serialized ExportLogsServiceRequests of shuffled batches of various sizes."""
    resource = make_resource("inputs-test")
    records = list(sealed)
    random.Random(seed).shuffle(records)
    out: list[bytes] = []
    i = 0
    rng = random.Random(seed + 1)
    while i < len(records):
        size = rng.randint(1, 40)
        batch = log_records(records[i : i + size], resource, body=body)  # type: ignore[arg-type]
        out.append(encode_logs(batch).SerializeToString())
        i += size
    return out


def verify(key: SigningKey, *paths: Path) -> Report:
    return verify_paths([str(p) for p in paths], [VerifierKey.load(key.vkey)])


def expect_intact(report: Report) -> None:
    assert report.findings == []
    assert report.records == TOTAL


@pytest.mark.parametrize("body", ["string", "map"])
def test_otlp_json_lines(
    key: SigningKey, sealed: list[SealedRecord], tmp_path: Path, body: str
) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    path = tmp_path / "collector-out.json"
    with open(path, "wb") as handle:
        for data in requests(sealed, body):
            message = ExportLogsServiceRequest.FromString(data)
            handle.write(orjson.dumps(json_format.MessageToDict(message)) + b"\n")
    expect_intact(verify(key, path))


@pytest.mark.parametrize("body", ["string", "map"])
def test_one_protobuf_request_per_file(
    key: SigningKey, sealed: list[SealedRecord], tmp_path: Path, body: str
) -> None:
    for number, data in enumerate(requests(sealed, body)):
        suffix = ".binpb" if number % 2 else ".pb"
        (tmp_path / f"request-{number:04d}{suffix}").write_bytes(data)
    expect_intact(verify(key, tmp_path))


def test_length_delimited_protobuf_stream(
    key: SigningKey, sealed: list[SealedRecord], tmp_path: Path
) -> None:
    stream = b"".join(_VarintBytes(len(d)) + d for d in requests(sealed))
    (tmp_path / "capture.binpbs").write_bytes(stream)
    with gzip.open(tmp_path / "capture2.binpbs.gz", "wb") as handle:
        handle.write(stream)  # the same again, compressed: every record is a duplicate
    report = verify(key, tmp_path)
    assert report.kinds() == {"duplicate"}
    assert report.intact()
    assert report.records == TOTAL


def test_a_stream_in_a_binpb_file_is_read_as_a_stream(
    key: SigningKey, sealed: list[SealedRecord], tmp_path: Path
) -> None:
    stream = b"".join(_VarintBytes(len(d)) + d for d in requests(sealed))
    (tmp_path / "capture.binpb").write_bytes(stream)
    expect_intact(verify(key, tmp_path))


def test_a_cut_protobuf_stream_reports_a_torn_tail(
    key: SigningKey, sealed: list[SealedRecord], tmp_path: Path
) -> None:
    stream = b"".join(_VarintBytes(len(d)) + d for d in requests(sealed))
    (tmp_path / "capture.binpbs").write_bytes(stream[:-10])
    report = verify(key, tmp_path)
    assert "torn_line" in report.kinds()
    assert "missing" in report.kinds()  # the records of the cut request are absent


def test_a_tampered_protobuf_body_is_modified(
    key: SigningKey, sealed: list[SealedRecord], tmp_path: Path
) -> None:
    data = requests(sealed)[0]
    assert b"customer_portal" in data
    (tmp_path / "one.binpb").write_bytes(data.replace(b"customer_portal", b"customer_portaX", 1))
    report = verify(key, tmp_path)
    assert "modified" in report.kinds()


def test_json_lines_of_bodies_in_any_order(
    key: SigningKey, sealed: list[SealedRecord], tmp_path: Path
) -> None:
    lines = [s.line for s in sealed]
    random.Random(3).shuffle(lines)
    (tmp_path / "bodies.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    expect_intact(verify(key, tmp_path))


def test_formats_mixed_across_files(
    key: SigningKey, sealed: list[SealedRecord], tmp_path: Path
) -> None:
    third = len(sealed) // 3
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(s.line for s in sealed[:third]) + b"\n")
    for number, data in enumerate(requests(sealed[third : 2 * third], "map")):
        (tmp_path / f"b-{number}.binpb").write_bytes(data)
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    with open(tmp_path / "c.json", "wb") as handle:
        for data in requests(sealed[2 * third :]):
            message = ExportLogsServiceRequest.FromString(data)
            handle.write(orjson.dumps(json_format.MessageToDict(message)) + b"\n")
    expect_intact(verify(key, tmp_path))


def test_garbage_protobuf_is_malformed(key: SigningKey, tmp_path: Path) -> None:
    (tmp_path / "junk.binpbs").write_bytes(b"\xff" * 20)
    report = verify(key, tmp_path)
    assert report.kinds() == {"malformed"}
