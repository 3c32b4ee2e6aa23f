"""audit_context: nesting, decorators (sync and async), threads and tasks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from otel_audit_logging import (
    AuditContext,
    audit_context,
    bind_audit_context,
    current_audit_context,
    reset_audit_context,
)


def test_nothing_is_bound_by_default() -> None:
    assert current_audit_context() == AuditContext()
    assert current_audit_context().response_code is None


def test_bindings_nest_and_restore() -> None:
    with audit_context(actor="alice", source_ip="192.0.2.1") as outer:
        assert outer.actor == "alice"
        with audit_context(actor="bob", session_id="s-2") as inner:
            assert inner == current_audit_context()
            assert (inner.actor, inner.session_id, inner.source_ip) == ("bob", "s-2", "192.0.2.1")
        assert current_audit_context() == outer
        with audit_context(role="admin"):
            assert current_audit_context().actor == "alice"  # None keeps the outer value
            assert current_audit_context().role == "admin"
    assert current_audit_context() == AuditContext()


def test_restored_even_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), audit_context(actor="alice"):
        raise RuntimeError("boom")
    assert current_audit_context().actor is None


def test_one_binding_object_can_be_reentered() -> None:
    binding = audit_context(actor="svc")
    with binding, binding:
        assert current_audit_context().actor == "svc"
    assert current_audit_context().actor is None
    with binding:
        assert current_audit_context().actor == "svc"


def test_bind_and_reset_for_request_hooks() -> None:
    token = bind_audit_context(actor="alice", request_id="req-1")
    try:
        assert current_audit_context().request_id == "req-1"
    finally:
        reset_audit_context(token)
    assert current_audit_context().actor is None


def test_decorates_sync_functions() -> None:
    @audit_context(actor="svc-billing")
    def job(x: int) -> tuple[int, str | None]:
        return x * 2, current_audit_context().actor

    assert job(21) == (42, "svc-billing")
    assert job.__name__ == "job"
    assert current_audit_context().actor is None


def test_decorates_async_functions_per_call() -> None:
    @audit_context(role="batch")
    async def job(name: str) -> tuple[str | None, str | None]:
        with audit_context(actor=name):
            await asyncio.sleep(0.001)
            return current_audit_context().actor, current_audit_context().role

    async def main() -> list[tuple[str | None, str | None]]:
        return await asyncio.gather(*(job(f"user-{i}") for i in range(5)))

    assert asyncio.run(main()) == [(f"user-{i}", "batch") for i in range(5)]


def test_generator_functions_are_refused() -> None:
    def gen() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        audit_context(actor="x")(gen)


def test_a_new_thread_does_not_see_another_threads_binding() -> None:
    seen: list[str | None] = []
    ready, release = threading.Event(), threading.Event()

    def other() -> None:
        seen.append(current_audit_context().actor)
        with audit_context(actor="other"):
            ready.set()
            release.wait(5)
            seen.append(current_audit_context().actor)

    with audit_context(actor="main"):
        thread = threading.Thread(target=other)
        thread.start()
        ready.wait(5)
        assert current_audit_context().actor == "main"  # not "other"
        release.set()
        thread.join(5)
    assert seen == [None, "other"]


def test_each_task_sees_its_own_copy() -> None:
    async def child(name: str, gate: asyncio.Event) -> tuple[str | None, str | None]:
        inherited = current_audit_context().actor
        with audit_context(actor=name):
            await gate.wait()
            return inherited, current_audit_context().actor

    async def main() -> list[tuple[str | None, str | None]]:
        gate = asyncio.Event()
        with audit_context(actor="parent"):
            tasks = [asyncio.create_task(child(f"t{i}", gate)) for i in range(3)]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == [("parent", f"t{i}") for i in range(3)]


def test_values_must_be_strings() -> None:
    with pytest.raises(TypeError, match="actor"):
        audit_context(actor=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="source_ip"):
        bind_audit_context(source_ip=b"1.2.3.4")  # type: ignore[arg-type]


def test_repr_shows_the_bound_fields() -> None:
    assert repr(audit_context(actor="alice", role=None)) == "audit_context(actor='alice')"
