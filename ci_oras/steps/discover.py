"""``discover``: the referrers graph below a reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci_oras.graph.discover import DiscoverOptions, Node, discover
from ci_oras.store.protocols import ReadOnlyTarget


@dataclass(frozen=True)
class DiscoverResult:
    root: Node

    @property
    def count(self) -> int:
        """Distinct referrers found at any depth (index children and repeated nodes not counted)."""
        return _count(self.root)

    def document(self) -> dict[str, Any]:
        return {"schema": "ci-oras/discover/v1", **self.root.to_dict(), "count": self.count}


def discover_graph(target: ReadOnlyTarget, repository: str, reference: str,
                   options: DiscoverOptions) -> DiscoverResult:
    root = target.resolve(reference)
    return DiscoverResult(discover(target, repository, root, options))


def _count(node: Node) -> int:
    return sum(0 if r.repeated else 1 + _count(r) for r in node.referrers) + sum(_count(c) for c in node.children)
