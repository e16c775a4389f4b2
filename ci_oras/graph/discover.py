"""Discover the referrers graph below a manifest: listed as a work queue, shown breadth first.

Listing the referrers of one subject is one request (or one page chain), and the subjects are independent:
each is listed as soon as it is known, on a bounded pool (``ci_oras.graph.walk``), so ``concurrency``
requests stay in flight across siblings and depths. The tree is built afterwards from what was listed, in
breadth-first, listing order, whatever order the answers came in: a digest already shown earlier in that
order is shown again as ``repeated`` but not expanded, so an index whose referrer refers back to it (a loop)
terminates, and each digest is listed once.

Artifact types are matched here, case-insensitively, never by a registry's own (case-sensitive) filter. With
``check_listings`` (what ``delete --graph`` acts on) every listed entry is checked against its manifest first
(``ci_oras.graph.listing``): one manifest GET per distinct entry, in parallel with the listings; what fails is
kept on the node it was listed under as ``rejected``, not in the graph, except a malformed one (manifest or
listing entry), which ends the walk with an integrity error: a listing we cannot read is never an empty graph.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_oras.graph.listing import Rejected
from ci_oras.graph.walk import ReferrersWalk, Tasks
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.store.protocols import ReadOnlyTarget

DEFAULT_CONCURRENCY = 8


@dataclass(eq=False)
class Node:
    """One manifest in the graph and what refers to it."""

    descriptor: Descriptor
    reference: str
    referrers: list[Node] = field(default_factory=list)
    #: For an index root with children included: its manifests, each with its own referrers.
    children: list[Node] = field(default_factory=list)
    #: Already shown elsewhere in the graph (a loop or a shared referrer): not expanded again.
    repeated: bool = False
    #: Entries listed under this node that failed the checks (only with ``check_listings``).
    rejected: list[Rejected] = field(default_factory=list)

    def walk(self) -> list[tuple[int, Node, Node | None]]:
        """Every node below this one as (depth, node, subject), depth first."""
        out: list[tuple[int, Node, Node | None]] = []

        def visit(node: Node, depth: int) -> None:
            for child in node.children:
                out.append((depth + 1, child, node))
                visit(child, depth + 1)
            for referrer in node.referrers:
                out.append((depth + 1, referrer, node))
                visit(referrer, depth + 1)

        visit(self, 0)
        return out

    def to_dict(self) -> dict[str, Any]:
        """ORAS 1.3's nested JSON: reference, mediaType, digest, size, artifactType, annotations, referrers."""
        doc: dict[str, Any] = {
            "reference": self.reference,
            "mediaType": self.descriptor.media_type,
            "digest": self.descriptor.digest,
            "size": self.descriptor.size,
        }
        if self.descriptor.artifact_type:
            doc["artifactType"] = self.descriptor.artifact_type
        if self.descriptor.annotations:
            doc["annotations"] = dict(self.descriptor.annotations)
        if self.repeated:
            doc["repeated"] = True  # shown elsewhere in the graph; its referrers are listed there
        if self.children:
            doc["manifests"] = [child.to_dict() for child in self.children]
        doc["referrers"] = [referrer.to_dict() for referrer in self.referrers]
        return doc


@dataclass(frozen=True)
class DiscoverOptions:
    artifact_types: Sequence[str] = ()
    depth: int | None = None  # None: the whole graph
    include_children: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    #: Fetch every listed entry and keep only what its manifest confirms (see the module docstring).
    check_listings: bool = False


def discover(target: ReadOnlyTarget, repository: str, root: Descriptor, options: DiscoverOptions) -> Node:
    """Build the graph below ``root``; ``repository`` names nodes as ``repository@digest``."""
    top = Node(root, f"{repository}@{root.digest}")
    seen = {root.digest}
    frontier = [top]
    if options.include_children and mediatypes.is_index_type(root.media_type):
        index = target.fetch_manifest(root.digest)
        for child in index.manifests:
            node = Node(child, f"{repository}@{child.digest}", repeated=child.digest in seen)
            top.children.append(node)
            if not node.repeated:
                seen.add(child.digest)
                frontier.append(node)
    wanted = [mediatypes.normalize_media_type(kind) for kind in options.artifact_types]
    tasks = Tasks({"read": (options.concurrency, "ci-oras-discover")})
    walk = ReferrersWalk(target, functools.partial(tasks.submit, "read"),
                         select=(lambda _subject, desc: _wanted(desc, wanted)) if wanted else None,
                         check=options.check_listings, depth=options.depth)
    try:
        for node in frontier:
            walk.add(node.descriptor)
    finally:
        tasks.wait()
    level = 0
    while frontier and (options.depth is None or level < options.depth):
        next_frontier: list[Node] = []
        for node in frontier:
            for verdict in walk.listing(node.descriptor.digest):
                if isinstance(verdict, Rejected):
                    node.rejected.append(verdict)
                    continue
                referrer = Node(verdict, f"{repository}@{verdict.digest}", repeated=verdict.digest in seen)
                node.referrers.append(referrer)
                if not referrer.repeated:
                    seen.add(verdict.digest)
                    next_frontier.append(referrer)
        frontier = next_frontier
        level += 1
    return top


def _wanted(desc: Descriptor, wanted: list[str]) -> bool:
    return bool(desc.artifact_type) and mediatypes.normalize_media_type(desc.artifact_type or "") in wanted
