"""``registry.connections``: proxy routes as httpx reads the environment, TLS made only when first needed,
wide socket reads through httpcore's network-backend seam, and httpcore's errors raised as httpx's."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import httpx
import pytest

from ci_oras.registry.connections import READ_BYTES, Connections, ProxyRoutes, _WideReads, _WideStream


def _routes(**found: str) -> ProxyRoutes:
    return ProxyRoutes.from_environment(lambda: found)


@pytest.mark.parametrize(("found", "scheme", "host", "port", "expected"), [
    ({}, "https", "ghcr.io", 443, None),
    ({"https": "proxy:3128"}, "https", "ghcr.io", 443, "http://proxy:3128"),
    ({"https": "proxy:3128"}, "http", "ghcr.io", 80, None),
    ({"http": "http://p:1"}, "http", "127.0.0.1", 5000, "http://p:1"),
    ({"all": "http://p:1"}, "https", "ghcr.io", 443, "http://p:1"),
    ({"all": "http://p:1", "https": "https://q:2"}, "https", "ghcr.io", 443, "https://q:2"),
    ({"all": "http://p:1", "no": "*"}, "https", "ghcr.io", 443, None),
    ({"all": "http://p:1", "no": "ghcr.io"}, "https", "ghcr.io", 443, None),
    ({"all": "http://p:1", "no": "ghcr.io"}, "https", "pkg.ghcr.io", 443, None),
    ({"all": "http://p:1", "no": ".ghcr.io"}, "https", "pkg.ghcr.io", 443, None),
    ({"all": "http://p:1", "no": "ghcr.io"}, "https", "notghcr.io", 443, "http://p:1"),
    ({"all": "http://p:1", "no": " example.com , GHCR.io "}, "https", "Ghcr.IO", 443, None),
    ({"all": "http://p:1", "no": "ghcr.io:5000"}, "https", "ghcr.io", 443, "http://p:1"),
    ({"all": "http://p:1", "no": "ghcr.io:5000"}, "https", "ghcr.io", 5000, None),
    ({"all": "http://p:1", "no": "127.0.0.1"}, "http", "127.0.0.1", 5000, None),
    ({"all": "http://p:1", "no": "0.0.1"}, "http", "127.0.0.1", 5000, "http://p:1"),
    ({"all": "http://p:1", "no": "::1"}, "http", "[::1]", 5000, None),
    ({"all": "http://p:1", "no": "[::1]:5000"}, "http", "::1", 5000, None),
    ({"all": "http://p:1", "no": "localhost"}, "http", "sub.localhost", 5000, "http://p:1"),
])
def test_proxy_routes_follow_httpx_and_curl(found: dict[str, str], scheme: str, host: str, port: int,
                                            expected: str | None) -> None:
    assert _routes(**found).for_url(scheme, host, port) == expected


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"small" if self.path == "/small" else b"x" * (2 * READ_BYTES)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def plain_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_tls_is_made_at_the_first_https_request_only(plain_server: str) -> None:
    made: list[ssl.SSLContext] = []

    def tls() -> ssl.SSLContext:
        made.append(httpx.create_ssl_context(verify=True))
        return made[-1]

    with httpx.Client(transport=Connections(tls)) as client:
        assert len(client.get(plain_server).content) == 2 * READ_BYTES
        assert made == []
        with socket.socket() as refusing:
            refusing.bind(("127.0.0.1", 0))
            for _ in range(2):
                with pytest.raises(httpx.ConnectError):  # httpcore's error, raised as httpx's
                    client.get(f"https://127.0.0.1:{refusing.getsockname()[1]}/")
        assert len(made) == 1, "one context per run, however many HTTPS requests"


def test_socket_reads_go_wide_while_a_body_fills_them(plain_server: str) -> None:
    asked: list[int] = []
    got: list[int] = []

    class Recorder(httpcore.NetworkStream):
        """The socket under the wide stream: records what each read asks for and gets."""

        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            asked.append(max_bytes)
            data = self._inner.read(max_bytes, timeout)
            got.append(len(data))
            return data

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, timeout)

        def close(self) -> None:
            self._inner.close()

    class Backend(_WideReads):
        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: object = None) -> httpcore.NetworkStream:
            wide = super().connect_tcp(host, port, timeout, local_address)
            assert isinstance(wide, _WideStream)
            return _WideStream(Recorder(wide._inner))

    narrow = 64 * 1024  # what httpcore asks for
    with httpcore.ConnectionPool(network_backend=Backend()) as pool:
        for _ in range(3):
            assert pool.request("GET", f"{plain_server}/small").content == b"small"
        assert asked and set(asked) == {narrow}, "a small answer never maps a wide buffer"
        small = len(asked)
        response = pool.request("GET", plain_server)
    assert len(response.content) == 2 * READ_BYTES
    assert asked[small] == narrow and READ_BYTES in asked[small:], "a body that fills a read is read wide"
    # from then on wide until a read returns less than a quarter of httpcore's ask
    assert max(got) > narrow
    wide = False
    for before, ask in zip(got[small:], asked[small + 1:]):
        wide = before >= (narrow // 4 if wide else narrow)
        assert ask == (READ_BYTES if wide else narrow)
