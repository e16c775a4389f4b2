"""Pure helpers for OCI 1.1 referrers, shared by every store."""

from __future__ import annotations

from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import Digest
from ci_oras.oci.mediatypes import same_type


def fallback_tag(subject_digest: str) -> str:
    """The tag schema's tag for a subject: ``<alg>-<hex>`` (distribution-spec "Referrers Tag Schema")."""
    parsed = Digest.parse(subject_digest)
    return f"{parsed.algorithm}-{parsed.hex}"


def filter_by_type(descriptors: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    """Client-side ``artifactType`` filtering; types compare case-insensitively (a registry's own filter does
    not, so listings are never filtered on the server)."""
    if not artifact_type:
        return list(descriptors)
    return [d for d in descriptors if same_type(d.artifact_type, artifact_type)]
