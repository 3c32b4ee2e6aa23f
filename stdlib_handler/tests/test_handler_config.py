"""Configuration: logging.config.dictConfig, OTEL_AUDIT_* variables, clear errors."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path
from typing import Any

import pytest
from handler_support import app_records, assert_intact, read_records

from otel_audit_logging import AuditHandler

AUDIT: dict[str, Any] = {
    "category": "administrative",
    "action": "CONFIG_CHANGE",
    "actor": "ops",
    "resource": ("configuration", "max_sessions"),
}


def test_dict_config_builds_the_handler_from_its_class_path(
    store: Path, key_file: Path, vkey_file: Path
) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "audit": {
                    "class": "otel_audit_logging.AuditHandler",
                    "level": "INFO",
                    "store": str(store),
                    "key_file": str(key_file),
                    "service_name": "dict-config-test",
                    "checkpoint_every": 2,
                    "checkpoint_interval_ms": "50",  # strings work too (JSON/YAML configs)
                },
            },
            "loggers": {"dictconfig.audit": {"handlers": ["audit"], "level": "DEBUG"}},
        }
    )
    log = logging.getLogger("dictconfig.audit")
    (handler,) = log.handlers
    assert isinstance(handler, AuditHandler)
    assert handler.level == logging.INFO
    assert handler.settings.checkpoint_every == 2
    for n in range(5):
        log.info("change %d", n, extra={"audit": AUDIT})
    log.debug("below the handler's level", extra={"audit": AUDIT})
    # what logging.shutdown() does at interpreter exit, for this handler
    handler.flush()
    handler.close()
    log.removeHandler(handler)

    records = app_records(store)
    assert len(records) == 5
    assert {r["context"]["application"] for r in records} == {"dict-config-test"}
    checkpoints = [r for r in read_records(store) if r["action"] == "CHECKPOINT"]
    assert len(checkpoints) >= 2  # checkpoint_every=2
    assert_intact(store, vkey_file)


def test_dict_config_reports_a_bad_value_as_a_configuration_error(store: Path) -> None:
    with pytest.raises(ValueError, match="Unable to configure handler 'audit'") as caught:
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "audit": {
                        "class": "otel_audit_logging.AuditHandler",
                        "store": str(store),
                        "checkpoint_every": "often",
                    }
                },
            }
        )
    assert "checkpoint_every= must be an integer >= 1, got 'often'" in str(caught.value.__cause__)


def test_environment_variables_configure_the_handler(
    monkeypatch: pytest.MonkeyPatch, store: Path, key_file: Path, vkey_file: Path
) -> None:
    monkeypatch.setenv("OTEL_AUDIT_STORE", str(store))
    monkeypatch.setenv("OTEL_AUDIT_KEY_FILE", str(key_file))
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel-env")
    monkeypatch.setenv("OTEL_AUDIT_CHECKPOINT_EVERY", "3")
    monkeypatch.setenv("OTEL_AUDIT_CHECKPOINT_INTERVAL_MS", "40")
    monkeypatch.setenv("OTEL_AUDIT_FSYNC_INTERVAL_MS", "0")
    monkeypatch.setenv("OTEL_AUDIT_STRICT", "yes")
    monkeypatch.setenv("OTEL_AUDIT_LEVEL", "warning")
    handler = AuditHandler()
    try:
        settings = handler.settings
        assert settings.store == store
        assert settings.key_file == key_file
        assert settings.service_name == "from-otel-env"
        assert (settings.checkpoint_every, settings.checkpoint_interval_ms) == (3, 40)
        assert settings.fsync_interval_ms == 0
        assert handler.strict is True
        assert handler.level == logging.WARNING
        log = logging.getLogger("env.audit")
        log.addHandler(handler)
        log.warning("x", extra={"audit": AUDIT})
    finally:
        handler.close()
        logging.getLogger("env.audit").removeHandler(handler)
    (record,) = app_records(store)
    assert record["context"]["application"] == "from-otel-env"
    assert_intact(store, vkey_file)


def test_keywords_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: Path
) -> None:
    monkeypatch.setenv("OTEL_AUDIT_STORE", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("OTEL_AUDIT_SERVICE_NAME", "audit-name")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel-name")
    monkeypatch.setenv("OTEL_AUDIT_STRICT", "true")
    handler = AuditHandler(store=store, strict=False)
    assert handler.settings.store == store
    assert handler.settings.service_name == "audit-name"  # OTEL_AUDIT_* before OTEL_*
    assert handler.strict is False


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    handler = AuditHandler()
    settings = handler.settings
    assert settings.store == tmp_path / "audit-log"  # made absolute at construction
    assert settings.key_file is None
    assert settings.service_name == "unknown_service"
    assert (settings.checkpoint_every, settings.checkpoint_interval_ms) == (1024, 1000)
    assert settings.fsync_interval_ms == 50
    assert (settings.strict, settings.disabled) == (False, False)
    assert handler.level == logging.NOTSET


def test_disabled_from_the_environment(monkeypatch: pytest.MonkeyPatch, store: Path) -> None:
    monkeypatch.setenv("OTEL_AUDIT_DISABLED", "TRUE")
    handler = AuditHandler(store=store)
    logging.getLogger("disabled.audit").addHandler(handler)
    try:
        logging.getLogger("disabled.audit").warning("x", extra={"audit": AUDIT})
    finally:
        logging.getLogger("disabled.audit").removeHandler(handler)
    assert handler.pipeline is None
    assert not store.exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OTEL_AUDIT_CHECKPOINT_EVERY",
            "lots",
            "OTEL_AUDIT_CHECKPOINT_EVERY must be an integer >= 1",
        ),
        ("OTEL_AUDIT_CHECKPOINT_EVERY", "0", "OTEL_AUDIT_CHECKPOINT_EVERY must be an integer >= 1"),
        ("OTEL_AUDIT_CHECKPOINT_INTERVAL_MS", "1.5", "OTEL_AUDIT_CHECKPOINT_INTERVAL_MS must be"),
        (
            "OTEL_AUDIT_FSYNC_INTERVAL_MS",
            "-1",
            "OTEL_AUDIT_FSYNC_INTERVAL_MS must be an integer >= 0",
        ),
        ("OTEL_AUDIT_STRICT", "maybe", "OTEL_AUDIT_STRICT must be a boolean"),
        ("OTEL_AUDIT_DISABLED", "2", "OTEL_AUDIT_DISABLED must be a boolean"),
        ("OTEL_AUDIT_LEVEL", "LOUD", "OTEL_AUDIT_LEVEL must be a logging level"),
        ("OTEL_AUDIT_STORE", "  ", "OTEL_AUDIT_STORE must be a non-empty string"),
    ],
)
def test_a_malformed_variable_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message):
        AuditHandler()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"checkpoint_every": True}, "checkpoint_every= must be an integer"),
        ({"fsync_interval_ms": "soon"}, "fsync_interval_ms= must be an integer"),
        ({"strict": "perhaps"}, "strict= must be a boolean"),
        ({"store": 42}, "store= must be a string"),
        ({"level": -5}, "level= must be a logging level"),
    ],
)
def test_a_malformed_keyword_is_named_in_the_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuditHandler(**kwargs)
