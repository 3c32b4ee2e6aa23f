"""Property: no full PAN reaches any sink, whatever its separators and wherever it is.

Each example puts a random Luhn-valid PAN (13–19 digits; separators: none, single spaces
or dashes, anywhere) into a random place of a record — a value, an object key, a nested
list, free text with other characters around it — and submits it to a real pipeline
with the PCI plugin. The sealed JSON line, the local store's segment file and, when
``otel-audit-cef`` is installed, the CEF line (the ``cef`` format and the ``cef`` sink,
both from the plugin manager) must hold neither the PAN as written nor its digits.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pci_support import card_record, pci_plugins

from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline
from otel_audit.plugins import Plugins
from otel_audit.store import LocalStore, iter_segments
from otel_audit.testing import MemorySink
from otel_audit_pci import luhn_valid, mask_pans

HAVE_CEF = importlib.util.find_spec("otel_audit_cef") is not None
_SEPARATORS = re.compile(r"[ -]")


@st.composite
def pans(draw: st.DrawFn) -> tuple[str, str]:
    """``(digits, as written)``: a Luhn-valid PAN and a rendering with separators."""
    size = draw(st.integers(13, 19))
    rest = draw(st.lists(st.integers(0, 9), min_size=size - 2, max_size=size - 2))
    body = [draw(st.integers(1, 9)), *rest]
    for check in range(10):
        digits = "".join(map(str, [*body, check]))
        if luhn_valid(digits):
            break
    style = draw(st.sampled_from(["none", "space", "dash", "random"]))
    written = digits[0]
    for char in digits[1:]:
        if style == "random":
            written += draw(st.sampled_from(["", "", " ", "-"]))
        elif style != "none" and draw(st.integers(0, 3)) == 0:
            written += " " if style == "space" else "-"
        written += char
    return digits, written


# text around a PAN: anything, but not a digit right next to it (that would make it a
# different, longer number; see the README)
_around = st.text(max_size=20).filter(lambda t: not t[-1:].isdigit())
_after = st.text(max_size=20).filter(lambda t: not t[:1].isdigit())
# Text that does not continue the PAN's digit run through a separator ("-2", "5 "): there
# the run is ambiguous, a longer Luhn-valid window may be masked too, and only "no full
# PAN survives" (test_no_full_pan_reaches_any_sink) is promised, not which four digits stay.
_clear_before = _around.filter(lambda t: not (t[-1:] in (" ", "-") and t[-2:-1].isdigit()))
_clear_after = _after.filter(lambda t: not (t[:1] in (" ", "-") and t[1:2].isdigit()))


def _place(record: dict[str, Any], where: str, text: str) -> None:
    if where == "value":
        record["extensions"] = {"note": text}
    elif where == "key":
        record["extensions"] = {text: "x"}
    elif where == "nested":
        record["change_tracking"] = {"after_state": {"cards": [{"n": [text]}]}}
    elif where == "reason":
        record["result"]["reason"] = text
    else:
        record["resource"]["name"] = text


@dataclass
class Outputs:
    plugins: Plugins
    pipeline: AuditPipeline
    memory: MemorySink
    store: Path
    cef: Path


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outputs]:
    root = tmp_path_factory.mktemp("pan-property")
    plugins = pci_plugins(cef=HAVE_CEF)
    memory = MemorySink()
    sinks: list[Any] = [memory, LocalStore(root / "store")]
    if HAVE_CEF:
        sinks.append(plugins.sink("cef", {"path": str(root / "audit.cef")}))
    pipeline = AuditPipeline(
        SigningKey.generate("pan-property"),
        sinks,
        service_name="pan-property",
        checkpoint_interval_ms=50,
        plugins=plugins,
    )
    yield Outputs(plugins, pipeline, memory, root / "store", root / "audit.cef")
    assert pipeline.close()


def _assert_absent(digits: str, written: str, text: str, what: str) -> None:
    assert written not in text, what
    assert digits not in _SEPARATORS.sub("", text), what


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pan=pans(),
    before=_around,
    after=_after,
    where=st.sampled_from(["value", "key", "nested", "reason", "name"]),
)
def test_no_full_pan_reaches_any_sink(
    outputs: Outputs, pan: tuple[str, str], before: str, after: str, where: str
) -> None:
    digits, written = pan
    record = card_record()
    _place(record, where, before + written + after)
    outputs.pipeline.submit(record)
    assert outputs.pipeline.flush()
    sealed = next(s for s in reversed(outputs.memory.records) if s.category != "integrity")
    assert sealed.action == "READ", sealed.record.get("extensions")
    assert sealed.record["pci_context"]["pan_masked"] is True
    _assert_absent(digits, written, sealed.line.decode(), "sealed JSON line")
    store_text = "".join(p.read_text() for p in iter_segments(outputs.store))
    _assert_absent(digits, written, store_text, "store segment")
    if HAVE_CEF:
        _assert_absent(digits, written, outputs.plugins.format(sealed, "cef"), "cef format")
        _assert_absent(digits, written, outputs.cef.read_text(), "cef sink file")


@settings(max_examples=500, deadline=None)
@given(pan=pans(), before=_clear_before, after=_clear_after)
def test_masking_keeps_first_six_and_last_four(
    pan: tuple[str, str], before: str, after: str
) -> None:
    digits, written = pan
    masked, count = mask_pans(before + written + after)
    assert count >= 1
    _assert_absent(digits, written, masked, "masked text")
    kept = _SEPARATORS.sub("", masked)
    assert digits[:6] in kept
    assert digits[-4:] in kept


@pytest.mark.skipif(not HAVE_CEF, reason="otel-audit-cef is not installed")
def test_the_cef_plugin_is_part_of_the_property(outputs: Outputs) -> None:
    assert "cef" in outputs.plugins.names
    assert outputs.cef.exists()
