"""``tags``: the tags of a repository or OCI layout."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ci_oras.store.protocols import TagLister

_DIGEST_TAG = re.compile(r"^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})$")


@dataclass(frozen=True)
class TagsResult:
    repository: str
    tags: tuple[str, ...]

    def document(self) -> dict[str, Any]:
        return {"schema": "ci-oras/tags/v1", "repository": self.repository, "tags": list(self.tags)}


def list_tags(target: TagLister, repository: str, *, exclude_digest_tags: bool = False) -> TagsResult:
    """``exclude_digest_tags`` hides tags shaped like a digest (``sha256-<hex>``): referrers fallback indexes."""
    tags = target.tags()
    if exclude_digest_tags:
        tags = [tag for tag in tags if not _DIGEST_TAG.match(tag)]
    return TagsResult(repository=repository, tags=tuple(tags))
