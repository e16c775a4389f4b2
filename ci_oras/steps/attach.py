"""``attach`` (and the SBOM and signature flavours): push an artifact whose ``subject`` is another manifest.

The subject may be a tag or a digest, including the digest of another referrer (a signature of an SBOM), or,
with ``platform``, one child of an image index. The referrer is made discoverable before the step reports
success (see ``registry/referrers.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_oras.errors import NotFoundError, UsageError
from ci_oras.files import FileSpec, prepare_layers
from ci_oras.formats.signature import NOTARY_ARTIFACT_TYPE, refuse_notary_for_other_subject
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor, Platform
from ci_oras.oci.manifest import Manifest, build_image_manifest
from ci_oras.steps.common import LayerSource, upload_layers, with_created
from ci_oras.store.protocols import Target


@dataclass(frozen=True)
class AttachOptions:
    artifact_type: str
    annotations: dict[str, str] = field(default_factory=dict)
    file_annotations: dict[str, dict[str, str]] | None = None
    created: str | None = None
    mtime: int | None = None
    platform: str | None = None


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


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"invalid platform {text!r}", hint="use OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64")
    return Platform(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None)


def resolve_subject(target: Target, reference: str, shown: str, platform: str | None = None) -> Descriptor:
    """The descriptor to refer to: the manifest at ``reference``, or its child for ``platform``."""
    if platform is None:
        return _plain(target.resolve(reference))
    return _plain(platform_child(target.fetch_manifest(reference), shown, platform, "attach to"))


def platform_child(index: Manifest, shown: str, platform: str, purpose: str) -> Descriptor:
    """The child of ``index`` for ``platform`` (OS/ARCH[/VARIANT]; no variant asked matches any variant)."""
    wanted = parse_platform(platform)
    if not index.is_index:
        raise UsageError(f"{shown} is not an image index, so --platform cannot pick a child",
                         hint=f"leave out --platform to {purpose} the manifest itself")
    for child in index.manifests:
        got = child.platform
        if got and got.os == wanted.os and got.architecture == wanted.architecture and (
                wanted.variant is None or got.variant == wanted.variant):
            return child
    available = ", ".join(str(c.platform) for c in index.manifests if c.platform) or "none"
    raise NotFoundError(f"{shown} has no manifest for platform {platform}", hint=f"available: {available}")


def _plain(desc: Descriptor) -> Descriptor:
    """A subject descriptor carries only what identifies the manifest (as ORAS writes it)."""
    return Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size)


def attach(target: Target, repository: str, subject: Descriptor, files: list[FileSpec],
           options: AttachOptions, *, step: str = "attach", detected_format: str | None = None) -> AttachResult:
    if not options.artifact_type:
        raise UsageError("attach needs --artifact-type", hint="e.g. --artifact-type application/vnd.acme.report.v1")
    if options.artifact_type.lower() == NOTARY_ARTIFACT_TYPE:
        for spec in files:
            refuse_notary_for_other_subject(spec.path, spec.media_type, subject)
    with prepare_layers(files, file_annotations=options.file_annotations, mtime=options.mtime) as layers:
        return attach_layers(target, repository, subject, layers, options, step=step,
                             detected_format=detected_format)


def attach_layers(target: Target, repository: str, subject: Descriptor, layers: Sequence[LayerSource],
                  options: AttachOptions, *, step: str, detected_format: str | None) -> AttachResult:
    """Upload ``layers`` and push the referrer manifest naming ``subject``: shared by ``attach`` (files on
    disk) and ``sign`` (an envelope made in memory), so both write the same manifest shape."""
    annotations = with_created(options.annotations, options.created)
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
