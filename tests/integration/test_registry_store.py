"""``RegistryRepository`` (store/registry.py) against a real ``docker-registry``, at library level.

Content the tests read is seeded with raw HTTP (``harness.oci``), not with ci_oras, so a symmetric bug in push
and fetch cannot hide; what ci_oras writes is checked with raw HTTP too. A recording proxy in front of the
registry shows the requests behind each call (PATCH chains, reused upload sessions) and forges answers to prove
that fetched content is verified.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from harness.oci import MANIFEST_ACCEPT, OCI_MANIFEST, PushedImage, digest_of, push_image, push_manifest
from harness.proxy import RegistryProxy, matching
from harness.registry import RegistryFactory, RunningRegistry
from harness.token_issuer import parse_scopes

from ci_oras.errors import IntegrityError, NotFoundError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.manifest import parse_manifest
from ci_oras.oci.reference import parse_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.store.registry import RegistryRepository

BLOB = "application/octet-stream"
TIMEOUT = httpx.Timeout(10.0)

OpenRepo = Callable[..., RegistryRepository]


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """``make_runtime(**env)``: a Runtime with a private HOME (no real docker config) and extra env."""
    runtimes: list[Runtime] = []
    home = tmp_path / "home"
    home.mkdir()

    def factory(**extra: str) -> Runtime:
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", os.defpath), **extra}
        runtime = Runtime(TransportOptions(), LoginFlags(), env)
        runtimes.append(runtime)
        return runtime

    yield factory
    for runtime in runtimes:
        runtime.close()


def _open(runtime: Runtime, host: str, repository: str) -> RegistryRepository:
    target = runtime.open(parse_reference(f"{host}/{repository}"))
    assert isinstance(target, RegistryRepository)
    return target


@pytest.fixture
def plain_proxy(registry_plain: RunningRegistry) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry_plain) as proxy:
        yield proxy


@pytest.fixture
def token_proxy(registry_token: RunningRegistry) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry_token) as proxy:
        yield proxy


@pytest.fixture
def token_runtime(token_proxy: RegistryProxy, registry_token: RunningRegistry,
                  make_runtime: Callable[..., Runtime]) -> Runtime:
    """Credentials for the token registry as these tests reach it: through ``token_proxy``."""
    assert registry_token.username is not None and registry_token.password is not None
    return make_runtime(CI_ORAS_USERNAME=registry_token.username, CI_ORAS_PASSWORD=registry_token.password,
                        CI_ORAS_REGISTRY=token_proxy.host)


@pytest.fixture
def seeded(registry_plain: RunningRegistry, unique_repo: str) -> PushedImage:
    """A one-layer artifact tagged ``latest``, pushed with raw HTTP."""
    with httpx.Client(timeout=TIMEOUT) as client:
        return push_image(client, registry_plain.url, unique_repo, layer=os.urandom(3000))


def _blob(data: bytes) -> Descriptor:
    return Descriptor(media_type=BLOB, digest=digest_bytes(data), size=len(data))


def _raw_status(registry: RunningRegistry, method: str, path: str) -> int:
    with httpx.Client(timeout=TIMEOUT) as client:
        return client.request(method, f"{registry.url}{path}", headers={"Accept": MANIFEST_ACCEPT}).status_code


def _odd_chunks(data: bytes) -> list[bytes]:
    sizes = (1, 7, 61, 113, 257, 499, 3, 1021)
    chunks, offset, index = [], 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        chunks.append(data[offset:offset + size])
        offset += size
        index += 1
    return chunks


# -- uploads ----------------------------------------------------------------------------------------------


def _uploader(runtime: Runtime, host: str, repo: str, *, chunk_threshold: int) -> RegistryRepository:
    """A repository client that uploads blobs of ``chunk_threshold`` bytes or more in 300-byte PATCHes."""
    ref = parse_reference(f"{host}/{repo}")
    return RegistryRepository(ref, runtime.session.client_for(ref), chunk_threshold=chunk_threshold,
                              chunk_size=300)


def test_chunked_upload_patches_at_the_newest_location(
    registry_plain: RunningRegistry, plain_proxy: RegistryProxy, make_runtime: Callable[..., Runtime],
    unique_repo: str,
) -> None:
    repo = _uploader(make_runtime(), plain_proxy.host, unique_repo, chunk_threshold=1000)
    data = os.urandom(5000)
    chunks = _odd_chunks(data)
    desc = _blob(data)

    repo.push_blob(desc, iter(chunks))

    assert b"".join(repo.fetch(desc)) == data
    with httpx.Client(timeout=TIMEOUT) as client:  # stored under its digest, independently of ci_oras
        assert client.get(f"{registry_plain.url}/v2/{unique_repo}/blobs/{desc.digest}").content == data

    upload = plain_proxy.requests_matching(path=rf"^/v2/{unique_repo}/blobs/uploads/")
    methods = [r.method for r in upload]
    assert methods[0] == "POST" and methods[-1] == "PUT" and set(methods[1:-1]) == {"PATCH"}, methods
    patches = upload[1:-1]
    # Several PATCHes, contiguous, covering the blob; the source's tiny chunks (1, 3, 7 bytes) are gathered
    # into pieces of at least chunk_size bytes (all but the last), not sent as tiny PATCHes.
    assert len(patches) >= 3
    offset = 0
    for index, patch in enumerate(patches):
        length = int(patch.header("Content-Length") or -1)
        assert patch.header("Content-Range") == f"{offset}-{offset + length - 1}"
        assert patch.status == 202
        if index < len(patches) - 1:
            assert length >= 300, [p.header("Content-Length") for p in patches]
        offset += length
    assert offset == len(data)
    # Each request continues at the Location the previous answer gave (distribution changes it every time).
    locations = [r.response_header("Location") for r in upload[:-1]]
    assert all(locations) and len(set(locations)) == len(locations)
    for previous, current in itertools.pairwise(upload):
        location = urlsplit(previous.response_header("Location") or "")
        assert current.path == location.path
        if current.method == "PATCH":
            assert current.query == location.query
        else:
            assert current.query == f"{location.query}&digest={desc.digest}"
    assert upload[-1].status == 201


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_wrong_digest_upload_raises_and_leaves_no_blob(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], unique_repo: str, chunked: bool
) -> None:
    repo = _uploader(make_runtime(), registry_plain.host, unique_repo,
                     chunk_threshold=1000 if chunked else 1 << 30)
    data = os.urandom(2000)
    claimed = _blob(os.urandom(2000))  # same size, another digest

    with pytest.raises(IntegrityError):
        repo.push_blob(claimed, iter([data[:999], data[999:]]))

    assert not repo.exists(claimed)
    assert not repo.exists(_blob(data))
    for digest in (claimed.digest, digest_of(data)):
        assert _raw_status(registry_plain, "HEAD", f"/v2/{unique_repo}/blobs/{digest}") == 404


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
@pytest.mark.parametrize("delta", [-1, 1], ids=["source-longer", "source-shorter"])
def test_wrong_size_upload_raises_integrity_error_and_leaves_no_blob(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], unique_repo: str, chunked: bool,
    delta: int,
) -> None:
    """The descriptor's size disagrees with the bytes the source yields (a file changed while pushing)."""
    repo = _uploader(make_runtime(), registry_plain.host, unique_repo,
                     chunk_threshold=1000 if chunked else 1 << 30)
    data = os.urandom(2000)
    claimed = Descriptor(media_type=BLOB, digest=digest_of(data), size=len(data) + delta)

    with pytest.raises(IntegrityError):
        repo.push_blob(claimed, iter([data[:999], data[999:]]))

    assert _raw_status(registry_plain, "HEAD", f"/v2/{unique_repo}/blobs/{digest_of(data)}") == 404


def test_push_blob_and_manifest_keep_exact_bytes(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], unique_repo: str
) -> None:
    repo = _open(make_runtime(), registry_plain.host, unique_repo)
    layer = os.urandom(1500)
    config = b"{}"
    repo.push_blob(_blob(config), [config])
    repo.push_blob(_blob(layer), iter(_odd_chunks(layer)))
    # Unusual but valid formatting: the digest is of these exact bytes, never of a re-serialisation.
    raw = (
        f'{{ "schemaVersion": 2,\n  "mediaType": "{OCI_MANIFEST}",\n'
        f'  "config": {{"mediaType": "application/vnd.oci.empty.v1+json", "digest": "{digest_of(config)}", "size": 2}},\n'
        f'  "layers": [{{"mediaType": "{BLOB}", "digest": "{digest_of(layer)}", "size": {len(layer)}}}] }}\n'
    ).encode()
    manifest = parse_manifest(raw, OCI_MANIFEST)

    repo.push_manifest(manifest, "exact")

    with httpx.Client(timeout=TIMEOUT) as client:
        got = client.get(f"{registry_plain.url}/v2/{unique_repo}/manifests/exact", headers={"Accept": MANIFEST_ACCEPT})
    assert got.status_code == 200 and got.content == raw
    assert got.headers["Docker-Content-Digest"] == manifest.digest == digest_of(raw)


# -- reads ------------------------------------------------------------------------------------------------


def test_exists_for_blobs_and_manifests(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], seeded: PushedImage
) -> None:
    repo = _open(make_runtime(), registry_plain.host, seeded.repo)
    assert repo.exists(Descriptor(BLOB, seeded.layer_digest, len(seeded.layer)))
    assert repo.exists(Descriptor("application/vnd.oci.empty.v1+json", seeded.config_digest, 2))
    assert repo.exists(Descriptor(OCI_MANIFEST, seeded.manifest_digest, len(seeded.manifest)))
    assert not repo.exists(_blob(b"never pushed"))
    assert not repo.exists(Descriptor(OCI_MANIFEST, digest_of(b"no such manifest"), 16))
    other = _open(make_runtime(), registry_plain.host, seeded.repo + "-nonexistent")
    assert not other.exists(Descriptor(BLOB, seeded.layer_digest, len(seeded.layer)))


def test_resolve_by_tag_and_by_digest(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], seeded: PushedImage
) -> None:
    repo = _open(make_runtime(), registry_plain.host, seeded.repo)
    for reference in ("latest", seeded.manifest_digest):
        desc = repo.resolve(reference)
        assert (desc.media_type, desc.digest, desc.size) == (
            OCI_MANIFEST, seeded.manifest_digest, len(seeded.manifest)), reference
    with pytest.raises(NotFoundError):
        repo.resolve("no-such-tag")
    with pytest.raises(NotFoundError):
        repo.resolve(digest_of(b"no such manifest"))


def test_fetch_manifest_returns_exact_bytes(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], seeded: PushedImage
) -> None:
    repo = _open(make_runtime(), registry_plain.host, seeded.repo)
    for reference in ("latest", seeded.manifest_digest):
        manifest = repo.fetch_manifest(reference)
        assert manifest.raw == seeded.manifest
        assert manifest.digest == seeded.manifest_digest
        assert manifest.media_type == OCI_MANIFEST
        assert manifest.artifact_type == "application/vnd.ci-oras.test"
        assert [layer.digest for layer in manifest.layers] == [seeded.layer_digest]


@pytest.mark.parametrize("by", ["digest", "tag"])
def test_fetch_manifest_rejects_altered_bytes(
    plain_proxy: RegistryProxy, make_runtime: Callable[..., Runtime], seeded: PushedImage, by: str
) -> None:
    repo = _open(make_runtime(), plain_proxy.host, seeded.repo)
    reference = seeded.manifest_digest if by == "digest" else "latest"
    tampered = seeded.manifest.replace(b'"schemaVersion":2', b'"schemaVersion":2 ')  # still valid JSON
    assert tampered != seeded.manifest
    rule = plain_proxy.inject(
        matching("GET", rf"/manifests/{reference}$"), 200,
        headers={"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": seeded.manifest_digest}, body=tampered,
    )

    with pytest.raises(IntegrityError):
        repo.fetch_manifest(reference)
    assert rule.hits


@pytest.mark.parametrize("alteration", ["changed", "truncated", "extended"])
def test_fetch_blob_rejects_altered_bytes(
    plain_proxy: RegistryProxy, make_runtime: Callable[..., Runtime], seeded: PushedImage, alteration: str
) -> None:
    repo = _open(make_runtime(), plain_proxy.host, seeded.repo)
    layer = seeded.layer
    body = {
        "changed": bytes([layer[0] ^ 1]) + layer[1:],
        "truncated": layer[:-1],
        "extended": layer + b"!",
    }[alteration]
    plain_proxy.inject(matching("GET", rf"/blobs/{seeded.layer_digest}$"), 200,
                       headers={"Content-Type": BLOB}, body=body)

    with pytest.raises(IntegrityError):
        b"".join(repo.fetch(Descriptor(BLOB, seeded.layer_digest, len(layer))))


def test_blob_downloads_read_more_than_httpcore_default_per_socket_read(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], unique_repo: str
) -> None:
    """Each socket read costs the same Python work whatever its size: large reads are what make a download
    (and a promote's copy) cheap in CPU. They start at the first read that fills what httpcore asks for and
    last while the body keeps coming. An httpcore that stopped asking the network backend would show here."""
    layer = os.urandom(8 * 1024 * 1024)
    with httpx.Client(timeout=TIMEOUT) as client:
        seeded = push_image(client, registry_plain.url, unique_repo, layer=layer)
    repo = _open(make_runtime(), registry_plain.host, seeded.repo)

    sizes = [len(chunk) for chunk in repo.fetch(Descriptor(BLOB, seeded.layer_digest, len(layer)))]

    assert sum(sizes) == len(layer)
    assert max(sizes) > 64 * 1024, f"no read above httpcore's 64 KiB default: {sizes[:12]}"


def test_tags_are_sorted(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], seeded: PushedImage
) -> None:
    extra = ["v10", "b", "v2", "A", "1.0", "main"]
    with httpx.Client(timeout=TIMEOUT) as client:
        for tag in extra:
            push_manifest(client, registry_plain.url, seeded.repo, tag, seeded.manifest)
    repo = _open(make_runtime(), registry_plain.host, seeded.repo)

    assert repo.tags() == sorted({"latest", *extra})


def test_delete_manifest_removes_it_and_its_tags(
    registry_plain: RunningRegistry, make_runtime: Callable[..., Runtime], seeded: PushedImage
) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        push_manifest(client, registry_plain.url, seeded.repo, "second", seeded.manifest)
    repo = _open(make_runtime(), registry_plain.host, seeded.repo)
    desc = repo.resolve("latest")

    repo.delete(desc)

    assert not repo.exists(desc)
    for reference in ("latest", "second", seeded.manifest_digest):
        with pytest.raises(NotFoundError):
            repo.resolve(reference)
    assert _raw_status(registry_plain, "GET", f"/v2/{seeded.repo}/manifests/{seeded.manifest_digest}") == 404
    with pytest.raises(NotFoundError):
        repo.delete(desc)


# -- cross-repository mount (token auth) -------------------------------------------------------------------


def _grants(record: object, repository: str, action: str) -> bool:
    return any(
        access.type == "repository" and access.name == repository and action in access.actions
        for access in parse_scopes(record.scopes)  # type: ignore[attr-defined]
    )


def test_mount_from_another_repository(
    registry_token: RunningRegistry, token_proxy: RegistryProxy, token_runtime: Runtime, unique_repo: str
) -> None:
    assert registry_token.issuer is not None
    source_name, dest_name = f"{unique_repo}-a", f"{unique_repo}-b"
    source = _open(token_runtime, token_proxy.host, source_name)
    dest = _open(token_runtime, token_proxy.host, dest_name)
    data = os.urandom(2048)
    desc = _blob(data)
    source.push_blob(desc, [data])
    registry_token.issuer.clear_requests()
    token_proxy.clear()

    assert dest.mount(desc, source_name) is True

    assert dest.exists(desc)
    assert b"".join(dest.fetch(desc)) == data
    mounts = token_proxy.requests_matching(method="POST", path=rf"^/v2/{dest_name}/blobs/uploads/$")
    assert [(r.params.get("mount"), r.params.get("from"), r.status) for r in mounts] == [
        ([desc.digest], [source_name], 201)]
    token_requests = registry_token.issuer.requests
    assert any(
        _grants(r, source_name, "pull") and _grants(r, dest_name, "push") and r.status == 200
        for r in token_requests
    ), [r.scopes for r in token_requests]


def test_refused_mount_keeps_the_upload_session_for_the_push(
    registry_token: RunningRegistry, token_proxy: RegistryProxy, token_runtime: Runtime, unique_repo: str
) -> None:
    dest_name, empty_name = f"{unique_repo}-b", f"{unique_repo}-empty"
    dest = _open(token_runtime, token_proxy.host, dest_name)
    data = os.urandom(2048)
    desc = _blob(data)
    assert not dest.exists(desc)  # learns the Bearer challenge, so what follows needs no 401 round trip
    token_proxy.clear()

    assert dest.mount(desc, empty_name) is False
    dest.push_blob(desc, [data])

    assert dest.exists(desc)
    assert b"".join(dest.fetch(desc)) == data
    uploads = token_proxy.requests_matching(path=rf"^/v2/{dest_name}/blobs/uploads/")
    posts = [r for r in uploads if r.method == "POST"]
    assert len(posts) == 1, [(r.method, r.status, r.query) for r in uploads]
    assert posts[0].status == 202 and posts[0].params.get("mount") == [desc.digest]
    puts = [r for r in uploads if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].status == 201
    assert puts[0].path == urlsplit(posts[0].response_header("Location") or "").path


def test_expired_token_is_renewed(
    registry_factory: RegistryFactory, make_runtime: Callable[..., Runtime], unique_repo: str
) -> None:
    """A cached token that expired is answered 401 ``error="invalid_token"``: fetch a new one, not "denied".

    distribution accepts a token until 60 s after ``exp``; ``token_ttl=-58`` makes tokens that live ~2 s.
    Registries' tokens typically live 5 minutes, shorter than a large push or a promotion.
    """
    registry = registry_factory("token", token_ttl=-58)
    assert registry.issuer is not None and registry.username is not None and registry.password is not None
    runtime = make_runtime(CI_ORAS_USERNAME=registry.username, CI_ORAS_PASSWORD=registry.password,
                           CI_ORAS_REGISTRY=registry.host)
    repo = _open(runtime, registry.host, unique_repo)
    data = os.urandom(100)
    repo.push_blob(_blob(data), [data])
    assert repo.exists(_blob(data))  # a pull token is cached now
    time.sleep(3.5)  # ... and has expired

    assert repo.exists(_blob(data))  # same scopes: the cached token is refused, a fresh one must be fetched

    pull_scope = f"repository:{unique_repo}:pull"
    pull_grants = [r for r in registry.issuer.requests if r.status == 200 and r.scopes == (pull_scope,)]
    assert len(pull_grants) >= 2
