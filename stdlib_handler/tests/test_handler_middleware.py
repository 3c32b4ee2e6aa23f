"""WSGI (a real wsgiref server) and ASGI (driven by hand) middleware."""

from __future__ import annotations

import asyncio
import logging
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from handler_support import app_records, assert_intact

from otel_audit_logging import (
    AuditASGIMiddleware,
    AuditHandler,
    AuditWSGIMiddleware,
    audit_read,
    current_audit_context,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MakeHandler = Callable[..., AuditHandler]
MakeLogger = Callable[[logging.Handler], logging.Logger]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(app: Any) -> tuple[WSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return server, thread


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{port}{path}"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


@pytest.mark.parametrize(
    ("hops", "source_ip"),
    [(0, "127.0.0.1"), (1, "198.51.100.1"), (2, "203.0.113.9"), (3, "127.0.0.1")],
)
def test_wsgi_binds_the_request_source_and_the_response_code(
    make_handler: MakeHandler,
    make_logger: MakeLogger,
    store: Path,
    vkey_file: Path,
    hops: int,
    source_ip: str,
) -> None:
    handler = make_handler()
    log = make_logger(handler)
    seen: list[Any] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(current_audit_context())
        audit_read(log, "document", "before-start", actor="alice")
        start_response("201 Created", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            audit_read(log, "document", "in-body", actor="alice")
            yield b"ok"

        return body()

    server, thread = _serve(AuditWSGIMiddleware(app, trusted_proxy_hops=hops))
    try:
        status, body = _get(
            server.server_port,
            "/api/documents/d-1?token=secret",
            {"User-Agent": "audit-test/1.0", "X-Forwarded-For": "203.0.113.9, 198.51.100.1"},
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert (status, body) == (201, b"ok")
    assert seen[0].source_ip == source_ip
    assert current_audit_context().source_ip is None  # nothing leaked to this thread
    handler.close()

    before, in_body = app_records(store)
    for record in (before, in_body):
        assert record["context"] == {
            "source_ip": source_ip,
            "user_agent": "audit-test/1.0",
            "api_endpoint": "/api/documents/d-1",  # never the query string
            "application": "handler-test",
        }
    assert "response_code" not in before["result"]  # not chosen yet
    assert in_body["result"]["response_code"] == 201
    assert_intact(store, vkey_file)


def test_wsgi_rejects_a_negative_hop_count() -> None:
    with pytest.raises(ValueError, match="trusted_proxy_hops"):
        AuditWSGIMiddleware(lambda e, s: [], trusted_proxy_hops=-1)


def _scope(client: Any, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"token=secret",
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": ("127.0.0.1", 8000),
    }


def test_asgi_binds_per_request_even_when_requests_interleave(
    make_handler: MakeHandler, make_logger: MakeLogger, store: Path, vkey_file: Path
) -> None:
    handler = make_handler()
    log = make_logger(handler)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        name = scope["path"].rsplit("/", 1)[1]
        audit_read(log, "item", f"{name}-before", actor=name)
        await asyncio.sleep(0.01)  # the other requests run here
        status = 404 if name == "b" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        audit_read(log, "item", f"{name}-after", actor=name)
        await send({"type": "http.response.body", "body": b"done"})

    middleware = AuditASGIMiddleware(app, trusted_proxy_hops=1)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async def main() -> None:
        await asyncio.gather(
            middleware(
                _scope(("192.0.2.10", 1234), "/items/a", [(b"user-agent", b"agent-a")]),
                receive,
                send,
            ),
            middleware(
                _scope(
                    ("10.0.0.2", 80),
                    "/items/b",
                    [
                        (b"User-Agent", b"agent-b"),
                        (b"x-forwarded-for", b"203.0.113.7"),
                        (b"X-Forwarded-For", b"198.51.100.77"),  # repeated: one list
                    ],
                ),
                receive,
                send,
            ),
            middleware(_scope(("testclient", 50000), "/items/c", []), receive, send),
        )

    asyncio.run(main())
    assert len(sent) == 6
    handler.close()

    records = {r["resource"]["id"]: r for r in app_records(store)}
    assert set(records) == {f"{n}-{w}" for n in "abc" for w in ("before", "after")}
    assert records["a-before"]["context"] == {
        "source_ip": "192.0.2.10",
        "user_agent": "agent-a",
        "api_endpoint": "/items/a",
        "application": "handler-test",
    }
    assert records["b-after"]["context"]["source_ip"] == "198.51.100.77"  # 1 trusted hop
    assert records["b-after"]["context"]["user_agent"] == "agent-b"
    assert "source_ip" not in records["c-after"]["context"]  # "testclient" is no IP
    for name, code in (("a", 200), ("b", 404), ("c", 200)):
        assert "response_code" not in records[f"{name}-before"]["result"]
        assert records[f"{name}-after"]["result"]["response_code"] == code
        assert records[f"{name}-after"]["actor"]["user_id"] == name
    assert_intact(store, vkey_file)


def test_asgi_passes_other_scopes_through_unbound() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], current_audit_context().api_endpoint))

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        pass

    asyncio.run(AuditASGIMiddleware(app)({"type": "lifespan"}, receive, send))
    assert seen == [("lifespan", None)]


def test_asgi_restores_the_context_when_the_app_raises() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        pass

    async def main() -> Any:
        with pytest.raises(RuntimeError):
            await AuditASGIMiddleware(app)(_scope(("192.0.2.1", 1), "/x", []), receive, send)
        return current_audit_context()

    assert asyncio.run(main()).api_endpoint is None
