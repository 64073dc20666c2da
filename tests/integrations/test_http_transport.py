"""The network path of outbound provider calls (apps/integrations/http.py): direct and blind to the
process environment by default; through INTEGRATIONS_PROXY_URL, trusting INTEGRATIONS_CA_BUNDLE, or
from the environment with INTEGRATIONS_TRUST_ENV when configured; and refused (nothing sent) when
the configured bundle or proxy cannot be used.

Real sockets only: a loopback forward proxy (absolute-URI requests and CONNECT tunnels) that
records what went through it, and a loopback HTTPS server whose certificate is issued by a CA the
test makes."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import select
import socket
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apps.integrations import http
from apps.integrations.errors import IntegrationError
from apps.integrations.services import integration_verify
from apps.telemetry.models import IntegrationUsageEvent

pytestmark = pytest.mark.django_db


# -- a loopback forward proxy -------------------------------------------------------------------------


class RecordingProxy:
    """An HTTP proxy on loopback: forwards absolute-URI requests and tunnels CONNECT, recording
    each request line it serves (`seen`)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_CONNECT(self) -> None:  # noqa: N802
                proxy.seen.append(f"CONNECT {self.path}")
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=5)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                sockets = [self.connection, upstream]
                with contextlib.suppress(OSError):
                    while True:
                        readable, _, _ = select.select(sockets, [], [], 5)
                        if not readable:
                            break
                        for sock in readable:
                            data = sock.recv(65536)
                            if not data:
                                raise OSError("closed")
                            (upstream if sock is self.connection else self.connection).sendall(data)
                upstream.close()

            def _forward(self) -> None:
                proxy.seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "host")}
                request = urllib.request.Request(self.path, data=body, headers=headers, method=self.command)
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # direct from here
                try:
                    answer = opener.open(request, timeout=5)
                    status, payload, answer_headers = answer.status, answer.read(), answer.headers
                except urllib.error.HTTPError as exc:
                    status, payload, answer_headers = exc.code, exc.read(), exc.headers
                self.send_response(status)
                for name, value in answer_headers.items():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- a loopback HTTPS server with a certificate from the test's own CA ------------------------------------


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) as PEM files: a CA and a leaf for 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TradeOps test firewall CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digital_signature, key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class TlsServer:
    """Answers every GET with 200 {"ok": true} over TLS, and counts the requests that got through."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                server.requests += 1
                payload = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that refuses our certificate is what some tests expect

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    server = RecordingProxy()
    yield server
    server.stop()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[TlsServer, Path]]:
    ca, cert, key = _certificates(tmp_path)
    server = TlsServer(cert, key)
    yield server, ca
    server.stop()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA from the machine running the tests leaks in (or out)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setattr(http, "_client", None)  # the environment is read when the client is built


def _ping(url: str) -> Any:
    return http.call(provider="polygon", operation="transport.ping", method="GET", url=url)


# -- unchanged when nothing is configured -----------------------------------------------------------------


def test_by_default_calls_go_direct_whatever_the_environment_says(
    provider_stub: Any, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = provider_stub("tradovate")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    assert integration_verify(provider="tradovate").ok
    assert stub.requests and proxy.seen == []  # the environment's proxy was not used
    client = http._shared_client()
    assert client.trust_env is False


def test_by_default_a_private_ca_is_not_trusted(tls: tuple[TlsServer, Path]) -> None:
    server, _ = tls
    with pytest.raises(IntegrationError) as refused:
        _ping(server.url + "/ping")
    assert refused.value.error_code == "INTEGRATION_NETWORK_ERROR"
    assert server.requests == 0


# -- honoured when configured -----------------------------------------------------------------------------


def test_a_configured_proxy_carries_every_provider_call(
    provider_stub: Any, proxy: RecordingProxy, settings: Any
) -> None:
    stub = provider_stub("tradovate")
    settings.INTEGRATIONS_PROXY_URL = proxy.url
    assert integration_verify(provider="tradovate").ok
    sign_in = [line for line in proxy.seen if "/auth/accesstokenrequest" in line.lower()]
    assert sign_in and sign_in[0].startswith(f"POST {stub.url}/")  # an absolute URI: it went to the proxy
    assert len(proxy.seen) == len(stub.requests)  # every request the venue saw came through the proxy


def test_a_configured_ca_bundle_is_trusted_and_reaches_the_server_through_the_proxy(
    tls: tuple[TlsServer, Path], proxy: RecordingProxy, settings: Any
) -> None:
    server, ca = tls
    settings.INTEGRATIONS_CA_BUNDLE = str(ca)
    assert _ping(server.url + "/ping").body == {"ok": True}
    assert server.requests == 1 and proxy.seen == []
    settings.INTEGRATIONS_PROXY_URL = proxy.url  # a desk behind a proxy and a TLS-inspecting firewall
    assert _ping(server.url + "/ping").body == {"ok": True}
    host_port = server.url.removeprefix("https://")
    assert proxy.seen == [f"CONNECT {host_port}"] and server.requests == 2
    assert IntegrationUsageEvent.objects.filter(operation="transport.ping", status="ok").count() == 2


def test_trust_env_takes_the_proxy_and_the_ca_from_the_environment(
    provider_stub: Any, tls: tuple[TlsServer, Path], proxy: RecordingProxy, settings: Any, monkeypatch: Any
) -> None:
    stub = provider_stub("tradovate")
    server, ca = tls
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    settings.INTEGRATIONS_TRUST_ENV = True
    assert integration_verify(provider="tradovate").ok
    assert proxy.seen and all(stub.url in line for line in proxy.seen)  # http:// targets: HTTP_PROXY
    assert _ping(server.url + "/ping").body == {"ok": True}  # the CA from SSL_CERT_FILE (https: no proxy set)
    assert server.requests == 1


# -- fail closed when the configuration cannot be used ----------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("INTEGRATIONS_CA_BUNDLE", "/nonexistent/corporate-ca.pem", "INTEGRATIONS_CA_BUNDLE=/nonexistent"),
        ("INTEGRATIONS_CA_BUNDLE", "NOT_A_CERTIFICATE", "cannot be loaded as CA certificates"),
        ("INTEGRATIONS_PROXY_URL", "ftp://user:hunter2-secret@proxy.desk:21", "is not an http:// or https://"),
    ],
)
def test_an_unusable_ca_bundle_or_proxy_refuses_every_call_and_fails_the_startup_check(
    provider_stub: Any, settings: Any, tmp_path: Path, setting: str, value: str, said: str
) -> None:
    stub = provider_stub("tradovate")
    if value == "NOT_A_CERTIFICATE":
        garbage = tmp_path / "ca.pem"
        garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        value = str(garbage)
    setattr(settings, setting, value)
    result = integration_verify(provider="tradovate")
    assert not result.ok and result.error_code == "INTEGRATION_NETWORK_CONFIG_INVALID"
    assert said in result.message and "hunter2" not in result.message
    assert stub.requests == []  # nothing left this machine
    event = IntegrationUsageEvent.objects.filter(provider="tradovate").order_by("-id").first()
    assert event.error_code == "INTEGRATION_NETWORK_CONFIG_INVALID"  # metered like any failed call
    problems = http.check_network_config()
    assert [p.id for p in problems] == ["integrations.E001"] and said in problems[0].msg
    with pytest.raises(SystemCheckError):
        call_command("check")
