"""``OTLPSink``: ship sealed records over OTLP (gRPC or HTTP/protobuf) without losing one.

A :class:`~otel_audit.pipeline.Sink` for the core pipeline. Each
:class:`~otel_audit.sealing.SealedRecord` becomes one OTel log record (DESIGN §2): the
body is the sealed wire line as a JSON string (or, with ``body="map"``, the record as
a map), ``event_name`` is ``audit.<category>.<action lower-case>``, and flat attributes
(semantic conventions plus ``audit.*``) serve search; the verifier trusts the body only.
The records go through ``opentelemetry-exporter-otlp``'s own ``OTLPLogExporter``, so
the standard ``OTEL_EXPORTER_OTLP_*`` variables configure it (see docs/otlp.md).

Delivery (DESIGN §6): :meth:`OTLPSink.write` only queues the batch (in memory, or on
disk when the memory bound is reached) and returns; a sender thread exports batches in
order. A failed export (after the exporter's own bounded retries) is retried with
exponential backoff; meanwhile every pending batch is written to an fsynced, bounded
disk spool (and to the ``backup`` sink, if any), new batches queue behind them, and the
spool is replayed in order once the collector answers again — also by the next process
that uses the same spool directory. A retry can deliver a batch twice; the verifier
counts byte-identical copies once. :meth:`OTLPSink.flush` and :meth:`OTLPSink.close`
raise :class:`DeliveryError` (the pipeline then reports False) while anything is not
delivered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import grpc
import orjson
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpExporter,
)
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_audit._otlp_spool import Spool, SpoolFullError
from otel_audit._otlp_wire import (
    BodyMode,
    RequestEncoder,
    _log_record,
    log_records,
    make_resource,
)
from otel_audit.errors import AuditError
from otel_audit.pipeline import Sink
from otel_audit.sealing import SealedRecord

__all__ = [
    "DeliveryError",
    "OTLPSink",
    "OTLPStats",
    "SpoolFullError",
    "log_records",
    "make_exporter",
    "make_resource",
    "resolve_protocol",
]

internal_log = logging.getLogger("otel_audit.internal")  # non-propagating (see pipeline.py)

_Pair = tuple[Mapping[str, Any], bytes]  # a sealed record and its wire line
# Protobuf bytes of one log record beyond its body: fields, attributes, framing (a
# generous bound; the attributes of DESIGN §2 repeat values of the record, ≤ 8 KiB each)
_RECORD_OVERHEAD = 1024


class DeliveryError(AuditError):
    """Records are not (yet) delivered to the collector; they wait in the spool."""


class OTLPStats:
    """Counters, readable at any time (plain ints)."""

    __slots__ = (
        "alerts",
        "backed_up",
        "delivered",
        "export_failures",
        "replayed",
        "spool_full",
        "spooled",
    )

    def __init__(self) -> None:
        self.delivered = 0  # records the collector accepted
        self.export_failures = 0  # failed export attempts (each after the exporter's retries)
        self.spooled = 0  # records spooled because delivery failed or memory ran short
        self.replayed = 0  # records delivered from the disk spool
        self.backed_up = 0  # records written to the backup sink
        self.spool_full = 0  # records refused because the spool was full
        self.alerts = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


# -- the exporter ------------------------------------------------------------------------


class _Encoded:
    """A batch already in OTLP wire form (see :class:`_GrpcExporter`)."""

    __slots__ = ("count", "request")

    def __init__(self, request: Any, count: int) -> None:
        self.request = request
        self.count = count

    def __len__(self) -> int:  # the SDK exporter counts a batch with len()
        return self.count


class _GrpcExporter(GrpcExporter):
    """The SDK's gRPC log exporter (its channel, TLS, headers, retries and metrics) that
    also sends a batch :class:`~otel_audit._otlp_wire.RequestEncoder` encoded, instead of
    running the SDK's encoder (a median 58 µs a record, against 28 µs, in one run)."""

    def _translate_data(self, data: Any) -> Any:
        if isinstance(data, _Encoded):
            return data.request
        return super()._translate_data(data)


def resolve_protocol(given: str | None) -> str:
    """``given``, else ``OTEL_EXPORTER_OTLP_LOGS_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``,
    else ``grpc``; ValueError unless it is ``grpc`` or ``http/protobuf`` (``http``)."""
    value = (
        given
        or os.environ.get("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if value in ("grpc",):
        return "grpc"
    if value in ("http/protobuf", "http"):
        return "http/protobuf"
    raise ValueError(f"OTLP protocol must be 'grpc' or 'http/protobuf', got {value!r}")


def _headers(given: Mapping[str, str] | str | None) -> dict[str, str] | None:
    """A mapping as it is, or text in the ``OTEL_EXPORTER_OTLP_HEADERS`` form (OTel
    specification, "Specifying headers via environment variables": ``key=value`` pairs
    separated by commas, percent-encoded as in W3C Baggage)."""
    if given is None or isinstance(given, Mapping):
        return dict(given) if given else None
    headers: dict[str, str] = {}
    for part in given.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            headers[unquote(key).strip().lower()] = unquote(value).strip()
    return headers or None


def make_exporter(
    endpoint: str | None = None,
    *,
    protocol: str | None = None,
    headers: Mapping[str, str] | str | None = None,
    insecure: bool | None = None,
    certificate_file: str | None = None,
    client_key_file: str | None = None,
    client_certificate_file: str | None = None,
    timeout_s: float | None = None,
) -> LogRecordExporter:
    """An ``opentelemetry-exporter-otlp`` ``OTLPLogExporter`` for ``protocol`` (``grpc`` or
    ``http/protobuf``; default ``OTEL_EXPORTER_OTLP_[LOGS_]PROTOCOL``, else ``grpc``).

    Arguments win; what is not given comes from the standard ``OTEL_EXPORTER_OTLP_*``
    variables, read by the exporter itself. ``endpoint`` is a base URL like
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (HTTP gets ``/v1/logs`` appended when the URL has no
    path); without a scheme it means plaintext ``http://``.
    """
    chosen = resolve_protocol(protocol)
    if endpoint is not None and "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    header_map = _headers(headers)
    env_timeout = os.environ.get("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    )
    if timeout_s is None and not env_timeout:
        timeout_s = 5.0  # one attempt (with the exporter's own quick retries) stays bounded
    if chosen == "grpc":
        credentials = None
        if certificate_file or client_certificate_file:

            def _read(path: str | None) -> bytes | None:
                return Path(path).read_bytes() if path else None

            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(certificate_file),
                private_key=_read(client_key_file),
                certificate_chain=_read(client_certificate_file),
            )
            insecure = False
        return _GrpcExporter(
            endpoint=endpoint,
            insecure=insecure,
            credentials=credentials,
            headers=header_map,
            timeout=timeout_s,
        )
    if endpoint is not None and urlparse(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/logs"
    return HttpExporter(
        endpoint=endpoint,
        certificate_file=certificate_file,
        client_key_file=client_key_file,
        client_certificate_file=client_certificate_file,
        headers=header_map,
        timeout=timeout_s,
    )


# -- the sink ----------------------------------------------------------------------------


class _Entry:
    """One batch, in memory (``sealed``) and/or on disk (``path``)."""

    __slots__ = ("backed_up", "count", "path", "sealed")

    def __init__(self, sealed: list[SealedRecord] | None, path: Path | None, count: int) -> None:
        self.sealed = sealed
        self.path = path
        self.count = count
        self.backed_up = False


class OTLPSink:
    """A pipeline :class:`~otel_audit.pipeline.Sink` that exports sealed records over OTLP.

    ``spool_dir`` must belong to this process alone (it is locked); batches left there by
    an earlier process are sent first. ``backup`` (any Sink, e.g. a
    :class:`~otel_audit.store.LocalStore`) receives every batch that the collector did not
    take at the first attempt. With ``durable`` (the default) every batch is fsynced to the
    spool before :meth:`write` returns and removed once the collector has taken it, so a
    crash (SIGKILL) loses no batch the pipeline handed over: the next process sends it
    (perhaps a second time; the verifier counts identical copies once). ``durable=False``
    spools only when delivery fails or memory runs short. ``on_alert`` is called with a
    message when delivery starts failing, when the spool is full, and when it recovers.
    A batch goes out in requests of at most ``max_request_bytes`` (about; gRPC receivers
    refuse messages over 4 MiB by default, and a refused request would be retried forever).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        protocol: str | None = None,
        headers: Mapping[str, str] | str | None = None,
        insecure: bool | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        timeout_s: float | None = None,
        service_name: str | None = None,
        instance_id: str | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        body: BodyMode = "string",
        spool_dir: str | os.PathLike[str] = "./otel-audit-spool",
        spool_max_bytes: int = 256 * 2**20,
        max_memory_records: int = 65_536,
        durable: bool = True,
        retry_initial_s: float = 0.25,
        retry_max_s: float = 5.0,
        flush_timeout_s: float = 10.0,
        max_request_bytes: int = 3 * 2**20,
        backup: Sink | None = None,
        on_alert: Callable[[str], None] | None = None,
        exporter: LogRecordExporter | None = None,
    ) -> None:
        if body not in ("string", "map"):
            raise ValueError(f"body must be 'string' or 'map', got {body!r}")
        self.stats = OTLPStats()
        self.body: BodyMode = body
        self.resource = make_resource(service_name, instance_id, resource_attributes)
        self.exporter = exporter or make_exporter(
            endpoint,
            protocol=protocol,
            headers=headers,
            insecure=insecure,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            timeout_s=timeout_s,
        )
        # our encoder needs string bodies, gRPC, and the SDK exporter's private
        # _translate_data hook (1.45); otherwise the SDK encodes
        own_encoding = (
            body == "string"
            and isinstance(self.exporter, _GrpcExporter)
            and callable(getattr(GrpcExporter, "_translate_data", None))
        )
        self._encoder = RequestEncoder(self.resource) if own_encoding else None
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes)
        self._backup = backup
        self._refused: Sequence[SealedRecord] | None = None  # the last batch a full spool refused
        #: called with each alert message (on the sender thread); when None, the
        #: AuditPipeline the sink is given to binds it to ``AuditPipeline.alert``
        self.on_alert = on_alert
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._flush_timeout = flush_timeout_s
        self._max_request = max_request_bytes
        self._max_memory = max_memory_records
        self._durable = durable
        self._cond = threading.Condition()
        self._entries: deque[_Entry] = deque()
        for path in self.spool.pending():  # an earlier process's spool goes first, in order
            self._entries.append(_Entry(None, path, len(Spool.read(path))))
        self._in_memory = 0
        self._failing = False  # the last export failed: new batches go to the spool
        self._retry_at = 0.0  # monotonic time of the next attempt after a failure
        self._started = 0  # export attempts started (numbered from 1)
        self._last_failed = 0  # the number of the last attempt that failed
        self._stopping = False
        self._closed = False
        self._sender = threading.Thread(target=self._run, name="otel-audit-otlp", daemon=True)
        self._sender.start()

    @property
    def pending(self) -> int:
        """Records not delivered yet (in memory or spooled)."""
        with self._cond:
            return sum(e.count for e in self._entries)

    # -- Sink --------------------------------------------------------------------------------

    def write(self, batch: Sequence[SealedRecord]) -> None:
        """Queue ``batch`` behind everything pending; never waits for the network."""
        if not batch:
            return
        with self._cond:
            if self._closed:
                raise DeliveryError("OTLP sink is closed")
            entry = _Entry(list(batch), None, len(batch))
            # the pipeline retries a refused write with the same batch: back it up once
            entry.backed_up = batch is self._refused
            if self._failing:
                self._backup_entry(entry)
            try:
                if self._failing or self._in_memory + len(batch) > self._max_memory:
                    self._persist(entry)  # raises SpoolFullError when full
                    entry.sealed = None  # read back from the spool when its turn comes
                else:
                    if self._durable:
                        self._persist(entry, ahead=True)  # a crash cannot lose it
                    self._in_memory += entry.count
            except SpoolFullError:
                self._backup_entry(entry)  # refused here: the backup has it at least
                self._refused = batch
                raise
            self._refused = None
            self._entries.append(entry)
            self._cond.notify_all()

    def flush(self) -> None:
        """Wait (at most ``flush_timeout_s``) until everything written is delivered;
        :class:`DeliveryError` otherwise (what is left waits in the spool). Gives up early
        when an export attempt begun after the call fails."""
        self._wait_delivered(patient=False)

    def _wait_delivered(self, *, patient: bool) -> None:
        deadline = time.monotonic() + self._flush_timeout
        with self._cond:
            started = self._started
            while self._entries:
                left = deadline - time.monotonic()
                failed_since = not patient and self._last_failed > started
                if left <= 0 or failed_since or not self._sender.is_alive():
                    with contextlib.suppress(SpoolFullError, OSError):
                        self._spool_all()
                    raise DeliveryError(self._undelivered())
                self._cond.wait(left)

    def close(self) -> None:
        """Deliver what is pending (bounded by ``flush_timeout_s``), spool the rest, stop.

        Raises :class:`DeliveryError` when records remain undelivered: they stay in the
        spool for the next process that uses it."""
        with self._cond:
            if self._closed:
                return
        error: DeliveryError | None = None
        with self._cond:
            self._retry_at = 0.0  # closing: retry now, not after the backoff
            self._cond.notify_all()
        try:
            self._wait_delivered(patient=True)  # retries go on until the timeout
        except DeliveryError as exc:
            error = exc
        with self._cond:
            self._closed = self._stopping = True
            self._cond.notify_all()
        with contextlib.suppress(Exception):
            self.exporter.shutdown()  # type: ignore[no-untyped-call]  # aborts an export in its backoff
        self._sender.join(self._flush_timeout)
        with self._cond:
            with contextlib.suppress(SpoolFullError, OSError):
                self._spool_all()
            left = sum(e.count for e in self._entries)
        self.spool.close()
        if self._backup is not None:
            with contextlib.suppress(Exception):
                self._backup.flush()
        if left:
            raise error or DeliveryError(self._undelivered())

    # -- the sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while not self._stopping:
                    wait = self._retry_at - time.monotonic()
                    if self._entries and wait <= 0:
                        break
                    self._cond.wait(wait if self._entries else None)
                if self._stopping:
                    return
                entry = self._entries[0]
                self._started += 1
                attempt = self._started
            try:
                ok = self._export(entry)
            except Exception as exc:  # noqa: BLE001 - the sender must outlive any error
                self._report(f"OTLP export raised {exc!r}", alert=False)
                ok = False
            with self._cond:
                if ok:
                    self._entries.popleft()
                    self.stats.delivered += entry.count
                    if entry.sealed is not None:
                        self._in_memory -= entry.count
                    else:
                        self.stats.replayed += entry.count  # read back from the spool
                    if entry.path is not None:
                        self.spool.remove(entry.path)
                    if self._failing and not self._entries:
                        self._failing = False
                        self._report("OTLP delivery recovered; the spool is replayed", alert=True)
                    failures = 0
                    self._cond.notify_all()
                    continue
                self.stats.export_failures += 1
                self._last_failed = attempt
                failures += 1
                if not self._failing:
                    self._failing = True
                    self._report(
                        f"OTLP export failed: {self.pending_unlocked():,} record(s) go to the "
                        f"spool {self.spool.directory} and are retried with backoff",
                        alert=True,
                    )
                with contextlib.suppress(SpoolFullError, OSError):
                    self._spool_all()
                self._cond.notify_all()
                delay = min(self._retry_initial * 2 ** (failures - 1), self._retry_max)
                jitter = random.uniform(0.8, 1.2)  # noqa: S311 - not cryptographic
                self._retry_at = time.monotonic() + delay * jitter

    def pending_unlocked(self) -> int:
        return sum(e.count for e in self._entries)

    def _export(self, entry: _Entry) -> bool:
        if entry.sealed is not None:
            pairs = [(s.record, s.line) for s in entry.sealed]
        else:
            assert entry.path is not None
            pairs = [(orjson.loads(line), line) for line in Spool.read(entry.path)]
        # one request per chunk, each below the receivers' message limit; a retry of the
        # entry re-sends chunks already taken, which the verifier counts once
        for chunk in self._chunks(pairs):
            batch: Any
            if self._encoder is not None:  # string bodies over gRPC: our own encoder
                batch = _Encoded(self._encoder.request(chunk), len(chunk))
            else:
                batch = [_log_record(r, line, self.resource, self.body) for r, line in chunk]
            if self.exporter.export(batch) != LogRecordExportResult.SUCCESS:
                return False
        return True

    def _chunks(self, pairs: Sequence[_Pair]) -> Iterator[list[_Pair]]:
        """``pairs`` in order, cut where a request would pass ``max_request_bytes``."""
        chunk: list[_Pair] = []
        size = 0
        for pair in pairs:
            cost = len(pair[1]) + _RECORD_OVERHEAD
            if chunk and size + cost > self._max_request:
                yield chunk
                chunk, size = [], 0
            chunk.append(pair)
            size += cost
        if chunk:
            yield chunk

    # -- spool and backup (lock held) ---------------------------------------------------------

    def _persist(self, entry: _Entry, *, ahead: bool = False) -> None:
        if entry.sealed is None:
            return
        if entry.path is not None:  # written ahead: now it is spooled for real
            self.stats.spooled += entry.count
            return
        try:
            entry.path = self.spool.append([s.line for s in entry.sealed])
        except SpoolFullError as exc:
            self.stats.spool_full += entry.count
            self._report(str(exc), alert=True)
            raise
        if not ahead:
            self.stats.spooled += entry.count

    def _spool_all(self) -> None:
        """Make every pending in-memory batch durable (and backed up), in order."""
        for entry in self._entries:
            if entry.sealed is None:
                continue
            self._backup_entry(entry)
            self._persist(entry)
            self._in_memory -= entry.count
            entry.sealed = None

    def _backup_entry(self, entry: _Entry) -> None:
        if self._backup is None or entry.backed_up or entry.sealed is None:
            return
        try:
            self._backup.write(entry.sealed)
        except Exception as exc:  # noqa: BLE001 - a failing backup is reported, not raised
            self._report(f"backup sink {type(self._backup).__name__} failed: {exc!r}", alert=True)
            return
        entry.backed_up = True
        self.stats.backed_up += entry.count

    def _undelivered(self) -> str:
        return (
            f"{self.pending_unlocked():,} record(s) not delivered over OTLP yet; they wait "
            f"in the spool {self.spool.directory}"
        )

    def _report(self, message: str, *, alert: bool) -> None:
        internal_log.disabled = False
        internal_log.warning("otel-audit: %s", message)
        if alert:
            self.stats.alerts += 1
            if self.on_alert is not None:
                with contextlib.suppress(Exception):
                    self.on_alert(message)
