"""Transport behaviour of the real ``ci-oras`` CLI: retries, Retry-After, dropped connections, redirects.

A :class:`~harness.proxy.RegistryProxy` sits between the CLI subprocess and a real ``docker-registry``; it
injects faults and records every request, so each test checks both the outcome (exit code, files) and what
went over the wire (how often, how long apart, with which headers).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness.cli import CliResult, clean_env, run_cli
from harness.oci import MANIFEST_ACCEPT, OCI_INDEX, digest_of, push_image, push_manifest
from harness.proxy import CHUNK as CHUNK_SIZE
from harness.proxy import BlobStorageServer, RegistryProxy, matching
from harness.registry import RegistryFactory, RunningRegistry

from ci_oras import __version__
from ci_oras.errors import EXIT_INTEGRITY, EXIT_REGISTRY

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


@contextmanager
def _refusing_port() -> Iterator[int]:
    """A port bound but never listening: connections are refused, and no other test's server can take it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_unreachable_registry_exits_5_naming_the_host(tmp_path: Path, env: dict[str, str]) -> None:
    with _refusing_port() as port:
        host = f"127.0.0.1:{port}"
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
    first_page = json.dumps({"name": unique_repo, "tags": ["alpha", "beta"]}, separators=(",", ":")).encode()
    proxy.inject(matching("GET", rf"/v2/{unique_repo}/tags/list$", query=r"^n=1000$"), 200, times=1,
                 headers={"Content-Type": "application/json",
                          "Link": f'</v2/{unique_repo}/tags/list?n=2&last=beta>; rel="next"'},
                 body=first_page)

    result = run_cli("tags", f"{proxy.host}/{unique_repo}", env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alpha", "beta", "eta", "zeta"]
    pages = proxy.requests_matching(method="GET", path=r"/tags/list$")
    assert [p.query for p in pages] == ["n=1000", "n=2&last=beta"]


# -- deadlines and minimum rates (--request-timeout, --min-rate, --min-rate-window) ---------------------------

#: Small limits so a test ends in seconds; the defaults are 30 s, 1024 B/s and 30 s.
FAST_LIMITS = ("--request-timeout", "1", "--min-rate-window", "1")


def _seed(registry: RunningRegistry, repo: str, layer: bytes) -> Any:
    with httpx.Client(timeout=10) as client:
        return push_image(client, registry.url, repo, layer=layer)


def test_trickled_manifest_ends_at_the_request_timeout_after_bounded_retries(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, env: dict[str, str]
) -> None:
    """One byte every 0.2 s would take minutes; each attempt ends at the deadline, five attempts in all."""
    _seed(registry_plain, unique_repo, b"trickle")
    rule = proxy.slow_down(matching("GET", r"/manifests/latest$"), times=1000, step=1, interval=0.2)
    started = time.monotonic()

    result = run_cli("manifest", "fetch", f"{proxy.host}/{unique_repo}:latest", *FAST_LIMITS, env=env)

    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_REGISTRY, result.stderr
    line = _assert_one_error_line(result)
    assert "--request-timeout 1s" in line and proxy.host in line, line
    assert len(rule.hits) == 5  # the transport's retry policy: 4 retries
    gaps = [b.time - a.time for a, b in zip(rule.hits, rule.hits[1:])]
    assert all(gap >= 1.0 for gap in gaps), gaps  # every attempt ran to its deadline, not beyond a read
    # Five 1 s deadlines plus at most 7.5 s of back-off (0.5, 1, 2, 4) plus start-up.
    assert elapsed < 5 * 1.3 + 7.5 + 5, elapsed


def test_trickled_manifest_succeeds_on_retry_with_the_exact_bytes(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, env: dict[str, str]
) -> None:
    image = _seed(registry_plain, unique_repo, b"trickle once")
    rule = proxy.slow_down(matching("GET", r"/manifests/latest$"), times=1, step=1, interval=0.2)

    result = run_cli("manifest", "fetch", f"{proxy.host}/{unique_repo}:latest", *FAST_LIMITS, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.encode().startswith(image.manifest)
    assert rule.remaining == 0
    gets = proxy.requests_matching(method="GET", path=r"/manifests/latest$")
    assert [g.action for g in gets] == ["slowed", "forwarded"]


def test_stalled_blob_download_ends_after_the_rate_window(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """No byte after the first 50 kB: a stall; each resume stalls again; exit 5 naming the rate flags."""
    image = _seed(registry_plain, unique_repo, os.urandom(1_000_000))
    rule = proxy.slow_down(matching("GET", rf"/blobs/{image.layer_digest}$"), times=1000, step=CHUNK_SIZE,
                           stall_after=50_000)
    started = time.monotonic()

    result = run_cli("pull", f"{proxy.host}/{unique_repo}:latest", "-o", str(tmp_path / "out"), *FAST_LIMITS,
                     env=env)

    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_REGISTRY, result.stderr
    line = _assert_one_error_line(result)
    assert "no data for" in line and "--min-rate" in line and "--min-rate-window 1s" in line, line
    assert image.layer_digest in line, line
    assert len(rule.hits) == 5  # the first GET and four resumes, each from where the last one stopped
    assert [h.header("Range") for h in rule.hits[1:]] == [f"bytes={50_000 * n}-" for n in range(1, 5)]
    assert not (tmp_path / "out" / "hello.txt").exists()
    assert elapsed < 5 * 1.3 + 7.5 + 5, elapsed


def test_slow_blob_outlives_the_request_timeout_and_a_too_slow_one_resumes(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """Blob transfers have no deadline (a large layer on a slow link must work): at ~160 kB/s a 300 kB layer
    takes ~2 s, past a 0.5 s --request-timeout, and arrives in one GET. A --min-rate above that speed
    aborts the attempt after one window and the download resumes where it stopped."""
    layer = os.urandom(300_000)
    image = _seed(registry_plain, unique_repo, layer)
    blob = matching("GET", rf"/blobs/{image.layer_digest}$")

    def slow_pull(out: str, *limits: str) -> list[Any]:
        proxy.clear()
        proxy.slow_down(blob, times=1, step=8192, interval=0.05)
        result = run_cli("pull", f"{proxy.host}/{unique_repo}:latest", "-o", str(tmp_path / out), *limits,
                         env=env)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / out / "hello.txt").read_bytes() == layer
        return proxy.requests_matching(blob)

    gets = slow_pull("slow", "--request-timeout", "0.5", "--min-rate-window", "0.5")
    assert [g.action for g in gets] == ["slowed"]

    gets = slow_pull("too-slow", "--min-rate", "1000000", "--min-rate-window", "0.5")
    assert [g.action for g in gets] == ["slowed", "forwarded"]
    resumed_at = int((gets[1].header("Range") or "bytes=0-")[len("bytes="):-1])
    assert 0 < resumed_at < len(layer)


def test_stalled_upload_ends_after_the_rate_window_and_restarts(
    proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """The registry stops reading an upload after 1 MB: the client's writes block. The attempt ends after one
    --min-rate-window (not the 60 s socket timeout) and the upload starts over from the file."""
    data = os.urandom(24 * 1024 * 1024)  # more than the loopback socket buffers hold
    src = tmp_path / "src"
    _write_file(src, "big.bin", data)
    upload = matching("PUT", rf"/v2/{unique_repo}/blobs/uploads/", query=digest_of(data))
    proxy.slow_down(upload, times=1, stall_upload_after=1_000_000)
    started = time.monotonic()

    result = _push(f"{proxy.host}/{unique_repo}:v1", src, env, "big.bin", extra=FAST_LIMITS)

    assert result.returncode == 0, result.stderr
    assert [r.action for r in proxy.requests_matching(upload)] == ["slowed", "forwarded"]
    assert time.monotonic() - started < 20


# -- transient is not integrity: DIGEST_INVALID / MANIFEST_BLOB_UNKNOWN on a manifest PUT --------------------

_DIGEST_INVALID = b'{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}'
_JSON = {"Content-Type": "application/json"}


def test_digest_invalid_on_manifest_put_is_retried_after_the_blobs_check_out(
    proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """distribution's link-file race under concurrent attaches: a 500, then DIGEST_INVALID, then fine."""
    data = os.urandom(5000)
    src = tmp_path / "src"
    _write_file(src, "data.bin", data)
    put = matching("PUT", r"/manifests/v1$")
    proxy.inject(put, 500, times=1)
    proxy.inject(put, 400, times=1, headers=_JSON, body=_DIGEST_INVALID)

    result = _push(f"{proxy.host}/{unique_repo}:v1", src, env, "data.bin", extra=("--output", "json"))

    assert result.returncode == 0, result.stderr
    puts = proxy.requests_matching(put)
    assert [p.status for p in puts] == [500, 400, 201]
    # Between the refused PUT and its retry, every referenced blob was checked (config and layer).
    checked = [r for r in proxy.requests_matching(method="HEAD", path=r"/blobs/")
               if puts[1].time <= r.time <= puts[2].time]
    assert {r.path.rsplit("/", 1)[1] for r in checked} >= {digest_of(data), digest_of(b"{}")}
    assert all(r.status == 200 for r in checked)


@pytest.mark.parametrize("fault", ["missing", "wrong-size"])
def test_manifest_put_refused_for_a_blob_really_missing_or_wrong_exits_6(
    proxy: RegistryProxy, unique_repo: str, tmp_path: Path, env: dict[str, str], fault: str
) -> None:
    """The proxy tells push the layer is already there, so it is never uploaded; the registry then refuses
    the manifest (MANIFEST_BLOB_UNKNOWN) and the check finds the blob absent (or, here, of another size)."""
    data = os.urandom(5000)
    src = tmp_path / "src"
    _write_file(src, "data.bin", data)
    size = len(data) if fault == "missing" else len(data) + 1
    head = matching("HEAD", rf"/blobs/{digest_of(data)}$")
    proxy.inject(head, 200, times=1 if fault == "missing" else 1000, headers={"Content-Length": str(size)})

    result = _push(f"{proxy.host}/{unique_repo}:v1", src, env, "data.bin")

    assert result.returncode == EXIT_INTEGRITY, result.stderr
    line = _assert_one_error_line(result)
    assert digest_of(data) in line, line
    assert ("does not have" if fault == "missing" else f"stores {size}") in line, line
    puts = proxy.requests_matching(method="PUT", path=r"/manifests/v1$")
    assert [p.status for p in puts] == [400]  # no retry once the blob is known to be missing or wrong
    assert not proxy.requests_matching(method="PUT", path=r"/blobs/uploads/", query=digest_of(data))


# -- caps on bodies read whole, digests, and what counts as a registry error ---------------------------------

def test_oversized_tag_list_is_refused_with_exit_5(
    proxy: RegistryProxy, unique_repo: str, env: dict[str, str]
) -> None:
    body = b'{"name":"x","tags":["' + b"a" * (5 * 1024 * 1024) + b'"]}'
    proxy.inject(matching("GET", r"/tags/list$"), 200, times=1, headers=_JSON, body=body)

    result = run_cli("tags", f"{proxy.host}/{unique_repo}", env=env)

    assert result.returncode == EXIT_REGISTRY, result.stderr
    line = _assert_one_error_line(result)
    assert f"larger than {4 * 1024 * 1024} bytes" in line, line


def test_oversized_token_answer_is_refused_with_exit_5(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, env: dict[str, str]
) -> None:
    """A token realm answering 5 MiB of JSON: refused like any oversized body, not held in memory."""
    with RegistryProxy(registry_plain) as realm:
        realm.inject(matching("GET", r"^/token$"), 200, times=1, headers=_JSON,
                     body=b'{"token":"' + b"t" * (5 * 1024 * 1024) + b'"}')
        proxy.inject(matching(path=r"^/v2/"), 401, times=1,
                     headers={"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="registry"'})

        result = run_cli("tags", f"{proxy.host}/{unique_repo}", env=env)

        assert result.returncode == EXIT_REGISTRY, result.stderr
        assert "larger than" in _assert_one_error_line(result)
        assert [r.action for r in realm.requests] == ["injected"]


def test_oversized_referrers_listing_is_refused_with_exit_5(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, env: dict[str, str]
) -> None:
    image = _seed(registry_plain, unique_repo, b"listed")
    entry = (b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":1},'
             % image.manifest_digest.encode())
    body = b'{"schemaVersion":2,"manifests":[' + entry * 40_000 + entry[:-1] + b"]}"
    proxy.inject(matching("GET", r"/referrers/"), 200, times=1,
                 headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}, body=body)

    result = run_cli("discover", f"{proxy.host}/{unique_repo}:latest", env=env)

    assert result.returncode == EXIT_REGISTRY, result.stderr
    assert "larger than" in _assert_one_error_line(result)


def test_huge_error_body_is_not_read_past_its_cap(
    proxy: RegistryProxy, unique_repo: str, env: dict[str, str]
) -> None:
    """A 404 with a 20 MB body: the message comes from the first bytes; the rest is never read."""
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such manifest"}]}' + b" " * 20_000_000
    proxy.inject(matching("GET", r"/manifests/"), 404, times=1, headers=_JSON, body=body)
    proxy.inject(matching("HEAD", r"/manifests/"), 404, times=1)

    result = run_cli("manifest", "fetch", f"{proxy.host}/{unique_repo}:gone", env=env)

    assert result.returncode == 3, result.stderr
    assert "MANIFEST_UNKNOWN" in _assert_one_error_line(result)


@pytest.mark.parametrize("tampered", [False, True])
def test_sha512_manifest_reference_is_verified(
    registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str, env: dict[str, str], tampered: bool
) -> None:
    """distribution stores manifests under sha256 only, so the proxy serves the sha512-named manifest."""
    image = _seed(registry_plain, unique_repo, b"five twelve")
    reference = "sha512:" + hashlib.sha512(image.manifest).hexdigest()
    served = image.manifest.replace(b"five", b"FIVE") if tampered else image.manifest
    served = image.manifest.replace(b'"schemaVersion":2', b'"schemaVersion": 2') if tampered else served
    proxy.inject(matching(None, rf"/manifests/{reference}$"), 200, times=2,
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, body=served)

    result = run_cli("manifest", "fetch", f"{proxy.host}/{unique_repo}@{reference}", env=env)

    if tampered:
        assert result.returncode == EXIT_INTEGRITY, result.stderr
        line = _assert_one_error_line(result)
        assert "sha512:" + hashlib.sha512(served).hexdigest() in line and reference in line, line
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.encode().startswith(image.manifest)


def test_html_page_answered_for_a_manifest_exits_5(
    proxy: RegistryProxy, unique_repo: str, env: dict[str, str]
) -> None:
    """A login portal or misconfigured proxy answering 200 text/html: the registry's failure, not bad input."""
    page = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
    html = {"Content-Type": "text/html; charset=utf-8"}
    proxy.inject(matching("HEAD", r"/manifests/v1$"), 200, times=1, headers={**html, "Content-Length": "55"})
    proxy.inject(matching("GET", r"/manifests/v1$"), 200, times=1, headers=html, body=page)

    result = run_cli("manifest", "fetch", f"{proxy.host}/{unique_repo}:v1", env=env)

    assert result.returncode == EXIT_REGISTRY, result.stderr
    line = _assert_one_error_line(result)
    assert "not a manifest" in line and "text/html" in line, line


def test_referrers_index_refused_as_too_large_exits_5(
    registry_plain: RunningRegistry, unique_repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """distribution refuses manifests over 4 MiB (400 MANIFEST_INVALID): a fallback index just under the
    limit cannot take one more entry. That is the registry's limit, not the user's input."""
    subject = _seed(registry_plain, unique_repo, b"subject")
    with httpx.Client(timeout=30) as client:
        other = push_image(client, registry_plain.url, unique_repo, tag="other", layer=b"other")
        entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other.manifest_digest,
                 "size": len(other.manifest), "artifactType": "application/vnd.example.big",
                 "annotations": {"pad": ""}}
        bare = len(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}).encode())
        entry["annotations"] = {"pad": "x" * (4 * 1024 * 1024 - 60 - bare)}
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}).encode()
        push_manifest(client, registry_plain.url, unique_repo, "sha256-" + subject.manifest_digest[7:], index,
                      media_type=OCI_INDEX)
    _write_file(tmp_path, "report.txt", b"one referrer too many\n")

    result = run_cli("attach", f"{registry_plain.host}/{unique_repo}:latest", "report.txt",
                     "--artifact-type", "application/vnd.example.report", env=env, cwd=tmp_path)

    assert result.returncode == EXIT_REGISTRY, result.stderr
    line = _assert_one_error_line(result)
    assert "referrers index" in line and "MANIFEST_INVALID" in line, line
