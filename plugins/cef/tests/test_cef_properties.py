"""Property: any strings in every mapped field give one line that cefp reads back."""

from __future__ import annotations

from typing import Any

from cef_support import expected, one_line, parse, record_with
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cef_format import STRING_FIELDS

from otel_audit_cef import CefFormatter

# every code point, lone surrogates included (a record given as a mapping may hold them)
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
# and a bias towards the characters the grammar cares about
GRAMMAR = st.sampled_from(["\\", "|", "=", "\r", "\n", " ", "\u2028", "😀", "\ud800", "\x85"])
SHORT = st.text(st.one_of(ANY_CHAR, GRAMMAR), max_size=40)
# long values (past every length limit) are cheap repetitions of a short one
TEXT = SHORT | st.builds(lambda text, n: text * n, SHORT.filter(bool), st.integers(30, 300))

FIELD_VALUES = st.fixed_dictionaries(dict.fromkeys(STRING_FIELDS, TEXT))
HEADER_VALUES = st.fixed_dictionaries(
    {"vendor": TEXT, "product": TEXT, "version": TEXT, "category": TEXT, "action": TEXT}
)


@settings(max_examples=300, deadline=None)
@given(values=FIELD_VALUES, tags=st.lists(TEXT, max_size=4))
def test_every_extension_field_reads_back(values: dict[str, str], tags: list[str]) -> None:
    record = record_with(**values, metadata__compliance_tags=tags)
    line = CefFormatter().format(record)
    assert one_line(line)
    line.encode("utf-8")  # valid UTF-8 whatever came in
    ext = parse(line)["extension"]
    for field, value in values.items():
        key, limit = STRING_FIELDS[field]
        if key == "shost" and value.strip() and _is_plain_ip(value):
            continue  # a real IP address goes to src instead
        assert ext[key] == expected(value, limit), field
    assert ext["cs5"] == expected(",".join(tags), 4000)
    assert ext["cn1"] == "1"  # nothing forged, nothing displaced


@settings(max_examples=200, deadline=None)
@given(values=HEADER_VALUES)
def test_every_header_field_reads_back(values: dict[str, str]) -> None:
    formatter = CefFormatter(
        vendor=values["vendor"], product=values["product"], version=values["version"]
    )
    category, action = values["category"], values["action"]
    line = formatter.format(record_with(category=category, action=action))
    assert one_line(line)
    cef: dict[str, Any] = parse(line)
    assert cef["device"]["vendor"] == expected(values["vendor"], 63, header=True)
    assert cef["device"]["product"] == expected(values["product"], 63, header=True)
    assert cef["device"]["version"] == expected(values["version"], 31, header=True)
    signature = expected(f"{category}:{action}", 1023, header=True)
    assert cef["device"]["event_class_id"] == signature
    assert cef["name"] == expected(f"audit.{category}.{action.lower()}", 512, header=True)
    assert cef["severity"] == "5"
    assert cef["extension"]["cat"] == expected(category, 1023)


def _is_plain_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return "%" not in value
