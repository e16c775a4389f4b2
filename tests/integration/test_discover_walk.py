"""discover's walk as a work queue, observed at a real docker-registry through a proxy's request log.

The pool is checked by counting requests in flight at the proxy (each from its arrival to the moment its
answer was ready), with a registry 50 ms away: a walk that waited for a whole level before listing the next
would never have a second-level listing in flight beside a first-level one, nor a full pool at the end of a
level. The result is checked against the walk level by level that ``discover`` replaced, kept here as the
reference: on a graph with a shared referrer, a loop and a node reached at two depths (the shorter path held
back at the proxy, so the walk meets the node by the longer path first), with and without a depth limit and
the listing checks, the trees must be the same.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness.cli import clean_env, run_cli
from harness.oci import CYCLONEDX, NOTARY, fallback_tag, push_artifact, push_fallback_index, push_image, push_layer
from harness.proxy import AnsweringProxy, ProxyRecord, RegistryProxy, Rule, _AnsweringHandler, matching
from harness.registry import RunningRegistry

from ci_oras.graph.discover import DiscoverOptions, Node, discover
from ci_oras.graph.listing import Fetched, Reason, Rejected, check_entries
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.store.protocols import Target

CONCURRENCY = 8
WIDTH = 10  # referrers per node on the first two levels: more than the pool, so a level ends with a tail


class _SpanHandler(_AnsweringHandler):
    """Holds back the answers ``SpanProxy.holds`` names (and stamps when each answer was ready)."""

    def _forward(self, proxy: RegistryProxy, record: ProxyRecord, pacing: Rule | None = None) -> None:
        assert isinstance(proxy, SpanProxy)
        for predicate, seconds in proxy.holds:
            if predicate(record):
                time.sleep(seconds)  # this one registry answer is slower than the rest: the fault injected
        super()._forward(proxy, record, pacing)


class SpanProxy(AnsweringProxy):
    """An :class:`AnsweringProxy` that holds some answers back (``holds``) and counts requests in flight."""

    _handler = _SpanHandler

    def __init__(self, upstream: RunningRegistry) -> None:
        self.holds: list[tuple[Callable[[ProxyRecord], bool], float]] = []
        super().__init__(upstream)

    def span(self, record: ProxyRecord) -> tuple[float, float]:
        return record.time, self.answered(record)

    def in_flight(self) -> list[int]:
        """For each request: how many requests were in flight at the proxy when it arrived (itself included)."""
        spans = [self.span(r) for r in self.requests]
        return [sum(1 for start, end in spans if start <= record.time < end) for record in self.requests]


def _listings(proxy: RegistryProxy) -> list[ProxyRecord]:
    """The fallback-index reads: one per listed node on a registry without the referrers API."""
    return proxy.requests_matching(method="GET", path=r"/manifests/sha256-")


def _listed(record: ProxyRecord) -> str:
    return "sha256:" + record.path.rsplit("sha256-", 1)[1]


@dataclass(frozen=True)
class Wide:
    repo: str
    root: str
    first: list[str]  # the root's referrers, in listing order
    second: dict[str, list[str]]  # first-level referrer -> its own referrers


@pytest.fixture(scope="module")
def wide(registry_plain: RunningRegistry) -> Iterator[Wide]:
    """An image with WIDTH referrers, each with WIDTH referrers of its own (tag schema, seeded by raw HTTP).

    Each second-level referrer's ``sha256-<hex>`` tag names an empty index, so every node has a listing to
    read: the walk reads the tag list once it has 32 nodes to list and skips only nodes without such a tag
    (``graph/walk.py``), and these tests are about the pool across all 111 listings, not about that."""
    repo = "test/discover-walk-wide"
    url = registry_plain.url
    with httpx.Client(timeout=30) as client:
        root = push_image(client, url, repo, tag="v1")
        layer = push_layer(client, url, repo, b"walk\n")
        push_artifact(client, url, repo, [layer], artifact_type=NOTARY)  # pushes the shared config blob once

        def referrer(subject: dict[str, Any], name: str) -> dict[str, Any]:
            return push_artifact(client, url, repo, [layer], artifact_type=NOTARY, subject=subject,
                                 annotations={"name": name}, push_config=False)

        subject = {"mediaType": mediatypes.OCI_MANIFEST, "digest": root.manifest_digest, "size": len(root.manifest)}
        with ThreadPoolExecutor(max_workers=8) as pool:
            first = list(pool.map(lambda n: referrer(subject, f"r{n}"), range(WIDTH)))
            second = list(pool.map(lambda parent: [referrer(parent, f"{parent['annotations']['name']}.{n}")
                                                   for n in range(WIDTH)], first))
        for parent, below in zip(first, second):
            push_fallback_index(client, url, repo, parent["digest"], below)
            for leaf in below:
                push_fallback_index(client, url, repo, leaf["digest"], [])
        push_fallback_index(client, url, repo, root.manifest_digest, first)
    yield Wide(repo, root.manifest_digest, [d["digest"] for d in first],
               {parent["digest"]: [d["digest"] for d in below] for parent, below in zip(first, second)})


def test_the_pool_stays_full_across_levels(registry_plain: RunningRegistry, wide: Wide, tmp_path: Path) -> None:
    """The first first-level listing is held back 3 s: every other first-level node's referrers are listed
    meanwhile (a second-level listing in flight beside a first-level one), the pool is full (never more
    than --concurrency at once), and each node is listed once."""
    slow = wide.first[0]
    with SpanProxy(registry_plain) as proxy:
        proxy.latency = 0.05
        proxy.holds.append((matching(method="GET", path=f"/manifests/{fallback_tag(slow)}$"), 3.0))
        result = run_cli("discover", f"{proxy.host}/{wide.repo}:v1", "--concurrency", str(CONCURRENCY), "-O",
                         "json", env=clean_env(tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.json()["count"] == WIDTH + WIDTH * WIDTH

        listings = _listings(proxy)
        listed = Counter(_listed(r) for r in listings)
        assert set(listed) == {wide.root, *wide.first, *(d for below in wide.second.values() for d in below)}
        assert set(listed.values()) == {1}, "a node was listed more than once"
        assert len(proxy.requests_matching(method="GET", path=r"/tags/list$")) == 1

        held = next(r for r in listings if _listed(r) == slow)
        _, held_answered = proxy.span(held)
        others = [r for r in listings if _listed(r) in {d for p in wide.first[1:] for d in wide.second[p]}]
        assert all(r.time < held_answered for r in others), "second-level listings waited for the first level"
        assert max(proxy.in_flight()) == CONCURRENCY


def test_an_error_stops_the_walk(registry_plain: RunningRegistry, wide: Wide, tmp_path: Path) -> None:
    """A listing refused (403) mid-walk: exit 4 with one line, no traceback from a worker, and nothing new is
    started once the refusal is known (only what was already in flight may still arrive)."""
    refused = wide.second[wide.first[3]][0]
    with SpanProxy(registry_plain) as proxy:
        proxy.latency = 0.05
        proxy.inject(matching(method="GET", path=f"/manifests/{fallback_tag(refused)}$"), 403, times=10,
                     body=b'{"errors":[{"code":"DENIED","message":"no"}]}')
        result = run_cli("discover", f"{proxy.host}/{wide.repo}:v1", "--concurrency", str(CONCURRENCY),
                         env=clean_env(tmp_path), cwd=tmp_path)
        assert result.returncode == 4, result.stderr
        assert "access denied" in result.stderr and "Traceback" not in result.stderr
        denied = next(r for r in proxy.requests if r.action == "injected")
        later = [r for r in proxy.requests if r.time > proxy.span(denied)[1]]
        assert len(later) < CONCURRENCY
        assert len(_listings(proxy)) < 1 + WIDTH + WIDTH * WIDTH


# -- the same tree as the walk level by level


def level_by_level(target: Target, repository: str, root: Descriptor, options: DiscoverOptions) -> Node:
    """``discover`` as it was before it became a work queue: each level listed (and checked) in parallel, then
    the next level. The reference the work queue's trees are compared with (no index children here)."""
    top = Node(root, f"{repository}@{root.digest}")
    seen = {root.digest}
    frontier = [top]
    wanted = [mediatypes.normalize_media_type(kind) for kind in options.artifact_types]
    fetched: dict[str, Fetched] = {}
    level = 0
    with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
        while frontier and (options.depth is None or level < options.depth):
            listings = list(pool.map(lambda node: target.referrers(node.descriptor), frontier))
            if wanted:
                listings = [[d for d in listed if d.artifact_type and mediatypes.normalize_media_type(
                    d.artifact_type) in wanted] for listed in listings]
            if options.check_listings:
                entries = [(node.descriptor.digest, d) for node, listed in zip(frontier, listings) for d in listed]
                verdicts = iter(check_entries(target, pool, entries, fetched))
                checked = []
                for node, listed in zip(frontier, listings):
                    kept = []
                    for _ in listed:
                        verdict = next(verdicts)
                        if isinstance(verdict, Rejected):
                            assert verdict.reason is not Reason.malformed
                            node.rejected.append(verdict)
                        else:
                            kept.append(verdict)
                    checked.append(kept)
                listings = checked
            next_frontier = []
            for node, listed in zip(frontier, listings):
                for desc in listed:
                    referrer = Node(desc, f"{repository}@{desc.digest}", repeated=desc.digest in seen)
                    node.referrers.append(referrer)
                    if not referrer.repeated:
                        seen.add(desc.digest)
                        next_frontier.append(referrer)
            frontier = next_frontier
            level += 1
    return top


def _shape(node: Node) -> tuple[dict[str, Any], list[tuple[int, str, list[dict[str, Any]]]]]:
    """Everything discover reports about a tree: the JSON document, and every node's rejected entries."""
    return node.to_dict(), [(depth, n.descriptor.digest, [r.to_dict() for r in n.rejected])
                            for depth, n, _subject in [(0, node, None), *node.walk()]]


@dataclass(frozen=True)
class Dag:
    repo: str
    root: Descriptor
    held: str  # the referrer whose listing the proxy holds back


@pytest.fixture(scope="module")
def dag(registry_plain: RunningRegistry) -> Iterator[Dag]:
    """R ← A ← X ← Z ← W and R ← B ← C ← Y by their ``subject`` fields, listed (tag schema) as:

    R: A, B · A: X · B: C · C: X, Y · X: R, Y, Z · Z: W, Z

    X is listed under A (depth 2) and under C (depth 3; not X's subject), Y under C and X (not its subject),
    R under X (a loop) and Z under itself. A's listing is the one held back.
    """
    repo = "test/discover-walk-dag"
    url = registry_plain.url
    with httpx.Client(timeout=30) as client:
        image = push_image(client, url, repo, tag="v1")
        layer = push_layer(client, url, repo, b"dag\n")
        r = {"mediaType": mediatypes.OCI_MANIFEST, "digest": image.manifest_digest, "size": len(image.manifest),
             "artifactType": "application/vnd.ci-oras.test"}

        def node(name: str, subject: dict[str, Any], kind: str = NOTARY) -> dict[str, Any]:
            return push_artifact(client, url, repo, [layer], artifact_type=kind, subject=subject,
                                 annotations={"name": name})

        a = node("A", r, CYCLONEDX)
        b = node("B", r)
        c = node("C", b)
        x = node("X", a, CYCLONEDX)
        y = node("Y", c)
        z = node("Z", x)
        w = node("W", z)
        for subject, listed in ((r, [a, b]), (a, [x]), (b, [c]), (c, [x, y]), (x, [r, y, z]), (z, [w, z])):
            push_fallback_index(client, url, repo, subject["digest"], listed)
    root = Descriptor(media_type=mediatypes.OCI_MANIFEST, digest=image.manifest_digest, size=len(image.manifest))
    yield Dag(repo, root, a["digest"])


@pytest.mark.parametrize("depth", [None, 1, 2, 3, 4])
@pytest.mark.parametrize("check", [False, True], ids=["as-listed", "checked"])
def test_the_tree_is_the_one_a_walk_level_by_level_builds(
        registry_plain: RunningRegistry, dag: Dag, open_target: Callable[[str], Target], depth: int | None,
        check: bool) -> None:
    options = DiscoverOptions(depth=depth, check_listings=check, concurrency=CONCURRENCY)
    name = f"{registry_plain.host}/{dag.repo}"
    expected = level_by_level(open_target(f"{name}:v1"), name, dag.root, options)
    with SpanProxy(registry_plain) as proxy:
        proxy.holds.append((matching(method="GET", path=f"/manifests/{fallback_tag(dag.held)}$"), 0.3))
        found = discover(open_target(f"{proxy.host}/{dag.repo}:v1"), name, dag.root, options)
        gets = Counter(r.path for r in proxy.requests_matching(method="GET"))
    assert _shape(found) == _shape(expected)
    assert set(gets.values()) == {1}, "a digest was listed or fetched twice"


@pytest.mark.parametrize("depth", [None, 2])
def test_artifact_types_filter_the_walk_as_they_filtered_each_level(
        registry_plain: RunningRegistry, dag: Dag, open_target: Callable[[str], Target], depth: int | None) -> None:
    """Only CycloneDX referrers are followed (named in another case): R ← A ← X; X's listing names none."""
    options = DiscoverOptions(artifact_types=(CYCLONEDX.upper(),), depth=depth, check_listings=True)
    name = f"{registry_plain.host}/{dag.repo}"
    found = discover(open_target(f"{name}:v1"), name, dag.root, options)
    assert _shape(found) == _shape(level_by_level(open_target(f"{name}:v1"), name, dag.root, options))
    assert [n.descriptor.annotations.get("name") for _depth, n, _subject in found.walk()] == ["A", "X"]


def test_a_pool_of_one_walks_the_whole_graph(registry_plain: RunningRegistry, dag: Dag,
                                             open_target: Callable[[str], Target]) -> None:
    """No task waits on another, so one worker cannot deadlock, listings checked or not."""
    name = f"{registry_plain.host}/{dag.repo}"
    for check in (False, True):
        options = DiscoverOptions(check_listings=check, concurrency=1)
        found = discover(open_target(f"{name}:v1"), name, dag.root, options)
        assert _shape(found) == _shape(level_by_level(open_target(f"{name}:v1"), name, dag.root, options))

