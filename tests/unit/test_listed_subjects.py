"""The walk skips the listing of a node the store says has none (``ListedSubjects``), on the memory store.

A tag-schema registry tells which subjects have a listing by one tag list; here a memory store answers the
same question from what it stores, and records what it was asked and which nodes were listed, so the rule of
``graph/walk.py`` is checked without a registry: asked once a walk has ``PRUNE_AFTER`` nodes to list, never
below; only the nodes it names are listed afterwards; the graph found is the one a walk listing every node
finds; a store that cannot tell leaves every node listed; and the answer is a snapshot of one walk. The
requests this saves on a real docker-registry are counted in tests/integration/test_walk_pruning.py.
"""

from __future__ import annotations

import threading
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ci_oras.graph.copy import CopyOptions, copy_graph
from ci_oras.graph.discover import DiscoverOptions, Node, discover
from ci_oras.graph.walk import PRUNE_AFTER
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.manifest import Manifest, build_image_manifest
from ci_oras.store.layout import OCILayout
from ci_oras.store.memory import MemoryStore
from ci_oras.store.protocols import ListedSubjects
from ci_oras.store.registry import RegistryRepository

SIG = "application/vnd.example.sig+json"
LAYER = b"layer"


class TagSchemaStore(MemoryStore):
    """A memory store that also says which subjects have a listing (``can_tell``), and records the budgets it
    was asked with and every subject it listed."""

    def __init__(self, *, can_tell: bool = True) -> None:
        super().__init__("memory:tag-schema")
        self.can_tell = can_tell
        self.budgets: list[int] = []
        self.listed: list[str] = []
        self._subjects: set[str] = set()
        self._record = threading.Lock()
        #: Called once the answer is made, as a write that lands right after the tag list was read.
        self.after_answer: list[Manifest] = []

    def push_manifest(self, manifest: Manifest, tag: str | None = None) -> None:
        super().push_manifest(manifest, tag)
        if manifest.subject is not None:
            with self._record:
                self._subjects.add(manifest.subject.digest)

    def listed_subjects(self, max_requests: int) -> Container[str] | None:
        self.budgets.append(max_requests)
        with self._record:
            answer = frozenset(self._subjects)
        for manifest in self.after_answer:
            self.push_manifest(manifest)
        return answer if self.can_tell else None

    def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
        with self._record:
            self.listed.append(subject.digest)
        return super().referrers(subject, artifact_type)

    def forget(self) -> None:
        self.budgets.clear()
        self.listed.clear()


def signature(subject: Descriptor, note: str) -> Manifest:
    return build_image_manifest(artifact_type=SIG, config=EMPTY_DESCRIPTOR, layers=[], subject=subject.plain(),
                                annotations={"note": note})


@dataclass
class Wide:
    store: TagSchemaStore
    root: Manifest
    #: the root's referrers that have referrers of their own (two each)
    signed: list[str]
    count: int


def wide(width: int, *, signed_every: int = 10, can_tell: bool = True) -> Wide:
    """An image with ``width`` signatures; every ``signed_every``-th from the first has two signatures of its
    own (0: none has)."""
    store = TagSchemaStore(can_tell=can_tell)
    store.push_blob(EMPTY_DESCRIPTOR, [b"{}"])
    store.push_blob(Descriptor("application/octet-stream", digest_bytes(LAYER), len(LAYER)), [LAYER])
    root = build_image_manifest(artifact_type="application/vnd.example.image", config=EMPTY_DESCRIPTOR,
                                layers=[Descriptor("application/octet-stream", digest_bytes(LAYER), len(LAYER))])
    store.push_manifest(root, "v1")
    signed = []
    count = 0
    for number in range(width):
        first = signature(root.descriptor, f"r{number}")
        store.push_manifest(first)
        count += 1
        if signed_every and number % signed_every == 0:
            signed.append(first.digest)
            for below in range(2):
                store.push_manifest(signature(first.descriptor, f"r{number}.{below}"))
                count += 1
    return Wide(store, root, signed, count)


def found(graph: Wide, **options: Any) -> Node:
    return discover(graph.store, "memory", graph.root.descriptor, DiscoverOptions(**options))


def every_node(node: Node) -> list[str]:
    return [n.descriptor.digest for _depth, n, _subject in node.walk()]


@pytest.mark.parametrize("check", [False, True], ids=["as-listed", "checked"])
@pytest.mark.parametrize("concurrency", [1, 8])
def test_a_wide_walk_lists_only_the_subjects_that_have_a_listing(check: bool, concurrency: int) -> None:
    """The root's listing names 100 new nodes: the store is asked at once (its budget: the 101 nodes to list),
    before any of them is listed; then only the ten with referrers are. The tree is the one the same walk
    finds listing every node; a pool of one does not deadlock on the parked listings."""
    graph = wide(100)
    tree = found(graph, check_listings=check, concurrency=concurrency)
    assert graph.store.budgets == [101]
    assert sorted(graph.store.listed) == sorted([graph.root.digest, *graph.signed])
    assert len(every_node(tree)) == graph.count == 120

    graph.store.can_tell = False
    graph.store.forget()
    assert found(graph, check_listings=check, concurrency=concurrency).to_dict() == tree.to_dict()
    assert len(graph.store.listed) == 121 and graph.store.budgets == [101]


@pytest.mark.parametrize(("width", "asked"), [(PRUNE_AFTER - 2, False), (PRUNE_AFTER - 1, True)])
def test_the_store_is_asked_once_a_walk_has_prune_after_nodes_to_list(width: int, asked: bool) -> None:
    """The root and its ``width`` referrers: 31 nodes to list after the root's listing are listed one by one,
    as before; 32 make the walk ask, and only the root is listed."""
    graph = wide(width, signed_every=0)
    tree = found(graph)
    assert len(every_node(tree)) == graph.count == width
    assert graph.store.budgets == ([PRUNE_AFTER] if asked else [])
    assert len(graph.store.listed) == (1 if asked else width + 1)


def test_a_narrow_graph_is_listed_node_by_node() -> None:
    """subject ← signature ← its two signatures: four listings, the store never asked."""
    graph = wide(1)
    tree = found(graph)
    assert len(every_node(tree)) == 3
    assert graph.store.budgets == [] and len(graph.store.listed) == 4


@pytest.mark.parametrize(("depth", "asked"), [(1, False), (2, True)])
def test_nodes_past_the_depth_limit_are_not_counted(depth: int, asked: bool) -> None:
    """With ``--depth 1`` only the root is listed: the store is not asked for the 100 nodes never listed."""
    graph = wide(100)
    found(graph, depth=depth)
    assert graph.store.budgets == ([101] if asked else [])
    assert len(graph.store.listed) == (1 if depth == 1 else 1 + len(graph.signed))


def test_a_store_that_cannot_tell_has_every_node_listed() -> None:
    graph = wide(100, can_tell=False)
    tree = found(graph)
    assert graph.store.budgets == [101]
    assert len(graph.store.listed) == 121 and len(every_node(tree)) == 120


def test_the_answer_is_a_snapshot_of_one_walk() -> None:
    """A referrer of a leaf written right after the store answered is not seen in that walk (as one written
    after its node was listed would not be), and is seen by the next walk, which asks again."""
    graph = wide(100)
    leaf = next(d.digest for d in graph.store.referrers(graph.root.descriptor) if d.digest not in graph.signed)
    late = signature(graph.store.resolve(leaf), "late")
    graph.store.after_answer.append(late)
    graph.store.forget()

    first = found(graph)
    assert late.digest not in every_node(first) and leaf not in graph.store.listed

    graph.store.after_answer.clear()
    second = found(graph)
    assert late.digest in every_node(second) and leaf in graph.store.listed
    assert graph.store.budgets == [101, 101]


def test_a_copy_of_a_wide_graph_copies_every_referrer() -> None:
    graph = wide(100)
    destination = MemoryStore("memory:destination")
    _graph, stats, _was_there = copy_graph(graph.store, destination, graph.root, CopyOptions(), None)
    assert graph.store.budgets == [101]
    assert sorted(graph.store.listed) == sorted([graph.root.digest, *graph.signed])
    assert stats.manifests_copied == 121 and stats.referrers == 120
    assert len(destination.referrers(graph.root.descriptor)) == 100
    for digest in graph.signed:
        assert len(destination.referrers(destination.resolve(digest))) == 2


def test_only_the_registry_store_can_tell(tmp_path: Path) -> None:
    """The layout and memory stores list referrers themselves: nothing to skip, never asked."""
    assert issubclass(RegistryRepository, ListedSubjects)
    assert not isinstance(MemoryStore(), ListedSubjects)
    assert not isinstance(OCILayout(tmp_path / "layout", create=True), ListedSubjects)
