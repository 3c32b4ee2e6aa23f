"""The plugin manager: entry points, blocking, configuration, hook order, failing plugins."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from otel_audit import PluginError, Violation, hookimpl, load_plugins
from otel_audit.errors import AuditValidationError
from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline
from otel_audit.plugins import Plugins, block, parse_sinks
from otel_audit.testing import MemorySink, run_pipeline, sample_record

# -- a distribution installed into a temporary site directory ----------------------------

_PLUGIN_SOURCE = """
from otel_audit import hookimpl

settings = {}


@hookimpl
def otel_audit_configure(config):
    settings.clear()
    settings.update(config.get("tmpplug", {}))


@hookimpl
def otel_audit_enrich(record):
    record.setdefault("metadata", {}).setdefault("compliance_tags", []).append(
        settings.get("tag", "TMPPLUG")
    )
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real distribution ``tmpplug-dist`` 1.2.3 with an ``otel_audit`` entry point,
    found by importlib.metadata on sys.path exactly as pip would leave it."""
    site = tmp_path / "site"
    site.mkdir()
    module = f"tmpplug_{tmp_path.name.replace('-', '_')}"
    (site / f"{module}.py").write_text(_PLUGIN_SOURCE)
    info = site / "tmpplug_dist-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tmpplug-dist\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[otel_audit]\ntmpplug = {module}\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return module


def test_an_installed_entry_point_is_loaded_configured_and_called(installed: str) -> None:
    plugins = load_plugins({"tmpplug": {"tag": "FROM-CONFIG"}}, disable=["gdpr", "pci"])
    info = next(i for i in plugins.describe() if i.name == "tmpplug")
    assert (info.distribution, info.version) == ("tmpplug-dist", "1.2.3")
    assert info.hooks == ("otel_audit_configure", "otel_audit_enrich")
    record = sample_record(1)
    assert plugins.prepare(record) == []
    assert "FROM-CONFIG" in record["metadata"]["compliance_tags"]


def test_the_environment_blocks_plugins(installed: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_AUDIT_DISABLE_PLUGINS", " other , tmpplug ")
    plugins = load_plugins({})
    assert "tmpplug" not in plugins.names
    assert "tmpplug" in plugins.blocked
    monkeypatch.setenv("OTEL_AUDIT_DISABLE_PLUGINS", "*")
    assert load_plugins({}).names == []
    monkeypatch.delenv("OTEL_AUDIT_DISABLE_PLUGINS")
    assert "tmpplug" in load_plugins({}).names


def test_configuration_blocks_plugins_and_comes_from_the_environment(
    installed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "tmpplug" not in load_plugins({"tmpplug": {"enabled": False}}, disable=()).names
    assert "tmpplug" not in load_plugins('{"tmpplug": false}', disable=()).names
    monkeypatch.setenv("OTEL_AUDIT_PLUGINS", '{"tmpplug": {"tag": "ENV-TAG"}}')
    plugins = load_plugins(disable=())
    record = sample_record(2)
    plugins.prepare(record)
    assert "ENV-TAG" in record["metadata"]["compliance_tags"]


def test_a_broken_entry_point_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "broken"
    info = site / "brokenplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[otel_audit]\nbrokenplug = no_such_module_xyz\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    with pytest.raises(PluginError, match="brokenplug") as caught:
        load_plugins({}, disable=())
    assert caught.value.plugin == "brokenplug"
    assert "brokenplug" not in load_plugins({}, disable=["brokenplug"]).names


def test_bad_configuration_is_a_clear_error() -> None:
    with pytest.raises(PluginError, match="not JSON"):
        load_plugins("{nope", entry_points=False)
    with pytest.raises(PluginError, match="must map plugin names"):
        load_plugins("[1, 2]", entry_points=False)


# -- hooks given directly ------------------------------------------------------------------


class Misspelt:
    @hookimpl
    def otel_audit_enrichh(self, record: dict[str, Any]) -> None:  # one h too many
        pass


def test_a_misspelt_hook_is_rejected_and_named() -> None:
    with pytest.raises(PluginError, match=r"'misspelt'.*otel_audit_enrichh") as caught:
        load_plugins({}, entry_points=False, extra=[("misspelt", Misspelt())])
    assert caught.value.plugin == "misspelt"


class Rejects:
    @hookimpl
    def otel_audit_configure(self, config: Mapping[str, Any]) -> None:
        if "rejects" in config:
            raise ValueError("bad threshold")


def test_a_plugin_rejecting_its_configuration_is_named() -> None:
    with pytest.raises(PluginError, match=r"'rejects' rejected its configuration.*threshold"):
        load_plugins({"rejects": {"x": 1}}, entry_points=False, extra=[("rejects", Rejects())])


class Risky:
    def __init__(self, risk: str | None, years: int | None, tag: str) -> None:
        self.risk, self.years, self.tag = risk, years, tag
        self.order: list[str] = []

    @hookimpl
    def otel_audit_enrich(self, record: dict[str, Any]) -> None:
        record["metadata"].setdefault("compliance_tags", []).append(self.tag)

    @hookimpl
    def otel_audit_classify_risk(self, record: Mapping[str, Any]) -> str | None:
        return self.risk

    @hookimpl
    def otel_audit_retention(self, record: Mapping[str, Any]) -> int | None:
        return self.years


def _plugins(*extra: object | tuple[str, object]) -> Plugins:
    return load_plugins({}, entry_points=False, extra=list(extra))


def test_highest_risk_and_longest_retention_win_and_never_lower() -> None:
    plugins = _plugins(("a", Risky("MEDIUM", 1, "A")), ("b", Risky("HIGH", 6, "B")))
    record = sample_record(0)  # LOW, retention 7
    assert plugins.prepare(record) == []
    assert record["metadata"]["risk_level"] == "HIGH"
    assert record["metadata"]["retention_years"] == 7  # 6 does not shorten 7
    assert record["metadata"]["compliance_tags"] == ["GDPR", "SOX", "B", "A"]  # last first

    critical = sample_record(4)  # CRITICAL
    del critical["metadata"]["retention_years"]
    plugins.prepare(critical)
    assert critical["metadata"]["risk_level"] == "CRITICAL"
    assert critical["metadata"]["retention_years"] == 6


def test_invalid_results_are_violations_naming_the_plugin() -> None:
    record = sample_record(0)
    violations = _plugins(("odd", Risky("SEVERE", None, "X"))).prepare(record)
    assert [v.rule for v in violations] == ["plugin_failed"]
    assert "'odd'" in violations[0].message
    assert "otel_audit_classify_risk" in violations[0].message
    assert record["metadata"]["risk_level"] == "LOW"


class Raises:
    def __init__(self, hook: str) -> None:
        self.hook = hook
        self.alerts: list[tuple[str, str]] = []

    @hookimpl
    def otel_audit_validate(self, record: Mapping[str, Any]) -> list[Violation]:
        if self.hook == "validate":
            raise RuntimeError("validator exploded")
        return []

    @hookimpl
    def otel_audit_redact(self, record: dict[str, Any]) -> None:
        if self.hook == "redact":
            raise RuntimeError("redactor exploded")

    @hookimpl
    def otel_audit_format(self, record: Any, format_name: str) -> str | None:
        if format_name == "boom":
            raise RuntimeError("formatter exploded")
        return None


class Listener:
    def __init__(self) -> None:
        self.alerts: list[tuple[str, str, dict[str, Any]]] = []

    @hookimpl
    def otel_audit_alert(self, kind: str, message: str, details: Mapping[str, Any]) -> None:
        self.alerts.append((kind, message, dict(details)))


def test_a_failing_plugin_becomes_a_sealed_violation_naming_it() -> None:
    listener = Listener()
    plugins = _plugins(("flaky", Raises("validate")), ("listener", listener))
    sealed = run_pipeline([sample_record(1), sample_record(2)], plugins=plugins)
    assert [s.action for s in sealed] == ["AUDIT_SCHEMA_VIOLATION"] * 2
    violations = sealed[0].record["extensions"]["violations"]
    assert violations[0]["rule"] == "plugin_failed"
    assert (
        "'flaky' failed in otel_audit_validate: RuntimeError: validator exploded"
        in (violations[0]["message"])
    )
    kinds = [kind for kind, _, _ in listener.alerts]
    assert kinds.count("plugin_failed") == 2
    assert kinds.count("violation") == 2
    violation_alert = next(a for a in listener.alerts if a[0] == "violation")
    assert violation_alert[2]["rules"] == ["plugin_failed"]


def test_strict_mode_raises_the_plugin_failure_at_the_call() -> None:
    pipeline = AuditPipeline(
        SigningKey.generate("strict"),
        [MemorySink()],
        strict=True,
        plugins=_plugins(("flaky", Raises("validate"))),
    )
    try:
        with pytest.raises(AuditValidationError, match="'flaky' failed"):
            pipeline.submit(sample_record(1))
    finally:
        pipeline.close()


def test_a_failing_redactor_withholds_the_record() -> None:
    sealed = run_pipeline([sample_record(3)], plugins=_plugins(("leaky", Raises("redact"))))
    [record] = [s.record for s in sealed]
    assert record["action"] == "AUDIT_SCHEMA_VIOLATION"
    # the input is withheld, and so is the violation record's copy (redact fails on it too)
    assert record["extensions"]["rejected"] == "withheld: a redact hook failed"
    assert record["result"]["reason"] == "withheld: a redact hook failed"
    assert "customer_3" not in sealed[0].line.decode()


def test_format_sink_and_signer_errors_name_the_plugin() -> None:
    plugins = _plugins(("fmt", Raises("none")))
    [sealed] = run_pipeline([sample_record(0)])
    with pytest.raises(PluginError, match="'fmt' failed") as caught:
        plugins.format(sealed, "boom")
    assert caught.value.plugin == "fmt"
    with pytest.raises(PluginError, match="no plugin provides the output format 'xml'"):
        plugins.format(sealed, "xml")
    with pytest.raises(PluginError, match="no plugin provides a sink named 'kafka'"):
        plugins.sink("kafka", {})
    with pytest.raises(PluginError, match="no plugin provides a signer named 'kms'"):
        plugins.signer("kms", {})


def test_a_failing_alert_hook_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    class BadListener:
        @hookimpl
        def otel_audit_alert(self, kind: str) -> None:
            raise RuntimeError("pager down")

    _plugins(("pager", BadListener())).alert("spill", "queue full", {})  # no raise


def test_sinks_from_plugins_are_made_by_name(tmp_path: Path) -> None:
    made: list[Mapping[str, Any]] = []

    class SinkPlugin:
        @hookimpl
        def otel_audit_sink(self, name: str, options: Mapping[str, Any]) -> Any:
            if name != "memory":
                return None
            made.append(options)
            return MemorySink()

    plugins = _plugins(("sinkplug", SinkPlugin()))
    sinks = plugins.sinks("memory:path=/x/a.log,level=3; memory")
    assert [type(s) for s in sinks] == [MemorySink, MemorySink]
    assert made == [{"path": "/x/a.log", "level": "3"}, {}]
    extra = MemorySink()
    run_pipeline([sample_record(4)], sinks=[extra])
    assert [s.action for s in extra.records if s.category != "integrity"] == ["DELETE"]
    assert extra.closed


def test_parse_sinks_forms() -> None:
    assert parse_sinks(None) == []
    assert parse_sinks("cef:path=/a b/c.cef") == [("cef", {"path": "/a b/c.cef"})]
    assert parse_sinks({"name": "cef", "path": "/x"}) == [("cef", {"path": "/x"})]
    assert parse_sinks([{"name": "a"}, "b:k=v"]) == [("a", {}), ("b", {"k": "v"})]
    with pytest.raises(PluginError, match="key=value"):
        parse_sinks("cef:path")
    with pytest.raises(PluginError, match="needs a name"):
        parse_sinks([{"path": "/x"}])


# -- the CLI ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_cli_lists_the_installed_plugins() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "otel_audit", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = orjson.loads(out.stdout)
    found = {p["name"]: p for p in doc["plugins"]}
    for name in ("gdpr", "hipaa", "sox", "pci"):
        assert found[name]["distribution"] == f"otel-audit-{name}"
        assert found[name]["version"] == "0.1.0"
    text = subprocess.run(
        [sys.executable, "-m", "otel_audit", "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**_env(), "OTEL_AUDIT_DISABLE_PLUGINS": "gdpr"},
    ).stdout
    assert "otel-audit-pci 0.1.0" in text
    assert text.strip().endswith("blocked: gdpr")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_AUDIT_")}


# -- the OTel front door ---------------------------------------------------------------------


def test_the_processor_loads_installed_plugins_into_its_pipeline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk._logs import LoggerProvider

    from otel_audit.processor import AuditProcessor

    monkeypatch.setenv("OTEL_AUDIT_DISABLE_PLUGINS", "sox")
    memory = MemorySink()
    pipeline = AuditPipeline(SigningKey.generate("processor-plugins"), [memory])
    AuditProcessor(pipeline)
    assert pipeline.plugins is not None
    assert "pci" in pipeline.plugins.names
    assert "sox" not in pipeline.plugins.names
    provider = LoggerProvider()
    provider.add_log_record_processor(AuditProcessor(pipeline))  # keeps the loaded ones
    provider.get_logger("audit").emit(
        body={
            "actor": "alice",
            "resource": ["order", "o-1"],
            "extensions": {"card": "5500-0055-5555-5559"},
            "context": {"source_ip": "192.0.2.1"},
        },
        event_name="audit.data_access.create",
    )
    provider.shutdown()
    [sealed] = [s for s in memory.records if s.category != "integrity"]
    assert sealed.record["extensions"]["card"] == "5500-00**-****-5559"

    own = _plugins(("listener", Listener()))
    explicit = AuditPipeline(SigningKey.generate("explicit"), [MemorySink()])
    AuditProcessor(explicit, plugins=own)
    assert explicit.plugins is own
    explicit.close()
    none = AuditPipeline(SigningKey.generate("none"), [MemorySink()])
    AuditProcessor(none, disable_plugins="*")
    assert none.plugins is not None
    assert none.plugins.names == []
    none.close()


def test_hooks_found_once_are_found_again_after_a_plugin_comes_or_goes() -> None:
    class Tagger:
        @hookimpl
        def otel_audit_enrich(self, record: dict[str, Any]) -> None:
            record.setdefault("metadata", {}).setdefault("compliance_tags", []).append("LATE")

    plugins = load_plugins({}, disable="*")
    record = sample_record(1)
    assert plugins.prepare(record) == []  # no plugin: the lookups are cached as empty
    assert "LATE" not in record["metadata"]["compliance_tags"]
    tagger = Tagger()
    plugins.manager.register(tagger, name="late-tagger")
    plugins.prepare(record)
    assert record["metadata"]["compliance_tags"].count("LATE") == 1
    plugins.manager.unregister(tagger)
    plugins.prepare(record)
    assert record["metadata"]["compliance_tags"].count("LATE") == 1  # gone again


def test_block_gives_an_object_block_or_an_empty_read_only_mapping() -> None:
    from types import MappingProxyType

    actor = {"user_id": "alice"}
    proxy = MappingProxyType({"type": "customer"})
    record: dict[str, Any] = {"actor": actor, "resource": proxy, "result": "SUCCESS"}
    assert block(record, "actor") is actor
    assert block(record, "resource") is proxy  # any Mapping, not only dict
    for name in ("result", "context"):  # not an object, or absent
        empty = block(record, name)
        assert dict(empty) == {}
        with pytest.raises(TypeError):
            empty["x"] = 1  # type: ignore[index]
    assert block(MappingProxyType(record), "actor") is actor


def test_hooks_are_called_with_the_arguments_they_name_in_pluggy_order() -> None:
    calls: list[tuple[str, object]] = []

    class First:
        @hookimpl
        def otel_audit_alert(self, kind: str) -> None:
            calls.append(("first", kind))

    class Second:
        @hookimpl
        def otel_audit_alert(self, details: Mapping[str, Any], kind: str) -> None:
            calls.append(("second", (kind, dict(details))))

    plugins = load_plugins({}, entry_points=False, extra=[("first", First()), ("second", Second())])
    plugins.alert("spill", "queue full", {"n": 1})
    # pluggy calls the last registered first
    assert calls == [("second", ("spill", {"n": 1})), ("first", "spill")]


def test_zero_argument_hooks_and_wrappers_are_called() -> None:
    seen: list[str] = []

    class Bare:
        @hookimpl
        def otel_audit_enrich(self) -> None:  # pluggy lets an implementation take fewer
            seen.append("enrich")

    class Judge:
        @hookimpl
        def otel_audit_validate(self, record: Mapping[str, Any]) -> list[Violation]:
            return [Violation("$.action", "judge.rule", "judged")]

    class Wrapper:
        @hookimpl(wrapper=True)
        def otel_audit_validate(self, record: Mapping[str, Any]) -> Any:
            results = yield  # the other implementations' results
            seen.append(f"wrapped {len(results)}")
            return results

    plugins = load_plugins(
        {}, entry_points=False, extra=[("bare", Bare()), ("judge", Judge()), ("wrap", Wrapper())]
    )
    violations = plugins.prepare(sample_record(1))
    assert seen == ["enrich", "wrapped 1"]
    assert [v.rule for v in violations] == ["judge.rule"]
