"""Fixtures of the otel-audit-logging tests: a signing key, handlers, audit loggers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_audit.keys import SigningKey
from otel_audit_logging import AuditHandler

_ENV = (
    "OTEL_AUDIT_STORE",
    "OTEL_AUDIT_KEY_FILE",
    "OTEL_AUDIT_KEY_NAME",
    "OTEL_AUDIT_SERVICE_NAME",
    "OTEL_AUDIT_CHECKPOINT_EVERY",
    "OTEL_AUDIT_CHECKPOINT_INTERVAL_MS",
    "OTEL_AUDIT_FSYNC_INTERVAL_MS",
    "OTEL_AUDIT_STRICT",
    "OTEL_AUDIT_LEVEL",
    "OTEL_AUDIT_DISABLED",
    "OTEL_AUDIT_PLUGINS",
    "OTEL_AUDIT_SINKS",
    "OTEL_AUDIT_SEALING",
    "OTEL_AUDIT_GDPR_VAULT",
    "OTEL_SERVICE_NAME",
)


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore the root logger's handlers and level; start from a clean environment."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    # These tests are about the handler: installed compliance plugins (which add rules of
    # their own) stay out unless a test asks for them with disable_plugins="".
    monkeypatch.setenv("OTEL_AUDIT_DISABLE_PLUGINS", "*")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    internal = logging.getLogger("otel_audit.internal")
    internal_disabled = internal.disabled
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    internal.disabled = internal_disabled


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A PKCS#8 PEM signing key with its sibling ``.vkey``, outside the store."""
    path = tmp_path / "keys" / "audit.key"
    path.parent.mkdir()
    SigningKey.generate("handler-test").write(path)
    return path


@pytest.fixture
def vkey_file(key_file: Path) -> Path:
    return Path(f"{key_file}.vkey")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _fail(record: logging.LogRecord) -> None:
    """Tests want to see an unexpected internal error, not a line on stderr."""
    raise AssertionError(f"AuditHandler.handleError called for {record.getMessage()!r}")


@pytest.fixture
def make_handler(store: Path, key_file: Path) -> Iterator[Callable[..., AuditHandler]]:
    """``make_handler(**kwargs)``: an AuditHandler on ``store`` with ``key_file`` (closed at
    teardown)."""
    made: list[AuditHandler] = []

    def make(**kwargs: Any) -> AuditHandler:
        kwargs.setdefault("store", store)
        kwargs.setdefault("key_file", key_file)
        kwargs.setdefault("service_name", "handler-test")
        # the pipeline's worker polls its queue at min(interval, 250 ms): keep close() quick
        kwargs.setdefault("checkpoint_interval_ms", 50)
        handler = AuditHandler(**kwargs)
        handler.handleError = _fail  # type: ignore[method-assign]
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


@pytest.fixture
def make_logger() -> Iterator[Callable[[logging.Handler], logging.Logger]]:
    """``make_logger(handler)``: a fresh, non-propagating INFO logger with ``handler``."""
    made: list[tuple[logging.Logger, logging.Handler]] = []

    def make(handler: logging.Handler) -> logging.Logger:
        logger = logging.getLogger(f"audit-test.{uuid.uuid4().hex[:8]}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)
        made.append((logger, handler))
        return logger

    yield make
    for logger, handler in made:
        logger.removeHandler(handler)
