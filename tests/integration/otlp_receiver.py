"""A real OTLP/gRPC logs receiver for tests: what a backend keeps, as OTLP/JSON lines.

A grpcio server on 127.0.0.1 implementing ``LogsService.Export`` with the
opentelemetry-proto service classes. Every accepted request is appended to ``out`` as
one line of OTLP/JSON (protobuf ``json_format``: camelCase, 64-bit ints as strings),
flushed before the call returns: the collector file exporter's format, which
``otel-audit verify`` reads. ``stop()``/``start()`` on the same port simulate a backend
outage; ``refuse`` makes it answer UNAVAILABLE.
"""

from __future__ import annotations

import http.server
import socket
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Servicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        if self.receiver.refuse:
            context.abort(grpc.StatusCode.UNAVAILABLE, "refusing (test)")
        self.receiver.accept(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class OTLPReceiver:
    """Start with :meth:`start`; ``records`` counts the log records accepted."""

    def __init__(
        self, out: Path, port: int | None = None, max_message_bytes: int = 4 * 2**20
    ) -> None:
        self.out = out
        #: gRPC's receive limit, like a collector's ``max_recv_msg_size_mib`` (default 4 MiB)
        self.max_message_bytes = max_message_bytes
        self.port = port or free_port()
        self.refuse = False
        self.requests: list[Any] = []
        self.records = 0
        self._lock = threading.Lock()
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def accept(self, request: Any) -> None:
        line = orjson.dumps(json_format.MessageToDict(request)) + b"\n"
        count = sum(
            len(scope.log_records) for rl in request.resource_logs for scope in rl.scope_logs
        )
        with self._lock:
            with open(self.out, "ab") as handle:
                handle.write(line)
            self.requests.append(request)
            self.records += count

    def start(self) -> OTLPReceiver:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            options=[("grpc.max_receive_message_length", self.max_message_bytes)],
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Servicer(self), server)  # type: ignore[no-untyped-call]
        if server.add_insecure_port(self.endpoint) == 0:
            raise RuntimeError(f"cannot bind the OTLP receiver to {self.endpoint}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class OTLPHttpReceiver(OTLPReceiver):
    """The same over OTLP/HTTP (protobuf POSTs to ``/v1/logs``), with http.server."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OTLPHttpReceiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.refuse or self.path != "/v1/logs":
                    self.send_response(503 if receiver.refuse else 404)
                    self.end_headers()
                    return
                receiver.accept(logs_service_pb2.ExportLogsServiceRequest.FromString(data))
                body = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def __enter__(self) -> OTLPHttpReceiver:
        return self.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
