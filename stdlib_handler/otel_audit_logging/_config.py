"""The handler's settings: keyword arguments first, then ``OTEL_AUDIT_*`` variables, then defaults.

Every keyword of :class:`~otel_audit_logging.AuditHandler` has an environment variable
``OTEL_AUDIT_<KEYWORD IN UPPER CASE>``, read only when the keyword is not given (or is
``None``). ``service_name`` falls back to OpenTelemetry's own ``OTEL_SERVICE_NAME``.
Values may arrive as strings (from the environment, or from a JSON/YAML logging
configuration); a value that does not parse raises :class:`ValueError` naming the
keyword or variable it came from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otel_audit.errors import PluginError
from otel_audit.plugins import parse_config, parse_names, parse_sinks

__all__ = ["ENV_PREFIX", "HandlerSettings", "resolve_settings"]

ENV_PREFIX = "OTEL_AUDIT_"
DEFAULT_STORE = "./audit-log"
DEFAULT_SERVICE = "unknown_service"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class HandlerSettings:
    """The resolved configuration of one handler (paths are absolute)."""

    store: Path
    key_file: Path | None
    key_name: str | None
    service_name: str
    checkpoint_every: int
    checkpoint_interval_ms: int
    fsync_interval_ms: int
    strict: bool
    level: int
    disabled: bool
    #: ``{plugin name: settings}`` for :func:`otel_audit.plugins.load_plugins`
    plugins: Mapping[str, Any] = field(default_factory=dict)
    #: plugin names not to load (``*``: no installed plugin)
    disable_plugins: frozenset[str] = frozenset()
    #: extra sinks made by plugins: ``(name, options)``
    sinks: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    #: OTLP: also ship every record to this collector (``"env"``: the standard
    #: ``OTEL_EXPORTER_OTLP_*`` variables say where), see docs/otlp.md
    otlp_endpoint: str | None = None
    otlp_protocol: str | None = None  # grpc | http/protobuf (default: OTEL_EXPORTER_OTLP_PROTOCOL)
    otlp_headers: Mapping[str, str] | str | None = None
    otlp_body: str = "string"  # string | map
    #: where records are validated and sealed: ``thread`` (a worker thread of the
    #: application's process) or ``process`` (a sealing process beside it)
    sealing: str = "thread"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON of every setting (for the sealing process); see :meth:`from_json`."""
        return {
            "store": str(self.store),
            "key_file": None if self.key_file is None else str(self.key_file),
            "key_name": self.key_name,
            "service_name": self.service_name,
            "checkpoint_every": self.checkpoint_every,
            "checkpoint_interval_ms": self.checkpoint_interval_ms,
            "fsync_interval_ms": self.fsync_interval_ms,
            "strict": self.strict,
            "level": self.level,
            "disabled": self.disabled,
            "plugins": dict(self.plugins),
            "disable_plugins": sorted(self.disable_plugins),
            "sinks": [[name, dict(options)] for name, options in self.sinks],
            "otlp_endpoint": self.otlp_endpoint,
            "otlp_protocol": self.otlp_protocol,
            "otlp_headers": (
                dict(self.otlp_headers)
                if isinstance(self.otlp_headers, Mapping)
                else self.otlp_headers
            ),
            "otlp_body": self.otlp_body,
            "sealing": self.sealing,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HandlerSettings:
        """The settings that :meth:`to_json` wrote."""
        fields = dict(data)
        key_file = fields.pop("key_file")
        return cls(
            store=Path(fields.pop("store")),
            key_file=None if key_file is None else Path(key_file),
            disable_plugins=frozenset(fields.pop("disable_plugins")),
            sinks=tuple((name, options) for name, options in fields.pop("sinks")),
            **fields,
        )


class _Source:
    """Where each value comes from: the keyword if given, else the environment."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def pick(self, keyword: str, given: object) -> tuple[object, str] | None:
        """``(value, name to cite in errors)``, or None when neither is set."""
        if given is not None:
            return given, f"{keyword}="
        variable = ENV_PREFIX + keyword.upper()
        if variable in self.environ:
            return self.environ[variable], variable
        return None

    def text(self, keyword: str, given: object, default: str | None) -> str | None:
        picked = self.pick(keyword, given)
        if picked is None:
            return default
        value, where = picked
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"{where} must be a string, not {type(value).__name__}")
        text = os.fspath(value)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where} must be a non-empty string")
        return text

    def integer(self, keyword: str, given: object, default: int, minimum: int) -> int:
        picked = self.pick(keyword, given)
        if picked is None:
            return default
        value, where = picked
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            try:
                number = int(value.strip(), 10)
            except ValueError:
                number = None
        if number is None or number < minimum:
            raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")
        return number

    def choice(
        self, keyword: str, given: object, allowed: tuple[str, ...], default: str | None
    ) -> str | None:
        text = self.text(keyword, given, default)
        if text is not None and text.strip() not in allowed:
            where = self.pick(keyword, given)
            raise ValueError(f"{where[1] if where else keyword} must be one of {allowed}")
        return None if text is None else text.strip()

    def boolean(self, keyword: str, given: object, default: bool) -> bool:
        picked = self.pick(keyword, given)
        if picked is None:
            return default
        value, where = picked
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        raise ValueError(
            f"{where} must be a boolean (true/false, 1/0, yes/no, on/off), got {value!r}"
        )

    def parsed(self, keyword: str, given: object, parse: Any) -> Any:
        """``parse(value)`` of the keyword or its variable (None when neither is set)."""
        picked = self.pick(keyword, given)
        if picked is None:
            return None
        value, where = picked
        try:
            return parse(value)
        except PluginError as exc:
            raise ValueError(f"{where} {exc}") from None

    def level(self, given: object) -> int:
        picked = self.pick("level", given)
        if picked is None:
            return logging.NOTSET
        value, where = picked
        if isinstance(value, str):
            value = value.strip()
            value = int(value) if value.isdigit() else value.upper()
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            number = logging.getLevelName(value)
            if isinstance(number, int):
                return number
        raise ValueError(f"{where} must be a logging level name or number, got {value!r}")


def resolve_settings(
    *,
    store: object = None,
    key_file: object = None,
    key_name: object = None,
    service_name: object = None,
    checkpoint_every: object = None,
    checkpoint_interval_ms: object = None,
    fsync_interval_ms: object = None,
    strict: object = None,
    level: object = None,
    disabled: object = None,
    plugins: object = None,
    disable_plugins: object = None,
    sinks: object = None,
    otlp_endpoint: object = None,
    otlp_protocol: object = None,
    otlp_headers: object = None,
    otlp_body: object = None,
    sealing: object = None,
    environ: Mapping[str, str] | None = None,
) -> HandlerSettings:
    """Resolve every setting (keyword → ``OTEL_AUDIT_*`` → default); ValueError if malformed."""
    source = _Source(os.environ if environ is None else environ)
    store_text = source.text("store", store, None) or DEFAULT_STORE
    key_text = source.text("key_file", key_file, None)
    service = source.text("service_name", service_name, None)
    if service is None:
        service = source.environ.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE
    return HandlerSettings(
        # absolute now: a later chdir must not move the audit log
        store=Path(store_text).expanduser().absolute(),
        key_file=None if key_text is None else Path(key_text).expanduser().absolute(),
        key_name=source.text("key_name", key_name, None),
        service_name=service,
        checkpoint_every=source.integer("checkpoint_every", checkpoint_every, 1024, 1),
        checkpoint_interval_ms=source.integer(
            "checkpoint_interval_ms", checkpoint_interval_ms, 1000, 1
        ),
        fsync_interval_ms=source.integer("fsync_interval_ms", fsync_interval_ms, 50, 0),
        strict=source.boolean("strict", strict, False),
        level=source.level(level),
        disabled=source.boolean("disabled", disabled, False),
        plugins=source.parsed("plugins", plugins, parse_config) or {},
        disable_plugins=frozenset(
            source.parsed("disable_plugins", disable_plugins, parse_names) or ()
        ),
        sinks=tuple(source.parsed("sinks", sinks, parse_sinks) or ()),
        otlp_endpoint=source.text("otlp_endpoint", otlp_endpoint, None),
        otlp_protocol=source.choice(
            "otlp_protocol", otlp_protocol, ("grpc", "http/protobuf", "http"), None
        ),
        otlp_headers=(
            dict(otlp_headers)
            if isinstance(otlp_headers, Mapping)
            else source.text("otlp_headers", otlp_headers, None)
        ),
        otlp_body=source.choice("otlp_body", otlp_body, ("string", "map"), "string") or "string",
        sealing=source.choice("sealing", sealing, ("thread", "process"), "thread") or "thread",
    )
