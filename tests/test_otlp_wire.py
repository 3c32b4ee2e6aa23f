"""Our protobuf encoder of sealed records equals the OTel SDK's encoder, message for message."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

from otel_audit._otlp_wire import RequestEncoder, log_records, make_resource
from otel_audit.keys import SigningKey
from otel_audit.testing import seal_stream

RESOURCE = make_resource("wire-test", "host-1", {"deployment.environment": "test"})


def sdk(pairs: list[tuple[dict[str, Any], bytes]]) -> Any:
    class Sealed:  # what log_records reads of a SealedRecord
        def __init__(self, record: dict[str, Any], line: bytes) -> None:
            self.record, self.line = record, line

    return encode_logs(log_records([Sealed(r, line) for r, line in pairs], RESOURCE))  # type: ignore[misc]


def test_sealed_stream_encodes_as_the_sdk_does() -> None:
    _, sealed = seal_stream(SigningKey.generate("wire"), 300, checkpoint_every=100)
    ours = RequestEncoder(RESOURCE).request([(s.record, s.line) for s in sealed])
    assert ours == sdk([(s.record, s.line) for s in sealed])
    assert len(ours.resource_logs[0].scope_logs[0].log_records) == len(sealed)
    first = ours.resource_logs[0].scope_logs[0].log_records[0]
    assert first.body.string_value.encode() == sealed[0].line
    assert first.event_name == "audit.integrity.stream_start"


def test_serialized_bytes_equal_the_sdk_serialization() -> None:
    _, sealed = seal_stream(SigningKey.generate("wire"), 20)
    pairs = [(s.record, s.line) for s in sealed]
    assert RequestEncoder(RESOURCE).encode(pairs) == sdk(pairs).SerializeToString()


text = st.text(st.characters(codec="utf-8"), max_size=300)
small_or_large = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timestamp": draw(
            st.sampled_from(["2024-01-15T14:30:45.123Z", "bad", "1970-01-01T00:00:00.000Z"])
        ),
        "event_id": draw(text),
        "category": draw(text),
        "action": draw(text),
        "actor": {"user_id": draw(text), "session_id": draw(text)},
        "context": {
            "source_ip": draw(text),
            "user_agent": draw(text),
            "trace_id": draw(
                st.sampled_from(["", "0" * 32, "4bf92f3577b34da6a3ce929d0e0e4736", "xyz"])
            ),
            "span_id": draw(st.sampled_from(["", "00f067aa0ba902b7", "0" * 16])),
        },
        "result": {"status": draw(text), "response_code": draw(small_or_large)},
        "resource": {"type": "t", "id": "i", "table": draw(text)},
        "metadata": {
            "risk_level": draw(st.sampled_from(["LOW", "MEDIUM", "HIGH", "CRITICAL", "?"]))
        },
        "integrity": {"origin": draw(text), "seq": draw(st.integers(0, 2**53 - 1))},
    }
    for block in ("actor", "context", "result", "resource"):
        for key in list(record[block]):
            if draw(st.booleans()) and draw(st.booleans()):
                del record[block][key]  # absent fields give absent attributes
    return record


@settings(max_examples=200, deadline=None)
@given(st.lists(records(), min_size=1, max_size=5))
def test_any_record_encodes_as_the_sdk_does(batch: list[dict[str, Any]]) -> None:
    pairs = [(r, orjson.dumps(r)) for r in batch]
    assert RequestEncoder(RESOURCE).request(pairs) == sdk(pairs)
