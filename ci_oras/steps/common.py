"""Small pieces several steps share (steps import this module, never each other)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from ci_oras.errors import UsageError
from ci_oras.oci.descriptor import ANNOTATION_CREATED, EMPTY_DESCRIPTOR, EMPTY_JSON, Descriptor
from ci_oras.oci.manifest import build_image_manifest
from ci_oras.oci.platform import platform_child
from ci_oras.oci.reference import Reference, RegistryReference
from ci_oras.store.protocols import GraphStorage, ReadOnlyTarget, Storage

#: 9999-12-31T23:59:59Z: RFC 3339 (and so ``org.opencontainers.image.created``) has four-digit years.
MAX_EPOCH = 253402300799


def ensure_blob(target: Storage, desc: Descriptor, chunks: Iterable[bytes]) -> bool:
    """Upload ``desc`` unless the target already has it; True when bytes were sent.

    One HEAD is cheaper than an upload (POST + PUT), and blobs are content-addressed, so an existing blob with
    this digest is exactly these bytes.
    """
    if target.exists(desc):
        return False
    target.push_blob(desc, chunks)
    return True


def ensure_empty_config(target: Storage) -> bool:
    """The shared ``{}`` config must exist before a manifest naming it (distribution checks)."""
    return ensure_blob(target, EMPTY_DESCRIPTOR, [EMPTY_JSON])


class LayerSource(Protocol):
    """A layer to upload: its descriptor, and its bytes each time it is iterated (so an upload can retry)."""

    @property
    def descriptor(self) -> Descriptor: ...

    def __iter__(self) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class BytesLayer:
    """A small layer made in memory (a signature envelope)."""

    descriptor: Descriptor
    content: bytes

    def __iter__(self) -> Iterator[bytes]:
        yield self.content


def upload_layers(target: Storage, layers: Sequence[LayerSource]) -> tuple[list[Descriptor], int]:
    """Upload the layers and the empty config the target lacks; returns the manifest's layer list (the empty
    descriptor when there are no files, as ORAS writes it) and how many blobs were sent."""
    uploaded = sum(ensure_blob(target, layer.descriptor, layer) for layer in layers)
    uploaded += ensure_empty_config(target)
    return [layer.descriptor for layer in layers] or [EMPTY_DESCRIPTOR], uploaded


def with_created(annotations: dict[str, str] | None, created: str | None) -> dict[str, str]:
    """``org.opencontainers.image.created`` added unless the user set it (ORAS's rule)."""
    merged = dict(annotations or {})
    if created and ANNOTATION_CREATED not in merged:
        merged[ANNOTATION_CREATED] = created
    return merged


def creation_time(source_date_epoch: str | None) -> tuple[str, int | None]:
    """``SOURCE_DATE_EPOCH`` when set (reproducible builds), else now; RFC 3339 in UTC like ORAS writes it.

    Returns the ``created`` annotation and the mtime for packed directories (None: the files' own).
    """
    if source_date_epoch:
        if not source_date_epoch.isdigit() or int(source_date_epoch) > MAX_EPOCH:
            raise UsageError(f"SOURCE_DATE_EPOCH={source_date_epoch!r} is not a Unix timestamp up to {MAX_EPOCH} "
                             f"(9999-12-31)", hint="set it to a Unix timestamp, e.g. $(git log -1 --format=%ct)")
        epoch = int(source_date_epoch)
        return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), epoch
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), None


def resolve_subject(target: ReadOnlyTarget, reference: str, shown: str, platform: str | None = None,
                    purpose: str = "attach to") -> Descriptor:
    """The descriptor to refer to: the manifest at ``reference``, or its child for ``platform``."""
    if platform is None:
        return target.resolve(reference).plain()
    return platform_child(target.fetch_manifest(reference), shown, platform, purpose).plain()


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


def attach_layers(target: GraphStorage, repository: str, subject: Descriptor, layers: Sequence[LayerSource],
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


def mount_source(source: Reference, destination: Reference) -> str | None:
    """The repository to mount blobs from: SRC's, when both are repositories on one registry (a mount is one
    request instead of a download and an upload); None otherwise."""
    if (isinstance(source, RegistryReference) and isinstance(destination, RegistryReference)
            and source.registry == destination.registry and source.repository != destination.repository):
        return source.repository
    return None


def refuse_login_across_registries(destinations: Iterable[Reference]) -> None:
    """Login flags (--username/--password) reach one registry host. A release or a promote writing to two
    registries would hand one account's password to the other, so it is refused before anything is sent."""
    hosts = sorted({reference.registry for reference in destinations if isinstance(reference, RegistryReference)})
    if len(hosts) > 1:
        raise UsageError(f"--username/--password would reach {len(hosts)} registries ({', '.join(hosts)}); "
                         "login flags are sent to one registry only",
                         hint="give each registry its own credential (ci-oras login HOST, or CI_ORAS_REGISTRY "
                              "with CI_ORAS_USERNAME/CI_ORAS_PASSWORD) and drop the flags")
