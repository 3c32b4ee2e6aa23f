"""PCI DSS plugin: PAN masking, 10.2.2 elements, retention, through a real pipeline."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pci_support import card_record, pci_plugins

from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline
from otel_audit.records import build
from otel_audit.schema import validate
from otel_audit.testing import MemorySink, run_pipeline
from otel_audit_pci import _redact as redact
from otel_audit_pci import luhn_valid, mask_pans, mask_record


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4111111111111111", "411111******1111"),
        ("card 4111 1111 1111 1111 ok", "card 4111 11** **** 1111 ok"),
        ("4111-1111-1111-1111", "4111-11**-****-1111"),
        ("amex 378282246310005.", "amex 378282*****0005."),
        ("diners 30569309025904", "diners 305693****5904"),
        ("19 digits 6304000000000000000", "19 digits 630400*********0000"),
        ("id=x4012888888881881y", "id=x401288******1881y"),
    ],
)
def test_pans_are_masked_to_first_six_and_last_four(text: str, masked: str) -> None:
    assert mask_pans(text) == (masked, 1)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "411111111111",  # 12 digits
        "4111  1111 1111 1111",  # two spaces: not one number
        "order 2024-01-15 total 1234",
        "",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask_pans(text) == (text, 0)


def test_two_pans_written_back_to_back_are_both_masked() -> None:
    masked, _ = mask_pans("4111111111111111 5500005555555559")
    assert "4111111111111111" not in masked.replace(" ", "")
    assert "5500005555555559" not in masked.replace(" ", "")
    assert masked.startswith("411111")
    assert masked.endswith("5559")


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_keys_values_lists_and_integers_are_masked_anywhere() -> None:
    record = card_record(
        extensions={
            "note": ["paid with 5500 0055 5555 5559"],
            "4111111111111111": {"deep": [{"pan": 4111111111111111}]},
        }
    )
    assert mask_record(record) == 3
    ext = record["extensions"]
    assert ext["note"] == ["paid with 5500 00** **** 5559"]
    assert ext["411111******1111"] == {"deep": [{"pan": "411111******1111"}]}


def test_ids_made_by_otel_audit_are_not_touched() -> None:
    record = card_record(context={"source_ip": "192.0.2.1", "trace_id": "4111111111111111" * 2})
    record["event_id"] = "evt_0190a1b2c3d44111111111111111aaaa"
    before = (record["event_id"], record["context"]["trace_id"])
    mask_record(record)
    assert (record["event_id"], record["context"]["trace_id"]) == before


def test_event_id_digits_neither_walk_nor_hide_a_pan(monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[int] = []
    walk = redact._mask_dict

    def counted(*args: Any) -> int:
        walks.append(1)
        return walk(*args)

    monkeypatch.setattr(redact, "_mask_dict", counted)
    clean = card_record()
    clean["event_id"] = "evt_0190a1b2c3d44111111111111111aaaa"  # 16 decimal digits
    assert mask_record(clean) == 0
    assert walks == []  # the prefilter looked again without the event id
    leaky = card_record(context={"source_ip": "192.0.2.1", "api_endpoint": "/pay/4111111111111111"})
    leaky["event_id"] = clean["event_id"]
    assert mask_record(leaky) == 1
    assert leaky["context"]["api_endpoint"] == "/pay/411111******1111"
    assert leaky["event_id"] == clean["event_id"]


def test_a_sealed_record_carries_the_masked_pan_and_the_pci_decisions() -> None:
    record = build(
        category="data_access",
        action="UPDATE",
        actor="support@shop.example",
        resource=("order", "o-1"),
        result="SUCCESS",
        risk_level="LOW",
        context={"source_ip": "203.0.113.9"},
        change_tracking={"after_state": {"card": "4111-1111-1111-1111"}},
    )
    [sealed] = run_pipeline([record], plugins=pci_plugins())
    out = sealed.record
    assert out["action"] == "UPDATE"
    assert out["change_tracking"]["after_state"] == {"card": "4111-11**-****-1111"}
    assert out["pci_context"] == {"pan_masked": True, "cardholder_data": True}
    assert out["metadata"]["compliance_tags"] == ["PCI-DSS"]
    assert out["metadata"]["retention_years"] == 1
    assert validate(out) == []
    assert b"4111-1111-1111-1111" not in sealed.line


def test_cardholder_records_need_every_10_2_2_element() -> None:
    complete = card_record()
    no_origin = card_record(context={"application": "checkout"})
    out = run_pipeline([complete, no_origin], plugins=pci_plugins())
    assert out[0].action == "READ"
    assert out[0].record["metadata"]["retention_years"] == 1
    assert out[1].action == "AUDIT_SCHEMA_VIOLATION"
    [violation] = out[1].record["extensions"]["violations"]
    assert violation["rule"] == "pci.10.2.2"
    assert "origination" in violation["message"]


def test_application_may_count_as_origination_by_configuration() -> None:
    record = card_record(context={"application": "checkout"})
    [out] = run_pipeline([record], plugins=pci_plugins({"require_source_ip": False}))
    assert out.action == "READ"


def test_records_outside_cardholder_data_are_not_tagged() -> None:
    record = build(
        category="authentication",
        action="LOGIN",
        actor="bob",
        resource=("user_account", "bob"),
        result="SUCCESS",
        risk_level="LOW",
        context={"application": "portal"},
    )
    [out] = run_pipeline([record], plugins=pci_plugins())
    assert "compliance_tags" not in out.record["metadata"]
    assert "retention_years" not in out.record["metadata"]


def test_unknown_settings_are_rejected() -> None:
    from otel_audit.errors import PluginError

    with pytest.raises(PluginError, match="unknown pci settings: treshold"):
        pci_plugins({"treshold": 3})


def test_a_spilled_record_is_masked_before_it_touches_the_disk(tmp_path: Path) -> None:
    class HeldSink(MemorySink):
        def __init__(self) -> None:
            super().__init__()
            self.gate = threading.Event()

        def write(self, batch: Any) -> None:
            self.gate.wait(10)
            super().write(batch)

    sink = HeldSink()
    spill = tmp_path / "spill"
    pipeline = AuditPipeline(
        SigningKey.generate("spill"),
        [sink],
        queue_size=2,
        max_block_ms=1,
        batch_size=1,
        spill_dir=spill,
        plugins=pci_plugins(),
    )
    try:
        for _ in range(12):
            pipeline.submit(card_record(extensions={"pan": "4111 1111 1111 1111"}))
        assert pipeline.stats.spilled > 0
        spilled = b"".join(p.read_bytes() for p in spill.glob("spill-*.jsonl"))
        assert b"4111 11** **** 1111" in spilled
        assert b"4111 1111 1111 1111" not in spilled
    finally:
        sink.gate.set()
        assert pipeline.close()
    masked = [s for s in sink.records if s.category != "integrity"]
    assert len(masked) == 12
    assert all(s.record["extensions"]["pan"] == "4111 11** **** 1111" for s in masked)
