"""The CEF formatter: mapping, escaping, lengths, severity; read back with cefp."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from cef_support import expected, one_line, parse, record_with, seal

from otel_audit.keys import SigningKey
from otel_audit.testing import seal_stream
from otel_audit_cef import CEF_SEVERITY, CefFormatter, cef_severity, format_cef

HOSTILE = {
    "pipes": "a|b||c|",
    "backslashes": "\\a\\\\b\\",
    "equals": "k=v x=y =",
    "forged_key": "innocent act=DELETE suser=root",
    "crlf": "line1\r\nline2\rline3\n",
    "escape_lookalikes": "\\n \\r \\= \\| \\\\",
    "trailing_backslash": "ends with \\",
    "unicode": "Grüße, 東京, עברית, ﷺ",
    "astral": "😀𝄞𐍈 🏳️‍🌈",
    "line_separators": "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei",
    "controls": "nul\x00bell\x07esc\x1bdel\x7ftab\t",
    "ten_kb": ("x|y=z\\\n😀" * 2000)[:10240],
    "empty": "",
    "spaces": "  padded  ",
}

#: record field (``__`` = nesting) → (CEF extension key, limit) — the README mapping table.
STRING_FIELDS = {
    "event_id": ("externalId", 40),
    "category": ("cat", 1023),
    "action": ("act", 63),
    "result__status": ("outcome", 63),
    "actor__user_id": ("suser", 1023),
    "actor__role": ("spriv", 1023),
    "actor__session_id": ("flexString1", 1023),
    "context__source_ip": ("shost", 1023),  # not an IP address: moved from src to shost
    "context__hostname": ("dvchost", 100),
    "context__application": ("dproc", 1023),
    "context__api_endpoint": ("request", 1023),
    "context__user_agent": ("requestClientApplication", 1023),
    "result__reason": ("msg", 1023),
    "result__error_code": ("reason", 1023),
    "resource__classification": ("cs6", 4000),
}


def test_sealed_stream_maps_every_field() -> None:
    key = SigningKey.generate("cef-map")
    _, records = seal_stream(key, 6, checkpoint_every=3)
    for sealed in records:
        record = sealed.record
        line = format_cef(sealed)
        assert one_line(line)
        cef = parse(line)
        ext = cef["extension"]
        assert cef["version"] == "0"
        assert cef["device"]["vendor"] == "otel-audit"
        assert cef["device"]["product"] == "otel-audit"
        assert cef["device"]["event_class_id"] == f"{record['category']}:{record['action']}"
        assert cef["name"] == f"audit.{record['category']}.{record['action'].lower()}"
        assert cef["severity"] == str(CEF_SEVERITY[record["metadata"]["risk_level"]])
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        assert int(ext["rt"]) == round(stamp.timestamp() * 1000)
        assert ext["externalId"] == record["event_id"]
        assert ext["cat"] == record["category"]
        assert ext["act"] == record["action"]
        assert ext["outcome"] == record["result"]["status"]
        assert ext["suser"] == record["actor"]["user_id"]
        resource = record["resource"]
        assert (ext["cs1Label"], ext["cs1"]) == ("resource", f"{resource['type']}:{resource['id']}")
        assert (ext["cs2Label"], ext["cs2"]) == ("checksum", record["metadata"]["checksum"])
        assert (ext["cs3Label"], ext["cs3"]) == ("origin", sealed.origin)
        assert (ext["cs4Label"], ext["cs4"]) == ("seq", str(sealed.seq))
        prev = record["integrity"]["prev_hash"]
        assert (ext["flexString2Label"], ext["flexString2"]) == ("prev_hash", prev)
        integrity = record["integrity"]
        if record["category"] == "integrity":
            if "checkpoint" in integrity:  # the signed note, byte for byte, for the SIEM
                assert (ext["cs6Label"], ext["cs6"]) == ("checkpoint", integrity["checkpoint"])
            else:
                assert (ext["cs6Label"], ext["cs6"]) == ("vkey", integrity["vkey"])
            continue
        assert ext["src"] == record["context"]["source_ip"]
        assert (ext["cs5Label"], ext["cs5"]) == ("compliance_tags", "GDPR,SOX")
        assert (ext["cn1Label"], ext["cn1"]) == ("affected_records", "1")
        assert (ext["cn2Label"], ext["cn2"]) == ("response_code", "200")
        assert (ext["cn3Label"], ext["cn3"]) == ("retention_years", "7")
        assert (ext["cs6Label"], ext["cs6"]) == ("classification", "PII")
        assert ext["request"] == record["context"]["api_endpoint"]
        assert ext["requestClientApplication"] == record["context"]["user_agent"]
        assert ext["flexString1"] == record["actor"]["session_id"]
        assert ext["spriv"] == record["actor"]["role"]
        assert ext["dproc"] == record["context"]["application"]


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("field", sorted(STRING_FIELDS))
def test_hostile_values_read_back(field: str, name: str) -> None:
    value = HOSTILE[name]
    (sealed,) = seal([record_with(**{field: value})])
    line = format_cef(sealed)
    assert one_line(line)
    key, limit = STRING_FIELDS[field]
    ext = parse(line)["extension"]
    assert ext[key] == expected(value, limit)
    # no field was forged and every other field is intact
    assert ext["cs2"] == sealed.record["metadata"]["checksum"]
    assert ext["cs4"] == str(sealed.seq)
    if field != "context__source_ip":
        assert ext["src"] == "192.0.2.8"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_resource_and_tags_read_back(name: str) -> None:
    value = HOSTILE[name]
    (sealed,) = seal(
        [record_with(resource__type=value, resource__id=value, metadata__compliance_tags=[value])]
    )
    ext = parse(format_cef(sealed))["extension"]
    assert ext["cs1"] == expected(f"{value}:{value}", 4000)
    assert ext["cs5"] == expected(value, 4000)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_header_fields(name: str) -> None:
    value = HOSTILE[name]
    formatter = CefFormatter(vendor=value, product=value, version=value)
    (sealed,) = seal([record_with(category=value, action=value)])
    line = formatter.format(sealed)
    assert one_line(line)
    cef = parse(line)
    assert cef["version"] == "0"
    assert cef["device"]["vendor"] == expected(value, 63, header=True)
    assert cef["device"]["product"] == expected(value, 63, header=True)
    assert cef["device"]["version"] == expected(value, 31, header=True)
    assert cef["device"]["event_class_id"] == expected(f"{value}:{value}", 1023, header=True)
    assert cef["name"] == expected(f"audit.{value}.{value.lower()}", 512, header=True)
    assert cef["severity"] == "5"  # sample record 7: MEDIUM
    assert cef["extension"]["cs4"] == str(sealed.seq)


def test_header_escaping_exact() -> None:
    formatter = CefFormatter(vendor="Acme|Corp", product="Audit\\Log", version="1\r\n2")
    line = formatter.format(record_with(category="data|access", action="READ\\WRITE"))
    assert line.startswith(
        "CEF:0|Acme\\|Corp|Audit\\\\Log|1  2|data\\|access:READ\\\\WRITE|"
        "audit.data\\|access.read\\\\write|5|rt="
    )


def test_extension_escaping_exact() -> None:
    line = format_cef(record_with(actor__user_id="a\\b=c\rd\ne|f"))
    assert " suser=a\\\\b\\=c\\rd\\ne|f " in line


@pytest.mark.parametrize(
    ("risk", "severity"),
    [("LOW", 3), ("MEDIUM", 5), ("HIGH", 8), ("CRITICAL", 10), ("BOGUS", 5), (None, 5), (7, 5)],
)
def test_severity_from_risk_level(risk: Any, severity: int) -> None:
    record = record_with(metadata__risk_level=risk)
    assert cef_severity(record) == severity
    assert parse(format_cef(record))["severity"] == str(severity)


@pytest.mark.parametrize(
    ("source", "key", "value"),
    [
        ("203.0.113.9", "src", "203.0.113.9"),
        ("2001:DB8::0:1", "src", "2001:db8::1"),
        ("::ffff:192.0.2.1", "src", "::ffff:c000:201"),
        ("fe80::1%eth0", "shost", "fe80::1%eth0"),
        ("gateway.example", "shost", "gateway.example"),
        ("1.2.3.4 act=DELETE", "shost", "1.2.3.4 act=DELETE"),
    ],
)
def test_src_holds_ip_addresses_only(source: str, key: str, value: str) -> None:
    ext = parse(format_cef(record_with(context__source_ip=source)))["extension"]
    assert ext[key] == value
    assert ({"src", "shost"} - {key}).isdisjoint(ext)


def test_truncation_keeps_astral_characters_whole() -> None:
    value = "a" + "😀" * 100  # act: 63 UTF-16 units → "a" + 31 emoji
    ext = parse(format_cef(record_with(action=value)))["extension"]
    assert ext["act"] == "a" + "😀" * 31
    assert len(ext["act"].encode("utf-16-le")) == 2 * 63


@pytest.mark.parametrize("count", [1022, 1023, 1024, 5000])
def test_truncation_never_leaves_a_dangling_escape(count: int) -> None:
    for char in ("\\", "=", "\n", "\r"):
        ext = parse(format_cef(record_with(actor__user_id="u" * 1022 + char * count)))
        assert ext["extension"]["suser"] == "u" * 1022 + char
        assert ext["extension"]["cs1"] == "database_record:customer_7"


def test_checksum_origin_seq_survive_any_record_size() -> None:
    (sealed,) = seal([record_with(result__reason="r" * 8192, context__user_agent="u" * 8192)])
    line = format_cef(sealed)
    ext = parse(line)["extension"]
    assert len(ext["msg"]) == 1023
    assert len(ext["requestClientApplication"]) == 1023
    assert ext["cs2"] == sealed.record["metadata"]["checksum"]


@pytest.mark.parametrize(
    "odd",
    [
        {},
        {"category": 5, "action": None, "actor": "not a map", "metadata": []},
        {"timestamp": "not a time", "event_id": ["a", "b"], "result": {"status": True}},
        {
            "integrity": {"seq": 10**5000, "origin": {"k": "v\n"}},
            "result": {"affected_records": 2**70},
        },
        {"context": {"source_ip": 12345, "user_agent": {"a": "b\nc"}}},
        {"timestamp": "9999-12-31T23:59:59.999+14:00", "resource": {"type": "x"}},
    ],
)
def test_any_input_gives_one_parseable_line(odd: dict[str, Any]) -> None:
    line = format_cef(odd)
    assert one_line(line)
    assert parse(line)["version"] == "0"


def test_large_integers_are_not_numbers() -> None:
    ext = parse(format_cef({"result": {"affected_records": 2**70}, "integrity": {"seq": True}}))
    assert "cn1" not in ext["extension"]  # cnN is a 64-bit Long
    assert ext["extension"]["cs4"] == "true"


def test_rt_is_milliseconds_since_epoch() -> None:
    ext = parse(format_cef({"timestamp": "2024-01-15T14:30:45.123Z"}))["extension"]
    moment = datetime(2024, 1, 15, 14, 30, 45, 123000, tzinfo=timezone.utc)
    assert ext["rt"] == str(round(moment.timestamp() * 1000)) == "1705329045123"
