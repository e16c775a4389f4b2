"""``push``: files and directories become an OCI 1.1 artifact (empty config, ``artifactType``), as ORAS does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci_oras.files import FileSpec, prepare_layers
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.manifest import build_image_manifest
from ci_oras.steps.common import upload_layers, with_created
from ci_oras.store.protocols import Storage


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: str
    media_type: str
    artifact_type: str
    size: int
    tags: tuple[str, ...]
    layers: tuple[Descriptor, ...]
    blobs_uploaded: int

    def document(self) -> dict[str, Any]:
        return {
            "schema": "ci-oras/push/v1",
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "size": self.size,
            "tags": list(self.tags),
            "layers": [layer.to_dict() for layer in self.layers],
            "blobsUploaded": self.blobs_uploaded,
        }


@dataclass(frozen=True)
class PushOptions:
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    config_annotations: dict[str, str] | None = None
    file_annotations: dict[str, dict[str, str]] | None = None
    #: RFC 3339 time for ``org.opencontainers.image.created`` (the CLI derives it from SOURCE_DATE_EPOCH or now).
    created: str | None = None
    #: mtime for entries of packed directories (SOURCE_DATE_EPOCH), for reproducible digests.
    mtime: int | None = None


def push(target: Storage, repository: str, tags: tuple[str, ...], files: list[FileSpec],
         options: PushOptions) -> PushResult:
    """Upload the layers the target lacks, the config, then the manifest under each tag (or by digest)."""
    annotations = with_created(options.annotations, options.created)
    config = EMPTY_DESCRIPTOR
    if options.config_annotations:
        config = config.with_annotations(options.config_annotations)
    artifact_type = options.artifact_type or mediatypes.UNKNOWN_ARTIFACT
    with prepare_layers(files, file_annotations=options.file_annotations, mtime=options.mtime) as layers:
        layer_descriptors, uploaded = upload_layers(target, layers)
        manifest = build_image_manifest(
            artifact_type=artifact_type, config=config, layers=layer_descriptors, annotations=annotations
        )
        if tags:
            for tag in tags:
                target.push_manifest(manifest, tag)
        else:
            target.push_manifest(manifest)
    shown = f"{repository}:{tags[0]}" if tags else f"{repository}@{manifest.digest}"
    return PushResult(
        reference=shown,
        digest=manifest.digest,
        media_type=manifest.media_type,
        artifact_type=artifact_type,
        size=len(manifest.raw),
        tags=tags,
        layers=tuple(layer_descriptors),
        blobs_uploaded=uploaded,
    )
