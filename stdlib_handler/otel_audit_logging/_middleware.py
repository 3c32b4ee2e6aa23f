"""WSGI and ASGI middleware binding each request's source into the audit context.

For the duration of a request they bind ``source_ip`` (the peer address, or the client
address a configured number of trusted proxies put in ``X-Forwarded-For``),
``user_agent`` and ``api_endpoint`` (the path, never the query string: it may carry
tokens), and, once the application has started its response, the status code, which
audit records then carry as ``result.response_code``. Audit calls inside the
application pick these up through :class:`~otel_audit_logging.AuditHandler`.

``X-Forwarded-For`` is trusted only with ``trusted_proxy_hops=n`` (default 0: ignore
it), meaning exactly ``n`` proxies you run append to it; the client is then the n-th
address from the right, as in Werkzeug's ``ProxyFix``. A value that is not an IP
address is not bound (the record would fail the schema), nor are over-long headers
beyond :data:`MAX_HEADER_CHARS`.
"""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from otel_audit_logging._context import _bind_request, _current, _Response

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["MAX_HEADER_CHARS", "AuditASGIMiddleware", "AuditWSGIMiddleware"]

MAX_HEADER_CHARS: Final = 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _ip(text: str | None) -> str | None:
    """``text`` as a normalised IP address, or None (ports and [brackets] removed)."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]:443"
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _client_ip(peer: str | None, forwarded_for: str | None, hops: int) -> str | None:
    if hops > 0 and forwarded_for:
        chain = [part.strip() for part in forwarded_for.split(",")]
        if len(chain) >= hops:
            return _ip(chain[-hops])
    return _ip(peer)


def _text(value: str | None) -> str | None:
    if not value:
        return None
    return value[:MAX_HEADER_CHARS]


def _check_hops(hops: int) -> int:
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise ValueError(f"trusted_proxy_hops must be an integer >= 0, got {hops!r}")
    return hops


class AuditWSGIMiddleware:
    """Wrap a WSGI application: ``app = AuditWSGIMiddleware(app, trusted_proxy_hops=0)``.

    The application and the iteration of its response body run in the request's own
    copy of the context, so a binding made inside the request never leaks into the
    server's thread.
    """

    def __init__(self, app: WSGIApplication, *, trusted_proxy_hops: int = 0) -> None:
        self.app = app
        self.trusted_proxy_hops = _check_hops(trusted_proxy_hops)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = _Response()
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        # PEP 3333 "bytes as latin-1" strings: recover the UTF-8 path
        path = path.encode("latin-1", "replace").decode("utf-8", "replace")
        values = {
            "source_ip": _client_ip(
                environ.get("REMOTE_ADDR"),
                environ.get("HTTP_X_FORWARDED_FOR"),
                self.trusted_proxy_hops,
            ),
            "user_agent": _text(environ.get("HTTP_USER_AGENT")),
            "api_endpoint": _text(path or "/"),
        }
        context = contextvars.copy_context()
        context.run(_bind_request, values, response)

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            code = status[:3]
            if code.isdigit():
                response.status = int(code)
            return start_response(status, headers, exc_info)

        body = context.run(self.app, environ, recording_start_response)
        return _BoundIterable(body, context)


class _BoundIterable:
    """The response body, iterated (and closed) inside the request's context."""

    def __init__(self, body: Iterable[bytes], context: contextvars.Context) -> None:
        self._body = body
        self._context = context
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)


class AuditASGIMiddleware:
    """Wrap an ASGI 3 application: ``app = AuditASGIMiddleware(app, trusted_proxy_hops=0)``.

    Binds for ``http`` and ``websocket`` scopes; other scopes (``lifespan``) pass through.
    """

    def __init__(self, app: ASGIApp, *, trusted_proxy_hops: int = 0) -> None:
        self.app = app
        self.trusted_proxy_hops = _check_hops(trusted_proxy_hops)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers") or ():
            name = bytes(raw_name).decode("latin-1").lower()
            if name in ("user-agent", "x-forwarded-for"):
                value = bytes(raw_value).decode("latin-1")
                # repeated X-Forwarded-For headers form one list (RFC 9110 §5.3)
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        client = scope.get("client")
        peer = client[0] if isinstance(client, (list, tuple)) and client else None
        path = scope.get("path")  # ASGI: already decoded, and it includes root_path
        path = path if isinstance(path, str) else ""
        values = {
            "source_ip": _client_ip(
                peer if isinstance(peer, str) else None,
                headers.get("x-forwarded-for"),
                self.trusted_proxy_hops,
            ),
            "user_agent": _text(headers.get("user-agent")),
            "api_endpoint": _text(path or "/"),
        }
        response = _Response()

        async def recording_send(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status = message.get("status")
                if isinstance(status, int):
                    response.status = status
            await send(message)

        token = _bind_request(values, response)
        try:
            await self.app(scope, receive, recording_send)
        finally:
            _current.reset(token)
