"""Checks of the OpenTelemetry Collector configurations in ``collector-config/``.

No collector binary runs in the test environment, so these tests check the properties
that matter for audit records and that a typo or a "harmless" edit could break:

* every component a pipeline names is defined, connectors are wired at both ends,
  every extension referenced (``storage``, ``authenticator``) is defined and enabled;
* nothing can rewrite the log body, which is the sealed record (DESIGN.md §2):
  processors are allow-listed, ``transform`` statements may read the body but never
  write it, ``file_log`` has no operators;
* no in-memory ``batch`` processor acknowledges records ahead of the persistent queue,
  and ``memory_limiter`` comes first wherever data enters from outside;
* TLS 1.3 (``min_version: "1.3"``) on every non-loopback receiver, with client
  certificates, and on every network exporter;
* every network exporter has an fsynced ``file_storage`` queue that blocks when full and
  retries without a time limit; ``file_log`` keeps its offsets on ``file_storage``;
* the routing connector uses the current schema (``table`` of ``condition`` or
  ``statement`` + ``pipelines``, no ``match_once``), cannot drop a payload on error, and
  compares ``audit.category`` only with categories the record schema defines; where each
  category is routed is spelt out per gateway.

* every option name is one the component has (``component-keys.yaml``, taken from the
  upstream configuration schemas), and no OTTL error mode drops a payload.

The verifier reads what the gateway writes (files under the configured name and its
rotated names, gzip archive objects), and reports a body changed on the way.

Each check returns a list of problems. Every check runs on every shipped config and on a
mutated copy of a real config that must fail it.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_audit.keys import SigningKey
from otel_audit.sealing import SealedRecord
from otel_audit.testing import seal_stream
from otel_audit.verify import verify_paths

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "collector-config"
README = CONFIG_DIR / "README.md"

Config = dict[str, Any]
Check = Callable[[Config], list[str]]

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Exporters that write locally; everything else is treated as a network exporter
# (fail closed: an unknown exporter type must meet the network rules).
LOCAL_EXPORTERS = {"file", "debug", "nop"}
# Processors known to leave the log body alone. Anything else fails closed.
BODY_SAFE_PROCESSORS = {
    "memory_limiter",  # refuses data under memory pressure, never changes it
    "transform",  # allowed only with statements that do not write the body (below)
    "attributes",  # acts on log attributes only
    "resource",  # acts on resource attributes only
    "resourcedetection",
    "k8sattributes",
}
BODY_UNSAFE_REASONS = {
    "logstransform": "runs stanza operators that rewrite the body",
    "redaction": "masks values and can rewrite the record",
    "logdedup": "aggregates records, dropping and rewriting them",
    "filter": "drops records: the verifier would report them missing",
    "batch": "holds acknowledged records in memory ahead of the persistent queue",
}
# routing connector `context` values (config.schema.yaml); "request" is deprecated.
ROUTING_CONTEXTS = {"", "resource", "log", "span", "metric", "datapoint", "otelcol", "request"}
# An OTTL editor call: name, then its first argument (the path it writes to).
EDITOR_TARGET = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(\s*([^,()]+?)\s*[,)]")
BODY_PATH = re.compile(r"^(log\.)?body\b")
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


# --------------------------------------------------------------------------- loading


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _all_yaml() -> list[Path]:
    return sorted({*CONFIG_DIR.rglob("*.yaml"), *CONFIG_DIR.rglob("*.yml")})


def _is_collector_config(doc: Any) -> bool:
    service = doc.get("service") if isinstance(doc, dict) else None
    return isinstance(service, dict) and isinstance(service.get("pipelines"), dict)


ALL_YAML = _all_yaml()
COLLECTOR_CONFIGS = [path for path in ALL_YAML if _is_collector_config(_load(path))]


def _rel(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


# --------------------------------------------------------------------------- helpers


def _kind(component_id: str, *, exporter: bool = False) -> str:
    """``otlp_grpc/gateway`` -> ``otlp_grpc``: the type before the optional name, with a
    deprecated alias mapped to its current name (collector v0.144.0 renamed the OTLP
    exporters to ``otlp_grpc``/``otlp_http``; contrib renamed ``filelog`` to
    ``file_log``). The OTLP *receiver* is still ``otlp``."""
    kind = component_id.split("/", 1)[0]
    if exporter and kind == "otlp":
        return "otlp_grpc"
    return {"otlphttp": "otlp_http", "filelog": "file_log"}.get(kind, kind)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _section(cfg: Config, name: str) -> dict[str, Any]:
    return _dict(cfg.get(name))


def _settings(section: dict[str, Any], component_id: str) -> dict[str, Any]:
    return _dict(section.get(component_id))


def _pipelines(cfg: Config) -> dict[str, dict[str, Any]]:
    pipelines = _section(_section(cfg, "service"), "pipelines")
    return {name: _dict(spec) for name, spec in pipelines.items()}


def _ids(spec: dict[str, Any], role: str) -> list[str]:
    value = spec.get(role)
    return [str(item) for item in value] if isinstance(value, list) else []


def _enabled_extensions(cfg: Config) -> list[str]:
    return _ids(_section(cfg, "service"), "extensions")


def _used_processors(cfg: Config) -> set[str]:
    return {proc for spec in _pipelines(cfg).values() for proc in _ids(spec, "processors")}


def _used_exporters(cfg: Config) -> set[str]:
    exporters = _section(cfg, "exporters")
    return {
        exp
        for spec in _pipelines(cfg).values()
        for exp in _ids(spec, "exporters")
        if exp in exporters
    }


def _network_exporters(cfg: Config) -> list[str]:
    return sorted(
        exp for exp in _used_exporters(cfg) if _kind(exp, exporter=True) not in LOCAL_EXPORTERS
    )


def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, str(key)), value
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, str(index)))


def _is_zero_duration(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value == 0
    return isinstance(value, str) and re.fullmatch(r"0+(ns|us|µs|ms|s|m|h)?", value) is not None


def _host(endpoint: str) -> str:
    hostport = re.sub(r"^[a-z][a-z0-9+.-]*://", "", endpoint).split("/", 1)[0]
    if hostport.startswith("["):
        return hostport.split("]", 1)[0] + "]"
    return hostport.rsplit(":", 1)[0] if ":" in hostport else hostport


def _durable_storage(cfg: Config, ext_id: Any) -> str | None:
    """Why ``ext_id`` is not an fsynced file_storage extension, or None if it is."""
    if not isinstance(ext_id, str) or not ext_id:
        return "no storage extension"
    if _kind(ext_id) != "file_storage":
        return f"storage {ext_id!r} is not a file_storage extension"
    extensions = _section(cfg, "extensions")
    if ext_id not in extensions:
        return f"storage {ext_id!r} is not defined"
    if _settings(extensions, ext_id).get("fsync") is not True:
        return f"storage {ext_id!r} does not set fsync: true"
    return None


# --------------------------------------------------------------------------- checks


def check_references(cfg: Config) -> list[str]:
    """Pipelines name only defined components; connectors are wired at both ends."""
    problems: list[str] = []
    receivers, processors = _section(cfg, "receivers"), _section(cfg, "processors")
    exporters, connectors = _section(cfg, "exporters"), _section(cfg, "connectors")
    extensions = _section(cfg, "extensions")
    pipelines = _pipelines(cfg)
    if not pipelines:
        problems.append("service.pipelines is empty")
    as_exporter: dict[str, set[str]] = {}
    as_receiver: dict[str, set[str]] = {}
    for name, spec in pipelines.items():
        if not _ids(spec, "receivers") or not _ids(spec, "exporters"):
            problems.append(f"pipeline {name}: needs at least one receiver and one exporter")
        for rec in _ids(spec, "receivers"):
            if rec in connectors:
                as_receiver.setdefault(rec, set()).add(name)
            elif rec not in receivers:
                problems.append(f"pipeline {name}: receiver {rec!r} is not defined")
        for proc in _ids(spec, "processors"):
            if proc not in processors:
                problems.append(f"pipeline {name}: processor {proc!r} is not defined")
        for exp in _ids(spec, "exporters"):
            if exp in connectors:
                as_exporter.setdefault(exp, set()).add(name)
            elif exp not in exporters:
                problems.append(f"pipeline {name}: exporter {exp!r} is not defined")
    for conn in sorted(set(as_exporter) | set(as_receiver)):
        if conn not in as_exporter:
            problems.append(f"connector {conn!r} feeds pipelines but no pipeline exports to it")
        elif conn not in as_receiver:
            problems.append(f"connector {conn!r} is exported to but is no pipeline's receiver")
        elif as_exporter[conn] & as_receiver[conn]:
            problems.append(f"connector {conn!r} is receiver and exporter of the same pipeline")
    for conn in connectors:
        if _kind(conn) != "routing":
            continue
        settings = _settings(connectors, conn)
        targets = [str(p) for p in settings.get("default_pipelines") or []]
        for route in settings.get("table") or []:
            if isinstance(route, dict):
                targets += [str(p) for p in route.get("pipelines") or []]
        for target in targets:
            if target not in pipelines:
                problems.append(f"connector {conn!r} routes to undefined pipeline {target!r}")
            elif conn not in _ids(pipelines[target], "receivers"):
                problems.append(f"connector {conn!r} routes to {target!r}, which it does not feed")
    for ext in _enabled_extensions(cfg):
        if ext not in extensions:
            problems.append(f"service.extensions lists undefined extension {ext!r}")
    return problems


def check_extension_refs(cfg: Config) -> list[str]:
    """Every ``storage:`` / ``authenticator:`` names a defined, enabled extension."""
    problems: list[str] = []
    extensions = _section(cfg, "extensions")
    enabled = set(_enabled_extensions(cfg))
    for section in ("receivers", "processors", "exporters", "connectors", "extensions"):
        for path, value in _walk(_section(cfg, section)):
            if path[-1] not in {"storage", "authenticator"} or not isinstance(value, str):
                continue
            where = f"{section}.{'.'.join(path)}"
            if value not in extensions:
                problems.append(f"{where}: extension {value!r} is not defined")
            elif value not in enabled:
                problems.append(f"{where}: extension {value!r} is not in service.extensions")
    return problems


def _transform_statements(settings: dict[str, Any]) -> Iterator[str]:
    for key in ("log_statements", "statements"):
        for entry in settings.get(key) or []:
            if isinstance(entry, str):
                yield entry
            elif isinstance(entry, dict):
                yield from (str(s) for s in entry.get("statements") or [])


def check_body_untouched(cfg: Config) -> list[str]:
    """No processor or receiver operator can rewrite the body (the sealed record)."""
    problems: list[str] = []
    processors = _section(cfg, "processors")
    for proc in sorted(_used_processors(cfg)):
        kind = _kind(proc)
        if kind in BODY_UNSAFE_REASONS and kind != "batch":  # batch: check_no_batch_processor
            problems.append(f"processor {proc!r}: {BODY_UNSAFE_REASONS[kind]}")
        elif kind not in BODY_SAFE_PROCESSORS and kind != "batch":
            problems.append(f"processor {proc!r}: type {kind!r} is not known to keep the body")
        if kind != "transform":
            continue
        for statement in _transform_statements(_settings(processors, proc)):
            match = EDITOR_TARGET.match(statement)
            if match and BODY_PATH.match(match.group(2)):
                problems.append(f"processor {proc!r} writes the body: {statement}")
    receivers = _section(cfg, "receivers")
    for rec in receivers:
        if _kind(rec) != "file_log":
            continue
        settings = _settings(receivers, rec)
        for key in ("operators", "multiline", "header"):
            if settings.get(key):
                problems.append(f"receiver {rec!r}: {key!r} would change the line it ships")
        if settings.get("encoding", "utf-8").lower() not in {"utf-8", "utf8"}:
            problems.append(f"receiver {rec!r}: records are UTF-8, not {settings['encoding']!r}")
    return problems


def check_no_batch_processor(cfg: Config) -> list[str]:
    """Batching belongs to the exporters' persistent queue (``sending_queue.batch``)."""
    return [
        f"processor {proc!r}: {BODY_UNSAFE_REASONS['batch']}; use sending_queue.batch"
        for proc in sorted(_used_processors(cfg))
        if _kind(proc) == "batch"
    ]


def check_memory_limiter_first(cfg: Config) -> list[str]:
    """Pipelines fed from outside start with memory_limiter (it refuses, never drops)."""
    problems: list[str] = []
    connectors = _section(cfg, "connectors")
    for name, spec in _pipelines(cfg).items():
        if all(rec in connectors for rec in _ids(spec, "receivers")):
            continue
        procs = _ids(spec, "processors")
        if not procs or _kind(procs[0]) != "memory_limiter":
            problems.append(f"pipeline {name}: the first processor must be memory_limiter")
    return problems


def _check_server_tls(where: str, server: dict[str, Any]) -> list[str]:
    endpoint = str(server.get("endpoint", ""))
    if _host(endpoint) in LOOPBACK_HOSTS:
        return []
    tls = server.get("tls")
    if not isinstance(tls, dict):
        return [f"{where}: listens on {endpoint or 'the default address'} without tls"]
    problems = []
    if tls.get("min_version") != "1.3":
        problems.append(f'{where}: tls.min_version must be "1.3", not {tls.get("min_version")!r}')
    for key in ("cert_file", "key_file", "client_ca_file"):
        if not tls.get(key):
            problems.append(f"{where}: tls.{key} is required (TLS 1.3 with client certificates)")
    return problems


def check_tls(cfg: Config) -> list[str]:
    """TLS 1.3 on every non-loopback receiver (mTLS) and on every network exporter."""
    problems: list[str] = []
    receivers = _section(cfg, "receivers")
    for rec in receivers:
        settings = _settings(receivers, rec)
        protocols = settings.get("protocols")
        if isinstance(protocols, dict):
            for proto, server in protocols.items():
                problems += _check_server_tls(f"receiver {rec!r} {proto}", _dict(server))
        elif "endpoint" in settings:
            problems += _check_server_tls(f"receiver {rec!r}", settings)
    exporters = _section(cfg, "exporters")
    for exp in _network_exporters(cfg):
        settings = _settings(exporters, exp)
        if _kind(exp, exporter=True) == "awss3":
            # The S3 exporter has no tls block (AWS SDK client): require HTTPS.
            uploader = _dict(settings.get("s3uploader"))
            if uploader.get("disable_ssl") is not False:
                problems.append(f"exporter {exp!r}: s3uploader.disable_ssl must be false")
            if str(uploader.get("endpoint", "https://")).startswith("http://"):
                problems.append(f"exporter {exp!r}: s3uploader.endpoint is plain http")
            continue
        http = _dict(settings.get("http"))
        tls = settings.get("tls", http.get("tls"))
        if not isinstance(tls, dict):
            problems.append(f"exporter {exp!r}: no tls block")
            continue
        if tls.get("min_version") != "1.3":
            problems.append(f'exporter {exp!r}: tls.min_version must be "1.3"')
        if tls.get("insecure") is True or tls.get("insecure_skip_verify") is True:
            problems.append(f"exporter {exp!r}: tls verification is switched off")
        endpoints = [settings.get("endpoint"), http.get("endpoint"), *settings.get("endpoints", [])]
        for endpoint in endpoints:
            if isinstance(endpoint, str) and endpoint.startswith("http://"):
                problems.append(f"exporter {exp!r}: plain http endpoint {endpoint}")
    return problems


def check_queue_and_retry(cfg: Config) -> list[str]:
    """Network exporters: fsynced persistent queue, blocking when full, endless retry."""
    problems: list[str] = []
    exporters = _section(cfg, "exporters")
    for exp in _network_exporters(cfg):
        settings = _settings(exporters, exp)
        queue = _dict(settings.get("sending_queue"))
        if queue.get("enabled") is not True:
            problems.append(f"exporter {exp!r}: sending_queue.enabled must be true")
        reason = _durable_storage(cfg, queue.get("storage"))
        if reason:
            problems.append(f"exporter {exp!r}: sending_queue: {reason}")
        if queue.get("block_on_overflow") is not True:
            problems.append(f"exporter {exp!r}: a full queue must block (block_on_overflow)")
        if _kind(exp, exporter=True) == "elasticsearch":
            # This exporter takes no retry_on_failure; its own bulk `retry` is bounded by
            # a count, so require it on and generous (README: "Known limits").
            bulk_retry = _dict(settings.get("retry"))
            if bulk_retry.get("enabled") is not True or int(bulk_retry.get("max_retries", 0)) < 10:
                problems.append(f"exporter {exp!r}: retry.enabled and max_retries >= 10")
            continue
        retry = _dict(settings.get("retry_on_failure"))
        if retry.get("enabled") is not True:
            problems.append(f"exporter {exp!r}: retry_on_failure.enabled must be true")
        if not _is_zero_duration(retry.get("max_elapsed_time")):
            problems.append(f"exporter {exp!r}: retry_on_failure.max_elapsed_time must be 0")
    return problems


def check_file_log(cfg: Config) -> list[str]:
    """file_log: offsets on fsynced file_storage, from the beginning, whole lines only,
    no .gz, endless retry."""
    problems: list[str] = []
    receivers = _section(cfg, "receivers")
    for rec in receivers:
        if _kind(rec) != "file_log":
            continue
        settings = _settings(receivers, rec)
        reason = _durable_storage(cfg, settings.get("storage"))
        if reason:
            problems.append(f"receiver {rec!r}: offsets: {reason}")
        if settings.get("start_at") != "beginning":
            problems.append(f"receiver {rec!r}: start_at must be beginning")
        if not _is_zero_duration(settings.get("force_flush_period")):
            problems.append(f"receiver {rec!r}: force_flush_period must be 0 (torn lines)")
        excluded = any(str(p).endswith(".gz") for p in settings.get("exclude") or [])
        if not excluded and not settings.get("compression"):
            problems.append(f"receiver {rec!r}: rotated *.jsonl.gz segments must be excluded")
        retry = _dict(settings.get("retry_on_failure"))
        if retry.get("enabled") is not True or not _is_zero_duration(retry.get("max_elapsed_time")):
            problems.append(f"receiver {rec!r}: retry_on_failure must be on, max_elapsed_time 0")
    return problems


def check_routing(cfg: Config) -> list[str]:
    """The routing connector in its current schema; errors must not drop a payload."""
    problems: list[str] = []
    connectors = _section(cfg, "connectors")
    for conn in connectors:
        if _kind(conn) != "routing":
            continue
        settings = _settings(connectors, conn)
        if "match_once" in settings:
            problems.append(f"connector {conn!r}: match_once was removed in v0.120.0")
        table = settings.get("table")
        if not isinstance(table, list) or not table:
            problems.append(f"connector {conn!r}: table must be a non-empty list")
            continue
        for index, entry in enumerate(table):
            route = _dict(entry)
            where = f"connector {conn!r} table[{index}]"
            if bool(route.get("condition")) == bool(route.get("statement")):
                problems.append(f"{where}: exactly one of condition or statement")
            if not route.get("pipelines"):
                problems.append(f"{where}: pipelines must be non-empty")
            if route.get("context", "") not in ROUTING_CONTEXTS:
                problems.append(f"{where}: unexpected context {route.get('context')!r}")
    return problems


SCHEMA = ROOT / "otel_audit" / "schema" / "audit-record-1.0.schema.json"
CATEGORY_VALUE = re.compile(r'attributes\["audit\.category"\] == "([^"]*)"')
CATEGORY_TERM = re.compile(rf"^{CATEGORY_VALUE.pattern}$")


def _categories() -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return [str(value) for value in schema["properties"]["category"]["enum"]]


def check_routing_categories(cfg: Config) -> list[str]:
    """Routes compare audit.category only with categories the record schema defines."""
    known = set(_categories())
    problems: list[str] = []
    for conn, settings in _section(cfg, "connectors").items():
        for route in _dict(settings).get("table") or []:
            texts = [_dict(route).get("condition"), _dict(route).get("statement")]
            for text in (t for t in texts if isinstance(t, str)):
                for name in CATEGORY_VALUE.findall(text):
                    if name not in known:
                        problems.append(f"connector {conn!r}: unknown audit.category {name!r}")
    return problems


KEYS_FILE = CONFIG_DIR / "component-keys.yaml"
COMPONENT_KEYS: dict[str, Any] = _load(KEYS_FILE)
SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")


def _unknown_options(value: Any, spec: Any, where: str) -> Iterator[str]:
    """Paths under ``where`` whose key ``spec`` (component-keys.yaml notation) lacks."""
    if not isinstance(spec, dict):
        return
    if isinstance(value, list) and "[]" in spec:
        for index, item in enumerate(value):
            yield from _unknown_options(item, spec["[]"], f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, sub in value.items():
            if key in spec:
                yield from _unknown_options(sub, spec[key], f"{where}.{key}")
            elif "*" in spec:
                yield from _unknown_options(sub, spec["*"], f"{where}.{key}")
            else:
                yield f"{where}.{key}"


def check_known_options(cfg: Config) -> list[str]:
    """Every option is one its component type has (a typo would only fail at startup)."""
    problems: list[str] = []
    for section in SECTIONS:
        table = _dict(COMPONENT_KEYS.get(section))
        for comp, settings in _section(cfg, section).items():
            kind = _kind(comp, exporter=section == "exporters")
            if kind not in table:
                problems.append(
                    f"{section}.{comp}: no option table for {kind!r} in {KEYS_FILE.name}"
                )
                continue
            for path in _unknown_options(settings, _dict(table[kind]).get("keys"), comp):
                problems.append(f"{section}.{path}: unknown option")
    return problems


def check_error_modes(cfg: Config) -> list[str]:
    """An OTTL error must not drop the payload: error_mode ignore (or silent)."""
    problems: list[str] = []
    for section in ("processors", "connectors"):
        for comp, settings in _section(cfg, section).items():
            if _kind(comp) in {"transform", "routing"}:
                mode = _dict(settings).get("error_mode")
                if mode not in {"ignore", "silent"}:
                    problems.append(f"{section}.{comp}: error_mode {mode!r} drops the payload")
    return problems


CHECKS: list[Check] = [
    check_references,
    check_extension_refs,
    check_body_untouched,
    check_no_batch_processor,
    check_memory_limiter_first,
    check_tls,
    check_queue_and_retry,
    check_file_log,
    check_routing,
    check_routing_categories,
    check_known_options,
    check_error_modes,
]


# --------------------------------------------------------------------------- the real files


@pytest.mark.parametrize("path", ALL_YAML, ids=_rel)
def test_every_yaml_file_parses(path: Path) -> None:
    assert _load(path) is not None


def test_the_documented_configs_exist() -> None:
    names = {_rel(path) for path in COLLECTOR_CONFIGS}
    assert {"agent.yaml", "gateway.yaml", "gateway-opensearch.yaml"} <= names


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=_rel)
def test_shipped_config_passes(path: Path, check: Check) -> None:
    assert check(_load(path)) == []


def test_readme_documents_every_config_and_env_var() -> None:
    text = README.read_text(encoding="utf-8")
    for path in COLLECTOR_CONFIGS:
        assert _rel(path) in text, f"README does not describe {_rel(path)}"
        for var in sorted(set(ENV_REF.findall(path.read_text(encoding="utf-8")))):
            assert f"`{var}`" in text, f"README does not document {var} ({_rel(path)})"


def test_readme_points_to_the_rotel_files() -> None:
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^#+ rotel\b(.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL)
    assert section is not None
    assert "rotel/README.md" in section.group(1)


# --------------------------------------------------------------------------- broken copies


def _config(name: str) -> Config:
    return copy.deepcopy(_load(CONFIG_DIR / name))


@pytest.fixture
def agent() -> Config:
    return _config("agent.yaml")


@pytest.fixture
def gateway() -> Config:
    return _config("gateway.yaml")


@pytest.fixture
def gateway_os() -> Config:
    return _config("gateway-opensearch.yaml")


def _fails(check: Check, cfg: Config, fragment: str) -> None:
    problems = check(cfg)
    assert any(fragment in problem for problem in problems), problems


def test_undefined_exporter_is_caught(gateway: Config) -> None:
    gateway["service"]["pipelines"]["logs/intake"]["exporters"].append("kafka/missing")
    _fails(check_references, gateway, "exporter 'kafka/missing' is not defined")


def test_undefined_processor_is_caught(agent: Config) -> None:
    del agent["processors"]["transform/store_index"]
    _fails(check_references, agent, "processor 'transform/store_index' is not defined")


def test_undefined_receiver_is_caught(agent: Config) -> None:
    agent["receivers"]["filelog/other"] = agent["receivers"].pop("file_log/store")
    _fails(check_references, agent, "receiver 'file_log/store' is not defined")


def test_connector_without_receiving_pipeline_is_caught(gateway: Config) -> None:
    pipelines = gateway["service"]["pipelines"]
    del pipelines["logs/siem"], pipelines["logs/siem_priority"]
    _fails(check_references, gateway, "is no pipeline's receiver")


def test_connector_without_exporting_pipeline_is_caught(gateway: Config) -> None:
    gateway["service"]["pipelines"]["logs/intake"]["exporters"].remove("routing/siem")
    _fails(check_references, gateway, "no pipeline exports to it")


def test_route_to_missing_pipeline_is_caught(gateway: Config) -> None:
    gateway["connectors"]["routing/siem"]["table"][0]["pipelines"] = ["logs/nowhere"]
    _fails(check_references, gateway, "undefined pipeline 'logs/nowhere'")


def test_route_to_pipeline_the_connector_does_not_feed_is_caught(gateway: Config) -> None:
    gateway["service"]["pipelines"]["logs/siem"]["receivers"] = ["otlp"]
    _fails(check_references, gateway, "which it does not feed")


def test_undefined_service_extension_is_caught(agent: Config) -> None:
    agent["service"]["extensions"].append("pprof")
    _fails(check_references, agent, "undefined extension 'pprof'")


def test_queue_storage_naming_an_undefined_extension_is_caught(gateway: Config) -> None:
    gateway["exporters"]["splunk_hec/audit"]["sending_queue"]["storage"] = "file_storage/gone"
    _fails(check_extension_refs, gateway, "'file_storage/gone' is not defined")


def test_storage_extension_not_enabled_is_caught(agent: Config) -> None:
    agent["service"]["extensions"].remove("file_storage/offsets")
    _fails(check_extension_refs, agent, "'file_storage/offsets' is not in service.extensions")


def test_undefined_authenticator_is_caught(gateway_os: Config) -> None:
    del gateway_os["extensions"]["basicauth/opensearch"]
    gateway_os["service"]["extensions"].remove("basicauth/opensearch")
    _fails(check_extension_refs, gateway_os, "'basicauth/opensearch' is not defined")


@pytest.mark.parametrize(
    "statement",
    [
        'set(body, "redacted")',
        'set(log.body, "redacted")',
        'replace_pattern(body, "\\\\d{16}", "****")',
        'merge_maps(body, cache, "upsert")',
        'delete_key(body, "actor")',
        "flatten(body)",
        'truncate_all(body["context"], 10)',
    ],
)
def test_transform_writing_the_body_is_caught(agent: Config, statement: str) -> None:
    statements = agent["processors"]["transform/store_index"]["log_statements"][0]["statements"]
    statements.append(statement)
    _fails(check_body_untouched, agent, "writes the body")


def test_transform_in_basic_syntax_is_inspected_too(gateway: Config) -> None:
    gateway["processors"]["transform/mask"] = {"log_statements": ['set(body, "x")']}
    gateway["service"]["pipelines"]["logs/intake"]["processors"].append("transform/mask")
    _fails(check_body_untouched, gateway, "writes the body")


def test_transform_reading_the_body_is_allowed(agent: Config) -> None:
    statements = agent["processors"]["transform/store_index"]["log_statements"][0]["statements"]
    assert any("ParseJSON(body)" in s for s in statements)
    assert check_body_untouched(agent) == []


@pytest.mark.parametrize("kind", ["logstransform", "redaction", "filter", "sumologic"])
def test_body_rewriting_or_unknown_processor_is_caught(gateway: Config, kind: str) -> None:
    gateway["processors"][f"{kind}/x"] = {}
    gateway["service"]["pipelines"]["logs/siem"]["processors"] = [f"{kind}/x"]
    _fails(check_body_untouched, gateway, f"processor '{kind}/x'")


def test_file_log_operator_is_caught(agent: Config) -> None:
    agent["receivers"]["file_log/store"]["operators"] = [
        {"type": "json_parser", "parse_from": "body", "parse_to": "body"}
    ]
    _fails(check_body_untouched, agent, "'operators' would change the line")


def test_batch_processor_is_caught(gateway: Config) -> None:
    gateway["processors"]["batch"] = {"timeout": "200ms"}
    gateway["service"]["pipelines"]["logs/intake"]["processors"].append("batch")
    _fails(check_no_batch_processor, gateway, "use sending_queue.batch")
    assert check_body_untouched(gateway) == []  # reported once, by its own check


def test_memory_limiter_not_first_is_caught(agent: Config) -> None:
    agent["service"]["pipelines"]["logs/store"]["processors"].reverse()
    _fails(check_memory_limiter_first, agent, "pipeline logs/store")


def test_memory_limiter_missing_is_caught(gateway: Config) -> None:
    del gateway["service"]["pipelines"]["logs/intake"]["processors"]
    _fails(check_memory_limiter_first, gateway, "pipeline logs/intake")


@pytest.mark.parametrize("version", ["1.2", 1.3, None])
def test_receiver_below_tls_1_3_is_caught(gateway: Config, version: Any) -> None:
    gateway["receivers"]["otlp"]["protocols"]["grpc"]["tls"]["min_version"] = version
    _fails(check_tls, gateway, "receiver 'otlp' grpc: tls.min_version")


def test_receiver_without_client_ca_is_caught(gateway: Config) -> None:
    del gateway["receivers"]["otlp"]["protocols"]["http"]["tls"]["client_ca_file"]
    _fails(check_tls, gateway, "tls.client_ca_file is required")


def test_receiver_without_tls_is_caught_unless_loopback(agent: Config) -> None:
    assert check_tls(agent) == []  # the agent listens on 127.0.0.1 only
    agent["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = "0.0.0.0:4317"
    _fails(check_tls, agent, "receiver 'otlp' grpc: listens on 0.0.0.0:4317 without tls")


def test_exporter_below_tls_1_3_is_caught(agent: Config) -> None:
    agent["exporters"]["otlp_grpc/gateway"]["tls"]["min_version"] = "1.2"
    _fails(check_tls, agent, "exporter 'otlp_grpc/gateway'")


def test_exporter_without_tls_is_caught(gateway_os: Config) -> None:
    del gateway_os["exporters"]["opensearch/search"]["http"]["tls"]
    _fails(check_tls, gateway_os, "exporter 'opensearch/search': no tls block")


def test_exporter_skipping_verification_is_caught(gateway: Config) -> None:
    gateway["exporters"]["splunk_hec/audit"]["tls"]["insecure_skip_verify"] = True
    _fails(check_tls, gateway, "verification is switched off")


def test_plain_http_search_endpoint_is_caught(gateway: Config) -> None:
    gateway["exporters"]["elasticsearch/search"]["endpoints"] = ["http://es:9200"]
    _fails(check_tls, gateway, "plain http endpoint")


def test_s3_without_tls_is_caught(gateway: Config) -> None:
    gateway["exporters"]["awss3/archive"]["s3uploader"]["disable_ssl"] = True
    _fails(check_tls, gateway, "disable_ssl must be false")


def test_queue_without_storage_is_caught(agent: Config) -> None:
    del agent["exporters"]["otlp_grpc/gateway"]["sending_queue"]["storage"]
    _fails(check_queue_and_retry, agent, "sending_queue: no storage extension")


def test_queue_on_storage_without_fsync_is_caught(gateway: Config) -> None:
    gateway["extensions"]["file_storage/queue"]["fsync"] = False
    _fails(check_queue_and_retry, gateway, "does not set fsync: true")


def test_queue_dropping_when_full_is_caught(gateway: Config) -> None:
    gateway["exporters"]["awss3/archive"]["sending_queue"]["block_on_overflow"] = False
    _fails(check_queue_and_retry, gateway, "a full queue must block")


@pytest.mark.parametrize("elapsed", ["300s", "5m", None])
def test_retry_with_time_limit_is_caught(gateway: Config, elapsed: Any) -> None:
    gateway["exporters"]["splunk_hec/priority"]["retry_on_failure"]["max_elapsed_time"] = elapsed
    _fails(check_queue_and_retry, gateway, "max_elapsed_time must be 0")


def test_retry_switched_off_is_caught(gateway_os: Config) -> None:
    gateway_os["exporters"]["otlp_grpc/siem"]["retry_on_failure"]["enabled"] = False
    _fails(check_queue_and_retry, gateway_os, "retry_on_failure.enabled must be true")


def test_elasticsearch_without_bulk_retry_is_caught(gateway: Config) -> None:
    gateway["exporters"]["elasticsearch/search"]["retry"]["enabled"] = False
    _fails(check_queue_and_retry, gateway, "retry.enabled and max_retries")


def test_file_log_without_offset_storage_is_caught(agent: Config) -> None:
    del agent["receivers"]["file_log/store"]["storage"]
    _fails(check_file_log, agent, "offsets: no storage extension")


def test_file_log_reading_compressed_segments_is_caught(agent: Config) -> None:
    del agent["receivers"]["file_log/store"]["exclude"]
    _fails(check_file_log, agent, "segments must be excluded")


def test_file_log_starting_at_end_is_caught(agent: Config) -> None:
    agent["receivers"]["file_log/store"]["start_at"] = "end"
    _fails(check_file_log, agent, "start_at must be beginning")


def test_file_log_flushing_partial_lines_is_caught(agent: Config) -> None:
    del agent["receivers"]["file_log/store"]["force_flush_period"]  # default 500ms
    _fails(check_file_log, agent, "force_flush_period must be 0")


def test_file_log_giving_up_is_caught(agent: Config) -> None:
    agent["receivers"]["file_log/store"]["retry_on_failure"]["max_elapsed_time"] = "5m"
    _fails(check_file_log, agent, "retry_on_failure must be on")


def test_routing_match_once_is_caught(gateway: Config) -> None:
    gateway["connectors"]["routing/siem"]["match_once"] = True
    _fails(check_routing, gateway, "match_once was removed")


def test_routing_error_mode_propagate_is_caught(gateway: Config) -> None:
    gateway["connectors"]["routing/siem"]["error_mode"] = "propagate"
    _fails(check_error_modes, gateway, "connectors.routing/siem: error_mode 'propagate'")


def test_transform_error_mode_propagate_is_caught(agent: Config) -> None:
    del agent["processors"]["transform/store_index"]["error_mode"]
    _fails(check_error_modes, agent, "processors.transform/store_index: error_mode None")


@pytest.mark.parametrize(
    ("section", "component", "path"),
    [
        ("exporters", "otlp_grpc/gateway", ("tls", "min_verison")),
        ("exporters", "otlp_grpc/gateway", ("retry_on_failure", "max_elapsed")),
        ("exporters", "otlp_grpc/gateway", ("sending_queue", "batch", "flush_interval")),
        ("receivers", "file_log/store", ("start_from",)),
        ("extensions", "file_storage/queue", ("fsynch",)),
        ("receivers", "otlp", ("protocols", "grpc", "max_recv_msg_size")),
    ],
)
def test_misspelt_option_is_caught(
    agent: Config, section: str, component: str, path: tuple[str, ...]
) -> None:
    node = agent[section][component]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "x"
    _fails(check_known_options, agent, f"{section}.{component}.{'.'.join(path)}: unknown option")


def test_misspelt_server_tls_option_is_caught(gateway: Config) -> None:
    tls = gateway["receivers"]["otlp"]["protocols"]["http"]["tls"]
    tls["client_ca"] = tls.pop("client_ca_file")
    _fails(check_known_options, gateway, "receivers.otlp.protocols.http.tls.client_ca")
    _fails(check_tls, gateway, "tls.client_ca_file is required")


def test_misspelt_route_option_is_caught(gateway: Config) -> None:
    gateway["connectors"]["routing/siem"]["table"][0]["pipeline"] = ["logs/siem"]
    _fails(check_known_options, gateway, "connectors.routing/siem.table[0].pipeline")


def test_component_without_option_table_is_caught(gateway: Config) -> None:
    gateway["exporters"]["kafka/siem"] = {"brokers": ["kafka:9093"]}
    _fails(check_known_options, gateway, "no option table for 'kafka'")


def test_deprecated_type_names_map_to_the_current_ones(agent: Config) -> None:
    agent["exporters"]["otlp/gateway"] = agent["exporters"].pop("otlp_grpc/gateway")
    agent["receivers"]["filelog/store"] = agent["receivers"].pop("file_log/store")
    for spec in agent["service"]["pipelines"].values():
        spec["exporters"] = ["otlp/gateway"]
    agent["service"]["pipelines"]["logs/store"]["receivers"] = ["filelog/store"]
    for check in CHECKS:
        assert check(agent) == [], check.__name__


def test_routing_route_with_condition_and_statement_is_caught(gateway: Config) -> None:
    route = gateway["connectors"]["routing/siem"]["table"][0]
    route["statement"] = "route() where true"
    _fails(check_routing, gateway, "exactly one of condition or statement")


# --------------------------------------------------------------------------- routing by category


def _route(cfg: Config, connector: str, category: str | None) -> list[str]:
    """The pipelines a record with this audit.category takes (first match wins).

    Understands only conditions of the form ``attributes["audit.category"] == "x"``
    joined by ``or``; anything else fails here, so a new condition gets a test.
    """
    settings = _settings(_section(cfg, "connectors"), connector)
    for route in settings["table"]:
        terms = [term.strip() for term in str(route["condition"]).split(" or ")]
        matches = [CATEGORY_TERM.match(term) for term in terms]
        assert all(matches), f"cannot evaluate {route['condition']!r}"
        if category in {match.group(1) for match in matches if match}:
            return [str(p) for p in route["pipelines"]]
    return [str(p) for p in settings.get("default_pipelines") or []]


def test_gateway_routes_every_category_to_the_siem() -> None:
    cfg = _load(CONFIG_DIR / "gateway.yaml")
    for category in [*_categories(), None]:
        expected = (
            ["logs/siem_priority"] if category in {"security", "authentication"} else ["logs/siem"]
        )
        assert _route(cfg, "routing/siem", category) == expected, category


def test_opensearch_gateway_sends_the_siem_its_subset() -> None:
    cfg = _load(CONFIG_DIR / "gateway-opensearch.yaml")
    for category in [*_categories(), None]:
        expected = ["logs/siem"] if category in {"security", "authentication", "integrity"} else []
        assert _route(cfg, "routing/siem", category) == expected, category


def test_a_misspelt_category_is_caught(gateway: Config) -> None:
    route = gateway["connectors"]["routing/siem"]["table"][0]
    route["condition"] = route["condition"].replace('"authentication"', '"authentification"')
    _fails(check_routing_categories, gateway, "unknown audit.category 'authentification'")


# --------------------------------------------------------------------------- verify reads it


def _export_request(batch: list[SealedRecord]) -> bytes:
    """One OTLP/JSON ExportLogsServiceRequest, as the file exporter writes a batch per line
    (64-bit integers as strings, the sealed record as the string body)."""
    records = [
        {
            "timeUnixNano": "1767225600000000000",
            "body": {"stringValue": sealed.line.decode("utf-8")},
            "attributes": [
                {"key": "audit.category", "value": {"stringValue": sealed.category}},
                {"key": "audit.seq", "value": {"intValue": str(sealed.seq)}},
            ],
        }
        for sealed in batch
    ]
    request = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    return json.dumps(request, separators=(",", ":")).encode()


def _sealed_batches() -> tuple[SigningKey, list[SealedRecord], list[list[SealedRecord]]]:
    key = SigningKey.generate("collector-config-test")
    _, sealed = seal_stream(key, 60, checkpoint_every=16)
    return key, sealed, [sealed[i : i + 7] for i in range(0, len(sealed), 7)]


def test_verification_files_as_configured_are_read_by_verify(tmp_path: Path) -> None:
    """The file exporter's path from gateway.yaml, plus a rotated file under the rotating
    writer's backup name (``<stem>-<UTC time>.<ext>``), batches out of order."""
    configured = _load(CONFIG_DIR / "gateway.yaml")["exporters"]["file/verify"]["path"]
    active = Path(configured.replace("${env:OTEL_AUDIT_VERIFY_DIR}", str(tmp_path)))
    rotated = active.with_name(f"{active.stem}-2026-12-03T21-50-00.000{active.suffix}")
    key, sealed, batches = _sealed_batches()
    rotated.write_bytes(b"".join(_export_request(b) + b"\n" for b in reversed(batches[:5])))
    active.write_bytes(b"".join(_export_request(b) + b"\n" for b in batches[5:]))

    report = verify_paths([str(tmp_path)], [key.verifier()])

    assert report.intact(strict=True), report.summary()
    assert (report.files, report.records) == (2, len(sealed))


def test_archive_objects_are_read_by_verify(tmp_path: Path) -> None:
    """awss3 with ``marshaler: otlp_json`` and gzip: one export request per object."""
    key, sealed, batches = _sealed_batches()
    hour = tmp_path / "otel-audit" / "year=2026" / "month=12" / "day=03" / "hour=21"
    hour.mkdir(parents=True)
    for index, batch in enumerate(batches):
        (hour / f"audit-{index:04d}.json.gz").write_bytes(gzip.compress(_export_request(batch)))

    report = verify_paths([str(tmp_path)], [key.verifier()])

    assert report.intact(strict=True), report.summary()
    assert report.records == len(sealed)


def test_a_body_rewritten_in_the_collector_is_reported(tmp_path: Path) -> None:
    """Why no processor may touch the body: a masked value is a `modified` record."""
    key, sealed, batches = _sealed_batches()
    lines = [_export_request(b) for b in batches]
    victim = sealed[3].record["actor"]["user_id"]
    lines[0] = lines[0].replace(victim.encode(), b"****", 1)
    (tmp_path / "audit-otlp.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))

    report = verify_paths([str(tmp_path)], [key.verifier()])

    assert "modified" in report.kinds()
