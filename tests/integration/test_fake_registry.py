"""Prove the fake registry (``harness.fake_registry``) against the distribution-spec, with raw httpx only.

The fake stands in for registries with the native referrers API, which cannot be installed here. It is only
worth something if it behaves like the spec says, so every spec point the client relies on is pinned here,
each switch is exercised, and -- where a behaviour is also observable on the real ``docker-registry`` -- the
same raw request sequence runs against both and must give the same status codes (``TestParity``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import pytest
from harness.fake_registry import FakeRegistry
from harness.oci import (
    MANIFEST_ACCEPT,
    OCI_EMPTY_DIGEST,
    OCI_EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
    push_blob,
)
from harness.registry import RunningRegistry

TIMEOUT = httpx.Timeout(10.0)
EMPTY = b"{}"
SBOM = "application/vnd.cyclonedx+json"
SIG = "application/vnd.cncf.notary.signature"
REPO = "test/app"

FakeFactory = Callable[..., FakeRegistry]


# -- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture
def fake(fake_registry: FakeFactory) -> FakeRegistry:
    return fake_registry()


def _abs(base: str, location: str) -> str:
    return urljoin(base + "/", location)


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def _code(resp: httpx.Response) -> str | None:
    """The first registry error code of a response, or None."""
    if "json" not in resp.headers.get("Content-Type", ""):
        return None
    try:
        errors = resp.json().get("errors") or []
    except ValueError:
        return None
    return errors[0].get("code") if errors else None


def _manifest(
    layers: list[tuple[str, bytes]] | None = None,
    *,
    artifact_type: str | None = None,
    subject: tuple[str, int] | None = None,
    annotations: dict[str, str] | None = None,
    config_type: str = OCI_EMPTY_JSON,
    config: bytes = EMPTY,
) -> bytes:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": digest_of(config), "size": len(config)},
        "layers": [
            {"mediaType": "application/octet-stream", "digest": digest_of(data), "size": len(data)}
            for _, data in (layers or [])
        ],
    }
    if artifact_type is not None:
        body["artifactType"] = artifact_type
    if subject is not None:
        body["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject[0], "size": subject[1]}
    if annotations is not None:
        body["annotations"] = annotations
    return json.dumps(body, separators=(",", ":")).encode()


def _put_manifest(
    client: httpx.Client, base: str, repo: str, ref: str, body: bytes, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    return client.put(f"{base}/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})


def _get_manifest(client: httpx.Client, base: str, repo: str, ref: str, method: str = "GET") -> httpx.Response:
    return client.request(method, f"{base}/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT})


def _subject(client: httpx.Client, base: str, repo: str = REPO, tag: str = "v1", layer: bytes = b"app") -> tuple[str, int]:
    """Push an image (empty config, one layer) and return ``(digest, size)``."""
    push_blob(client, base, repo, EMPTY)
    push_blob(client, base, repo, layer)
    body = _manifest([("layer", layer)])
    resp = _put_manifest(client, base, repo, tag, body)
    assert resp.status_code == 201, resp.text
    return digest_of(body), len(body)


def _attach(
    client: httpx.Client,
    base: str,
    subject: tuple[str, int],
    artifact_type: str = SBOM,
    payload: bytes = b"sbom",
    repo: str = REPO,
    annotations: dict[str, str] | None = None,
) -> tuple[str, httpx.Response]:
    push_blob(client, base, repo, EMPTY)
    push_blob(client, base, repo, payload)
    body = _manifest([("p", payload)], artifact_type=artifact_type, subject=subject, annotations=annotations)
    digest = digest_of(body)
    resp = _put_manifest(client, base, repo, digest, body)
    assert resp.status_code == 201, resp.text
    return digest, resp


def _referrers(client: httpx.Client, base: str, digest: str, repo: str = REPO, **params: str) -> httpx.Response:
    return client.get(f"{base}/v2/{repo}/referrers/{digest}", params=params)


def _follow(client: httpx.Client, base: str, first: str) -> list[httpx.Response]:
    """GET ``first`` and every ``Link: <...>; rel="next"`` after it."""
    pages = [client.get(_abs(base, first))]
    while "next" in pages[-1].links:
        assert len(pages) < 50, "Link loop"
        pages.append(client.get(_abs(base, pages[-1].links["next"]["url"])))
    return pages


# -- base, errors, names -------------------------------------------------------------------------------------


def test_base_endpoint_and_error_shape(fake: FakeRegistry, client: httpx.Client) -> None:
    resp = client.get(f"{fake.url}/v2/")
    assert (resp.status_code, resp.json()) == (200, {})
    missing = client.get(f"{fake.url}/v2/{REPO}/blobs/{digest_of(b'nope')}")
    assert missing.status_code == 404
    error = missing.json()["errors"][0]
    assert error["code"] == "BLOB_UNKNOWN" and isinstance(error["message"], str)
    assert client.get(f"{fake.url}/nothing/here").status_code == 404


@pytest.mark.parametrize("name", ["UPPER/case", "a//b", "-lead", "trail-", "a/b_", "a..b"])
def test_invalid_repository_names(fake: FakeRegistry, client: httpx.Client, name: str) -> None:
    resp = client.post(f"{fake.url}/v2/{name}/blobs/uploads/")
    assert (resp.status_code, _code(resp)) == (400, "NAME_INVALID")


@pytest.mark.parametrize("name", ["a", "a/b/c", "a.b_c__d--e/f-0"])
def test_valid_repository_names(fake: FakeRegistry, client: httpx.Client, name: str) -> None:
    assert push_blob(client, fake.url, name, b"x") == digest_of(b"x")
    assert fake.blob(name, digest_of(b"x")) == b"x"


def test_invalid_digest_is_digest_invalid(fake: FakeRegistry, client: httpx.Client) -> None:
    for digest in ("sha256:abc", "sha256:" + "A" * 64, "md5:" + "0" * 32, "nodigest:"):
        resp = client.head(f"{fake.url}/v2/{REPO}/blobs/{digest}")
        assert resp.status_code == 400, digest


# -- blobs and uploads ---------------------------------------------------------------------------------------


def test_post_then_put_upload_and_blob_reads(fake: FakeRegistry, client: httpx.Client) -> None:
    data = b"hello blob"
    digest = digest_of(data)
    started = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/")
    assert started.status_code == 202
    location = started.headers["Location"]
    assert location.startswith(f"/v2/{REPO}/blobs/uploads/")
    done = client.put(_abs(fake.url, _with_digest(location, digest)), content=data)
    assert done.status_code == 201
    assert done.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert done.headers["Docker-Content-Digest"] == digest

    head = client.head(f"{fake.url}/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["Content-Length"] == str(len(data))
    got = client.get(f"{fake.url}/v2/{REPO}/blobs/{digest}")
    assert (got.status_code, got.content) == (200, data)
    assert got.headers["Docker-Content-Digest"] == digest
    # blobs are per repository
    assert client.head(f"{fake.url}/v2/other/blobs/{digest}").status_code == 404


def test_monolithic_post_with_digest(fake: FakeRegistry, client: httpx.Client) -> None:
    data = b"one request"
    resp = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/", params={"digest": digest_of(data)}, content=data)
    assert resp.status_code == 201
    assert resp.headers["Location"] == f"/v2/{REPO}/blobs/{digest_of(data)}"
    assert fake.blob(REPO, digest_of(data)) == data
    bad = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/", params={"digest": digest_of(b"x")}, content=data)
    assert (bad.status_code, _code(bad)) == (400, "DIGEST_INVALID")


def test_chunked_patch_upload_with_final_chunk_on_put(fake: FakeRegistry, client: httpx.Client) -> None:
    data = b"0123456789abcde"
    location = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/").headers["Location"]
    seen = {location}
    for start, end in ((0, 4), (5, 9)):
        resp = client.patch(
            _abs(fake.url, location),
            content=data[start : end + 1],
            headers={"Content-Range": f"{start}-{end}", "Content-Type": "application/octet-stream"},
        )
        assert resp.status_code == 202
        assert resp.headers["Range"] == f"0-{end}"
        location = resp.headers["Location"]
        assert location not in seen, "each PATCH answers a new Location"
        seen.add(location)
    status = client.get(_abs(fake.url, location))
    assert (status.status_code, status.headers["Range"]) == (204, "0-9")
    done = client.put(
        _abs(fake.url, _with_digest(location, digest_of(data))), content=data[10:], headers={"Content-Range": "10-14"}
    )
    assert done.status_code == 201
    assert fake.blob(REPO, digest_of(data)) == data
    # the session is gone
    assert client.get(_abs(fake.url, location)).status_code == 404


def test_patch_out_of_order_is_416(fake: FakeRegistry, client: httpx.Client) -> None:
    location = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/").headers["Location"]
    first = client.patch(_abs(fake.url, location), content=b"abcd", headers={"Content-Range": "0-3"})
    location = first.headers["Location"]
    skipped = client.patch(_abs(fake.url, location), content=b"ijkl", headers={"Content-Range": "8-11"})
    assert skipped.status_code == 416
    assert skipped.headers["Range"] == "0-3"
    repeated = client.patch(_abs(fake.url, location), content=b"abcd", headers={"Content-Range": "0-3"})
    assert repeated.status_code == 416
    # the session survives and continues in order
    ok = client.patch(_abs(fake.url, location), content=b"efgh", headers={"Content-Range": "4-7"})
    assert (ok.status_code, ok.headers["Range"]) == (202, "0-7")


def test_streamed_patch_without_content_range(fake: FakeRegistry, client: httpx.Client) -> None:
    location = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/").headers["Location"]
    resp = client.patch(_abs(fake.url, location), content=b"streamed")
    assert (resp.status_code, resp.headers["Range"]) == (202, "0-7")
    done = client.put(_abs(fake.url, _with_digest(resp.headers["Location"], digest_of(b"streamed"))))
    assert done.status_code == 201


def test_chunked_transfer_encoding_on_patch_put_and_manifest(fake: FakeRegistry, client: httpx.Client) -> None:
    parts = [b"chunk-one|", b"chunk-two|", b"chunk-three"]
    data = b"".join(parts)
    location = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/").headers["Location"]
    patched = client.patch(_abs(fake.url, location), content=iter(parts[:2]))
    assert patched.status_code == 202
    assert fake.requests[-1].header("Transfer-Encoding") == "chunked"
    done = client.put(_abs(fake.url, _with_digest(patched.headers["Location"], digest_of(data))), content=iter(parts[2:]))
    assert done.status_code == 201
    assert fake.blob(REPO, digest_of(data)) == data

    push_blob(client, fake.url, REPO, EMPTY)
    body = _manifest([("d", data)])
    resp = client.put(
        f"{fake.url}/v2/{REPO}/manifests/chunky",
        content=iter([body[:10], body[10:]]),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status_code == 201
    assert _get_manifest(client, fake.url, REPO, "chunky").content == body


def test_put_digest_mismatch_and_missing_digest(fake: FakeRegistry, client: httpx.Client) -> None:
    location = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/").headers["Location"]
    bad = client.put(_abs(fake.url, _with_digest(location, digest_of(b"other"))), content=b"data")
    assert (bad.status_code, _code(bad)) == (400, "DIGEST_INVALID")
    location = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/").headers["Location"]
    missing = client.put(_abs(fake.url, location), content=b"data")
    assert (missing.status_code, _code(missing)) == (400, "DIGEST_INVALID")


def test_cancel_upload(fake: FakeRegistry, client: httpx.Client) -> None:
    location = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/").headers["Location"]
    assert client.delete(_abs(fake.url, location)).status_code == 204
    gone = client.get(_abs(fake.url, location))
    assert (gone.status_code, _code(gone)) == (404, "BLOB_UPLOAD_UNKNOWN")
    unknown = client.patch(f"{fake.url}/v2/{REPO}/blobs/uploads/not-a-session", content=b"x")
    assert (unknown.status_code, _code(unknown)) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_cross_repository_mount(fake: FakeRegistry, client: httpx.Client) -> None:
    digest = push_blob(client, fake.url, "source/repo", b"shared layer")
    mounted = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/", params={"mount": digest, "from": "source/repo"})
    assert mounted.status_code == 201
    assert mounted.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert client.get(f"{fake.url}/v2/{REPO}/blobs/{digest}").content == b"shared layer"

    unknown = digest_of(b"never pushed")
    session = client.post(f"{fake.url}/v2/{REPO}/blobs/uploads/", params={"mount": unknown, "from": "source/repo"})
    assert session.status_code == 202, "not mountable: a normal upload session"
    done = client.put(_abs(fake.url, _with_digest(session.headers["Location"], unknown)), content=b"never pushed")
    assert done.status_code == 201
    wrong_from = client.post(f"{fake.url}/v2/x/blobs/uploads/", params={"mount": digest, "from": "no/such"})
    assert wrong_from.status_code == 202


def test_blob_delete(fake: FakeRegistry, client: httpx.Client) -> None:
    digest = push_blob(client, fake.url, REPO, b"doomed")
    assert client.delete(f"{fake.url}/v2/{REPO}/blobs/{digest}").status_code == 202
    assert client.head(f"{fake.url}/v2/{REPO}/blobs/{digest}").status_code == 404
    again = client.delete(f"{fake.url}/v2/{REPO}/blobs/{digest}")
    assert (again.status_code, _code(again)) == (404, "BLOB_UNKNOWN")


# -- manifests -----------------------------------------------------------------------------------------------


def test_manifest_put_get_byte_exact(fake: FakeRegistry, client: httpx.Client) -> None:
    push_blob(client, fake.url, REPO, EMPTY)
    layer_digest = push_blob(client, fake.url, REPO, b"layer")
    # deliberately odd formatting: the registry must store and serve these exact bytes
    body = (
        f'{{\n  "schemaVersion" : 2,\t"mediaType": "{OCI_MANIFEST}",\n'
        f'  "config": {{"mediaType": "{OCI_EMPTY_JSON}", "digest": "{OCI_EMPTY_DIGEST}", "size": 2}},\n'
        f'  "layers": [ {{"size": 5, "digest": "{layer_digest}", "mediaType": "application/octet-stream"}} ]  }}\n'
    ).encode()
    digest = digest_of(body)
    put = _put_manifest(client, fake.url, REPO, "v1", body)
    assert put.status_code == 201
    assert put.headers["Docker-Content-Digest"] == digest
    assert put.headers["Location"] == f"/v2/{REPO}/manifests/{digest}"
    assert "OCI-Subject" not in put.headers

    for ref in ("v1", digest):
        got = _get_manifest(client, fake.url, REPO, ref)
        assert (got.status_code, got.content) == (200, body)
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest
        assert got.headers["Content-Length"] == str(len(body))
        head = _get_manifest(client, fake.url, REPO, ref, "HEAD")
        assert (head.status_code, head.content, head.headers["Content-Length"]) == (200, b"", str(len(body)))
        assert head.headers["Docker-Content-Digest"] == digest
    # no Accept at all still works on the fake (the spec does not require Accept)
    assert client.get(f"{fake.url}/v2/{REPO}/manifests/v1").status_code == 200
    assert fake.manifest(REPO, "v1").body == body  # type: ignore[union-attr]
    assert fake.tags(REPO) == ["v1"]


def test_manifest_put_by_digest(fake: FakeRegistry, client: httpx.Client) -> None:
    subject = _subject(client, fake.url)
    body = _manifest([("layer", b"app")], annotations={"x": "y"})
    ok = _put_manifest(client, fake.url, REPO, digest_of(body), body)
    assert ok.status_code == 201
    assert fake.tags(REPO) == ["v1"], "a push by digest creates no tag"
    bad = _put_manifest(client, fake.url, REPO, subject[0], body)
    assert (bad.status_code, _code(bad)) == (400, "DIGEST_INVALID")


def test_manifest_unknown(fake: FakeRegistry, client: httpx.Client) -> None:
    _subject(client, fake.url)
    for ref in ("nope", digest_of(b"nope")):
        resp = _get_manifest(client, fake.url, REPO, ref)
        assert (resp.status_code, _code(resp)) == (404, "MANIFEST_UNKNOWN")
        assert _get_manifest(client, fake.url, REPO, ref, "HEAD").status_code == 404
    assert _get_manifest(client, fake.url, "no/repo", "v1").status_code == 404


def test_manifest_validation(fake: FakeRegistry, client: httpx.Client) -> None:
    push_blob(client, fake.url, REPO, EMPTY)
    missing_layer = _manifest([("l", b"not uploaded")])
    resp = _put_manifest(client, fake.url, REPO, "t", missing_layer)
    assert (resp.status_code, _code(resp)) == (400, "MANIFEST_BLOB_UNKNOWN")
    resp = _put_manifest(client, fake.url, "fresh/repo", "t", _manifest([]))
    assert (resp.status_code, _code(resp)) == (400, "MANIFEST_BLOB_UNKNOWN"), "config blob missing"

    for body, media_type in (
        (b"not json", OCI_MANIFEST),
        (b"[1, 2]", OCI_MANIFEST),
        (_manifest([]), OCI_INDEX),  # mediaType field contradicts Content-Type
        (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}',
         "application/vnd.oci.artifact.manifest.v1+json"),
        (_manifest([]).replace(b'"schemaVersion":2', b'"schemaVersion":1'), OCI_MANIFEST),
    ):
        resp = _put_manifest(client, fake.url, REPO, "t", body, media_type)
        assert (resp.status_code, _code(resp)) == (400, "MANIFEST_INVALID"), body
    bad_tag = _put_manifest(client, fake.url, REPO, "-bad", _manifest([]))
    assert bad_tag.status_code == 400

    fake.validate_blobs = False
    assert _put_manifest(client, fake.url, REPO, "t", missing_layer).status_code == 201


def test_index_children_must_exist_unless_switched_off(fake: FakeRegistry, client: httpx.Client) -> None:
    child = _subject(client, fake.url)
    missing = digest_of(b"no such manifest")
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": child[0], "size": child[1]},
            {"mediaType": OCI_MANIFEST, "digest": missing, "size": 10},
        ],
    }).encode()
    resp = _put_manifest(client, fake.url, REPO, "multi", index, OCI_INDEX)
    assert (resp.status_code, _code(resp)) == (400, "MANIFEST_UNKNOWN")
    fake.validate_children = False
    resp = _put_manifest(client, fake.url, REPO, "multi", index, OCI_INDEX)
    assert resp.status_code == 201
    got = _get_manifest(client, fake.url, REPO, "multi")
    assert (got.headers["Content-Type"], got.content) == (OCI_INDEX, index)


def test_delete_manifest_by_digest_and_by_tag(fake: FakeRegistry, client: httpx.Client) -> None:
    subject = _subject(client, fake.url)
    assert _put_manifest(client, fake.url, REPO, "also", _manifest([("layer", b"app")])).status_code == 201
    referrer, _ = _attach(client, fake.url, subject)
    assert _put_manifest(client, fake.url, REPO, "sbom-tag", fake.manifest(REPO, referrer).body).status_code == 201  # type: ignore[union-attr]

    by_tag = client.delete(f"{fake.url}/v2/{REPO}/manifests/also")
    assert by_tag.status_code == 202
    assert fake.tags(REPO) == ["sbom-tag", "v1"]
    assert _get_manifest(client, fake.url, REPO, subject[0]).status_code == 200, "tag delete keeps the manifest"

    by_digest = client.delete(f"{fake.url}/v2/{REPO}/manifests/{referrer}")
    assert by_digest.status_code == 202
    assert _get_manifest(client, fake.url, REPO, referrer).status_code == 404
    assert fake.tags(REPO) == ["v1"], "deleting by digest drops its tags"
    listing = _referrers(client, fake.url, subject[0]).json()
    assert listing["manifests"] == [], "and its referrers entry"

    again = client.delete(f"{fake.url}/v2/{REPO}/manifests/{referrer}")
    assert (again.status_code, _code(again)) == (404, "MANIFEST_UNKNOWN")
    assert client.delete(f"{fake.url}/v2/{REPO}/manifests/also").status_code == 404


# -- tags ------------------------------------------------------------------------------------------------------


def test_tags_list_sorted_and_paginated(fake: FakeRegistry, client: httpx.Client) -> None:
    _subject(client, fake.url)
    body = fake.manifest(REPO, "v1").body  # type: ignore[union-attr]
    for tag in ("b", "a", "c", "Z", "d"):
        assert _put_manifest(client, fake.url, REPO, tag, body).status_code == 201
    everything = client.get(f"{fake.url}/v2/{REPO}/tags/list")
    assert everything.json() == {"name": REPO, "tags": ["Z", "a", "b", "c", "d", "v1"]}
    assert "Link" not in everything.headers

    page = client.get(f"{fake.url}/v2/{REPO}/tags/list", params={"n": 2})
    assert page.json()["tags"] == ["Z", "a"]
    assert page.headers["Link"] == f'</v2/{REPO}/tags/list?n=2&last=a>; rel="next"'
    pages = _follow(client, fake.url, f"/v2/{REPO}/tags/list?n=2")
    assert [p.json()["tags"] for p in pages] == [["Z", "a"], ["b", "c"], ["d", "v1"]]
    assert "Link" not in pages[-1].headers

    after = client.get(f"{fake.url}/v2/{REPO}/tags/list", params={"last": "c"})
    assert after.json()["tags"] == ["d", "v1"]
    assert client.get(f"{fake.url}/v2/{REPO}/tags/list", params={"n": 0}).json()["tags"] == []

    fake.page_size = 4  # the server's own page limit applies without n, and caps a larger n
    pages = _follow(client, fake.url, f"/v2/{REPO}/tags/list")
    assert [p.json()["tags"] for p in pages] == [["Z", "a", "b", "c"], ["d", "v1"]]
    assert pages[0].headers["Link"] == f'</v2/{REPO}/tags/list?n=4&last=c>; rel="next"'
    assert len(client.get(f"{fake.url}/v2/{REPO}/tags/list", params={"n": 100}).json()["tags"]) == 4

    unknown = client.get(f"{fake.url}/v2/no/repo/tags/list")
    assert (unknown.status_code, _code(unknown)) == (404, "NAME_UNKNOWN")


# -- referrers -------------------------------------------------------------------------------------------------


def test_subject_gets_oci_subject_header_and_is_listed(fake: FakeRegistry, client: httpx.Client) -> None:
    subject = _subject(client, fake.url)
    digest, resp = _attach(client, fake.url, subject, annotations={"org.opencontainers.image.created": "now"})
    assert resp.headers["OCI-Subject"] == subject[0]

    listing = _referrers(client, fake.url, subject[0])
    assert listing.status_code == 200
    assert listing.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in listing.headers
    body = fake.manifest(REPO, digest).body  # type: ignore[union-attr]
    assert listing.json() == {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(body),
                "artifactType": SBOM,
                "annotations": {"org.opencontainers.image.created": "now"},
            }
        ],
    }
    assert fake.referrers(REPO, subject[0]) == listing.json()["manifests"]


def test_referrer_descriptor_fallbacks(fake: FakeRegistry, client: httpx.Client) -> None:
    """No artifactType: the config media type; no annotations: the key is omitted."""
    subject = _subject(client, fake.url)
    config = b'{"kind":"legacy"}'
    push_blob(client, fake.url, REPO, config)
    body = _manifest([], config_type="application/vnd.example.config.v1+json", config=config, subject=subject)
    assert _put_manifest(client, fake.url, REPO, digest_of(body), body).status_code == 201
    (entry,) = _referrers(client, fake.url, subject[0]).json()["manifests"]
    assert entry == {
        "mediaType": OCI_MANIFEST,
        "digest": digest_of(body),
        "size": len(body),
        "artifactType": "application/vnd.example.config.v1+json",
    }


def test_index_as_referrer(fake: FakeRegistry, client: httpx.Client) -> None:
    subject = _subject(client, fake.url)
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": subject[0], "size": subject[1]}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject[0], "size": subject[1]},
    }).encode()
    resp = _put_manifest(client, fake.url, REPO, digest_of(index), index, OCI_INDEX)
    assert resp.headers["OCI-Subject"] == subject[0]
    (entry,) = _referrers(client, fake.url, subject[0]).json()["manifests"]
    assert entry["mediaType"] == OCI_INDEX and entry["artifactType"] == "application/vnd.example.bundle"


def test_subject_need_not_exist_and_unknown_subject_lists_empty(fake: FakeRegistry, client: httpx.Client) -> None:
    _subject(client, fake.url)
    ghost = (digest_of(b"not pushed (yet)"), 123)
    digest, resp = _attach(client, fake.url, ghost)
    assert resp.headers["OCI-Subject"] == ghost[0]
    assert [m["digest"] for m in _referrers(client, fake.url, ghost[0]).json()["manifests"]] == [digest]

    nothing = _referrers(client, fake.url, digest_of(b"nobody refers to me"))
    assert (nothing.status_code, nothing.json()["manifests"]) == (200, [])
    bad = _referrers(client, fake.url, "sha256:short")
    assert (bad.status_code, _code(bad)) == (400, "DIGEST_INVALID")
    unknown_repo = _referrers(client, fake.url, ghost[0], repo="no/such/repo")
    assert (unknown_repo.status_code, _code(unknown_repo)) == (404, "NAME_UNKNOWN")
    push_blob(client, fake.url, "blobs/only", b"no manifest here")
    blob_only = _referrers(client, fake.url, ghost[0], repo="blobs/only")
    assert (blob_only.status_code, _code(blob_only)) == (404, "NAME_UNKNOWN"), "like distribution's tags/list"


def test_artifact_type_filter_and_its_header(fake: FakeRegistry, client: httpx.Client) -> None:
    subject = _subject(client, fake.url)
    sbom, _ = _attach(client, fake.url, subject, SBOM, b"sbom")
    sig, _ = _attach(client, fake.url, subject, SIG, b"sig")

    filtered = _referrers(client, fake.url, subject[0], artifactType=SIG)
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sig]
    none = _referrers(client, fake.url, subject[0], artifactType="application/x-none")
    assert none.json()["manifests"] == [] and none.headers["OCI-Filters-Applied"] == "artifactType"

    fake.filter_header = False
    ignored = _referrers(client, fake.url, subject[0], artifactType=SIG)
    assert "OCI-Filters-Applied" not in ignored.headers
    assert [m["digest"] for m in ignored.json()["manifests"]] == [sbom, sig]


def test_referrers_pagination_with_link(fake_registry: FakeFactory, client: httpx.Client) -> None:
    fake = fake_registry(page_size=2)
    subject = _subject(client, fake.url)
    attached = [_attach(client, fake.url, subject, SBOM if i % 2 else SIG, b"p%d" % i)[0] for i in range(6)]

    pages = _follow(client, fake.url, f"/v2/{REPO}/referrers/{subject[0]}")
    assert [len(p.json()["manifests"]) for p in pages] == [2, 2, 2]
    assert [m["digest"] for p in pages for m in p.json()["manifests"]] == attached
    link = pages[0].headers["Link"]
    assert link.startswith(f"</v2/{REPO}/referrers/{subject[0]}?") and link.endswith('>; rel="next"')
    assert all(p.headers["Content-Type"] == OCI_INDEX for p in pages)

    # the filter is applied before paging and carried into the next link
    sboms = [d for i, d in enumerate(attached) if i % 2]
    pages = _follow(client, fake.url, f"/v2/{REPO}/referrers/{subject[0]}?artifactType={quote(SBOM, safe='')}")
    assert [m["digest"] for p in pages for m in p.json()["manifests"]] == sboms
    assert all(p.headers["OCI-Filters-Applied"] == "artifactType" for p in pages)
    assert [len(p.json()["manifests"]) for p in pages] == [2, 1]
    assert "artifactType=application%2Fvnd.cyclonedx%2Bjson" in pages[0].headers["Link"]

    bad = client.get(f"{fake.url}/v2/{REPO}/referrers/{subject[0]}", params={"_cursor": "!!"})
    assert bad.status_code == 400


# -- switches --------------------------------------------------------------------------------------------------


def test_referrers_api_off_is_a_plain_404_and_no_subject_header(
    fake_registry: FakeFactory, client: httpx.Client
) -> None:
    fake = fake_registry(referrers_api=False)
    subject = _subject(client, fake.url)
    digest, resp = _attach(client, fake.url, subject)
    assert "OCI-Subject" not in resp.headers
    listing = _referrers(client, fake.url, subject[0])
    assert listing.status_code == 404
    assert listing.headers["Content-Type"].startswith("text/plain")
    assert listing.text == "404 page not found\n"
    # stored all the same; switching the API on at run time shows it
    fake.referrers_api = True
    assert [m["digest"] for m in _referrers(client, fake.url, subject[0]).json()["manifests"]] == [digest]


def test_oci_subject_header_off(fake_registry: FakeFactory, client: httpx.Client) -> None:
    fake = fake_registry(oci_subject_header=False)
    subject = _subject(client, fake.url)
    digest, resp = _attach(client, fake.url, subject)
    assert "OCI-Subject" not in resp.headers
    assert [m["digest"] for m in _referrers(client, fake.url, subject[0]).json()["manifests"]] == [digest]


def test_dash_tag_returns_subject(fake_registry: FakeFactory, client: httpx.Client) -> None:
    fake = fake_registry(dash_tag_returns_subject=True)
    subject = _subject(client, fake.url)
    dash_tag = subject[0].replace(":", "-")
    buggy = _get_manifest(client, fake.url, REPO, dash_tag)
    assert buggy.status_code == 200
    assert buggy.headers["Docker-Content-Digest"] == subject[0]
    assert buggy.headers["Content-Type"] == OCI_MANIFEST
    assert _get_manifest(client, fake.url, REPO, dash_tag, "HEAD").headers["Docker-Content-Digest"] == subject[0]
    # a real fallback index under that tag wins over the bug
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    assert _put_manifest(client, fake.url, REPO, dash_tag, index, OCI_INDEX).status_code == 201
    assert _get_manifest(client, fake.url, REPO, dash_tag).content == index
    # off: a missing dash tag is a 404
    client.delete(f"{fake.url}/v2/{REPO}/manifests/{dash_tag}")
    fake.dash_tag_returns_subject = False
    assert _get_manifest(client, fake.url, REPO, dash_tag).status_code == 404


def test_html_referrers(fake_registry: FakeFactory, client: httpx.Client) -> None:
    fake = fake_registry(html_referrers=True)
    subject = _subject(client, fake.url)
    resp = _referrers(client, fake.url, subject[0])
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert resp.text.lstrip().lower().startswith("<!doctype html>") and "</html>" in resp.text


def test_drop_referrer_updates(fake_registry: FakeFactory, client: httpx.Client) -> None:
    fake = fake_registry(drop_referrer_updates=1)
    subject = _subject(client, fake.url)
    lost, resp = _attach(client, fake.url, subject, payload=b"lost")
    assert resp.headers["OCI-Subject"] == subject[0], "the registry believes it listed it"
    assert fake.drop_referrer_updates == 0
    assert _get_manifest(client, fake.url, REPO, lost).status_code == 200, "stored"
    assert _referrers(client, fake.url, subject[0]).json()["manifests"] == [], "but not listed"

    kept, _ = _attach(client, fake.url, subject, payload=b"kept")
    assert [m["digest"] for m in _referrers(client, fake.url, subject[0]).json()["manifests"]] == [kept]
    # pushing the lost manifest again lists it
    _put_manifest(client, fake.url, REPO, lost, fake.manifest(REPO, lost).body)  # type: ignore[union-attr]
    assert [m["digest"] for m in _referrers(client, fake.url, subject[0]).json()["manifests"]] == [kept, lost]
    # re-pushing never duplicates an entry
    _put_manifest(client, fake.url, REPO, lost, fake.manifest(REPO, lost).body)  # type: ignore[union-attr]
    assert len(fake.referrers(REPO, subject[0])) == 2


def test_switches_defaults_and_validation() -> None:
    fake = FakeRegistry(start=False)
    assert (fake.referrers_api, fake.oci_subject_header, fake.filter_header) == (True, True, True)
    assert (fake.page_size, fake.dash_tag_returns_subject, fake.html_referrers) == (None, False, False)
    assert (fake.drop_referrer_updates, fake.validate_blobs, fake.validate_children) == (0, True, True)
    assert not fake.running
    with pytest.raises(ValueError):
        FakeRegistry(page_size=0, start=False)


def test_concurrent_attaches_are_all_listed(fake: FakeRegistry, client: httpx.Client) -> None:
    subject = _subject(client, fake.url)

    def attach(i: int) -> str:
        with httpx.Client(timeout=TIMEOUT) as own:
            return _attach(own, fake.url, subject, payload=b"parallel %d" % i)[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        digests = list(pool.map(attach, range(16)))  # re-raises a worker's exception
    listed = {m["digest"] for m in _referrers(client, fake.url, subject[0]).json()["manifests"]}
    assert listed == set(digests) and len(listed) == 16


# -- recording, lifecycle, fixture -----------------------------------------------------------------------------


def test_requests_are_recorded_and_cleared(fake: FakeRegistry, client: httpx.Client) -> None:
    client.get(f"{fake.url}/v2/")
    client.get(f"{fake.url}/v2/{REPO}/tags/list", params={"n": "3"}, headers={"X-Probe": "yes"})
    first, second = fake.requests
    assert (first.method, first.path, first.query, first.status) == ("GET", "/v2/", "", 200)
    assert (second.path, second.query, second.status) == (f"/v2/{REPO}/tags/list", "n=3", 404)
    assert second.header("x-probe") == "yes" and second.params == {"n": ["3"]}
    assert second.target == f"/v2/{REPO}/tags/list?n=3"
    assert second.response_header("content-type").startswith("application/json")  # type: ignore[union-attr]
    fake.clear()
    assert fake.requests == []


def test_lifecycle_and_handle_attributes() -> None:
    with FakeRegistry() as fake:
        assert fake.host == f"127.0.0.1:{fake.port}"
        assert fake.url == f"http://{fake.host}"
        assert (fake.mode, fake.username, fake.password, fake.ca_file) == ("fake", None, None, None)
        assert httpx.get(f"{fake.url}/v2/", timeout=TIMEOUT).status_code == 200
    assert not fake.running
    fake.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fake.url}/v2/", timeout=TIMEOUT)


def test_fixture_factory_gives_independent_registries(fake_registry: FakeFactory, client: httpx.Client) -> None:
    one, two = fake_registry(), fake_registry(referrers_api=False, page_size=3)
    assert one.port != two.port and two.referrers_api is False and two.page_size == 3
    push_blob(client, one.url, REPO, b"only in one")
    assert two.blob(REPO, digest_of(b"only in one")) is None


# -- parity with the real registry -----------------------------------------------------------------------------

Step = tuple[str, int, "str | None"]


def _parity_uploads(client: httpx.Client, base: str, repo: str) -> list[Step]:
    steps: list[Step] = []

    def note(label: str, resp: httpx.Response) -> httpx.Response:
        steps.append((label, resp.status_code, _code(resp)))
        return resp

    data = b"0123456789"
    started = note("post", client.post(f"{base}/v2/{repo}/blobs/uploads/"))
    location = started.headers["Location"]
    patched = note("patch 0-4", client.patch(_abs(base, location), content=data[:5], headers={"Content-Range": "0-4"}))
    location = patched.headers["Location"]
    patched = note("patch 5-9", client.patch(_abs(base, location), content=data[5:], headers={"Content-Range": "5-9"}))
    location = patched.headers["Location"]
    status = note("status", client.get(_abs(base, location)))
    steps.append(("status range", 0, status.headers.get("Range")))
    note("put", client.put(_abs(base, _with_digest(location, digest_of(data)))))
    note("head", client.head(f"{base}/v2/{repo}/blobs/{digest_of(data)}"))
    got = note("get", client.get(f"{base}/v2/{repo}/blobs/{digest_of(data)}"))
    steps.append(("get body", 0, got.content.decode()))
    note("head unknown", client.head(f"{base}/v2/{repo}/blobs/{digest_of(b'unknown')}"))
    note("get unknown", client.get(f"{base}/v2/{repo}/blobs/{digest_of(b'unknown')}"))

    location = note("post 2", client.post(f"{base}/v2/{repo}/blobs/uploads/")).headers["Location"]
    note("put bad digest", client.put(_abs(base, _with_digest(location, digest_of(b"other"))), content=b"mine"))
    location = note("post 3", client.post(f"{base}/v2/{repo}/blobs/uploads/")).headers["Location"]
    note("cancel", client.delete(_abs(base, location)))
    note("status after cancel", client.get(_abs(base, location)))

    mount = {"mount": digest_of(data), "from": repo}
    note("mount", client.post(f"{base}/v2/{repo}-copy/blobs/uploads/", params=mount))
    note("mounted head", client.head(f"{base}/v2/{repo}-copy/blobs/{digest_of(data)}"))
    session = note("mount unknown", client.post(
        f"{base}/v2/{repo}-copy/blobs/uploads/", params={"mount": digest_of(b"unknown"), "from": repo}))
    note("put after failed mount", client.put(
        _abs(base, _with_digest(session.headers["Location"], digest_of(b"unknown"))), content=b"unknown"))
    note("delete blob", client.delete(f"{base}/v2/{repo}-copy/blobs/{digest_of(data)}"))
    note("head deleted", client.head(f"{base}/v2/{repo}-copy/blobs/{digest_of(data)}"))
    note("head in source", client.head(f"{base}/v2/{repo}/blobs/{digest_of(data)}"))
    note("tags of a blob-only repo", client.get(f"{base}/v2/{repo}/tags/list"))
    return steps


def _parity_manifests(client: httpx.Client, base: str, repo: str) -> list[Step]:
    steps: list[Step] = []

    def note(label: str, resp: httpx.Response) -> httpx.Response:
        steps.append((label, resp.status_code, _code(resp)))
        return resp

    note("tags of unknown repo", client.get(f"{base}/v2/{repo}/tags/list"))
    note("missing blobs", _put_manifest(client, base, repo, "v1", _manifest([("l", b"layer")])))
    push_blob(client, base, repo, EMPTY)
    push_blob(client, base, repo, b"layer")
    image = _manifest([("l", b"layer")])
    put = note("put by tag", _put_manifest(client, base, repo, "v1", image))
    steps.append(("put digest", 0, put.headers.get("Docker-Content-Digest")))
    got = note("get by tag", _get_manifest(client, base, repo, "v1"))
    steps.append(("byte exact", 0, str(got.content == image)))
    steps.append(("content type", 0, got.headers.get("Content-Type")))
    note("head by digest", _get_manifest(client, base, repo, digest_of(image), "HEAD"))
    note("get unknown tag", _get_manifest(client, base, repo, "nope"))
    note("get unknown digest", _get_manifest(client, base, repo, digest_of(b"nope")))
    note("put wrong digest", _put_manifest(client, base, repo, digest_of(b"nope"), image))
    note("not json", _put_manifest(client, base, repo, "bad", b"{not json"))

    push_blob(client, base, repo, b"sbom")
    referrer = _manifest([("s", b"sbom")], artifact_type=SBOM, subject=(digest_of(image), len(image)))
    put = note("put referrer by digest", _put_manifest(client, base, repo, digest_of(referrer), referrer))
    steps.append(("oci-subject", 0, put.headers.get("OCI-Subject")))
    dangling = _manifest([("s", b"sbom")], artifact_type=SIG, subject=(digest_of(b"ghost"), 5))
    note("put referrer to missing subject", _put_manifest(client, base, repo, digest_of(dangling), dangling))
    listing = note("referrers", client.get(f"{base}/v2/{repo}/referrers/{digest_of(image)}"))
    steps.append(("referrers body", 0, f"{listing.headers.get('Content-Type', '').split(';')[0]} {listing.text!r}"))

    note("tag referrer", _put_manifest(client, base, repo, "sbom", referrer))
    tags = note("tags", client.get(f"{base}/v2/{repo}/tags/list"))
    steps.append(("tag set", 0, ",".join(sorted(tags.json()["tags"] or []))))
    note("delete referrer", client.delete(f"{base}/v2/{repo}/manifests/{digest_of(referrer)}"))
    note("get deleted", _get_manifest(client, base, repo, digest_of(referrer)))
    note("get its tag", _get_manifest(client, base, repo, "sbom"))
    note("delete again", client.delete(f"{base}/v2/{repo}/manifests/{digest_of(referrer)}"))
    tags = note("tags after", client.get(f"{base}/v2/{repo}/tags/list"))
    steps.append(("tag set after", 0, ",".join(sorted(tags.json()["tags"] or []))))
    return steps


@pytest.mark.parametrize("scenario", [_parity_uploads, _parity_manifests], ids=["uploads", "manifests"])
def test_parity_with_docker_registry(
    scenario: Callable[[httpx.Client, str, str], list[Step]],
    fake_registry: FakeFactory,
    registry_plain: RunningRegistry,
    unique_repo: str,
    client: httpx.Client,
) -> None:
    """The same raw sequence gives the same answers on the fake (API off) and on distribution 2.8."""
    fake = fake_registry(referrers_api=False)
    real = scenario(client, registry_plain.url, unique_repo)
    ours = scenario(client, fake.url, unique_repo)
    assert ours == real
    assert len(real) > 20, real
