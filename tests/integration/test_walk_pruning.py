"""The walk on the tag schema reads the tag list once and skips the nodes without a ``sha256-<hex>`` tag.

Against a real docker-registry (no referrers API; its tag list ignores ``n`` and answers in one page), seeded
by raw HTTP, requests counted at a proxy: a subject with 100 referrers, every tenth with two of its own, is
walked by ``discover``, ``promote`` and ``delete --graph``. Before, every one of the 121 nodes cost a GET of its
fallback tag (123 requests for discover); now the root's listing names 100 new nodes, so the walk reads the
tag list once and then lists only the ten that have a tag (14 requests), and every referrer is still found,
copied or deleted. A narrow graph makes exactly the requests it made before; a tag list that cannot be read
(500, not JSON, the wrong shape, 404) leaves every node listed; the listing checks judge forged, dangling and
foreign entries exactly as a walk listing every node does; and the tag list is a snapshot of one walk.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import oci
from harness.cli import clean_env, run_cli
from harness.oci import (NOTARY, fallback_tag, push_artifact, push_fallback_index, push_image, push_layer,
                         subject_of)
from harness.proxy import ProxyRecord, RegistryProxy, Rule, _ProxyHandler, matching
from harness.registry import RunningRegistry

from ci_oras.graph.discover import DiscoverOptions, Node, discover
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.store.protocols import Target

WIDTH = 100
SIGNED_EVERY = 10  # r0, r10, … r90 have two referrers each
TAG_LIST = r"/tags/list$"

Desc = dict[str, Any]


@dataclass(frozen=True)
class Wide:
    repo: str
    root: str
    first: list[str]  # the root's referrers, in listing order
    second: dict[str, list[str]]  # the referrers that have referrers → theirs

    @property
    def listed(self) -> set[str]:
        """The nodes that have a ``sha256-<hex>`` tag: the only ones listed once the tag list is read."""
        return {self.root, *self.second}

    @property
    def referrers(self) -> list[str]:
        return [*self.first, *(d for below in self.second.values() for d in below)]


def seed(client: httpx.Client, url: str, repo: str, extra: Callable[[Desc], list[Desc]] | None = None) -> Wide:
    """The wide graph in ``repo``; ``extra(root)`` adds entries (true or not) to the end of the root's listing."""
    root = push_image(client, url, repo, tag="v1")
    layer = push_layer(client, url, repo, b"prune\n")
    push_artifact(client, url, repo, [layer], artifact_type=NOTARY)  # pushes the shared config blob once

    def referrer(subject: Desc, name: str) -> Desc:
        return push_artifact(client, url, repo, [layer], artifact_type=NOTARY, subject=subject,
                             annotations={"name": name}, push_config=False)

    subject = subject_of(root)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = list(pool.map(lambda n: referrer(subject, f"r{n}"), range(WIDTH)))
        signed = first[::SIGNED_EVERY]
        second = list(pool.map(lambda parent: [referrer(parent, f"{parent['annotations']['name']}.{n}")
                                               for n in range(2)], signed))
    for parent, below in zip(signed, second):
        push_fallback_index(client, url, repo, parent["digest"], below)
    push_fallback_index(client, url, repo, root.manifest_digest, first + (extra(subject) if extra else []))
    return Wide(repo, root.manifest_digest, [d["digest"] for d in first],
                {parent["digest"]: [d["digest"] for d in below] for parent, below in zip(signed, second)})


@pytest.fixture(scope="module")
def wide(registry_plain: RunningRegistry) -> Iterator[Wide]:
    """One wide graph the read-only tests share."""
    with httpx.Client(timeout=30) as client:
        yield seed(client, registry_plain.url, f"test/prune-{uuid.uuid4().hex[:8]}")


def _kind(record: ProxyRecord) -> str:
    if record.path.endswith("/tags/list"):
        return "tags"
    if "/referrers/" in record.path:
        return "referrers"
    if "/manifests/sha256-" in record.path:
        return "fallback"
    return f"{record.method} {record.path.split('/')[-2]}"


def _fallback_reads(proxy: RegistryProxy, repo: str = "") -> Counter[str]:
    """Subject digest → how many times its fallback tag was read."""
    return Counter("sha256:" + r.path.rsplit("sha256-", 1)[1]
                   for r in proxy.requests_matching(method="GET", path=f"/v2/{repo}.*/manifests/sha256-"))


def _shape(node: Node) -> tuple[dict[str, Any], list[tuple[str, list[dict[str, Any]]]]]:
    """Everything discover reports: the JSON document, and every node's rejected entries."""
    return node.to_dict(), [(n.descriptor.digest, [r.to_dict() for r in n.rejected])
                            for n in [node, *(n for _depth, n, _subject in node.walk())]]


def _root(image: Wide) -> Descriptor:
    return Descriptor(media_type=mediatypes.OCI_MANIFEST, digest=image.root, size=0)


# -- discover ---------------------------------------------------------------------------------------------------


def test_discover_of_a_wide_graph_reads_the_tag_list_instead_of_every_absent_tag(
        registry_plain: RunningRegistry, wide: Wide, tmp_path: Path) -> None:
    """14 requests where it took 123: resolve the tag, the API probe (404), the root's index, the tag list,
    then the index of each of the ten referrers that have one; the 110 leaves cost nothing."""
    with RegistryProxy(registry_plain) as proxy:
        result = run_cli("discover", f"{proxy.host}/{wide.repo}:v1", "-O", "json", env=clean_env(tmp_path),
                         cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.json()["count"] == len(wide.referrers) == 120
        found = {n["digest"] for n in result.json()["referrers"]}
        assert found == set(wide.first)
        kinds = [_kind(r) for r in proxy.requests]
        assert kinds[:4] == ["HEAD manifests", "referrers", "fallback", "tags"]
        assert Counter(kinds) == {"HEAD manifests": 1, "referrers": 1, "tags": 1, "fallback": 1 + len(wide.second)}
        assert _fallback_reads(proxy) == {digest: 1 for digest in wide.listed}


def test_a_narrow_graph_makes_the_requests_it_made_before(registry_plain: RunningRegistry, client: httpx.Client,
                                                          unique_repo: str, tmp_path: Path) -> None:
    """subject ← SBOM ← signature: three nodes, far below the 32 that make the tag list worth reading, so
    exactly the requests of the walk that lists every node (no tag list)."""
    url = registry_plain.url
    image = push_image(client, url, unique_repo, tag="v1")
    layer = push_layer(client, url, unique_repo, b"narrow\n")
    sbom = push_artifact(client, url, unique_repo, [layer], artifact_type=oci.CYCLONEDX, subject=subject_of(image))
    signature = push_artifact(client, url, unique_repo, [layer], artifact_type=NOTARY, subject=sbom,
                              push_config=False)
    push_fallback_index(client, url, unique_repo, image.manifest_digest, [sbom])
    push_fallback_index(client, url, unique_repo, sbom["digest"], [signature])
    with RegistryProxy(registry_plain) as proxy:
        result = run_cli("discover", f"{proxy.host}/{unique_repo}:v1", "-O", "json", env=clean_env(tmp_path),
                         cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.json()["count"] == 2
        assert [(r.method, r.path) for r in proxy.requests] == [
            ("HEAD", f"/v2/{unique_repo}/manifests/v1"),
            ("GET", f"/v2/{unique_repo}/referrers/{image.manifest_digest}"),
            *(("GET", f"/v2/{unique_repo}/manifests/{fallback_tag(d)}")
              for d in (image.manifest_digest, sbom["digest"], signature["digest"]))]


FAILURES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "500": (500, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}'),
    "not-json": (200, {"Content-Type": "text/html"}, b"<!DOCTYPE html><html>tags</html>"),
    "wrong-shape": (200, {"Content-Type": "application/json"}, b'{"name":"x","tags":[1,{"a":2}]}'),
    "404": (404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}'),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_tag_list_that_cannot_be_read_leaves_every_node_listed(
        registry_plain: RunningRegistry, wide: Wide, open_target: Callable[..., Target], failure: str) -> None:
    """The tag list fails (asked once, never retried here): every node's tag is read as before, and the graph
    is the one found with the tag list."""
    name = f"{registry_plain.host}/{wide.repo}"
    with RegistryProxy(registry_plain) as proxy:
        expected = discover(open_target(f"{proxy.host}/{wide.repo}:v1"), name, _root(wide), DiscoverOptions())
        assert len(proxy.requests_matching(method="GET", path=TAG_LIST)) == 1
    status, headers, body = FAILURES[failure]
    with RegistryProxy(registry_plain) as proxy:
        proxy.inject(matching(method="GET", path=TAG_LIST), status, times=10, headers=headers, body=body)
        found = discover(open_target(f"{proxy.host}/{wide.repo}:v1", retries=0), name, _root(wide),
                         DiscoverOptions())
        assert len(proxy.requests_matching(method="GET", path=TAG_LIST)) == 1
        assert _fallback_reads(proxy) == {digest: 1 for digest in [wide.root, *wide.referrers]}
    assert _shape(found) == _shape(expected)
    assert len(found.walk()) == 120


# -- listing checks ---------------------------------------------------------------------------------------------


def test_listing_checks_judge_every_listed_entry_as_before(registry_plain: RunningRegistry, client: httpx.Client,
                                                           unique_repo: str, open_target: Callable[..., Target]
                                                           ) -> None:
    """The root's listing also names a deleted referrer, another image and another image's referrer; a leaf's
    tag names an index listing that other image; another leaf's tag names the leaf itself (what GitLab
    answers for an absent tag). Skipping only removes listings that do not exist: the tree and every
    rejection are those of the walk that reads every node's tag (the tag list answered 404)."""
    url = registry_plain.url
    other = push_image(client, url, unique_repo, tag="other", layer=b"other\n")
    stray: list[Desc] = []

    def forged(root: Desc) -> list[Desc]:
        layer = push_layer(client, url, unique_repo, b"forged\n")
        gone = push_artifact(client, url, unique_repo, [layer], artifact_type=NOTARY, subject=root)
        unrelated = push_artifact(client, url, unique_repo, [layer], artifact_type=NOTARY,
                                  subject=subject_of(other))
        stray.extend([gone, unrelated])
        return [gone, {**subject_of(other), "artifactType": NOTARY}, unrelated]

    graph = seed(client, url, unique_repo, forged)
    # deleted once listed (docker-registry refuses an index naming a manifest it does not have)
    assert client.delete(f"{url}/v2/{unique_repo}/manifests/{stray[0]['digest']}").status_code == 202
    leaf, itself = graph.first[5], graph.first[7]
    push_fallback_index(client, url, unique_repo, leaf, [{**subject_of(other), "artifactType": NOTARY}])
    raw = client.get(f"{url}/v2/{unique_repo}/manifests/{itself}", headers={"Accept": oci.MANIFEST_ACCEPT}).content
    oci.push_manifest(client, url, unique_repo, fallback_tag(itself), raw, mediatypes.OCI_MANIFEST)

    name = f"{registry_plain.host}/{unique_repo}"
    options = DiscoverOptions(check_listings=True)
    with RegistryProxy(registry_plain) as proxy:
        pruned = discover(open_target(f"{proxy.host}/{unique_repo}:v1"), name, _root(graph), options)
        assert len(proxy.requests_matching(method="GET", path=TAG_LIST)) == 1
        assert set(_fallback_reads(proxy)) == {*graph.listed, leaf, itself}
    with RegistryProxy(registry_plain) as proxy:
        status, headers, body = FAILURES["404"]
        proxy.inject(matching(method="GET", path=TAG_LIST), status, times=10, headers=headers, body=body)
        every = discover(open_target(f"{proxy.host}/{unique_repo}:v1"), name, _root(graph), options)
        assert len(_fallback_reads(proxy)) == 1 + len(graph.referrers)
    assert _shape(pruned) == _shape(every)
    rejected = {(r.listed.digest, r.subject, r.reason.value) for _d, n, _s in [(0, pruned, None), *pruned.walk()]
                for r in n.rejected}
    assert rejected == {(stray[0]["digest"], graph.root, "not-found"),
                        (other.manifest_digest, graph.root, "subject-mismatch"),
                        (stray[1]["digest"], graph.root, "subject-mismatch"),
                        (other.manifest_digest, leaf, "subject-mismatch")}
    assert len(pruned.walk()) == 120


# -- promote and delete --graph ---------------------------------------------------------------------------------


def _status(client: httpx.Client, url: str, repo: str, reference: str) -> int:
    return client.head(f"{url}/v2/{repo}/manifests/{reference}", headers={"Accept": oci.MANIFEST_ACCEPT}).status_code


def _listed(client: httpx.Client, url: str, repo: str, subject: str) -> list[str]:
    answer = client.get(f"{url}/v2/{repo}/manifests/{fallback_tag(subject)}", headers={"Accept": oci.OCI_INDEX})
    assert answer.status_code == 200, subject
    return [entry["digest"] for entry in answer.json()["manifests"]]


def test_promote_of_a_wide_graph_copies_every_referrer(registry_plain: RunningRegistry, wide: Wide,
                                                      client: httpx.Client, unique_repo: str, tmp_path: Path) -> None:
    """The source walk reads the tag list once and the indexes of the root and the ten; all 121 manifests are
    copied and listed at the destination as at the source."""
    with RegistryProxy(registry_plain) as proxy:
        result = run_cli("promote", f"{proxy.host}/{wide.repo}:v1", f"{proxy.host}/{unique_repo}:v1", "-O", "json",
                         env=clean_env(tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.json()["copied"]["manifests"] == 121 and result.json()["referrers"] == 120
        assert len(proxy.requests_matching(method="GET", path=f"/v2/{wide.repo}/tags/list$")) == 1
        assert _fallback_reads(proxy, wide.repo) == {digest: 1 for digest in wide.listed}
    url = registry_plain.url
    assert sorted(_listed(client, url, unique_repo, wide.root)) == sorted(wide.first)
    for parent, below in wide.second.items():
        assert sorted(_listed(client, url, unique_repo, parent)) == sorted(below)
    for digest in [wide.root, *wide.referrers]:
        assert _status(client, url, unique_repo, digest) == 200, digest


def test_delete_graph_of_a_wide_graph_deletes_everything(registry_plain: RunningRegistry, client: httpx.Client,
                                                         unique_repo: str, tmp_path: Path) -> None:
    """Every referrer, the root and the eleven indexes are deleted; no leaf's tag is read."""
    url = registry_plain.url
    graph = seed(client, url, unique_repo)
    with RegistryProxy(registry_plain) as proxy:
        result = run_cli("delete", f"{proxy.host}/{unique_repo}@{graph.root}", "--graph", "-O", "json",
                         env=clean_env(tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        doc = result.json()
        assert sorted(entry["digest"] for entry in doc["deleted"]) == sorted([graph.root, *graph.referrers])
        assert len(doc["indexesDeleted"]) == len(graph.listed)
        assert len(proxy.requests_matching(method="GET", path=TAG_LIST)) == 1
        assert set(_fallback_reads(proxy)) == graph.listed
    for digest in [graph.root, *graph.referrers]:
        assert _status(client, url, unique_repo, digest) == 404, digest
    for subject in graph.listed:
        assert _status(client, url, unique_repo, fallback_tag(subject)) == 404, subject


# -- a snapshot of one walk --------------------------------------------------------------------------------------


class _AfterTagListHandler(_ProxyHandler):
    def _forward(self, proxy: RegistryProxy, record: ProxyRecord, pacing: Rule | None = None) -> None:
        super()._forward(proxy, record, pacing)
        assert isinstance(proxy, AfterTagListProxy)
        if record.path.endswith("/tags/list") and proxy.after:
            proxy.after.pop()()


class AfterTagListProxy(RegistryProxy):
    """Runs ``after`` (once) when the registry has answered a tag list: a write that lands just after it."""

    _handler = _AfterTagListHandler

    def __init__(self, upstream: RunningRegistry) -> None:
        self.after: list[Callable[[], None]] = []
        super().__init__(upstream)


def test_a_tag_written_after_the_tag_list_was_read_is_seen_by_the_next_walk(
        registry_plain: RunningRegistry, client: httpx.Client, unique_repo: str,
        open_target: Callable[..., Target]) -> None:
    """A leaf gets a referrer (and its ``sha256-<hex>`` index) right after the walk read the tag list: that
    walk does not list the leaf, as it would not have had the index come after the leaf's listing; the next
    walk, on the same store, reads the tag list again and finds it."""
    url = registry_plain.url
    graph = seed(client, url, unique_repo)
    leaf = graph.first[1]
    late: list[Desc] = []

    def attach_late() -> None:
        layer = push_layer(client, url, unique_repo, b"late\n")
        raw = client.get(f"{url}/v2/{unique_repo}/manifests/{leaf}", headers={"Accept": oci.MANIFEST_ACCEPT})
        subject = {"mediaType": mediatypes.OCI_MANIFEST, "digest": leaf, "size": len(raw.content)}
        late.append(push_artifact(client, url, unique_repo, [layer], artifact_type=NOTARY, subject=subject))
        push_fallback_index(client, url, unique_repo, leaf, late)

    name = f"{registry_plain.host}/{unique_repo}"
    with AfterTagListProxy(registry_plain) as proxy:
        proxy.after.append(attach_late)
        target = open_target(f"{proxy.host}/{unique_repo}:v1")
        first = discover(target, name, _root(graph), DiscoverOptions())
        assert late and late[0]["digest"] not in {n.descriptor.digest for _d, n, _s in first.walk()}
        assert leaf not in _fallback_reads(proxy)
        second = discover(target, name, _root(graph), DiscoverOptions())
        assert late[0]["digest"] in {n.descriptor.digest for _d, n, _s in second.walk()}
        assert _fallback_reads(proxy)[leaf] == 1
        assert len(proxy.requests_matching(method="GET", path=TAG_LIST)) == 2
