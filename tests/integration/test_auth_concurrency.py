"""Authentication under concurrency, and credentials kept to the one host they belong to.

Regression tests against real docker-registry processes: parallel first requests to an authenticated
registry used to race the shared auth state (a thread seeing a challenge another thread had answered took it
as "credentials refused"), environment credentials went to every host that challenged, and absolute URLs a
registry handed out (pagination links, upload locations) carried its Authorization to other hosts.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from harness.cli import clean_env, run_cli
from harness.oci import OCI_INDEX, digest_of, push_artifact, push_fallback_index, push_layer
from harness.proxy import ProxyRecord, RegistryProxy
from harness.registry import TOKEN_SERVICE, RegistryFactory, RunningRegistry
from harness.token_issuer import TokenRequestRecord

from ci_oras.errors import EXIT_AUTH, EXIT_REGISTRY
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.reference import parse_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.store.registry import RegistryRepository

SIGNATURE_TYPE = "application/vnd.example.signature"


@dataclass(frozen=True)
class Graph:
    """An image with several layers and two referrers, on the plain registry (the tag schema)."""

    host: str
    repo: str
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:v1"


def push_graph(registry: RunningRegistry, layers: int = 6) -> Graph:
    """Enough blobs that a promote's parallel first requests really meet at the destination: an image
    tagged v1 and two tagged signatures of it, listed in its fallback index."""
    repo, url = f"auth/{uuid.uuid4().hex[:8]}", registry.url
    with httpx.Client(timeout=30) as client:
        blobs = [push_layer(client, url, repo, os.urandom(512)) for _ in range(layers)]
        image = push_artifact(client, url, repo, blobs, reference="v1")
        referrers = [
            push_artifact(client, url, repo, [push_layer(client, url, repo, os.urandom(256))],
                          reference=f"sig-{n}", subject=image, artifact_type=SIGNATURE_TYPE)
            for n in range(2)
        ]
        push_fallback_index(client, url, repo, image["digest"], referrers)
    return Graph(registry.host, repo, image["digest"])


@pytest.fixture(scope="module")
def graph(registry_plain: RunningRegistry) -> Graph:
    return push_graph(registry_plain)


def _basic_users(records: list[ProxyRecord]) -> set[str]:
    """The user names of every Basic Authorization a proxy saw (bearer tokens are listed as "bearer")."""
    users: set[str] = set()
    for record in records:
        header = record.header("Authorization")
        if header is None:
            continue
        scheme, _, value = header.partition(" ")
        users.add(base64.b64decode(value).decode().partition(":")[0] if scheme.lower() == "basic" else "bearer")
    return users


def _grants(records: list[TokenRequestRecord], scope: str) -> list[TokenRequestRecord]:
    return [record for record in records if record.status == 200 and scope in record.scopes]


# -- promote into authenticated registries at the default concurrency --------------------------------------


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_promote_into_authenticated_registry_ten_times(request: pytest.FixtureRequest, mode: str, graph: Graph,
                                                       tmp_path: Path) -> None:
    registry: RunningRegistry = request.getfixturevalue(f"registry_{mode}")
    assert registry.username and registry.password
    env = clean_env(tmp_path)
    if registry.issuer is not None:
        registry.issuer.clear_requests()
    failures = []
    for attempt in range(10):
        destination = f"{registry.host}/promoted/{uuid.uuid4().hex[:8]}:v1"
        result = run_cli("promote", graph.ref, destination, "-u", registry.username, "--password-stdin", "-O",
                         "json", env=env, stdin=registry.password)
        if result.returncode != 0:
            failures.append((attempt, result.returncode, result.stderr))
            continue
        document = result.json()
        assert document["digest"] == graph.digest and document["referrers"] == 2
        assert document["copied"] == {"manifests": 3, "blobs": 9}
    assert failures == []
    if registry.issuer is not None:
        # One pull,push token per promote serves every parallel request: the first contact is made once.
        assert len(registry.issuer.requests) == 10, registry.issuer.requests


def test_thirty_two_parallel_first_requests_share_one_token(registry_token: RunningRegistry, graph: Graph,
                                                            tmp_path: Path) -> None:
    issuer = registry_token.issuer
    assert issuer is not None and registry_token.username and registry_token.password
    issuer.clear_requests()
    destination = f"{registry_token.host}/wide/{uuid.uuid4().hex[:8]}"
    result = run_cli("promote", graph.ref, f"{destination}:v1", "--concurrency", "32", "-u",
                     registry_token.username, "--password-stdin", env=clean_env(tmp_path),
                     stdin=registry_token.password)
    assert result.returncode == 0, result.stderr
    scope = f"repository:{destination.split('/', 1)[1]}:pull,push"
    assert [(r.scopes, r.status) for r in issuer.requests] == [((scope,), 200)]


# -- tokens that expire mid-run ----------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [2, -58], ids=["expires-in-2s", "refused-after-2s"])
def test_promote_outlasting_its_token(registry_token: RunningRegistry, graph: Graph, tmp_path: Path,
                                      ttl: int) -> None:
    """``expires_in: 2``: renewed before it runs out. ``-58``: the answer claims nothing useful and
    distribution (which allows 60 s past ``exp``) starts refusing the token after ~2 s with
    ``invalid_token`` while parallel requests still carry it: renewed once, not reported as denied."""
    issuer = registry_token.issuer
    assert issuer is not None and registry_token.username and registry_token.password
    issuer.clear_requests()
    saved, issuer.token_ttl = issuer.token_ttl, ttl
    try:
        with RegistryProxy(registry_token) as proxy:
            proxy.latency = 0.3  # a registry that is not on this machine: the promote takes several seconds
            destination = f"{proxy.host}/expiring/{uuid.uuid4().hex[:8]}"
            started = time.monotonic()
            result = run_cli("promote", graph.ref, f"{destination}:v1", "-u", registry_token.username,
                             "--password-stdin", env=clean_env(tmp_path), stdin=registry_token.password)
            elapsed = time.monotonic() - started
            refusals = [r for r in proxy.requests if r.status == 401 and r.header("Authorization")]
    finally:
        issuer.token_ttl = saved
    assert result.returncode == 0, result.stderr
    assert elapsed > 3, "the promote must outlast the token for this test to mean anything"
    grants = _grants(issuer.requests, f"repository:{destination.split('/', 1)[1]}:pull,push")
    assert len(grants) >= 2  # renewed mid-run
    assert len(grants) <= elapsed / 1.0 + 2, grants  # and renewed once per expiry, not once per request
    if ttl < 0:
        assert refusals and all('error="invalid_token"' in (r.response_header("WWW-Authenticate") or "")
                                for r in refusals)


# -- cross-repository mount ---------------------------------------------------------------------------------


def test_cross_repository_mount_uses_one_two_scope_token(registry_token: RunningRegistry,
                                                         tmp_path: Path) -> None:
    issuer = registry_token.issuer
    assert issuer is not None and registry_token.username and registry_token.password
    env = clean_env(tmp_path)
    source = f"{registry_token.host}/mount/{uuid.uuid4().hex[:8]}-a"
    target = f"{registry_token.host}/mount/{uuid.uuid4().hex[:8]}-b"
    (tmp_path / "one.bin").write_bytes(os.urandom(4096))
    (tmp_path / "two.bin").write_bytes(os.urandom(4096))
    pushed = run_cli("push", f"{source}:v1", "one.bin", "two.bin", "-u", registry_token.username,
                     "--password-stdin", env=env, cwd=tmp_path, stdin=registry_token.password)
    assert pushed.returncode == 0, pushed.stderr
    issuer.clear_requests()

    promoted = run_cli("promote", f"{source}:v1", f"{target}:v1", "-u", registry_token.username,
                       "--password-stdin", "-O", "json", env=env, stdin=registry_token.password)

    assert promoted.returncode == 0, promoted.stderr
    assert promoted.json()["mounted"] == 3  # two files and the empty config, none uploaded again
    source_repo, target_repo = source.split("/", 1)[1], target.split("/", 1)[1]
    mount_tokens = [r for r in issuer.requests
                    if {f"repository:{source_repo}:pull", f"repository:{target_repo}:pull,push"} <= set(r.scopes)]
    assert len(mount_tokens) == 1 and mount_tokens[0].status == 200, issuer.requests
    assert all(r.status == 200 for r in issuer.requests)


# -- a wrong password fails at once ---------------------------------------------------------------------------


def test_wrong_password_at_concurrency_32_fails_fast(registry_token: RunningRegistry, graph: Graph,
                                                     tmp_path: Path) -> None:
    issuer = registry_token.issuer
    assert issuer is not None and registry_token.username
    issuer.clear_requests()
    result = run_cli("promote", graph.ref, f"{registry_token.host}/denied/{uuid.uuid4().hex[:8]}:v1",
                     "--concurrency", "32", "-u", registry_token.username, "--password-stdin",
                     env=clean_env(tmp_path), stdin="not-the-password")
    assert result.returncode == EXIT_AUTH, result.stderr
    assert "authentication failed" in result.stderr and "not-the-password" not in result.stderr
    assert 1 <= len(issuer.requests) <= 2, issuer.requests  # no storm of token requests
    assert result.stderr.count("\n") == 1


def test_missing_permission_is_denied_at_once(registry_factory: RegistryFactory, graph: Graph,
                                              tmp_path: Path) -> None:
    """A pull-only account: the token lacks push, which is "access denied" (exit 4), found out once."""
    registry = registry_factory("token", authorizer=lambda _who, _type, _name, actions: [
        action for action in actions if action == "pull"])
    assert registry.issuer is not None and registry.username and registry.password
    result = run_cli("promote", graph.ref, f"{registry.host}/readonly/app:v1", "--concurrency", "32", "-u",
                     registry.username, "--password-stdin", env=clean_env(tmp_path), stdin=registry.password)
    assert result.returncode == EXIT_AUTH, result.stderr
    assert "access denied" in result.stderr and "lacks permission" in result.stderr
    assert 1 <= len(registry.issuer.requests) <= 2, registry.issuer.requests


def test_wrong_basic_password_at_concurrency_32_fails_fast(registry_htpasswd: RunningRegistry, graph: Graph,
                                                           tmp_path: Path) -> None:
    assert registry_htpasswd.username
    with RegistryProxy(registry_htpasswd) as proxy:
        result = run_cli("promote", graph.ref, f"{proxy.host}/denied/{uuid.uuid4().hex[:8]}:v1",
                         "--concurrency", "32", "-u", registry_htpasswd.username, "--password-stdin",
                         env=clean_env(tmp_path), stdin="not-the-password")
        refused = [r for r in proxy.requests if r.header("Authorization")]
    assert result.returncode == EXIT_AUTH, result.stderr
    assert "authentication failed" in result.stderr
    # The first contact is made once; at most the requests already under way carry the refused password.
    assert len([r for r in proxy.requests if not r.header("Authorization")]) == 1
    assert 1 <= len(refused) <= 32


# -- each secret reaches one host ------------------------------------------------------------------------------


@pytest.fixture
def public_source(registry_factory: RegistryFactory, tmp_path: Path) -> Iterator[tuple[RunningRegistry, str]]:
    """A token registry whose realm (the issuer, on its own port) grants anonymous pulls, with one artifact."""
    registry = registry_factory("token", anonymous_actions=("pull",), username="source-user",
                                password="source-password")
    (tmp_path / "app.txt").write_text("app\n")
    reference = f"{registry.host}/public/app:v1"
    pushed = run_cli("push", reference, "app.txt", "-u", "source-user", "--password-stdin",
                     env=clean_env(tmp_path), cwd=tmp_path, stdin="source-password")
    assert pushed.returncode == 0, pushed.stderr
    assert registry.issuer is not None
    registry.issuer.clear_requests()
    yield registry, "public/app:v1"


@pytest.mark.parametrize("how", ["environment", "flags"])
def test_destination_credentials_reach_only_the_destination(
        public_source: tuple[RunningRegistry, str], registry_htpasswd: RunningRegistry, tmp_path: Path,
        how: str) -> None:
    source, name = public_source
    assert source.issuer is not None and registry_htpasswd.username and registry_htpasswd.password
    with RegistryProxy(source) as source_proxy, RegistryProxy(registry_htpasswd) as destination_proxy:
        env = clean_env(tmp_path)
        args: list[str] = []
        stdin = None
        if how == "environment":
            env.update(CI_ORAS_USERNAME=registry_htpasswd.username, CI_ORAS_PASSWORD=registry_htpasswd.password,
                       CI_ORAS_REGISTRY=destination_proxy.host)
        else:
            args, stdin = ["-u", registry_htpasswd.username, "--password-stdin"], registry_htpasswd.password
        result = run_cli("promote", f"{source_proxy.host}/{name}",
                         f"{destination_proxy.host}/scoped/{uuid.uuid4().hex[:8]}:v1", *args, env=env, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert source_proxy.requests and _basic_users(source_proxy.requests) <= {"bearer"}
        assert _basic_users(destination_proxy.requests) == {registry_htpasswd.username}
    assert source.issuer.requests and not any(r.has_authorization for r in source.issuer.requests)


def test_environment_credentials_need_their_registry_named(registry_htpasswd: RunningRegistry, graph: Graph,
                                                           tmp_path: Path) -> None:
    assert registry_htpasswd.username and registry_htpasswd.password
    credentials = {"CI_ORAS_USERNAME": registry_htpasswd.username, "CI_ORAS_PASSWORD": registry_htpasswd.password}
    destination = f"{registry_htpasswd.host}/scoped/{uuid.uuid4().hex[:8]}:v1"

    unscoped = run_cli("promote", graph.ref, destination, env=clean_env(tmp_path, credentials))
    assert unscoped.returncode == EXIT_AUTH
    assert ("CI_ORAS_USERNAME/CI_ORAS_PASSWORD are set but CI_ORAS_REGISTRY is not; "
            "set CI_ORAS_REGISTRY=host[:port] to use them") in unscoped.stderr
    assert registry_htpasswd.password not in unscoped.stderr

    elsewhere = run_cli("promote", graph.ref, destination,
                        env=clean_env(tmp_path, {**credentials, "CI_ORAS_REGISTRY": graph.host}))
    assert elsewhere.returncode == EXIT_AUTH
    assert f"CI_ORAS_REGISTRY={graph.host}, not {registry_htpasswd.host}" in elsewhere.stderr

    scoped = run_cli("promote", graph.ref, destination,
                     env=clean_env(tmp_path, {**credentials, "CI_ORAS_REGISTRY": f"http://{registry_htpasswd.host}/"}))
    assert scoped.returncode == 0, scoped.stderr


# -- absolute URLs on other hosts ---------------------------------------------------------------------------------


class _Recorder:
    """A stand-in for "another host" (addressed as ``localhost``): records requests, accepts uploads."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path?query, Authorization)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                recorder.requests.append((self.command, self.path, self.headers.get("Authorization")))
                digest = (parse_qs(urlsplit(self.path).query).get("digest") or [""])[0]
                self.send_response(201 if self.command == "PUT" else 200)
                self.send_header("Docker-Content-Digest", digest)
                self.send_header("Content-Type", "application/json")
                body = b'{"name":"elsewhere","tags":["foreign"]}'
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_PATCH = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://localhost:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[_Recorder]:
    recorder = _Recorder()
    yield recorder
    recorder.close()


@pytest.fixture
def authed_proxy(registry_htpasswd: RunningRegistry) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry_htpasswd) as proxy:
        yield proxy


def _authorized(path_suffix: str, method: str = "GET") -> Callable[[ProxyRecord], bool]:
    """Matches requests that carry credentials: the injected answer comes after authentication worked."""
    return lambda r: r.method == method and r.path.endswith(path_suffix) and r.header("Authorization") is not None


def _push_blob_in_process(registry: RunningRegistry, host: str, repo: str, home: Path, data: bytes, *,
                          check: bool = False) -> Descriptor:
    """Push one blob through the library with ``registry``'s credentials scoped to ``host`` (its proxy);
    the blob streams in two pieces, as a promote streams it from the source."""
    assert registry.username and registry.password
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", os.defpath), "CI_ORAS_USERNAME": registry.username,
           "CI_ORAS_PASSWORD": registry.password, "CI_ORAS_REGISTRY": host}
    runtime = Runtime(TransportOptions(), LoginFlags(), env)
    try:
        target = runtime.open(parse_reference(f"{host}/{repo}"), create=True)
        assert isinstance(target, RegistryRepository)
        desc = Descriptor(media_type="application/octet-stream", digest=digest_of(data), size=len(data))
        target.push_blob(desc, [data[: len(data) // 2], data[len(data) // 2:]])
        if check:
            assert target.exists(desc)
        return desc
    finally:
        runtime.close()


def test_tags_next_link_to_another_host_is_refused(registry_htpasswd: RunningRegistry, authed_proxy: RegistryProxy,
                                                   graph: Graph, elsewhere: _Recorder, tmp_path: Path) -> None:
    assert registry_htpasswd.username and registry_htpasswd.password
    repo = f"links/{uuid.uuid4().hex[:8]}"
    promoted = run_cli("promote", graph.ref, f"{authed_proxy.host}/{repo}:v1", "-u", registry_htpasswd.username,
                       "--password-stdin", env=clean_env(tmp_path), stdin=registry_htpasswd.password)
    assert promoted.returncode == 0, promoted.stderr
    authed_proxy.inject(_authorized("/tags/list"), 200, headers={
        "Content-Type": "application/json",
        "Link": f'<{elsewhere.url}/v2/{repo}/tags/list?last=v1>; rel="next"'}, body=json.dumps(
        {"name": repo, "tags": ["v1"]}).encode())

    result = run_cli("tags", f"{authed_proxy.host}/{repo}", "-u", registry_htpasswd.username, "--password-stdin",
                     env=clean_env(tmp_path), stdin=registry_htpasswd.password)

    assert result.returncode == EXIT_REGISTRY, result.stderr
    assert f"next-page link to another host (localhost:{elsewhere.url.rsplit(':', 1)[1]})" in result.stderr
    assert "foreign" not in result.stdout and elsewhere.requests == []


def test_referrers_next_link_to_another_host_is_refused(registry_htpasswd: RunningRegistry,
                                                        authed_proxy: RegistryProxy, graph: Graph,
                                                        elsewhere: _Recorder, tmp_path: Path) -> None:
    assert registry_htpasswd.username and registry_htpasswd.password
    repo = f"links/{uuid.uuid4().hex[:8]}"
    promoted = run_cli("promote", graph.ref, f"{authed_proxy.host}/{repo}:v1", "-u", registry_htpasswd.username,
                       "--password-stdin", env=clean_env(tmp_path), stdin=registry_htpasswd.password)
    assert promoted.returncode == 0, promoted.stderr
    # A registry that serves the referrers API (distribution does not: the answer is injected) and pages it.
    page = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    authed_proxy.inject(_authorized(f"/referrers/{graph.digest}"), 200, headers={
        "Content-Type": OCI_INDEX,
        "Link": f'<{elsewhere.url}/v2/{repo}/referrers/{graph.digest}?page=2>; rel="next"'},
        body=json.dumps(page).encode())

    result = run_cli("discover", f"{authed_proxy.host}/{repo}:v1", "-u", registry_htpasswd.username,
                     "--password-stdin", env=clean_env(tmp_path), stdin=registry_htpasswd.password)

    assert result.returncode == EXIT_REGISTRY, result.stderr
    assert "next-page link to another host (localhost:" in result.stderr
    assert elsewhere.requests == []


def test_upload_location_on_another_host_gets_no_credentials(registry_htpasswd: RunningRegistry,
                                                             authed_proxy: RegistryProxy, elsewhere: _Recorder,
                                                             tmp_path: Path) -> None:
    """Followed (some registries upload to storage elsewhere), but the registry's Authorization stays home."""
    assert registry_htpasswd.username and registry_htpasswd.password
    repo = f"uploads/{uuid.uuid4().hex[:8]}"
    authed_proxy.inject(_authorized("/blobs/uploads/", "POST"), 202, headers={
        "Location": f"{elsewhere.url}/upload/{repo}/session-1?_state=opaque"})
    desc = _push_blob_in_process(registry_htpasswd, authed_proxy.host, repo, tmp_path, os.urandom(1000))

    assert [(method, auth) for method, _, auth in elsewhere.requests] == [("PUT", None)]
    assert f"digest={desc.digest}" in elsewhere.requests[0][1]
    posts = authed_proxy.requests_matching(method="POST", path=r"/blobs/uploads/$")
    assert posts[-1].header("Authorization") is not None and posts[-1].action == "injected"



def test_token_refused_during_a_streamed_upload_restarts_it(registry_token: RunningRegistry,
                                                            tmp_path: Path) -> None:
    """A streamed body cannot be sent twice: the token is renewed and the upload restarts from its source
    (it used to re-send the spent stream: a traceback about too little data for the Content-Length)."""
    issuer = registry_token.issuer
    assert issuer is not None and registry_token.username and registry_token.password
    with RegistryProxy(registry_token) as proxy:
        repo = f"restart/{uuid.uuid4().hex[:8]}"
        expired = f'Bearer realm="{issuer.url}",service="{TOKEN_SERVICE}",scope="repository:{repo}:pull,push",' \
                  'error="invalid_token"'
        rule = proxy.inject(_authorized("", "PUT"), 401, headers={"WWW-Authenticate": expired})
        issuer.clear_requests()
        _push_blob_in_process(registry_token, proxy.host, repo, tmp_path, os.urandom(5000), check=True)
        assert len(rule.hits) == 1
        assert len(proxy.requests_matching(method="POST", path=r"/blobs/uploads/$")) == 3  # probe, refused, again
    assert [r.status for r in issuer.requests] == [200, 200]  # the first token, then one renewal
