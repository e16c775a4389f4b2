"""Proxies from the environment, as httpx reads them by default: HTTP_PROXY routes, NO_PROXY bypasses.

A forward proxy (stdlib only) relays absolute-form requests to a real docker-registry and records them; the
CLI runs as a subprocess with the proxy variables set, as a CI job behind a corporate proxy would.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness.cli import clean_env, run_cli
from harness.registry import RunningRegistry

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _relay(self) -> None:
        target = urlsplit(self.path)
        self.server.seen.append((self.command, self.path))  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body=body,
                         headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _relay

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def forward_proxy() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(home)


def _env(env: dict[str, str], **proxies: str) -> dict[str, str]:
    cleaned = {k: v for k, v in env.items() if k.lower() not in _PROXY_VARIABLES}
    return {**cleaned, **proxies}


def test_http_proxy_carries_the_requests_and_no_proxy_bypasses_it(
    registry_plain: RunningRegistry, forward_proxy: ThreadingHTTPServer, unique_repo: str, tmp_path: Path,
    env: dict[str, str],
) -> None:
    proxy = f"http://127.0.0.1:{forward_proxy.server_address[1]}"
    (tmp_path / "a.txt").write_bytes(b"through the proxy\n")
    reference = f"{registry_plain.host}/{unique_repo}:v1"

    pushed = run_cli("push", reference, "a.txt", env=_env(env, HTTP_PROXY=proxy), cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    seen = list(forward_proxy.seen)  # type: ignore[attr-defined]
    assert seen, "nothing went through HTTP_PROXY"
    assert all(url.startswith(f"http://{registry_plain.host}/v2/") for _, url in seen), seen
    assert {"POST", "PUT"} <= {method for method, _ in seen}

    forward_proxy.seen.clear()  # type: ignore[attr-defined]
    bypassed = _env(env, HTTP_PROXY=proxy, NO_PROXY=f"localhost,{registry_plain.host.split(':')[0]}")
    pulled = run_cli("pull", reference, "-o", str(tmp_path / "out"), env=bypassed)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"through the proxy\n"
    assert forward_proxy.seen == []  # type: ignore[attr-defined]


def test_a_socks_proxy_is_refused_with_its_fix(registry_plain: RunningRegistry, unique_repo: str,
                                               tmp_path: Path, env: dict[str, str]) -> None:
    result = run_cli("tags", f"{registry_plain.host}/{unique_repo}", env=_env(env, ALL_PROXY="socks5://127.0.0.1:1"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "socks5" in result.stderr and "NO_PROXY" in result.stderr
