"""``tags``: the tags of a repository or OCI layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci_oras.store.protocols import Target


@dataclass(frozen=True)
class TagsResult:
    repository: str
    tags: tuple[str, ...]

    def document(self) -> dict[str, Any]:
        return {"schema": "ci-oras/tags/v1", "repository": self.repository, "tags": list(self.tags)}


def list_tags(target: Target, repository: str) -> TagsResult:
    return TagsResult(repository=repository, tags=tuple(target.tags()))
