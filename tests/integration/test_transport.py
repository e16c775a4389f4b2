"""Transport behaviour of the real ``ci-oras`` CLI: retries, Retry-After, dropped connections, redirects.

A :class:`~harness.proxy.RegistryProxy` sits between the CLI subprocess and a real ``docker-registry``; it
injects faults and records every request, so each test checks both the outcome (exit code, files) and what
went over the wire (how often, how long apart, with which headers).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness.cli import CliResult, clean_env, run_cli
from harness.oci import MANIFEST_ACCEPT, digest_of, push_image, push_manifest
from harness.proxy import BlobStorageServer, RegistryProxy, matching
from harness.registry import RegistryFactory, RunningRegistry

from ci_oras import __version__
from ci_oras.errors import EXIT_REGISTRY

USER_AGENT = f"ci-oras/{__version__}"


@pytest.fixture
def proxy(registry_plain: RunningRegistry) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry_plain) as running:
        yield running


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(home)


def _write_file(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path


def _push(reference: str, src: Path, env: dict[str, str], *files: str, stdin: str | None = None,
          extra: tuple[str, ...] = ()) -> CliResult:
    return run_cli("push", reference, *files, *extra, env=env, cwd=src, stdin=stdin)


def _assert_one_error_line(result: CliResult) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_proxy_forwards_and_rewrites_upload_location(registry_plain: RunningRegistry, proxy: RegistryProxy,
                                                     unique_repo: str) -> None:
    """The harness itself: a raw-HTTP upload through the proxy works and Locations point at the proxy."""
    with httpx.Client(timeout=10) as client:
        image = push_image(client, proxy.url, unique_repo, layer=os.urandom(100_000))
        got = client.get(f"{registry_plain.url}/v2/{unique_repo}/manifests/latest",
                         headers={"Accept": MANIFEST_ACCEPT})
    assert got.content == image.manifest
    posts = proxy.requests_matching(method="POST", path=r"/blobs/uploads/$")
    assert posts and all(p.response_header("Location").startswith(proxy.url + "/") for p in posts)


def test_503_twice_then_success_on_manifest_put_and_blob_head(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    data = os.urandom(4096)
    src = tmp_path / "src"
    _write_file(src, "data.bin", data)
    head_rule = proxy.inject(matching("HEAD", rf"/v2/{unique_repo}/blobs/{digest_of(data)}$"), 503, times=2)
    put_rule = proxy.inject(matching("PUT", rf"/v2/{unique_repo}/manifests/v1$"), 503, times=2)

    result = _push(f"{proxy.host}/{unique_repo}:v1", src, env, "data.bin", extra=("--output", "json"))

    assert result.returncode == 0, result.stderr
    assert head_rule.remaining == 0 and put_rule.remaining == 0
    heads = proxy.requests_matching(method="HEAD", path=rf"/blobs/{digest_of(data)}$")
    assert [r.status for r in heads] == [503, 503, 404]
    puts = proxy.requests_matching(method="PUT", path=r"/manifests/v1$")
    assert [r.status for r in puts] == [503, 503, 201]
    # Identical bytes on every attempt: a retry re-sends the same manifest.
    digest = result.json()["digest"]
    with httpx.Client(timeout=10) as client:
        stored = client.get(f"{registry_plain.url}/v2/{unique_repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert stored.status_code == 200 and digest_of(stored.content) == digest


def test_429_with_retry_after_waits_before_retrying(
    proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    src = tmp_path / "src"
    _write_file(src, "a.txt", b"rate limited\n")
    proxy.inject(matching("PUT", r"/manifests/v1$"), 429, times=1,
                 headers={"Retry-After": "1", "Content-Type": "application/json"},
                 body=b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}')

    result = _push(f"{proxy.host}/{unique_repo}:v1", src, env, "a.txt")

    assert result.returncode == 0, result.stderr
    puts = proxy.requests_matching(method="PUT", path=r"/manifests/v1$")
    assert [r.status for r in puts] == [429, 201]
    # The first back-off without Retry-After is at most 0.5 s; ~1 s proves the header was honoured.
    waited = puts[1].time - puts[0].time
    assert waited >= 0.95, f"retried after {waited:.3f} s despite Retry-After: 1"
    assert waited < 5


def test_persistent_503_exits_5_with_one_error_line(
    proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    rule = proxy.inject(matching(path=r"^/v2/"), 503, times=1000,
                        headers={"Content-Type": "application/json"},
                        body=b'{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}')
    started = time.monotonic()

    result = run_cli("pull", f"{proxy.host}/{unique_repo}:v1", "-o", str(tmp_path / "out"), env=env)

    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_REGISTRY, result.stderr
    line = _assert_one_error_line(result)
    assert "503" in line and proxy.host in line, line
    assert "UNAVAILABLE" in line, line  # the registry's error body is part of the message
    # Default transport: 4 retries (5 attempts) of the one failing request, then give up.
    assert len(rule.hits) == 5
    assert len({(r.method, r.target) for r in rule.hits}) == 1
    assert elapsed < 30


def test_dropped_connection_on_first_blob_get_is_retried(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    layer = os.urandom(50_000)
    with httpx.Client(timeout=10) as client:
        image = push_image(client, registry_plain.url, unique_repo, layer=layer)  # seeded without ci_oras
    rule = proxy.drop_connection(matching("GET", rf"/blobs/{image.layer_digest}$"), times=1)

    result = run_cli("pull", f"{proxy.host}/{unique_repo}:latest", "-o", str(tmp_path / "out"), env=env)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "hello.txt").read_bytes() == layer
    gets = proxy.requests_matching(method="GET", path=rf"/blobs/{image.layer_digest}$")
    assert [(r.action, r.status) for r in gets] == [("dropped", None), ("forwarded", 200)]
    assert rule.remaining == 0


@pytest.mark.parametrize("what", ["manifest", "blob"])
def test_response_cut_short_mid_body_is_retried_or_fails_cleanly(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str],
    what: str,
) -> None:
    """The connection dies after part of the body: retry, or exit 5 with one line -- never a traceback."""
    layer = os.urandom(50_000)
    with httpx.Client(timeout=10) as client:
        image = push_image(client, registry_plain.url, unique_repo, layer=layer)
    if what == "blob":
        path, full, content_type = rf"/blobs/{image.layer_digest}$", layer, "application/octet-stream"
    else:
        path, full, content_type = r"/manifests/latest$", image.manifest, "application/vnd.oci.image.manifest.v1+json"
    proxy.inject(matching("GET", path), 200, times=1, body=full[: len(full) // 2], headers={
        "Content-Type": content_type, "Content-Length": str(len(full)),
        "Docker-Content-Digest": digest_of(full)})

    result = run_cli("pull", f"{proxy.host}/{unique_repo}:latest", "-o", str(tmp_path / "out"), env=env)

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, EXIT_REGISTRY), result.stderr
    if result.returncode == 0:
        assert (tmp_path / "out" / "hello.txt").read_bytes() == layer
    else:
        _assert_one_error_line(result)
        assert not (tmp_path / "out" / "hello.txt").exists()


def test_blob_redirect_to_another_host_carries_no_credentials(
    registry_factory: RegistryFactory, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    registry = registry_factory("htpasswd")
    assert registry.username is not None and registry.password is not None
    src = tmp_path / "src"
    files = {"small.txt": b"hello through a redirect\n", "big.bin": os.urandom(300_000)}
    for name, data in files.items():
        _write_file(src, name, data)
    login = ("--username", registry.username, "--password-stdin")

    with RegistryProxy(registry) as proxy, BlobStorageServer(
        registry, username=registry.username, password=registry.password
    ) as storage:
        reference = f"{proxy.host}/{unique_repo}:v1"
        pushed = _push(reference, src, env, *files, stdin=registry.password + "\n", extra=login)
        assert pushed.returncode == 0, pushed.stderr

        proxy.redirect_blobs_to(storage)
        proxy.clear()
        out = tmp_path / "out"
        pulled = run_cli("pull", reference, "-o", str(out), *login, env=env, stdin=registry.password + "\n")

        assert pulled.returncode == 0, pulled.stderr
        for name, data in files.items():
            assert (out / name).read_bytes() == data, name

        redirected = [r for r in proxy.requests if r.action == "redirected"]
        assert {r.path.rsplit("/", 1)[1] for r in redirected} == {digest_of(d) for d in files.values()}
        stored = storage.requests
        assert len(stored) >= len(files)
        assert {r.path.rsplit("/", 1)[1] for r in stored} == {digest_of(d) for d in files.values()}
        assert all(r.status == 200 for r in stored), [(r.path, r.status) for r in stored]
        # The point: credentials never left for the other host ...
        assert [r for r in stored if r.header("Authorization") is not None] == []
        assert all(r.header("User-Agent") == USER_AGENT for r in stored)
        # ... while the registry itself did get them (manifest and the blob GETs that were redirected).
        assert all((r.header("Authorization") or "").startswith("Basic ") for r in redirected)
        manifest_gets = proxy.requests_matching(method="GET", path=r"/manifests/v1$")
        assert any((r.header("Authorization") or "").startswith("Basic ") and r.status == 200 for r in manifest_gets)


def test_user_agent_on_every_request(
    proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    src = tmp_path / "src"
    _write_file(src, "ua.txt", b"user agent\n")
    reference = f"{proxy.host}/{unique_repo}:v1"
    assert _push(reference, src, env, "ua.txt").returncode == 0
    assert run_cli("pull", reference, "-o", str(tmp_path / "out"), env=env).returncode == 0
    assert run_cli("tags", f"{proxy.host}/{unique_repo}", env=env).returncode == 0

    seen = proxy.requests
    assert {r.method for r in seen} >= {"HEAD", "POST", "PUT", "GET"}
    assert {r.header("User-Agent") for r in seen} == {USER_AGENT}
    assert re.fullmatch(r"ci-oras/\d+\.\d+\.\d+\S*", USER_AGENT)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_registry_exits_5_naming_the_host(tmp_path: Path, env: dict[str, str]) -> None:
    host = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()

    result = run_cli("pull", f"{host}/nothing/here:v1", "-o", str(tmp_path / "out"), env=env)

    assert result.returncode == EXIT_REGISTRY, result.stderr
    line = _assert_one_error_line(result)
    assert host in line, line
    assert time.monotonic() - started < 30


def test_blob_upload_restarts_after_503(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """A file can be read again, so a failed blob upload starts over with a new upload session."""
    data = os.urandom(300_000)
    src = tmp_path / "src"
    _write_file(src, "data.bin", data)
    rule = proxy.inject(matching("PUT", rf"/v2/{unique_repo}/blobs/uploads/", query=digest_of(data)), 503, times=1)

    result = _push(f"{proxy.host}/{unique_repo}:v1", src, env, "data.bin")

    assert result.returncode == 0, result.stderr
    assert rule.remaining == 0
    blob_puts = proxy.requests_matching(method="PUT", path=r"/blobs/uploads/", query=digest_of(data))
    assert [r.status for r in blob_puts] == [503, 201]
    posts = proxy.requests_matching(method="POST", path=rf"/v2/{unique_repo}/blobs/uploads/$")
    assert len(posts) >= 2  # a fresh session for the retry (plus the one for the config blob)
    with httpx.Client(timeout=10) as client:
        stored = client.get(f"{registry_plain.url}/v2/{unique_repo}/blobs/{digest_of(data)}")
    assert stored.content == data


def test_tags_follow_link_pagination(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, env: dict[str, str]
) -> None:
    """distribution 2.8 answers tags/list in one page; registries that paginate send a Link header (RFC 5988).

    The proxy answers the first page itself, as a paginating registry would, with a relative ``next`` link;
    the second page comes from the real registry.
    """
    with httpx.Client(timeout=10) as client:
        image = push_image(client, registry_plain.url, unique_repo, tag="zeta")
        push_manifest(client, registry_plain.url, unique_repo, "eta", image.manifest)
    first_page = ('{"name":"%s","tags":["alpha","beta"]}' % unique_repo).encode()
    proxy.inject(matching("GET", rf"/v2/{unique_repo}/tags/list$", query=r"^n=1000$"), 200, times=1,
                 headers={"Content-Type": "application/json",
                          "Link": f'</v2/{unique_repo}/tags/list?n=2&last=beta>; rel="next"'},
                 body=first_page)

    result = run_cli("tags", f"{proxy.host}/{unique_repo}", env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alpha", "beta", "eta", "zeta"]
    pages = proxy.requests_matching(method="GET", path=r"/tags/list$")
    assert [p.query for p in pages] == ["n=1000", "n=2&last=beta"]
