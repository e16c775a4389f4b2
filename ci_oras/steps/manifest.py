"""``manifest fetch``: the exact manifest bytes a reference points at."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ci_oras.oci.manifest import Manifest
from ci_oras.store.protocols import ManifestFetcher


@dataclass(frozen=True)
class ManifestResult:
    reference: str
    manifest: Manifest

    def document(self) -> dict[str, Any]:
        return {
            "schema": "ci-oras/manifest/v1",
            "reference": self.reference,
            "digest": self.manifest.digest,
            "mediaType": self.manifest.media_type,
            "artifactType": self.manifest.effective_artifact_type,
            "size": len(self.manifest.raw),
            "manifest": json.loads(self.manifest.raw),
        }


def fetch_manifest(target: ManifestFetcher, reference: str, shown: str) -> ManifestResult:
    return ManifestResult(reference=shown, manifest=target.fetch_manifest(reference))
