"""``delete``: remove one manifest (by digest, so every tag on it goes too, as registries do)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci_oras.store.protocols import Target


@dataclass(frozen=True)
class DeleteResult:
    reference: str
    digest: str
    media_type: str

    def document(self) -> dict[str, Any]:
        return {
            "schema": "ci-oras/delete/v1",
            "reference": self.reference,
            "deleted": [{"digest": self.digest, "mediaType": self.media_type}],
        }


def delete_manifest(target: Target, reference: str, shown: str) -> DeleteResult:
    """Resolve first: a tag is turned into its digest because registries delete manifests by digest only."""
    desc = target.resolve(reference)
    target.delete(desc)
    return DeleteResult(reference=shown, digest=desc.digest, media_type=desc.media_type)
