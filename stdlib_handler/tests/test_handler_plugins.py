"""AuditHandler with the installed compliance plugins (entry points), configured by keyword
or environment, with a sink made by a plugin (CEF, when otel-audit-cef is installed)."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from handler_support import app_records, assert_intact

from otel_audit.errors import PluginError
from otel_audit.store import read_lines
from otel_audit_logging import AuditHandler, audit_context

MakeHandler = Callable[..., AuditHandler]
MakeLogger = Callable[[logging.Handler], logging.Logger]
HAVE_CEF = importlib.util.find_spec("otel_audit_cef") is not None


@pytest.mark.parametrize("sealing", ["thread", "process"])
def test_installed_plugins_are_active_when_not_disabled(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path, sealing: str
) -> None:
    # the test environment disables them; sealing="process" loads them in the sealing process
    handler = make_handler(disable_plugins="", sealing=sealing)
    assert {"gdpr", "hipaa", "sox", "pci"} <= set(handler.plugins.names)  # type: ignore[union-attr]
    log = make_logger(handler)
    with audit_context(actor="alice", source_ip="192.0.2.1"):
        log.info(
            "paid",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "CREATE",
                    "resource": ("order", "o-1"),
                    "extensions": {"note": "card 4111 1111 1111 1111"},
                }
            },
        )
        log.info(  # SOX: approved by the actor themself
            "posted",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "UPDATE",
                    "resource": {"type": "journal_entry", "id": "je-1"},
                    "change_tracking": {"change_reason": "fix", "approver": "alice"},
                }
            },
        )
    assert handler.flush()
    handler.close()
    paid, posted = app_records(store)
    assert paid["extensions"]["note"] == "card 4111 11** **** 1111"
    assert paid["metadata"]["compliance_tags"] == ["PCI-DSS"]
    assert posted["action"] == "AUDIT_SCHEMA_VIOLATION"
    assert posted["extensions"]["violations"][0]["rule"] == "sox.separation_of_duties"
    assert_intact(store, vkey_file)


def test_keyword_configuration_and_disabling(make_handler: MakeHandler) -> None:
    handler = make_handler(disable_plugins="gdpr, sox", plugins={"hipaa": {"bulk_threshold": 5}})
    names = handler.plugins.names  # type: ignore[union-attr]
    assert "gdpr" not in names
    assert "sox" not in names
    assert "hipaa" in names
    with pytest.raises(PluginError, match="unknown hipaa settings"):
        make_handler(disable_plugins="", plugins='{"hipaa": {"treshold": 5}}')


def test_environment_configuration(
    make_handler: MakeHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_AUDIT_DISABLE_PLUGINS", "pci")
    monkeypatch.setenv("OTEL_AUDIT_PLUGINS", '{"sox": {"enabled": false}}')
    names = make_handler().plugins.names  # type: ignore[union-attr]
    assert "pci" not in names
    assert "sox" not in names
    assert "gdpr" in names
    monkeypatch.setenv("OTEL_AUDIT_PLUGINS", "{not json")
    with pytest.raises(ValueError, match="OTEL_AUDIT_PLUGINS plugin configuration is not JSON"):
        make_handler()
    with pytest.raises(ValueError, match="sinks= sink 'cef': option 'path' is not key=value"):
        make_handler(plugins={}, sinks="cef:path")


@pytest.mark.skipif(not HAVE_CEF, reason="otel-audit-cef is not installed")
def test_a_cef_sink_by_name_writes_beside_the_store(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, tmp_path: Path
) -> None:
    cef = tmp_path / "audit.cef"
    handler = make_handler(disable_plugins="", sinks=f"cef:path={cef}")
    log = make_logger(handler)
    with audit_context(actor="bob", source_ip="192.0.2.2"):
        log.info(
            "x",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "READ",
                    "resource": ("order", "o-2"),
                    "result": {"status": "SUCCESS", "reason": "pan 5500-0055-5555-5559"},
                }
            },
        )
    assert handler.flush()
    handler.close()
    lines = cef.read_text().splitlines()
    assert all(line.startswith("CEF:0|") for line in lines)
    text = cef.read_text()
    assert "5500-00**-****-5559" in text
    assert "5500-0055-5555-5559" not in text
    assert len(lines) == len(list(read_lines(handler.settings.store)))
