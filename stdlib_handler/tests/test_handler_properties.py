"""Property tests of annotation → record: never raises, never shares, always sealable."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_audit.pipeline import violation_record
from otel_audit.schema import validate
from otel_audit_logging._annotation import Rejected, compose
from otel_audit_logging._context import AuditContext

_FIELDS = (
    "category",
    "action",
    "actor",
    "resource",
    "result",
    "risk_level",
    "context",
    "metadata",
    "extensions",
    "change_tracking",
    "batch_context",
    "timestamp",
    "integrity",
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    # finite floats within the schema's ±(2^53−1), and the non-finite ones. (A larger
    # finite float passes otel_audit.pipeline._safe unchanged, so a violation record
    # carrying it breaks the schema's number range: a core issue, reported.)
    st.floats(min_value=-(2**53 - 1), max_value=2**53 - 1),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.text(max_size=20),
    st.sampled_from(["data_access", "READ", "SUCCESS", "LOW", "alice", "192.0.2.1"]),
    st.binary(max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)
any_annotation = st.one_of(
    st.dictionaries(st.sampled_from(_FIELDS), values, max_size=8),
    values,
)
contexts = st.builds(
    AuditContext,
    actor=st.one_of(st.none(), st.just("alice")),
    session_id=st.one_of(st.none(), st.just("s-1")),
    source_ip=st.one_of(st.none(), st.just("192.0.2.1")),
)


def _containers(value: Any) -> list[int]:
    """ids of every dict and list inside ``value``."""
    out: list[int] = []
    if isinstance(value, dict):
        out.append(id(value))
        for item in value.values():
            out.extend(_containers(item))
    elif isinstance(value, list):
        out.append(id(value))
        for item in value:
            out.extend(_containers(item))
    return out


def _compose(annotation: Any, bound: AuditContext) -> tuple[dict[str, Any] | None, Any]:
    """(record, None), or (None, the Rejected exception)."""
    record = logging.LogRecord("prop", logging.INFO, __file__, 1, "msg", None, None)
    try:
        return compose(annotation, record, bound, application="prop-test"), None
    except Rejected as rejected:
        return None, rejected


@settings(max_examples=200, deadline=None)
@given(annotation=any_annotation, bound=contexts)
def test_compose_returns_plain_unshared_json_or_rejects(
    annotation: Any, bound: AuditContext
) -> None:
    out, rejected = _compose(annotation, bound)
    if rejected is not None:
        assert rejected.violations
        # what the handler seals instead is always a valid record
        stand_in = violation_record(rejected.offending, rejected.violations, application="p")
        assert validate(stand_in, sealed=False) == []
        return
    assert out is not None
    orjson.dumps(out)  # plain JSON: the spill file and the sealer can take it
    assert not set(_containers(out)) & set(_containers(annotation))
    violations = validate(out, sealed=False)
    if violations:  # the pipeline's worker seals a violation record instead
        stand_in = violation_record(out, violations, application="p")
        assert validate(stand_in, sealed=False) == []
