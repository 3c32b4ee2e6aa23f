"""Pseudonyms and sealed personal fields: keyed, per subject, bound to their record."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gdpr_support import gdpr, personal

from otel_audit.schema import validate
from otel_audit.testing import run_pipeline
from otel_audit_gdpr import KeyVault, open_value, subject_reports

PSEUDONYM = re.compile(r"ds_[0-9a-f]{32}")


def test_subjects_are_pseudonymized_with_a_keyed_hash(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    out = run_pipeline(
        [personal("customer-4711"), personal("customer-4711"), personal("customer-9")],
        plugins=gdpr(vault),
    )
    ids = [o.record["gdpr_context"]["data_subject_id"] for o in out]
    assert all(PSEUDONYM.fullmatch(i) for i in ids)
    assert ids[0] == ids[1] != ids[2]
    assert ids[0] == KeyVault(vault).pseudonym("customer-4711")
    # another vault (another secret) gives another pseudonym
    assert KeyVault(tmp_path / "other").pseudonym("customer-4711") != ids[0]
    for o in out:
        assert b"customer-4711" not in o.line


def test_the_secret_never_shows(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    plugins = gdpr(vault)
    [out] = run_pipeline([personal()], plugins=plugins)
    secret = (vault / "pseudonym.secret").read_bytes()
    assert len(secret) == 32
    assert (vault / "pseudonym.secret").stat().st_mode & 0o077 == 0
    plugin = plugins.manager.get_plugin("gdpr")
    shown = repr(plugin.vault) + repr(plugin.vault._secret) + out.line.decode()  # type: ignore[union-attr]
    for form in (secret.hex(), secret.hex().upper(), secret.decode("latin-1")):
        assert form not in shown


def test_personal_fields_are_sealed_per_subject_and_open_with_its_key(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    [out] = run_pipeline([personal()], plugins=gdpr(vault))
    record = out.record
    assert validate(record) == []
    assert "name" not in record["resource"]
    assert "before_state" not in record["change_tracking"]
    assert record["change_tracking"]["change_reason"] == "customer request"
    sealed = record["extensions"]["gdpr"]["sealed"]
    assert sorted(sealed) == [
        "change_tracking.after_state",
        "change_tracking.before_state",
        "resource.name",
    ]
    assert b"New Street" not in out.line
    assert b"Jane Roe" not in out.line
    pseudonym = record["extensions"]["gdpr"]["subject"]
    envelope = sealed["change_tracking.after_state"]
    key = KeyVault(vault).key(pseudonym, envelope["kid"])
    assert key is not None
    where = {"event_id": record["event_id"], "pseudonym": pseudonym}
    value = open_value(envelope, key=key, path="change_tracking.after_state", **where)
    assert value == {"street": "2 New Street"}
    # bound to its place: the same envelope under another path or record does not open
    with pytest.raises(ValueError, match="does not open"):
        open_value(envelope, key=key, path="resource.name", **where)
    with pytest.raises(ValueError, match="does not open"):
        open_value(
            envelope,
            key=key,
            path="change_tracking.after_state",
            event_id="evt_" + "0" * 32,
            pseudonym=pseudonym,
        )
    # a forged commitment is caught
    forged = {**envelope, "commitment": "sha256:" + "0" * 64}
    with pytest.raises(ValueError, match="commitment"):
        open_value(forged, key=key, path="change_tracking.after_state", **where)


def test_erasure_makes_one_subject_unreadable_and_new_data_gets_a_new_key(
    tmp_path: Path,
) -> None:
    vault_dir = tmp_path / "vault"
    plugins = gdpr(vault_dir)
    first = run_pipeline([personal("a"), personal("b")], plugins=plugins)
    vault = KeyVault(vault_dir)
    assert vault.erase(vault.pseudonym("a")) == 1
    later = run_pipeline([personal("a")], plugins=plugins)  # same plugin: its cache is checked
    reports = {r.pseudonym: r for r in subject_reports([o.record for o in first], vault)}
    assert reports[vault.pseudonym("a")].state == "erased"
    assert reports[vault.pseudonym("a")].erased == 3
    assert reports[vault.pseudonym("b")].state == "readable"
    assert reports[vault.pseudonym("b")].readable == 3
    everything = [o.record for o in first + later]
    again = {r.pseudonym: r for r in subject_reports(everything, vault)}
    assert again[vault.pseudonym("a")].state == "partly erased"
    assert len(again[vault.pseudonym("a")].kids) == 2
