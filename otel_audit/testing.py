"""Helpers for tests, benchmarks and demos: realistic records and sealed streams."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from otel_audit.keys import Signer, SigningKey
from otel_audit.records import build
from otel_audit.sealing import SealedRecord, Sealer

if TYPE_CHECKING:
    from otel_audit.plugins import Plugins

__all__ = ["MemorySink", "run_pipeline", "sample_record", "seal_stream"]

_USERS = ("alice@example.com", "bob@example.com", "carol@example.com", "svc-billing")
_ACTIONS = (
    ("data_access", "READ", "LOW"),
    ("administrative", "UPDATE", "HIGH"),
    ("authentication", "LOGIN", "MEDIUM"),
    ("security", "PERMISSION_DENIED", "HIGH"),
    ("data_access", "DELETE", "CRITICAL"),
)


def sample_record(i: int) -> dict[str, Any]:
    """A schema-valid record of roughly 1 KB (before sealing), varied by ``i``."""
    category, action, risk = _ACTIONS[i % len(_ACTIONS)]
    user = _USERS[i % len(_USERS)]
    return build(
        category=category,
        action=action,
        actor={"user_id": user, "session_id": f"sess_{i:08x}", "role": "admin"},
        resource={
            "type": "database_record",
            "id": f"customer_{i}",
            "table": "customers",
            "classification": "PII",
        },
        context={
            "source_ip": f"192.0.2.{i % 250 + 1}",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
            "application": "customer_portal",
            "api_endpoint": f"/api/v1/customers/{i}",
        },
        result={"status": "SUCCESS", "response_code": 200, "affected_records": 1},
        risk_level=risk,
        metadata={"compliance_tags": ["GDPR", "SOX"], "retention_years": 7},
        gdpr_context={
            "lawful_basis": "contract",
            "data_subject_id": f"ds_{i % 997}",
            "processing_purpose": "customer_service",
            "retention_justified": True,
            "cross_border_transfer": False,
        },
    )


def seal_stream(
    signer: Signer,
    count: int,
    *,
    service_name: str = "demo-service",
    previous_checkpoint: str | None = None,
    checkpoint_every: int = 1024,
    close: bool = True,
) -> tuple[Sealer, list[SealedRecord]]:
    """Seal ``count`` sample records into a new origin; returns the sealer and its output."""
    out: list[SealedRecord] = []
    sealer = Sealer(
        signer,
        out.append,
        service_name=service_name,
        checkpoint_every=checkpoint_every,
        checkpoint_interval_ms=3_600_000,
        previous_checkpoint=previous_checkpoint,
    )
    for i in range(count):
        sealer.seal(sample_record(i))
    if close:
        sealer.close()
    return sealer, out


class MemorySink:
    """A sink that keeps what it is given (for tests of plugins and pipelines)."""

    def __init__(self) -> None:
        self.records: list[SealedRecord] = []
        self.closed = False

    def write(self, batch: Sequence[SealedRecord]) -> None:
        self.records.extend(batch)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def run_pipeline(
    records: Iterable[dict[str, Any]],
    *,
    plugins: Plugins | None = None,
    signer: Signer | None = None,
    sinks: Sequence[Any] = (),
) -> list[SealedRecord]:
    """Submit ``records`` to a real :class:`~otel_audit.pipeline.AuditPipeline` (with
    ``plugins``), close it, and return the sealed records other than its own."""
    from otel_audit.pipeline import AuditPipeline  # noqa: PLC0415 - keeps this module light

    memory = MemorySink()
    pipeline = AuditPipeline(
        signer or SigningKey.generate("testing"),
        [memory, *sinks],
        service_name="testing",
        checkpoint_interval_ms=50,
        plugins=plugins,
    )
    for record in records:
        pipeline.submit(record)
    if not pipeline.close():
        raise RuntimeError("the pipeline did not close cleanly")
    return [s for s in memory.records if s.category != "integrity"]
