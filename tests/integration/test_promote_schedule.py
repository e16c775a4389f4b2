"""promote's scheduler, observed at a real docker-registry through the proxy's request log.

Each step starts as soon as what it depends on is stored, so the order is checked against *answers*: a
manifest PUT must arrive after the answers that stored its blobs, its children and its subject; a subject's
referrers index after the answers for the subject and every referrer; the tag after every other write. The
copy pool is checked by counting requests in flight at the destination (never more than ``--concurrency``
blob and manifest requests, and the referrer PUTs several at once behind a latency proxy), not by timing them.

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``): a subprocess would add only its
start-up, some 0.2 s of CPU a run; the process boundary is tested elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from harness.cli import clean_env, invoke_cli
from harness.oci import OCI_EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, digest_of, push_blob, push_manifest
from harness.proxy import AnsweringProxy, ProxyRecord, RegistryProxy, matching
from harness.registry import RegistryFactory, RunningRegistry

WRITES = ("PUT", "POST", "PATCH", "DELETE")
CONCURRENCY = 4


@dataclass(frozen=True)
class Seeded:
    index: str
    children: dict[str, list[str]]  # manifest digest -> its blobs, or an index's child manifests
    subject_of: dict[str, str]


def _image(client: httpx.Client, url: str, repo: str, layer: bytes, subject: tuple[str, int, str] | None = None
           ) -> tuple[str, int, list[str]]:
    config = push_blob(client, url, repo, b"{}")
    layer_digest = push_blob(client, url, repo, layer)
    body: dict[str, object] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.schedule",
        "config": {"mediaType": OCI_EMPTY_JSON, "digest": config, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer_digest, "size": len(layer)}]}
    if subject is not None:
        body["subject"] = {"mediaType": subject[2], "digest": subject[0], "size": subject[1]}
    raw = json.dumps(body).encode()
    digest = push_manifest(client, url, repo, digest_of(raw), raw)
    return digest, len(raw), [config, layer_digest]


def _list(client: httpx.Client, url: str, repo: str, subject: str, referrers: list[tuple[str, int]]) -> None:
    """The tag-schema index docker-registry 2.8 needs (it has no referrers API)."""
    entries = [{"mediaType": OCI_MANIFEST, "digest": d, "size": s, "artifactType": "application/x.schedule"}
               for d, s in referrers]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    push_manifest(client, url, repo, "sha256-" + subject.split(":")[1], index, OCI_INDEX)


@pytest.fixture(scope="module")
def seeded(registry_plain: RunningRegistry) -> Iterator[tuple[str, Seeded]]:
    """An index of two images; 6 referrers on the index, 2 on a child, one referrer of a referrer."""
    repo = "test/schedule-source"
    url = registry_plain.url
    children: dict[str, list[str]] = {}
    subject_of: dict[str, str] = {}
    with httpx.Client(timeout=30) as client:
        images = [_image(client, url, repo, f"platform {n}\n".encode() * 50) for n in range(2)]
        index_body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d, "size": s, "platform": {"os": "linux", "architecture": a}}
            for (d, s, _), a in zip(images, ("amd64", "arm64"))]}).encode()
        index = push_manifest(client, url, repo, "v1", index_body, OCI_INDEX)
        children[index] = [d for d, _, _ in images]
        children.update({d: blobs for d, _, blobs in images})

        def referrers(subject: tuple[str, int, str], count: int, label: str) -> list[tuple[str, int]]:
            made = []
            for number in range(count):
                digest, size, blobs = _image(client, url, repo, f"{label} {number}\n".encode(), subject)
                children[digest] = blobs
                subject_of[digest] = subject[0]
                made.append((digest, size))
            _list(client, url, repo, subject[0], made)
            return made

        on_index = referrers((index, len(index_body), OCI_INDEX), 6, "index referrer")
        referrers((images[0][0], images[0][1], OCI_MANIFEST), 2, "child referrer")
        referrers((on_index[0][0], on_index[0][1], OCI_MANIFEST), 1, "referrer of a referrer")
    yield f"{registry_plain.host}/{repo}:v1", Seeded(index, children, subject_of)


def _stored(proxy: AnsweringProxy, repo: str) -> dict[str, float]:
    """Digest (blob or manifest) or tag -> when the registry answered the write that stored it."""
    stored: dict[str, float] = {}
    for record in proxy.requests:
        if record.status not in (200, 201) or not record.path.startswith(f"/v2/{repo}/"):
            continue
        if record.method == "PUT" and "/blobs/uploads/" in record.path:
            stored[record.params["digest"][0]] = proxy.answered(record)
        elif record.method == "POST" and "mount" in record.params:
            stored[record.params["mount"][0]] = proxy.answered(record)
        elif record.method == "PUT" and "/manifests/" in record.path:
            stored.setdefault(record.path.rsplit("/", 1)[1], proxy.answered(record))
    return stored


def _in_flight(proxy: AnsweringProxy, records: list[ProxyRecord]) -> list[int]:
    """For each of ``records``: how many of ``records`` were in flight at the proxy when it arrived."""
    spans = [(r.time, proxy.answered(r)) for r in records if id(r) in proxy.answers]
    return [sum(1 for start, end in spans if start <= record.time < end) for record in records]


def _copies(proxy: AnsweringProxy) -> list[ProxyRecord]:
    """Requests of the copy pool: everything but the referrers-list updates (the ``sha256-<hex>`` indexes,
    and the referrers-API probe the first update makes)."""
    return [r for r in proxy.requests if "/manifests/sha256-" not in r.path and "/referrers/" not in r.path]


@pytest.mark.parametrize("where", ["across registries", "same registry"])
def test_dependencies_are_stored_before_what_names_them_and_the_pool_stays_full(
        where: str, registry_plain: RunningRegistry, registry_factory: RegistryFactory,
        seeded: tuple[str, Seeded], tmp_path: Path, unique_repo: str) -> None:
    source, graph = seeded
    upstream = registry_factory("plain") if where == "across registries" else registry_plain
    with AnsweringProxy(upstream) as proxy:
        proxy.latency = 0.05  # a registry that is not on this machine: requests overlap only if sent together
        result = invoke_cli("promote", source, f"{proxy.host}/{unique_repo}:v1", "--concurrency", str(CONCURRENCY),
                         "-O", "json", env=clean_env(tmp_path))
        assert result.returncode == 0, result.stderr
        assert result.json()["referrers"] == 9 and result.json()["copied"]["manifests"] == 12
        stored = _stored(proxy, unique_repo)
        puts: dict[str, ProxyRecord] = {}
        for record in proxy.requests_matching(method="PUT", path="/manifests/"):
            puts.setdefault(record.path.rsplit("/", 1)[1], record)  # the first PUT of each

        # Content before names: every blob and child before its manifest, every subject before its referrers.
        for manifest, needs in graph.children.items():
            subject = graph.subject_of.get(manifest)
            for need in needs + ([subject] if subject else []):
                assert stored[need] < puts[manifest].time, f"{manifest} was PUT before {need} was stored"
        # A subject's referrers index after the subject and every one of its referrers.
        for subject in set(graph.subject_of.values()):
            index_put = puts["sha256-" + subject.split(":")[1]]
            for referrer in [r for r, s in graph.subject_of.items() if s == subject] + [subject]:
                assert stored[referrer] < index_put.time
        # The tag last: after every other write was answered.
        writes = [r for r in proxy.requests if r.method in WRITES]
        tag = puts["v1"]
        assert writes[-1] is tag and all(proxy.answered(r) <= tag.time for r in writes[:-1])

        # The copy pool: never more than --concurrency at once, and the referrer PUTs went out together.
        assert max(_in_flight(proxy, _copies(proxy))) <= CONCURRENCY
        referrer_puts = [puts[d] for d in graph.subject_of]
        assert max(_in_flight(proxy, referrer_puts)) >= 2


def test_a_failed_write_stops_the_copy_without_a_tag(registry_plain: RunningRegistry, seeded: tuple[str, Seeded],
                                                     tmp_path: Path, unique_repo: str) -> None:
    """A referrer PUT refused (403): exit 4, its subject's list never names it, and no tag names the copy.
    (Other subjects whose referrers were all stored may have been listed: they are complete.)"""
    source, graph = seeded
    refused = next(iter(graph.subject_of))
    subject = graph.subject_of[refused]
    with RegistryProxy(registry_plain) as proxy:
        proxy.inject(matching(method="PUT", path=f"/manifests/{refused}$"), 403, times=10,
                     body=b'{"errors":[{"code":"DENIED","message":"no"}]}')
        result = invoke_cli("promote", source, f"{proxy.host}/{unique_repo}:v1", env=clean_env(tmp_path))
        assert result.returncode == 4, result.stderr
        assert "access denied" in result.stderr and "Traceback" not in result.stderr
        assert proxy.requests_matching(method="PUT", path=rf"/manifests/(v1|sha256-{subject.split(':')[1]})$") == []


def test_a_pool_of_one_copies_everything_one_request_at_a_time(
        registry_plain: RunningRegistry, registry_factory: RegistryFactory, seeded: tuple[str, Seeded],
        tmp_path: Path, unique_repo: str) -> None:
    """No step waits on another inside a worker, so a single worker cannot deadlock."""
    source, graph = seeded
    with AnsweringProxy(registry_factory("plain")) as proxy:
        result = invoke_cli("promote", source, f"{proxy.host}/{unique_repo}:v1", "--concurrency", "1", "-O", "json",
                         env=clean_env(tmp_path))
        assert result.returncode == 0, result.stderr
        assert result.json()["copied"]["manifests"] == 12 and result.json()["referrers"] == 9
        assert max(_in_flight(proxy, _copies(proxy))) == 1


def test_a_first_copy_asks_only_what_the_destination_can_have(
        registry_plain: RunningRegistry, registry_factory: RegistryFactory, seeded: tuple[str, Seeded],
        tmp_path: Path, unique_repo: str) -> None:
    """HEADs for the manifests that are nobody's referrer only (a referrer of a missing subject is missing),
    none for small blobs (sending one costs no more than asking) nor for the tag of a root that was missing,
    and no referrers-API probe when the referrer PUTs answered; a re-run HEADs every manifest, finds them all,
    and writes nothing."""
    source, graph = seeded
    env = clean_env(tmp_path)
    with AnsweringProxy(registry_factory("plain")) as proxy:
        destination = f"{proxy.host}/{unique_repo}:v1"
        assert invoke_cli("promote", source, destination, env=env).returncode == 0
        heads = {r.path.rsplit("/", 1)[1] for r in proxy.requests_matching(method="HEAD")}
        assert heads == {graph.index, *graph.children[graph.index]}
        # The referrer PUTs were answered without OCI-Subject: the lists are fallback indexes, no API probe.
        assert proxy.requests_matching(path="/referrers/") == []
        proxy.clear()
        again = invoke_cli("promote", source, destination, "-O", "json", env=env)
        assert again.returncode == 0, again.stderr
        assert [r for r in proxy.requests if r.method in WRITES] == []
        heads = {r.path.rsplit("/", 1)[1] for r in proxy.requests_matching(method="HEAD", path="/manifests/")}
        assert heads >= set(graph.children) and proxy.requests_matching(path="/blobs/") == []
        assert again.json()["skipped"]["manifests"] == 12


def test_a_large_blob_is_asked_about_before_it_is_sent(
        registry_plain: RunningRegistry, registry_factory: RegistryFactory, tmp_path: Path, unique_repo: str) -> None:
    with httpx.Client(timeout=30) as client:
        digest, _size, blobs = _image(client, registry_plain.url, unique_repo, b"x" * (300 * 1024))
        push_manifest(client, registry_plain.url, unique_repo, "v1", client.get(
            f"{registry_plain.url}/v2/{unique_repo}/manifests/{digest}",
            headers={"Accept": OCI_MANIFEST}).content)
    config, layer = blobs
    with AnsweringProxy(registry_factory("plain")) as proxy:
        result = invoke_cli("promote", f"{registry_plain.host}/{unique_repo}:v1", f"{proxy.host}/{unique_repo}:v1",
                         env=clean_env(tmp_path))
        assert result.returncode == 0, result.stderr
        asked = {r.path.rsplit("/", 1)[1] for r in proxy.requests_matching(method="HEAD", path="/blobs/")}
        assert asked == {layer}, "the 300 KiB layer is asked about, the 2-byte config just sent"
        stored = {r.params["digest"][0] for r in proxy.requests_matching(method="PUT", path="/blobs/uploads/")}
        assert stored == {config, layer}
