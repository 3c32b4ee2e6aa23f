"""``otel-audit gdpr erase`` and ``otel-audit gdpr report`` (the ``otel_audit.commands`` group).

``erase --vault DIR SUBJECT...`` destroys the subjects' keys (a subject is given by its
id, which the vault's secret turns into the pseudonym, or by the pseudonym itself).
``report --vault DIR --key VKEY PATH...`` verifies the records (as ``otel-audit
verify``) and says, per subject, whether its sealed values are readable or erased.
Exit codes as ``verify``: 0 intact, 1 integrity failure (or a value that is broken),
2 usage or unreadable input. Subject ids are never printed, only pseudonyms.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from otel_audit.keys import VerifierKey
from otel_audit.verify import verify_paths
from otel_audit_gdpr._report import subject_reports
from otel_audit_gdpr._vault import KeyVault


def register(subparsers: Any) -> None:
    """Entry point of the ``otel_audit.commands`` group: adds ``otel-audit gdpr``."""
    gdpr = subparsers.add_parser("gdpr", help="GDPR erasure and reports")
    sub = gdpr.add_subparsers(dest="gdpr_command", required=True)
    erase = sub.add_parser("erase", help="erase data subjects (destroy their keys)")
    erase.add_argument("--vault", required=True, help="the gdpr plugin's vault directory")
    erase.add_argument("--secret-file", help="pseudonym secret, if kept outside the vault")
    erase.add_argument("subjects", nargs="+", metavar="SUBJECT")
    erase.set_defaults(run=_erase)
    report = sub.add_parser("report", help="verify records and report erased/readable subjects")
    report.add_argument("--vault", required=True)
    report.add_argument("--secret-file")
    report.add_argument("--key", action="append", default=[], metavar="VKEY_OR_FILE")
    report.add_argument("--subject", action="append", default=[], help="only these subjects")
    report.add_argument("--json", action="store_true")
    report.add_argument("paths", nargs="+", metavar="PATH")
    report.set_defaults(run=_report)


def _erase(args: argparse.Namespace) -> int:
    vault = KeyVault(args.vault, args.secret_file)
    for subject in args.subjects:
        pseudonym = vault.pseudonym(subject)
        keys = vault.erase(pseudonym)
        print(f"erased {pseudonym}: {keys} key(s) destroyed")
    return 0


def _report(args: argparse.Namespace) -> int:
    vault = KeyVault(args.vault, args.secret_file)
    keys = [VerifierKey.load(value) for value in args.key]
    records: list[Any] = []
    verified = verify_paths(args.paths, keys, on_record=records.append)
    wanted = {vault.pseudonym(s) for s in args.subject}
    reports = [r for r in subject_reports(records, vault) if not wanted or r.pseudonym in wanted]
    missing = wanted - {r.pseudonym for r in reports}
    broken = any(r.broken for r in reports)
    if args.json:
        doc = {
            "intact": verified.intact(),
            "verification": verified.summary(),
            "subjects": [r.to_json() for r in reports],
            "not_found": sorted(missing),
        }
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        for r in reports:
            when = f" at {r.erased_at}" if r.erased_at else ""
            print(
                f"{r.state.upper()} {r.pseudonym}: {r.records} record(s), {r.readable} readable "
                f"and {r.erased} erased value(s){when if r.erased else ''}"
                + (f", {r.broken} BROKEN" if r.broken else "")
            )
        for pseudonym in sorted(missing):
            print(f"NOT FOUND {pseudonym}: no sealed values in these records")
        for finding in verified.findings:
            print(finding)
        print(verified.summary())
    return 0 if verified.intact() and not broken else 1
