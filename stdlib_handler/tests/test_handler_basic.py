"""AuditHandler end to end: annotated calls in, a verified local store out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from handler_support import app_records, assert_intact, read_records

import otel_audit_logging
from otel_audit_logging import AuditHandler, _handler, audit_context

MakeHandler = Callable[..., AuditHandler]
MakeLogger = Callable[[logging.Handler], logging.Logger]


def test_public_api_is_locked() -> None:
    assert sorted(otel_audit_logging.__all__) == [
        "AuditASGIMiddleware",
        "AuditBinding",
        "AuditContext",
        "AuditHandler",
        "AuditWSGIMiddleware",
        "__version__",
        "audit_batch",
        "audit_config_change",
        "audit_context",
        "audit_create",
        "audit_delete",
        "audit_lockout",
        "audit_login",
        "audit_permission_change",
        "audit_read",
        "audit_update",
        "bind_audit_context",
        "current_audit_context",
        "reset_audit_context",
    ]
    for name in otel_audit_logging.__all__:
        assert hasattr(otel_audit_logging, name)


def test_annotated_calls_become_sealed_records_filled_from_the_context(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    log.info("not an audit record")
    assert handler.pipeline is None  # nothing audited yet: no stream started
    with audit_context(
        actor="alice@example.com",
        session_id="sess-1",
        role="admin",
        source_ip="192.0.2.7",
        user_agent="curl/8.5",
        api_endpoint="/api/v1/customers/42",
    ):
        log.info(
            "read customer %s",
            "c-42",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "READ",
                    "resource": {"type": "customer", "id": "c-42", "classification": "PII"},
                    "gdpr_context": {"lawful_basis": "contract", "data_subject_id": "ds-42"},
                }
            },
        )
        log.warning(
            "deleted",
            extra={
                "audit": {
                    "category": "data_access",
                    "action": "DELETE",
                    "actor": "bob",  # someone else: no session/role from the binding
                    "resource": ("customer", "c-43"),
                    "result": {"status": "FAILURE", "reason": "not allowed"},
                }
            },
        )
        log.debug("plain debug line")
    log.error(
        "login",
        extra={
            "audit": {
                "category": "authentication",
                "action": "LOGIN",
                "actor": {"user_id": "carol"},
                "resource": ("user_account", "carol"),
                "risk_level": "CRITICAL",
                "context": {"source_ip": "2001:db8::1"},
                "extensions": {"ticket": "INC-1"},
            }
        },
    )
    assert handler.flush() is True
    handler.close()

    records = app_records(store)
    assert [r["action"] for r in records] == ["READ", "DELETE", "LOGIN"]
    read, delete, login = records
    assert read["actor"] == {
        "user_id": "alice@example.com",
        "session_id": "sess-1",
        "role": "admin",
    }
    assert read["context"] == {
        "source_ip": "192.0.2.7",
        "user_agent": "curl/8.5",
        "api_endpoint": "/api/v1/customers/42",
        "application": "handler-test",
    }
    assert read["result"] == {"status": "SUCCESS"}
    assert read["metadata"]["risk_level"] == "LOW"  # INFO
    assert read["gdpr_context"] == {"lawful_basis": "contract", "data_subject_id": "ds-42"}
    assert read["extensions"]["logging"] == {
        "logger": log.name,
        "message": "read customer c-42",
    }
    assert delete["actor"] == {"user_id": "bob"}
    assert delete["resource"] == {"type": "customer", "id": "c-43"}
    assert delete["result"] == {"status": "FAILURE", "reason": "not allowed"}
    assert delete["metadata"]["risk_level"] == "MEDIUM"  # WARNING
    assert login["actor"] == {"user_id": "carol"}
    assert login["context"] == {"source_ip": "2001:db8::1", "application": "handler-test"}
    assert login["metadata"]["risk_level"] == "CRITICAL"  # the annotation wins over ERROR
    assert login["extensions"]["ticket"] == "INC-1"

    everything = read_records(store)
    assert [r["integrity"]["seq"] for r in everything] == list(range(len(everything)))
    assert everything[0]["action"] == "STREAM_START"
    assert everything[-1]["action"] == "STREAM_END"
    assert {r["action"] for r in everything} <= {"STREAM_START", "CHECKPOINT", "STREAM_END"} | {
        "READ",
        "DELETE",
        "LOGIN",
    }
    assert_intact(store, vkey_file)


@pytest.mark.parametrize(
    ("level", "risk"),
    [
        (logging.DEBUG, "LOW"),
        (logging.INFO, "LOW"),
        (logging.WARNING, "MEDIUM"),
        (logging.ERROR, "HIGH"),
        (logging.CRITICAL, "CRITICAL"),
    ],
)
def test_risk_level_defaults_from_the_log_level(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, level: int, risk: str
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    log.log(
        level,
        "event",
        extra={
            "audit": {
                "category": "security",
                "action": "SCAN",
                "actor": "svc",
                "resource": ("host", "h1"),
            }
        },
    )
    handler.close()
    (record,) = app_records(store)
    assert record["metadata"]["risk_level"] == risk


def test_close_is_idempotent_and_a_later_record_starts_a_linked_stream(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    audit = {"category": "security", "action": "PING", "actor": "svc", "resource": ("host", "h1")}
    log.info("one", extra={"audit": audit})
    first_origin = handler.pipeline.origin if handler.pipeline else None
    handler.close()
    handler.close()
    assert handler.pipeline is None
    assert handler.flush() is True  # nothing running: nothing to wait for

    log.info("two", extra={"audit": audit})
    assert handler.pipeline is not None
    assert handler.pipeline.origin != first_origin
    handler.close()

    report = assert_intact(store, vkey_file)
    assert len(report.streams) == 2
    second_start = next(
        r
        for r in read_records(store)
        if r["action"] == "STREAM_START" and r["integrity"]["origin"] != first_origin
    )
    assert first_origin is not None
    assert first_origin in second_start["integrity"]["previous_checkpoint"]
    assert [r["extensions"]["logging"]["message"] for r in app_records(store)] == ["one", "two"]


def test_without_key_file_a_development_key_is_generated_once_and_reused(
    store: Path, make_logger: MakeLogger
) -> None:
    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    internal = logging.getLogger("otel_audit.internal")
    collect = Collect()
    internal.addHandler(collect)
    try:
        audit = {"category": "security", "action": "PING", "actor": "svc", "resource": ("h", "1")}
        for _ in range(2):
            handler = AuditHandler(store=store, service_name="dev")
            make_logger(handler).info("x", extra={"audit": audit})
            handler.close()
    finally:
        internal.removeHandler(collect)
    key = store / "audit.key"
    assert key.is_file()
    assert (key.stat().st_mode & 0o077) == 0
    assert [w.split(" the development")[0] for w in warnings] == [
        "otel-audit: generated",
        "otel-audit: using",
    ]
    assert "key_file=" in warnings[0]
    report = assert_intact(store, Path(f"{key}.vkey"))
    assert len(report.streams) == 2


def test_a_bad_key_file_fails_at_construction(tmp_path: Path, store: Path) -> None:
    with pytest.raises(FileNotFoundError):
        AuditHandler(store=store, key_file=tmp_path / "missing.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")
    with pytest.raises(ValueError, match="unrecognized key file"):
        AuditHandler(store=store, key_file=garbage)


def test_disabled_handler_is_a_no_op(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path
) -> None:
    handler = make_handler(disabled=True)
    make_logger(handler).info("x", extra={"audit": {"category": "security"}})
    assert handler.pipeline is None
    assert handler.flush() is True
    handler.close()
    assert not store.exists()


def test_a_store_that_cannot_be_opened_loses_the_record_loudly_but_never_raises(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path
) -> None:
    store.write_text("not a directory")  # the store (and any slot in it) cannot be made
    handler = make_handler()
    audit = {"category": "security", "action": "PING", "actor": "svc", "resource": ("h", "1")}

    reports: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reports.append(record.getMessage())

    internal = logging.getLogger("otel_audit.internal")
    collect = Collect()
    internal.addHandler(collect)
    try:
        log = make_logger(handler)
        log.info("y", extra={"audit": audit})  # must not raise
        log.info("z", extra={"audit": audit})  # no new attempt within a second
    finally:
        internal.removeHandler(collect)
    assert handler.pipeline is None
    assert len(reports) == 2
    for report in reports:
        assert "audit record LOST" in report
        assert "cannot start the audit pipeline" in report


def test_a_second_handler_on_a_store_in_use_takes_a_worker_slot(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    owner = make_handler()
    other = make_handler()
    audit = {"category": "security", "action": "PING", "actor": "svc", "resource": ("h", "1")}
    make_logger(owner).info("x", extra={"audit": audit})
    make_logger(other).info("y", extra={"audit": audit})
    assert other.pipeline is not None
    owner.close()
    other.close()
    assert [r["action"] for r in app_records(store / "worker-01")] == ["PING"]
    assert len(assert_intact(store, vkey_file).streams) == 2


def test_repr_names_the_store(make_handler: MakeHandler, store: Path) -> None:
    assert repr(make_handler(level="INFO")) == f"<AuditHandler {str(store)!r} (INFO)>"


def test_a_forked_child_starts_its_own_pipeline(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    audit = {"category": "security", "action": "PING", "actor": "svc", "resource": ("h", "1")}
    log.info("parent", extra={"audit": audit})
    parents = handler.pipeline
    assert parents is not None
    _handler._after_fork_in_child()  # what os.fork() runs in the child
    assert handler.pipeline is None
    assert _handler._inherited[-1] is parents
    # (in a real child the parent's pipeline lives on in the parent; here we close it)
    _handler._inherited.remove(parents)
    parents.close()
    log.info("child", extra={"audit": audit})
    assert handler.pipeline is not None
    assert handler.pipeline.origin != parents.origin
    handler.close()
    assert len(assert_intact(store, vkey_file).streams) == 2
