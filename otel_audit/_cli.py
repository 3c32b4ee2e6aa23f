"""``otel-audit``: keygen, verify, prove, verify-proof, plugins (and commands added by plugins).

Exit codes: 0 intact / done, 1 integrity failure, 2 usage or unreadable input.
Errors are one line on stderr; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TextIO

import orjson

from otel_audit._inputs import read_into
from otel_audit.errors import AuditError, InputError, KeyFormatError, ProofError
from otel_audit.keys import SigningKey, VerifierKey
from otel_audit.plugins import load_plugins
from otel_audit.proofs import build_inclusion_proof, verify_inclusion_proof
from otel_audit.verify import Report, Verifier, verify_paths

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"otel-audit: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="otel-audit", description="Tamper-evident audit logs.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    keygen = sub.add_parser("keygen", help="create an Ed25519 signing key")
    keygen.add_argument("--name", required=True, help="key name (no spaces or '+')")
    keygen.add_argument("--out", required=True, help="private key file (PKCS#8 PEM, mode 0600)")

    verify = sub.add_parser("verify", help="verify records in files or directories")
    verify.add_argument("paths", nargs="+", metavar="PATH")
    verify.add_argument("--key", action="append", default=[], metavar="VKEY_OR_FILE")
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.add_argument("--strict", action="store_true", help="warnings fail too")

    prove = sub.add_parser("prove", help="print an inclusion proof for one record")
    prove.add_argument("paths", nargs="+", metavar="PATH")
    prove.add_argument("--origin", required=True)
    prove.add_argument("--seq", required=True, type=int)

    check = sub.add_parser("verify-proof", help="check an inclusion proof")
    check.add_argument("proof", help="proof file ('-' for stdin)")
    check.add_argument("--key", action="append", default=[], metavar="VKEY_OR_FILE")

    plugins = sub.add_parser("plugins", help="list the installed plugins that would be loaded")
    plugins.add_argument("--json", action="store_true", help="machine-readable list")

    # Other distributions add commands (e.g. otel-audit-logging adds `demo`) through the
    # `otel_audit.commands` entry-point group: a callable taking the subparsers object.
    for entry in entry_points(group="otel_audit.commands"):
        try:
            entry.load()(sub)
        except Exception as exc:  # noqa: BLE001 - a broken add-on must not break verify
            print(f"otel-audit: command {entry.name!r} unavailable: {exc}", file=sys.stderr)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run = getattr(args, "run", None) or _COMMANDS[args.command]
        return int(run(args))
    except (AuditError, OSError) as exc:
        if args.verbose:
            traceback.print_exc()
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        print(f"otel-audit: {where}{message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _keys(values: list[str]) -> list[VerifierKey]:
    keys = []
    for number, value in enumerate(values, start=1):
        try:
            keys.append(VerifierKey.load(value))
        except (KeyFormatError, OSError) as exc:
            # never echo the value: it may be a private key given by mistake
            raise KeyFormatError(f"--key #{number}: {exc}") from None
    return keys


def _keygen(args: argparse.Namespace) -> int:
    key = SigningKey.generate(args.name)
    Path(args.out).parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # e.g. keys/
    key.write(args.out)
    print(key.vkey)
    return EXIT_OK


def _progress(count: int) -> None:
    print(f"otel-audit: {count:,} records read…", file=sys.stderr, flush=True)


def _verify(args: argparse.Namespace) -> int:
    report = verify_paths(args.paths, _keys(args.key), progress=_progress)
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_json(strict=args.strict)).decode() + "\n")
    else:
        print_report(report, strict=args.strict)
    return EXIT_OK if report.intact(strict=args.strict) else EXIT_FAIL


def print_report(report: Report, *, strict: bool, out: TextIO | None = None) -> None:
    """One line per finding, then the verdict."""
    stream = out or sys.stdout
    for finding in report.findings:
        print(finding, file=stream)
    print(report.summary(strict=strict), file=stream)


def _prove(args: argparse.Namespace) -> int:
    verifier = Verifier()
    verifier.keep_lines()
    read_into(verifier, args.paths, _progress)
    doc = build_inclusion_proof(verifier, args.origin, args.seq)
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


def _verify_proof(args: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read() if args.proof == "-" else Path(args.proof).read_bytes()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InputError(f"{args.proof}: not JSON") from None
    keys = _keys(args.key)
    if not keys:
        raise InputError("verify-proof needs at least one --key")
    try:
        print("OK: " + verify_inclusion_proof(doc, keys))
    except ProofError as exc:
        print(f"FAIL: {exc}")
        return EXIT_FAIL
    return EXIT_OK


def _plugins(args: argparse.Namespace) -> int:
    """What ``load_plugins()`` loads here (honours OTEL_AUDIT_PLUGINS / _DISABLE_PLUGINS)."""
    plugins = load_plugins()
    infos = plugins.describe()
    if args.json:
        doc = {"plugins": [info.to_json() for info in infos], "blocked": plugins.blocked}
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        return EXIT_OK
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "(not installed)"
        hooks = ", ".join(h.removeprefix("otel_audit_") for h in info.hooks)
        print(f"{info.name:<12} {dist:<28} {hooks}")
    blocked = f"; blocked: {', '.join(plugins.blocked)}" if plugins.blocked else ""
    print(f"{len(infos)} plugin(s) loaded{blocked}")
    return EXIT_OK


_COMMANDS = {
    "plugins": _plugins,
    "keygen": _keygen,
    "verify": _verify,
    "prove": _prove,
    "verify-proof": _verify_proof,
}
