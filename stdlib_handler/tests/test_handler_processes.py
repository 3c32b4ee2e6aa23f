"""Several processes configured with one store: each gets its own slot, nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from handler_support import app_records, assert_intact

PROCESSES = 3
PER_PROCESS = 200

_CHILD = """
import logging, sys
from otel_audit_logging import AuditHandler, audit_read

handler = AuditHandler(store=sys.argv[1], key_file=sys.argv[2], checkpoint_every=50)
log = logging.getLogger("worker")
log.addHandler(handler)
log.setLevel(logging.INFO)
for i in range(int(sys.argv[4])):
    audit_read(log, "item", f"{sys.argv[3]}/{i}", actor=sys.argv[3])
handler.close()
"""


def test_concurrent_processes_on_one_store_each_take_a_slot(
    store: Path, key_file: Path, vkey_file: Path
) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(store), str(key_file), f"p{n}", str(PER_PROCESS)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert "LOST" not in err, err

    report = assert_intact(store, vkey_file)
    assert len(report.streams) == PROCESSES
    records = app_records(store)
    for slot in sorted(store.glob("worker-*")):
        records += app_records(slot)
    by_actor = Counter(r["actor"]["user_id"] for r in records)
    assert by_actor == {f"p{n}": PER_PROCESS for n in range(PROCESSES)}


@pytest.mark.parametrize("sealing", ["thread", "process"])
def test_a_forked_child_writes_its_own_stream_beside_its_parent(
    store: Path, key_file: Path, vkey_file: Path, sealing: str
) -> None:
    # sealing="process": the child closes its copies of the parent's pipes and spill
    # files, and its first record starts a sealing process of its own
    code = """
import logging, os, sys
from otel_audit_logging import AuditHandler, audit_read

handler = AuditHandler(store=sys.argv[1], key_file=sys.argv[2], sealing=sys.argv[3])
log = logging.getLogger("server")
log.addHandler(handler)
log.setLevel(logging.INFO)
audit_read(log, "item", "before-fork", actor="parent")
assert handler.flush()  # the parent (or its sealing process) holds the store now
pid = os.fork()
who = "child" if pid == 0 else "parent"
for i in range(20):
    audit_read(log, "item", f"{who}/{i}", actor=who)
handler.close()
if pid == 0:
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(store), str(key_file), sealing],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stderr
    assert "LOST" not in done.stderr, done.stderr
    report = assert_intact(store, vkey_file)
    assert len(report.streams) == 2
    if sealing == "thread":  # the parent holds the store until it closes
        parent = Counter(r["actor"]["user_id"] for r in app_records(store))
        child = Counter(r["actor"]["user_id"] for r in app_records(store / "worker-01"))
        assert parent == {"parent": 21}
        assert child == {"child": 20}
    # whichever slot each took: one stream each, every record once
    records = app_records(store)
    for slot in store.glob("worker-*"):
        records += app_records(slot)
    origins = {
        actor: {r["integrity"]["origin"] for r in records if r["actor"]["user_id"] == actor}
        for actor in ("parent", "child")
    }
    assert len(origins["parent"]) == len(origins["child"]) == 1
    assert origins["parent"] != origins["child"]
    assert Counter(r["actor"]["user_id"] for r in records) == {"parent": 21, "child": 20}
