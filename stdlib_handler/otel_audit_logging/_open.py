"""Opening a handler's pipeline: signer, store, OTLP and plugin sinks (DESIGN §2).

Shared by :class:`~otel_audit_logging.AuditHandler` (``sealing="thread"``: the pipeline
runs in the application's process) and the sealing process of ``sealing="process"``
(:mod:`otel_audit_logging._sealer`), so both build exactly the same pipeline from the
same :class:`~otel_audit_logging._config.HandlerSettings`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Final

from otel_audit.errors import AuditError, KeyFormatError
from otel_audit.keys import SigningKey
from otel_audit.pipeline import AuditPipeline
from otel_audit.plugins import Plugins
from otel_audit.store import open_store
from otel_audit_logging._config import HandlerSettings

__all__ = ["GENERATED_KEY_FILE", "SPILL_DIR", "open_pipeline", "report"]

#: Where a handler without ``key_file`` keeps its generated development key.
GENERATED_KEY_FILE: Final = "audit.key"
#: The pipeline's spill directory inside the store (or worker slot) it writes to.
SPILL_DIR: Final = ".spill"
_DEV_KEY_NAME: Final = "otel-audit-dev"
_OTLP_SPOOL_DIR: Final = ".otlp-spool"

_internal = logging.getLogger("otel_audit.internal")  # the core's non-propagating logger


def report(level: int, message: str, *args: object) -> None:
    """Log on the core's internal logger (stderr), whatever the application configured."""
    # dictConfig(disable_existing_loggers=True) disables loggers it does not name;
    # a lost audit record must still be reported.
    _internal.disabled = False
    _internal.log(level, "otel-audit: " + message, *args)


def open_pipeline(
    settings: HandlerSettings,
    signer: SigningKey | None,
    plugins: Plugins | None,
    **options: Any,
) -> AuditPipeline:
    """The store (or a free worker slot of it), the sinks and a running pipeline.

    ``signer`` None: the store's development key (generated once, with a warning).
    ``options`` go to :class:`~otel_audit.pipeline.AuditPipeline` (e.g. ``max_block_ms``).
    """
    signer = signer or _development_key(settings.store, settings.key_name)
    store = open_store(settings.store, fsync_interval_ms=settings.fsync_interval_ms)
    sinks: list[Any] = [store]
    try:
        if settings.otlp_endpoint is not None:
            otlp = _open_otlp(settings, store.directory)
            if otlp is not None:
                # before the store: a batch is in the OTLP spool (fsynced) before the
                # store can record a checkpoint that vouches for it (no OTLP gap)
                sinks.insert(0, otlp)
        if settings.sinks and plugins is not None:
            sinks += plugins.sinks(settings.sinks)  # e.g. "cef:path=/x/audit.cef"
        return AuditPipeline(
            signer,
            sinks,
            service_name=settings.service_name,
            strict=settings.strict,
            checkpoint_every=settings.checkpoint_every,
            checkpoint_interval_ms=settings.checkpoint_interval_ms,
            previous_checkpoint=store.previous_checkpoint(),
            spill_dir=store.directory / SPILL_DIR,
            plugins=plugins,
            **options,
        )
    except BaseException:
        for sink in sinks:
            sink.close()
        raise


def _open_otlp(settings: HandlerSettings, store_dir: Path) -> Any:
    """The OTLP sink, or None (reported) when it cannot be made: the records then still
    reach the store, sealed, instead of being lost with the pipeline."""
    try:
        # imported here: gRPC and the OTLP exporters only load when OTLP is used
        from otel_audit.otlp import OTLPSink  # noqa: PLC0415

        return OTLPSink(
            None if settings.otlp_endpoint == "env" else settings.otlp_endpoint,
            protocol=settings.otlp_protocol,
            headers=settings.otlp_headers,
            body="map" if settings.otlp_body == "map" else "string",
            service_name=settings.service_name,
            spool_dir=store_dir / _OTLP_SPOOL_DIR,
        )
    except Exception as exc:  # noqa: BLE001 - the store must still get the records
        report(
            logging.ERROR,
            "OTLP delivery to %s is OFF for this stream (%s); records go to the store %s only",
            settings.otlp_endpoint,
            exc,
            store_dir,
        )
        return None


def _development_key(store: Path, name: str | None) -> SigningKey:
    """Load ``<store>/audit.key``, creating it first if needed; warn that it is for development."""
    path = store / GENERATED_KEY_FILE
    created = False
    for _ in range(100):
        try:
            key = SigningKey.from_file(path)
            break
        except FileNotFoundError:
            pass
        except KeyFormatError:
            # another process may be between writing the key and its .vkey
            if Path(f"{path}.vkey").exists():
                raise
            time.sleep(0.01)
            continue
        store.mkdir(parents=True, exist_ok=True, mode=0o750)
        key = SigningKey.generate(name or _DEV_KEY_NAME)
        try:
            key.write(path)
        except FileExistsError:
            continue  # another process won the race: load its key
        created = True
        break
    else:
        raise AuditError(f"cannot create or load the development key {path}")
    report(
        logging.WARNING,
        "%s the development signing key %s: anyone who can change the audit log can also "
        "re-sign it with this key. Configure key_file= (OTEL_AUDIT_KEY_FILE) for production; "
        "verify with --key %s.vkey",
        "generated" if created else "using",
        path,
        path,
    )
    return key
