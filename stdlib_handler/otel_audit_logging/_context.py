"""Who is acting and where the request came from, bound with :mod:`contextvars`.

A binding holds for the current thread or asyncio task and whatever it calls: a new
thread starts without one, and each asyncio task works on its own copy of the context it
was created in, so concurrent requests never see each other's actor. Bindings nest: an
inner one overrides the fields it names and keeps the rest; leaving it restores the
outer one. :class:`~otel_audit_logging.AuditHandler` fills the record's ``actor`` and
``context`` (and ``result.response_code``) from the binding when the annotation does
not give them.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import Any, TypeVar, cast

__all__ = [
    "AuditBinding",
    "AuditContext",
    "audit_context",
    "bind_audit_context",
    "current_audit_context",
    "reset_audit_context",
]

_F = TypeVar("_F", bound=Callable[..., Any])


class _Response:
    """The response status of one request, set by middleware once the app has chosen it.

    Shared by reference with every binding nested inside the request, so a status that
    becomes known later is seen by all of them.
    """

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status: int | None = None


@dataclass(frozen=True)
class AuditContext:
    """The fields bound for the current thread or task (``None``: not bound)."""

    actor: str | None = None
    session_id: str | None = None
    role: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    api_endpoint: str | None = None
    request_id: str | None = None
    _response: _Response | None = None

    @property
    def response_code(self) -> int | None:
        """The HTTP status of the current request, once the middleware knows it."""
        return None if self._response is None else self._response.status


_FIELDS = tuple(f.name for f in fields(AuditContext) if not f.name.startswith("_"))
_EMPTY = AuditContext()
_current: contextvars.ContextVar[AuditContext] = contextvars.ContextVar(
    "otel_audit_context", default=_EMPTY
)


def current_audit_context() -> AuditContext:
    """What is bound for the calling thread or task now."""
    return _current.get()


def _merged(values: dict[str, str | None], response: _Response | None = None) -> AuditContext:
    given: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
    if response is not None:
        given["_response"] = response
    return replace(_current.get(), **given) if given else _current.get()


def _checked(values: dict[str, Any]) -> dict[str, str | None]:
    for name, value in values.items():
        if name not in _FIELDS:
            raise TypeError(f"unknown audit context field {name!r}")
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"audit context field {name!r} must be a str, not {type(value).__name__}"
            )
    return values


def bind_audit_context(
    *,
    actor: str | None = None,
    session_id: str | None = None,
    role: str | None = None,
    source_ip: str | None = None,
    user_agent: str | None = None,
    api_endpoint: str | None = None,
    request_id: str | None = None,
) -> contextvars.Token[AuditContext]:
    """Bind fields until :func:`reset_audit_context` (for before/after-request hooks).

    Fields left ``None`` keep their outer value.
    """
    values = _checked(dict(locals()))
    return _current.set(_merged(values))


def reset_audit_context(token: contextvars.Token[AuditContext]) -> None:
    """Undo the :func:`bind_audit_context` call that returned ``token``."""
    _current.reset(token)


def _bind_request(
    values: dict[str, str | None], response: _Response
) -> contextvars.Token[AuditContext]:
    """Middleware's binding: request fields plus the response cell (private)."""
    return _current.set(_merged(values, response))


class AuditBinding:
    """A context manager and decorator binding audit context fields (see :func:`audit_context`).

    As a decorator it binds for every call, on sync and async functions alike. As a
    context manager one object may be entered again after it was left, and nested in
    itself; enter a given object from one thread or task at a time.
    """

    __slots__ = ("_tokens", "_values")

    def __init__(self, values: dict[str, str | None]) -> None:
        self._values = values
        self._tokens: list[contextvars.Token[AuditContext]] = []

    def __enter__(self) -> AuditContext:
        context = _merged(self._values)
        self._tokens.append(_current.set(context))
        return context

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.reset(self._tokens.pop())

    def __call__(self, func: _F) -> _F:
        values = self._values
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                "audit_context cannot decorate a generator function: its body runs after "
                "the call returns; use `with audit_context(...)` inside it"
            )
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                token = _current.set(_merged(values))
                try:
                    return await func(*args, **kwargs)
                finally:
                    _current.reset(token)

            return cast("_F", run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            token = _current.set(_merged(values))
            try:
                return func(*args, **kwargs)
            finally:
                _current.reset(token)

        return cast("_F", run)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._values.items() if v is not None)
        return f"audit_context({shown})"


def audit_context(
    *,
    actor: str | None = None,
    session_id: str | None = None,
    role: str | None = None,
    source_ip: str | None = None,
    user_agent: str | None = None,
    api_endpoint: str | None = None,
    request_id: str | None = None,
) -> AuditBinding:
    """Bind audit fields for a block or a function::

        with audit_context(actor="alice", session_id="s-1"):
            log.info("read", extra={"audit": {...}})   # actor and session filled in

        @audit_context(actor="svc-billing")
        async def nightly_run() -> None: ...

    Fields left ``None`` keep their outer value. TypeError for a non-str value.
    """
    return AuditBinding(_checked(dict(locals())))
