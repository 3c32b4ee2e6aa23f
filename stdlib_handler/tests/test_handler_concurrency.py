"""Many threads and asyncio tasks, each with its own bound actor, into one handler."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from handler_support import app_records, assert_intact, read_records

from otel_audit_logging import AuditHandler, audit_context, audit_read

MakeHandler = Callable[..., AuditHandler]
MakeLogger = Callable[[logging.Handler], logging.Logger]

THREADS = 8
PER_THREAD = 150
TASKS = 8
PER_TASK = 100


@pytest.mark.parametrize("sealing", ["thread", "process"])
def test_threads_and_tasks_keep_their_own_actor_and_nothing_is_lost(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path, sealing: str
) -> None:
    # small checkpoints: checkpoint records interleave with the application's records
    handler = make_handler(checkpoint_every=64, sealing=sealing)
    log = make_logger(handler)
    start = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait(timeout=10)
            with audit_context(actor=f"thread-{n}", session_id=f"ts-{n}"):
                for i in range(PER_THREAD):
                    audit_read(log, "item", f"thread-{n}/{i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    async def task(n: int) -> None:
        with audit_context(actor=f"task-{n}"):
            for i in range(PER_TASK):
                audit_read(log, "item", f"task-{n}/{i}")
                if i % 10 == 0:
                    await asyncio.sleep(0)  # let the other tasks run in between

    async def all_tasks() -> None:
        with audit_context(actor="event-loop"):  # each task copies it, then overrides it
            await asyncio.gather(*(task(n) for n in range(TASKS)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait(timeout=10)
    asyncio.run(all_tasks())  # runs while the threads log
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert handler.flush() is True
    handler.close()

    records = app_records(store)
    ids = Counter(r["resource"]["id"] for r in records)
    expected = {f"thread-{n}/{i}" for n in range(THREADS) for i in range(PER_THREAD)}
    expected |= {f"task-{n}/{i}" for n in range(TASKS) for i in range(PER_TASK)}
    assert set(ids) == expected
    assert max(ids.values()) == 1  # every record exactly once
    for record in records:
        owner = record["resource"]["id"].split("/")[0]
        assert record["actor"]["user_id"] == owner
        if owner.startswith("thread-"):
            assert record["actor"]["session_id"] == "ts-" + owner.removeprefix("thread-")
        else:
            assert "session_id" not in record["actor"]
    # per thread / task, the records are in call order
    for owner in {r["resource"]["id"].split("/")[0] for r in records}:
        mine = [
            int(r["resource"]["id"].split("/")[1])
            for r in records
            if r["resource"]["id"].startswith(owner + "/")
        ]
        assert mine == sorted(mine)

    everything = read_records(store)
    assert [r["integrity"]["seq"] for r in everything] == list(range(len(everything)))
    assert sum(r["action"] == "CHECKPOINT" for r in everything) >= len(expected) // 64
    assert_intact(store, vkey_file)
