"""``otel-audit pci coverage PATH...``: which PCI DSS 10.2.1 event types a log covers.

Exit 0 when all seven are covered, 1 when some are not, 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from otel_audit.verify import verify_paths
from otel_audit_pci._coverage import EVENT_TYPES, event_types


def register(subparsers: Any) -> None:
    """Entry point of the ``otel_audit.commands`` group: adds ``otel-audit pci``."""
    pci = subparsers.add_parser("pci", help="PCI DSS checks over audit logs")
    sub = pci.add_subparsers(dest="pci_command", required=True)
    cover = sub.add_parser("coverage", help="which 10.2.1.x event types a log covers")
    cover.add_argument("paths", nargs="+", metavar="PATH")
    cover.add_argument("--json", action="store_true", help="machine-readable output")
    cover.set_defaults(run=run_coverage)


def run_coverage(args: argparse.Namespace) -> int:
    counts = dict.fromkeys(EVENT_TYPES, 0)

    def count(record: Any) -> None:
        if isinstance(record, dict):
            for item in event_types(record):
                counts[item] += 1

    report = verify_paths(args.paths, on_record=count)  # reads every input format
    missing = [item for item, n in counts.items() if n == 0]
    if args.json:
        doc = {"covered": not missing, "records": report.records, "event_types": counts}
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        for item, title in EVENT_TYPES.items():
            mark = "ok  " if counts[item] else "MISS"
            print(f"{mark} {item} {title}: {counts[item]:,} record(s)")
        verdict = "COVERED" if not missing else f"NOT COVERED ({', '.join(missing)})"
        print(f"{verdict}: PCI DSS 10.2.1 event types in {report.records:,} record(s)")
    return 0 if not missing else 1
