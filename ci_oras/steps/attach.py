"""``attach`` (and the SBOM and signature flavours): push an artifact whose ``subject`` is another manifest.

The subject may be a tag or a digest, including the digest of another referrer (a signature of an SBOM), or,
with ``platform``, one child of an image index. The referrer is made discoverable before the step reports
success (see ``registry/referrers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import os
from pathlib import Path

from ci_oras.errors import UsageError
from ci_oras.files import FileSpec, prepare_layers
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.manifest import build_image_manifest
from ci_oras.steps.common import upload_layers, with_created
from ci_oras.store.protocols import Target


@dataclass(frozen=True)
class AttachOptions:
    artifact_type: str
    annotations: dict[str, str] = field(default_factory=dict)
    file_annotations: dict[str, dict[str, str]] | None = None
    created: str | None = None
    mtime: int | None = None
    platform: str | None = None

    def __post_init__(self) -> None:
        require_artifact_type(self.artifact_type)


def require_artifact_type(artifact_type: str | None) -> None:
    """A referrer is found by its type: ``attach`` has no default for it (as ``oras attach``)."""
    if not artifact_type:
        raise UsageError("attach needs --artifact-type", hint="e.g. --artifact-type application/vnd.acme.report.v1")


@dataclass(frozen=True)
class AttachResult:
    step: str
    reference: str
    digest: str
    media_type: str
    artifact_type: str
    size: int
    subject: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]
    blobs_uploaded: int
    format: str | None = None  # what attach-sbom / attach-signature detected

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": f"ci-oras/{self.step}/v1",
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "size": self.size,
            "subject": self.subject.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
            "annotations": dict(self.annotations),
            "blobsUploaded": self.blobs_uploaded,
        }
        if self.format is not None:
            doc["format"] = self.format
        return doc


@dataclass(frozen=True)
class AttachInput:
    """What ``attach-sbom``/``attach-signature`` attach: the file, its types and the annotations read from it."""

    file: FileSpec
    artifact_type: str
    annotations: dict[str, str]
    #: The recognised format (``CycloneDX 1.5 JSON``), None when the user named the types.
    format: str | None


def sbom_file(path: Path, artifact_type: str | None) -> AttachInput:
    """An SBOM: its format detected and described, unless ``--artifact-type`` overrides the detection."""
    from ci_oras.formats.sbom import detect_sbom

    _require_file(path)
    if artifact_type:
        return AttachInput(_single_file(path, None), artifact_type, {}, None)
    found = detect_sbom(path)
    return AttachInput(_single_file(path, found.media_type), found.artifact_type, dict(found.annotations), found.format)


def signature_file(path: Path, artifact_type: str | None, media_type: str | None) -> AttachInput:
    """A signature: Notary (JWS, COSE) or Sigstore detected, unless both types are named for another format."""
    from ci_oras.formats.signature import detect_signature

    _require_file(path)
    if artifact_type and media_type:
        return AttachInput(_single_file(path, media_type), artifact_type, {}, None)
    if artifact_type or media_type:
        raise UsageError("--artifact-type and --media-type go together",
                         hint="give both to attach a signature format ci-oras does not recognise")
    found = detect_signature(path)
    return AttachInput(_single_file(path, found.media_type), found.artifact_type, dict(found.annotations), found.format)


def _require_file(path: Path) -> None:
    if not os.path.lexists(path):
        raise UsageError(f"file not found: {path}", hint="check the path")
    if not path.is_file():
        raise UsageError(f"{path} is not a regular file", hint="pass the file itself, not a directory, pipe or device")


def _single_file(path: Path, media_type: str | None) -> FileSpec:
    """SBOMs and signatures are titled by their file name: CI tools write them anywhere (/tmp, build/…)."""
    return FileSpec(path=path, title=path.name, media_type=media_type)


def attach(target: Target, repository: str, subject: Descriptor, files: list[FileSpec],
           options: AttachOptions, *, step: str = "attach", detected_format: str | None = None) -> AttachResult:
    annotations = with_created(options.annotations, options.created)
    with prepare_layers(files, file_annotations=options.file_annotations, mtime=options.mtime) as layers:
        layer_descriptors, uploaded = upload_layers(target, layers)
        manifest = build_image_manifest(artifact_type=options.artifact_type, config=EMPTY_DESCRIPTOR,
                                        layers=layer_descriptors, subject=subject, annotations=annotations)
        target.push_referrer(manifest)
    return AttachResult(
        step=step,
        reference=f"{repository}@{manifest.digest}",
        digest=manifest.digest,
        media_type=manifest.media_type,
        artifact_type=options.artifact_type,
        size=len(manifest.raw),
        subject=subject,
        layers=tuple(layer_descriptors),
        annotations=annotations,
        blobs_uploaded=uploaded,
        format=detected_format,
    )
