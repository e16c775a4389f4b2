"""Media types ci-oras reads and writes (image-spec v1.1, Docker schema 2)."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
#: Withdrawn before image-spec 1.1 shipped; read, never write.
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

#: What ORAS calls an artifact whose type nobody named; kept so ``oras`` and ci-oras agree.
UNKNOWN_ARTIFACT = "application/vnd.unknown.artifact.v1"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST, OCI_ARTIFACT_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

#: Sent on every manifest GET/HEAD: distribution answers 404 for an OCI manifest unless the OCI types are listed.
MANIFEST_ACCEPT = ", ".join(
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_ARTIFACT_MANIFEST]
)


def is_manifest_type(media_type: str) -> bool:
    """True for any manifest or index media type (what registries keep under /manifests/)."""
    return media_type in MANIFEST_TYPES or media_type in INDEX_TYPES


def is_index_type(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def normalize_media_type(value: str) -> str:
    """Lower case, no whitespace around ``;`` and ``=``: how artifact types are compared (media types are
    case-insensitive, RFC 6838), wherever they come from: a flag, a listing or a manifest."""
    parts = [part.strip() for part in value.strip().split(";")]
    params = ["=".join(piece.strip() for piece in part.split("=", 1)) for part in parts[1:] if part]
    return ";".join([parts[0], *params]).lower()


def same_type(first: str | None, second: str | None) -> bool:
    """Whether two artifact types are the same type; an absent type equals only an absent type."""
    if not first or not second:
        return not first and not second
    return normalize_media_type(first) == normalize_media_type(second)
