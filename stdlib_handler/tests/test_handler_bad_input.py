"""Bad annotations: sealed as AUDIT_SCHEMA_VIOLATION records, or raised in strict mode."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from handler_support import app_records, assert_intact

from otel_audit.errors import AuditValidationError
from otel_audit_logging import AuditHandler, audit_context

MakeHandler = Callable[..., AuditHandler]
MakeLogger = Callable[[logging.Handler], logging.Logger]

GOOD: dict[str, Any] = {
    "category": "data_access",
    "action": "READ",
    "actor": "alice",
    "resource": ("customer", "c-1"),
}


class Opaque:
    """An arbitrary application object."""


class Verb(enum.Enum):
    READ = "READ"  # not a str, but orjson (the caller-side copy) writes an Enum as its value


class Category(str, enum.Enum):
    DATA_ACCESS = "data_access"  # a str: accepted as its value


def with_(**changes: Any) -> dict[str, Any]:
    annotation = dict(GOOD)
    annotation.update(changes)
    return annotation


def without(*keys: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k not in keys}


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"d": value}
    return value


def cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


BAD: dict[str, Any] = {
    "missing category": without("category"),
    "missing action": without("action"),
    "missing resource": without("resource"),
    "missing actor, none bound": without("actor"),
    "unknown category": with_(category="finance"),
    "lower-case action": with_(action="read"),
    "action with a control character": with_(action="READ\x00"),
    "category with a newline": with_(category="data_access\n"),
    "wrong type: action int": with_(action=7),
    "wrong type: actor list": with_(actor=["alice"]),
    "wrong type: context str": with_(context="192.0.2.1"),
    "wrong type: result int": with_(result=200),
    "wrong type: extensions list": with_(extensions=[1, 2]),
    "bad status": with_(result={"status": "OK"}),
    "bad risk level": with_(risk_level="SEVERE"),
    "bad source ip": with_(context={"source_ip": "not-an-ip"}),
    "unknown top-level key": with_(severity="high"),
    "reserved key: timestamp": with_(timestamp="2020-01-01T00:00:00.000Z"),
    "reserved key: integrity": with_(integrity={"seq": 0}),
    "a set": with_(extensions={"tags": {"a", "b"}}),
    "an object": with_(extensions={"thing": Opaque()}),
    "bytes": with_(extensions={"raw": b"\x00\xff"}),
    "a huge int": with_(extensions={"n": 2**64}),
    "a NaN": with_(extensions={"x": float("nan")}),
    "a non-string key": with_(extensions={1: "one"}),
    "a non-string top-level key": {**GOOD, 1: "one"},
    "a 10 MB string": with_(extensions={"blob": "x" * 10_000_000}),
    "a lone surrogate": with_(resource={"type": "file", "id": "name\udcff"}),
    "None category": with_(category=None),
    "None inside a list": with_(extensions={"items": [1, None]}),
    "17 levels deep": with_(extensions=deep(17)),
    "300 levels deep": with_(extensions=deep(300)),
    "a cycle": with_(extensions=cyclic()),
    "a list annotation": ["category", "security"],
    "a string annotation": "security/LOGIN",
    "None annotation": None,
}


@pytest.mark.parametrize("annotation", BAD.values(), ids=BAD.keys())
def test_default_mode_seals_a_violation_record_and_the_caller_sees_nothing(
    make_handler: MakeHandler,
    make_logger: MakeLogger,
    store: Path,
    vkey_file: Path,
    annotation: Any,
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    log.info("bad %s", "call", extra={"audit": annotation})  # must not raise
    log.info("good", extra={"audit": GOOD})  # and the stream goes on
    assert handler.flush() is True
    handler.close()

    violation, good = app_records(store)
    assert violation["category"] == "security"
    assert violation["action"] == "AUDIT_SCHEMA_VIOLATION"
    assert violation["result"]["status"] == "FAILURE"
    assert violation["metadata"]["risk_level"] == "HIGH"
    assert violation["extensions"]["violations"], violation
    assert "rejected" in violation["extensions"]
    assert good["action"] == "READ"
    assert_intact(store, vkey_file)


@pytest.mark.parametrize("annotation", BAD.values(), ids=BAD.keys())
def test_strict_mode_raises_at_the_call(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, annotation: Any
) -> None:
    handler = make_handler(strict=True)
    log = make_logger(handler)
    with pytest.raises(AuditValidationError) as caught:
        log.info("bad", extra={"audit": annotation})
    assert caught.value.violations
    assert str(caught.value).startswith("invalid audit record: ")
    log.info("good", extra={"audit": GOOD})
    handler.close()
    assert [r["action"] for r in app_records(store)] == ["READ"]


def test_the_violation_record_names_the_bound_actor_and_the_reasons(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    with audit_context(actor="mallory"):
        log.info("x", extra={"audit": without("category", "actor")})
    handler.close()
    (violation,) = app_records(store)
    assert violation["actor"]["user_id"] == "mallory"
    assert "$.category" in violation["result"]["reason"]
    assert violation["extensions"]["rejected"]["action"] == "READ"


def test_the_rejected_copy_is_bounded_and_safe(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    log.info("x", extra={"audit": with_(extensions={"blob": "x" * 10_000_000, "s": {1}})})
    handler.close()
    (violation,) = app_records(store)
    rejected = violation["extensions"]["rejected"]["extensions"]
    assert len(rejected["blob"]) < 2000
    assert rejected["s"] == "<set>"


def test_a_bad_format_string_keeps_the_audit_record(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    log.info("%d items", "not a number", extra={"audit": GOOD})
    log.info("x" * 100_000, extra={"audit": GOOD})
    log.info("bad \udcff text", extra={"audit": GOOD})
    handler.close()
    first, long, surrogate = app_records(store)
    assert first["action"] == "READ"
    assert first["extensions"]["logging"]["message"] == "%d items"
    assert len(long["extensions"]["logging"]["message"]) == 4096
    assert long["extensions"]["logging"]["message"].endswith("…[truncated]")
    assert surrogate["action"] == "READ"
    assert_intact(store, vkey_file)


def test_the_record_does_not_share_mutable_state_with_the_caller(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    state = {"tier": "silver"}
    annotation = with_(change_tracking={"before_state": state})
    log.info("x", extra={"audit": annotation})
    state["tier"] = "gold"  # changed right after the call, before the worker seals
    annotation["action"] = "DELETE"
    handler.close()
    (record,) = app_records(store)
    assert record["change_tracking"]["before_state"] == {"tier": "silver"}
    assert record["action"] == "READ"


def test_enums_are_stored_as_their_values(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler(strict=True)
    make_logger(handler).info(
        "x", extra={"audit": with_(category=Category.DATA_ACCESS, action=Verb.READ)}
    )
    handler.close()
    (record,) = app_records(store)
    assert record["category"] == "data_access"
    assert record["action"] == "READ"
    assert_intact(store, vkey_file)


def test_exc_info_adds_the_exception_type_but_not_its_text(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    try:
        raise PermissionError("token=s3cr3t")
    except PermissionError:
        log.exception("denied", extra={"audit": with_(result="FAILURE")})
    handler.close()
    (record,) = app_records(store)
    assert record["extensions"]["logging"] == {
        "logger": log.name,
        "message": "denied",
        "exception": "PermissionError",
    }
    assert record["metadata"]["risk_level"] == "HIGH"  # logged at ERROR
    assert "s3cr3t" not in str(record)
