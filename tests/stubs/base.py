"""Provider stub servers: small HTTP servers on loopback that speak a provider's documented
protocol for the calls TradeOps makes, including its failure shapes.

A stub subclasses StubServer and implements `handle(request) -> StubResponse`. Tests pick the
behaviour with `stub.mode`; every stub understands at least the common modes:

    ok          the documented success answer
    bad_key     the provider's documented answer to a wrong or revoked key
    rate_limit  the provider's documented rate-limit answer (429 + Retry-After where it sends one)
    timeout     no answer for `stub.delay` seconds (longer than the test client timeout)
    malformed   a 200 whose body is not what the documentation promises

`stub.requests` records every request received (method, path, query, headers, body) so tests
can assert on what TradeOps actually sent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

COMMON_MODES = ("ok", "bad_key", "rate_limit", "timeout", "malformed")


@dataclass
class StubRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class StubResponse:
    status: int = 200
    body: Any = None  # dict/list → JSON; bytes/str → sent as is
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain"
        if self.body is None:
            return b"", "application/json"
        return json.dumps(self.body).encode(), "application/json"


class StubServer:
    mode: str
    delay: float = 2.0
    # Credentials this stub accepts, as environment variables (set by the provider_stub fixture).
    good_env: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[StubRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: list[socket.socket] = []

    # -- to implement -------------------------------------------------------------------------
    def handle(self, request: StubRequest) -> StubResponse:
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StubServer:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one small answer must not wait for a delayed ACK

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = StubRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                stub.requests.append(request)
                if stub.mode == "timeout":
                    time.sleep(stub.delay)
                response = stub.handle(request)
                payload, content_type = response.encode()
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)  # the client may have given up (timeout mode)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        stub_connections = self._connections

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                # Kept, so that stop() also closes keep-alive connections: a stopped stub refuses.
                connection, address = super().get_request()
                stub_connections.append(connection)
                return connection, address

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A stalled answer written after the client gave up (or after stop()) is expected.
                if not isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def last(self) -> StubRequest:
        return self.requests[-1]
