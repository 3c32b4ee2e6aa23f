"""The plugin manager (pluggy) and :class:`Plugins`, a typed facade over its hooks.

:func:`load_plugins` builds a fresh manager, never at import time (pytest's and tox's
way): add the hookspecs (:mod:`otel_audit.hookspecs`) → block what
``OTEL_AUDIT_DISABLE_PLUGINS`` (comma-separated, ``*`` = every installed plugin) and the
configuration name → load the ``otel_audit`` entry-point group → register the plugins
passed in → call ``otel_audit_configure`` (historic) → ``check_pending()``, which
rejects a hook the specs do not know (a misspelt name).

The configuration maps each plugin's name (its entry-point name) to its settings; a
plugin whose settings say ``"enabled": false`` is not loaded. It comes from the caller
or, when the caller passes none, from ``OTEL_AUDIT_PLUGINS`` (JSON).

A plugin that raises is named: :class:`Plugins` runs the record hooks one plugin at a
time, so one broken plugin becomes a :class:`~otel_audit.errors.Violation` naming it
(and the pipeline seals a violation record) instead of a crash; the other hooks raise
:class:`~otel_audit.errors.PluginError` with ``plugin`` set.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson
import pluggy

from otel_audit import hookspecs
from otel_audit.errors import PluginError, Violation
from otel_audit.hookspecs import PROJECT, hookimpl
from otel_audit.keys import Signer
from otel_audit.sealing import SealedRecord

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_CONFIG",
    "ENV_DISABLE",
    "PluginInfo",
    "Plugins",
    "add_compliance_tag",
    "block",
    "hookimpl",
    "load_plugins",
    "parse_config",
    "parse_names",
    "parse_sinks",
]

#: The entry-point group plugins register on (also the pluggy project name).
ENTRY_POINT_GROUP = PROJECT
ENV_CONFIG = "OTEL_AUDIT_PLUGINS"
ENV_DISABLE = "OTEL_AUDIT_DISABLE_PLUGINS"

#: DESIGN §3 risk levels, lowest first: a plugin may raise a record's level, never lower it.
_RISK = {"LOW": 0, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 3}
_MAX_RETENTION = 100  # the schema's maximum of metadata.retention_years
_MAX_MESSAGE = 300
_RECORD_HOOKS = ("otel_audit_enrich", "otel_audit_redact")
_PREPARE_HOOKS = (
    *_RECORD_HOOKS,
    "otel_audit_validate",
    "otel_audit_classify_risk",
    "otel_audit_retention",
)

_internal = logging.getLogger("otel_audit.internal")  # the pipeline's non-propagating logger

# A hook's implementations as called: [(plugin name, function, argument names)], and
# whether one of them is a wrapper (then pluggy's own call loop runs them).
_Impls = tuple[list[tuple[str, Any, tuple[str, ...]]], bool]
_Results = list[tuple[str, Any, "Exception | None"]]  # (plugin name, result, error)


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin: its name, the distribution that installed it, and its hooks."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
        }


def add_compliance_tag(record: dict[str, Any], tag: str) -> None:
    """Add ``tag`` to ``metadata.compliance_tags`` once (for plugins' enrich hooks)."""
    metadata = record.get("metadata")
    if not isinstance(metadata, dict):
        return
    tags = metadata.get("compliance_tags")
    if not isinstance(tags, list):
        tags = metadata["compliance_tags"] = []
    if tag not in tags:
        tags.append(tag)


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def block(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``record[name]`` when it is an object, else an empty, read-only mapping (for hooks
    that read a block of a record the schema has not checked yet: it reports wrong types).

    Hooks call this several times a record: exact dicts and absent blocks skip the
    ``isinstance(..., Mapping)`` ABC check, which costs more than the lookup itself.
    """
    value = record.get(name)
    if type(value) is dict:
        return value
    return value if value is not None and isinstance(value, Mapping) else _EMPTY


def _message(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def parse_config(value: object) -> dict[str, dict[str, Any]]:
    """``{plugin name: settings}`` from a mapping or a JSON object text."""
    if value is None or value == "":
        return {}
    if isinstance(value, (str, bytes)):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise PluginError(f"plugin configuration is not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise PluginError(
            f"plugin configuration must map plugin names to settings, not {type(value).__name__}"
        )
    settings: dict[str, dict[str, Any]] = {}
    for name, given in value.items():
        item = {"enabled": given} if isinstance(given, bool) else given
        if not isinstance(name, str) or not isinstance(item, Mapping):
            raise PluginError(f"settings of plugin {name!r} must be a mapping")
        settings[name] = dict(item)
    return settings


def parse_names(value: object) -> set[str]:
    """Plugin names from ``"a, b"`` or a list (``"*"`` stands for every installed plugin)."""
    if value is None:
        return set()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        raise PluginError(f"plugin names must be a comma-separated string or a list: {value!r}")
    return {str(item).strip() for item in items if str(item).strip()}


def parse_sinks(value: object) -> list[tuple[str, dict[str, Any]]]:
    """Sink specifications → ``[(name, options)]``.

    Accepts ``"cef:path=/var/log/audit.cef"`` (entries separated by ``;``, options by
    ``,``), a mapping ``{"name": "cef", "path": ...}``, or a list of these (or of
    ``(name, options)`` pairs).
    """
    if value is None or value == "":
        return []
    items: list[Any]
    if isinstance(value, str):
        items = [part for part in value.split(";") if part.strip()]
    elif isinstance(value, Mapping):
        items = [value]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise PluginError(
            f"sinks must be a string, a mapping or a list, not {type(value).__name__}"
        )
    specs: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if isinstance(item, str):
            name, _, rest = item.strip().partition(":")
            options: dict[str, Any] = {}
            for pair in filter(None, (p.strip() for p in rest.split(","))):
                key, sep, val = pair.partition("=")
                if not sep or not key.strip():
                    raise PluginError(f"sink {name!r}: option {pair!r} is not key=value")
                options[key.strip()] = val.strip()
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            options = {str(k): v for k, v in item.items() if k != "name"}
            name = item["name"]
        elif (  # already parsed: (name, options)
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], Mapping)
        ):
            name, options = item[0], dict(item[1])
        else:  # the item itself is not shown: sink options may hold credentials
            raise PluginError(f"a sink needs a name (sink #{len(specs) + 1})")
        if not name.strip():
            raise PluginError("a sink needs a name")
        specs.append((name.strip(), options))
    return specs


class _Manager(pluggy.PluginManager):
    """A pluggy manager that counts registration changes, so hook lookups can be cached
    (finding a hook's implementations costs ~1 µs; the pipeline asks ~8 times a record)."""

    generation = 0

    def register(self, plugin: object, name: str | None = None) -> str | None:
        self.generation += 1
        return super().register(plugin, name)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        self.generation += 1
        return super().unregister(plugin, name)


class Plugins:
    """The hooks of one plugin manager, called the way the pipeline needs them."""

    def __init__(self, manager: pluggy.PluginManager, settings: Mapping[str, Any]) -> None:
        self.manager = manager
        self.settings = MappingProxyType(dict(settings))
        self._impls: dict[str, _Impls] = {}
        self._plan: tuple[_Impls, ...] | None = None
        self._plan_known = False  # _plan holds this generation's lookup
        self._generation = -1

    @property
    def names(self) -> list[str]:
        """Names of the registered plugins, in registration order."""
        return [name for name, p in self.manager.list_name_plugin() if p is not None]

    @property
    def blocked(self) -> list[str]:
        """Names blocked by configuration or ``OTEL_AUDIT_DISABLE_PLUGINS``."""
        return [name for name, p in self.manager.list_name_plugin() if p is None]

    def describe(self) -> list[PluginInfo]:
        """Name, distribution, version and hooks of every loaded plugin."""
        dists = {id(plugin): dist for plugin, dist in self.manager.list_plugin_distinfo()}
        infos = []
        for name, plugin in self.manager.list_name_plugin():
            if plugin is None:
                continue  # blocked
            dist = dists.get(id(plugin))
            hooks = tuple(sorted(h.name for h in self.manager.get_hookcallers(plugin) or ()))
            infos.append(
                PluginInfo(
                    name=str(name),
                    distribution=None if dist is None else str(dist.project_name),
                    version=None if dist is None else str(dist.version),
                    hooks=hooks,
                )
            )
        return infos

    # -- before sealing ------------------------------------------------------------------

    def prepare(self, record: dict[str, Any]) -> list[Violation]:
        """enrich → redact → validate → classify_risk → retention, on ``record`` in place.

        Returns the violations (a failing plugin is one, naming it). The highest risk
        level wins and never lowers ``metadata.risk_level``; the longest retention wins
        and never shortens ``metadata.retention_years``. When a redact hook fails, the
        record's content is withheld (it may hold what that plugin should have removed).
        """
        plan = self._prepare_plan()
        if plan is None:
            return []  # no plugin changes or judges records: nothing to do
        enrich, redact, validate, classify_risk, retention = plan
        violations: list[Violation] = []
        for hook, found in (("otel_audit_enrich", enrich), ("otel_audit_redact", redact)):
            for name, _, error in self._call(hook, found, record):
                if error is not None:
                    violations.append(_failed(name, hook, error))
                    if hook == "otel_audit_redact":
                        record.clear()
                        record["withheld"] = f"content withheld: redact hook of {name!r} failed"
                        return violations
        view = MappingProxyType(record)
        for name, result, error in self._call("otel_audit_validate", validate, view):
            if error is not None:
                violations.append(_failed(name, "otel_audit_validate", error))
                continue
            for item in result or ():
                if isinstance(item, Violation):
                    violations.append(item)
                else:
                    violations.append(_bad_result(name, "otel_audit_validate", item))
        metadata = record.get("metadata")
        if violations or not isinstance(metadata, dict):
            return violations  # the record is replaced anyway (or the schema reports it)
        if classify_risk[0]:
            self._raise_risk(
                self._call("otel_audit_classify_risk", classify_risk, view), metadata, violations
            )
        if retention[0]:
            self._extend_retention(
                self._call("otel_audit_retention", retention, view), metadata, violations
            )
        return violations

    @staticmethod
    def _raise_risk(
        results: _Results, metadata: dict[str, Any], violations: list[Violation]
    ) -> None:
        level = metadata.get("risk_level")
        rank = _RISK.get(level, -1) if isinstance(level, str) else -1
        for name, result, error in results:
            if error is not None:
                violations.append(_failed(name, "otel_audit_classify_risk", error))
            elif result is not None:
                if not isinstance(result, str) or result not in _RISK:
                    violations.append(_bad_result(name, "otel_audit_classify_risk", result))
                elif _RISK[result] > rank:
                    rank, level = _RISK[result], result
        if level is not None and level != metadata.get("risk_level"):
            metadata["risk_level"] = level

    @staticmethod
    def _extend_retention(
        results: _Results, metadata: dict[str, Any], violations: list[Violation]
    ) -> None:
        current = metadata.get("retention_years")
        years = current if isinstance(current, int) and not isinstance(current, bool) else None
        for name, result, error in results:
            if error is not None:
                violations.append(_failed(name, "otel_audit_retention", error))
            elif result is not None:
                if (
                    not isinstance(result, int)
                    or isinstance(result, bool)
                    or not 0 <= result <= _MAX_RETENTION
                ):
                    violations.append(_bad_result(name, "otel_audit_retention", result))
                elif years is None or result > years:
                    years = result
        if years is not None and years != current:
            metadata["retention_years"] = years

    def redact(self, record: dict[str, Any]) -> bool:
        """Only the redact hooks (for the pipeline's own violation records); False when one
        failed, and then the caller must not keep the record's untrusted parts."""
        return all(error is None for _, _, error in self._run("otel_audit_redact", record=record))

    # -- after sealing ---------------------------------------------------------------------

    def format(self, sealed: SealedRecord, name: str) -> str:
        """``sealed`` rendered as one line of the output format ``name`` (e.g. ``"cef"``)."""
        text = self._first("otel_audit_format", f"format {name!r}", record=sealed, format_name=name)
        if text is None:
            raise PluginError(f"no plugin provides the output format {name!r}")
        if not isinstance(text, str) or "\n" in text or "\r" in text:
            raise PluginError(f"the {name!r} format returned something other than one line")
        return text

    def sink(self, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """A new sink named ``name`` from the first plugin that provides it."""
        opts = MappingProxyType(dict(options or {}))
        sink = self._first("otel_audit_sink", f"sink {name!r}", name=name, options=opts)
        if sink is None:
            raise PluginError(
                f"no plugin provides a sink named {name!r} (loaded: {', '.join(self.names)})"
            )
        if not all(callable(getattr(sink, m, None)) for m in ("write", "flush", "close")):
            raise PluginError(f"sink {name!r} lacks write(), flush() or close()")
        return sink

    def sinks(self, specs: object) -> list[Any]:
        """Sinks for ``specs`` (see :func:`parse_sinks`); closes what it made on failure."""
        made: list[Any] = []
        try:
            for name, options in parse_sinks(specs):
                made.append(self.sink(name, options))
        except BaseException:
            for sink in made:
                with contextlib.suppress(Exception):
                    sink.close()
            raise
        return made

    def signer(self, name: str, options: Mapping[str, Any] | None = None) -> Signer:
        """A signer (a KMS or HSM key) named ``name`` from the first plugin providing it."""
        opts = MappingProxyType(dict(options or {}))
        signer = self._first("otel_audit_signer", f"signer {name!r}", name=name, options=opts)
        if signer is None:
            raise PluginError(f"no plugin provides a signer named {name!r}")
        return signer  # type: ignore[no-any-return]

    def alert(self, kind: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        """Tell every plugin; never raises (a failing alert hook is logged internally)."""
        view = MappingProxyType(dict(details or {}))
        for name, _, error in self._run(
            "otel_audit_alert", kind=kind, message=message, details=view
        ):
            if error is not None:
                _internal.disabled = False
                _internal.warning("otel-audit: alert hook of plugin %r failed: %s", name, error)

    # -- calling hooks -------------------------------------------------------------------

    def _run(self, hook: str, **kwargs: Any) -> _Results:
        """Call each implementation of ``hook`` (pluggy's order: last registered first,
        tryfirst/trylast respected) and collect ``(plugin, result, error)``."""
        impls, wrapped = self._hook_impls(hook)
        if not impls:
            return []
        if wrapped:
            return self._wrapped(hook, kwargs)
        out: _Results = []
        for name, function, argnames in impls:
            try:
                result = function(*[kwargs[arg] for arg in argnames])
            except Exception as exc:  # noqa: BLE001 - reported as this plugin's failure
                out.append((name, None, exc))
            else:
                out.append((name, result, None))
        return out

    def _call(self, hook: str, found: _Impls, record: Any) -> _Results:
        """:meth:`_run` for a record hook (its one argument is ``record``), with the
        implementations already looked up: the pipeline calls five of them a record."""
        impls, wrapped = found
        if not impls:
            return []
        if wrapped:
            return self._wrapped(hook, {"record": record})
        out: _Results = []
        for name, function, argnames in impls:
            try:
                result = function(record) if argnames else function()
            except Exception as exc:  # noqa: BLE001 - reported as this plugin's failure
                out.append((name, None, exc))
            else:
                out.append((name, result, None))
        return out

    def _wrapped(self, hook: str, kwargs: dict[str, Any]) -> _Results:
        caller = getattr(self.manager.hook, hook)
        try:  # wrappers need pluggy's own call loop; the culprit comes from the traceback
            return [("", result, None) for result in caller(**kwargs)]
        except Exception as exc:  # noqa: BLE001 - reported as this plugin's failure
            return [(self._culprit(exc, hook) or "?", None, exc)]

    def _prepare_plan(self) -> tuple[_Impls, ...] | None:
        """The implementations of the five record hooks, in :meth:`prepare`'s order; None
        when there are none at all. Cached like :meth:`_hook_impls`."""
        generation = getattr(self.manager, "generation", None)
        if self._plan_known and generation == self._generation:
            return self._plan
        impls = [self._hook_impls(hook) for hook in _PREPARE_HOOKS]  # syncs the generation
        plan = tuple(impls) if any(calls for calls, _ in impls) else None
        if generation is not None:
            self._plan, self._plan_known = plan, True
        return plan

    def _hook_impls(self, hook: str) -> _Impls:
        """``(plugin name, function, argument names)`` of each implementation of ``hook``
        in calling order, and whether one is a wrapper; cached until a plugin is
        registered or unregistered (with a plain pluggy manager: never cached)."""
        generation = getattr(self.manager, "generation", None)
        if generation != self._generation:  # also always when None: nothing is cached
            self._impls = {}
            self._plan_known = False
            self._generation = -1 if generation is None else generation
        found = self._impls.get(hook)
        if found is None:
            impls = getattr(self.manager.hook, hook).get_hookimpls()
            calls = [(i.plugin_name, i.function, tuple(i.argnames)) for i in reversed(impls)]
            found = (calls, any(impl.hookwrapper or impl.wrapper for impl in impls))
            if generation is not None:
                self._impls[hook] = found
        return found

    def _first(self, hook: str, what: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.manager.hook, hook)(**kwargs)
        except Exception as exc:
            name = self._culprit(exc, hook)
            raise PluginError(f"plugin {name!r} failed ({what}): {_message(exc)}", name) from exc

    def _culprit(self, exc: BaseException, hook: str) -> str | None:
        """The plugin whose hook implementation is on ``exc``'s traceback."""
        codes: dict[Any, str] = {}
        for impl in getattr(self.manager.hook, hook).get_hookimpls():
            code = getattr(inspect.unwrap(impl.function), "__code__", None)
            if code is not None:
                codes[code] = impl.plugin_name
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code in codes:
                return codes[tb.tb_frame.f_code]
            tb = tb.tb_next
        return None


def _failed(plugin: str, hook: str, error: Exception) -> Violation:
    return Violation("$", "plugin_failed", f"plugin {plugin!r} failed in {hook}: {_message(error)}")


def _bad_result(plugin: str, hook: str, result: object) -> Violation:
    return Violation(
        "$",
        "plugin_failed",
        f"plugin {plugin!r} returned an invalid {type(result).__name__} from {hook}",
    )


def load_plugins(
    config: Mapping[str, Any] | str | None = None,
    *,
    disable: Iterable[str] | str | None = None,
    extra: Sequence[object | tuple[str, object]] = (),
    entry_points: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Plugins:
    """Build a plugin manager and return its :class:`Plugins`.

    ``config``: ``{plugin name: settings}`` (or its JSON text); None reads
    ``OTEL_AUDIT_PLUGINS``. ``disable``: names not to load (``"*"``: no installed
    plugin); None reads ``OTEL_AUDIT_DISABLE_PLUGINS``. ``extra``: plugin objects (or
    ``(name, plugin)`` pairs) to register after the installed ones. Raises
    :class:`~otel_audit.errors.PluginError` naming the plugin that cannot be loaded,
    configured, or implements an unknown hook.
    """
    env = os.environ if environ is None else environ
    settings = parse_config(env.get(ENV_CONFIG) if config is None else config)
    blocked = parse_names(env.get(ENV_DISABLE) if disable is None else disable)
    blocked |= {name for name, s in settings.items() if s.get("enabled", True) is False}

    manager = _Manager(PROJECT)
    manager.add_hookspecs(hookspecs)
    for blocked_name in blocked - {"*"}:
        manager.set_blocked(blocked_name)
    if entry_points and "*" not in blocked:
        try:
            manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:
            failed = _unloaded_entry_point(manager)
            raise PluginError(
                f"cannot load plugin {failed!r} (entry point group {ENTRY_POINT_GROUP!r}): "
                f"{_message(exc)}",
                failed,
            ) from exc
    for item in extra:
        name, plugin = item if isinstance(item, tuple) else (None, item)
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if not manager.is_blocked(name):
            manager.register(plugin, name=name)
    plugins = Plugins(manager, settings)
    try:
        manager.hook.otel_audit_configure.call_historic(
            kwargs={"config": MappingProxyType(settings)}
        )
    except Exception as exc:
        culprit = plugins._culprit(exc, "otel_audit_configure")
        raise PluginError(
            f"plugin {culprit!r} rejected its configuration: {_message(exc)}", culprit
        ) from exc
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        culprit = manager.get_name(exc.plugin)
        raise PluginError(f"plugin {culprit!r}: {exc}", culprit) from None
    return plugins


def _unloaded_entry_point(manager: pluggy.PluginManager) -> str | None:
    """The first entry point of our group that is neither loaded nor blocked: the one
    whose import failed (pluggy loads them in this order and stops at the failure)."""
    from importlib.metadata import distributions  # noqa: PLC0415 - only on this error path

    for dist in list(distributions()):
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            if manager.get_plugin(ep.name) is None and not manager.is_blocked(ep.name):
                return ep.name
    return None
