"""Image manifests and indexes, always kept together with the exact bytes they came from.

A manifest's digest is the digest of its bytes. Re-serialising a parsed manifest can change whitespace or key
order and therefore the digest, so ci-oras never does it: ``Manifest.raw`` is what gets pushed, copied and
verified, and the parsed fields are read-only conveniences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ci_oras.errors import UsageError
from ci_oras.oci import gojson, mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import digest_bytes


@dataclass(frozen=True)
class Manifest:
    """A parsed image manifest or index (``manifests`` set for an index, ``layers`` for a manifest)."""

    raw: bytes
    media_type: str
    digest: str
    artifact_type: str | None = None
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return mediatypes.is_index_type(self.media_type)

    @property
    def descriptor(self) -> Descriptor:
        """The descriptor that points at this manifest, as a parent index or a referrers list shows it."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=len(self.raw),
            annotations=dict(self.annotations),
            artifact_type=self.effective_artifact_type,
        )

    @property
    def effective_artifact_type(self) -> str | None:
        """``artifactType``, else the config media type (image-spec's rule for referrers listings)."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and not self.is_index:
            return self.config.media_type
        return None

    def children(self) -> tuple[Descriptor, ...]:
        """Everything this manifest points at, config first (the order a copy must upload them)."""
        if self.is_index:
            return self.manifests
        return ((self.config,) if self.config is not None else ()) + self.layers


def parse_manifest(raw: bytes, media_type: str | None = None, digest: str | None = None) -> Manifest:
    """Parse ``raw``; ``media_type`` (e.g. a Content-Type) is used only when the document names none."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"invalid manifest: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise UsageError("invalid manifest: not a JSON object")
    declared = doc.get("mediaType") or media_type
    if not declared:
        declared = mediatypes.OCI_INDEX if "manifests" in doc else mediatypes.OCI_MANIFEST
    if not mediatypes.is_manifest_type(declared):
        raise UsageError(f"unsupported manifest media type {declared!r}")
    config = doc.get("config")
    subject = doc.get("subject")
    annotations = doc.get("annotations") or {}
    return Manifest(
        raw=raw,
        media_type=declared,
        digest=digest or digest_bytes(raw),
        artifact_type=doc.get("artifactType") or None,
        config=Descriptor.from_dict(config) if config else None,
        layers=tuple(Descriptor.from_dict(d) for d in doc.get("layers") or doc.get("blobs") or ()),
        manifests=tuple(Descriptor.from_dict(d) for d in doc.get("manifests") or ()),
        subject=Descriptor.from_dict(subject) if subject else None,
        annotations={str(k): str(v) for k, v in annotations.items()},
    )


def build_image_manifest(
    *,
    artifact_type: str | None,
    config: Descriptor,
    layers: list[Descriptor],
    subject: Descriptor | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """Encode an OCI 1.1 image manifest in the layout ORAS writes, and return it parsed with its bytes."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config.to_dict()
    doc["layers"] = [layer.to_dict() for layer in layers]
    if subject is not None:
        doc["subject"] = subject.to_dict()
    if annotations:
        doc["annotations"] = annotations
    raw = gojson.dumps(doc)
    return parse_manifest(raw)


def build_index(manifests: list[Descriptor], *, annotations: dict[str, str] | None = None,
                artifact_type: str | None = None) -> Manifest:
    """Encode an OCI image index (used for the referrers tag schema and OCI layouts)."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["manifests"] = [m.to_dict() for m in manifests]
    if annotations:
        doc["annotations"] = annotations
    return parse_manifest(gojson.dumps(doc))
