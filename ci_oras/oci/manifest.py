"""Image manifests and indexes, always kept together with the exact bytes they came from.

A manifest's digest is the digest of its bytes. Re-serialising a parsed manifest can change whitespace or key
order and therefore the digest, so ci-oras never does it: ``Manifest.raw`` is what gets pushed, copied and
verified, and the parsed fields are read-only conveniences.

The bytes come from registries and layouts we do not control, so every field is type-checked when parsed
(``ci_oras.oci.shape``): a document of the wrong shape is a ``MalformedError`` (exit 6) naming the manifest,
where it came from and the field, never a half-read manifest. An index read as a referrers listing
(``listing=True``) keeps going past malformed entries and records them in ``Manifest.malformed``: ``verify``
reports each as a rejected referrer, everything else refuses the listing (``oci/referrers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ci_oras.errors import MalformedError, UsageError
from ci_oras.oci import gojson, mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.shape import Fields, load_json


@dataclass(frozen=True)
class MalformedEntry:
    """An entry of an index read as a listing that is not a descriptor: where it is, what is wrong, and what
    it claims where that much is readable (to report it by)."""

    position: int
    problem: str
    digest: str | None = None
    media_type: str | None = None
    artifact_type: str | None = None


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
    #: Entries of an index parsed with ``listing=True`` that are not descriptors (left out of ``manifests``).
    malformed: tuple[MalformedEntry, ...] = ()

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


def parse_manifest(raw: bytes, media_type: str | None = None, digest: str | None = None, *,
                   source: str | None = None, listing: bool = False) -> Manifest:
    """Parse ``raw``; ``media_type`` (e.g. a Content-Type) is used only when the document names none.

    A document of the wrong shape raises ``MalformedError`` naming the manifest (its digest, and ``source``,
    the repository or layout it came from) and the field; a well-formed document of a media type that is not
    a manifest's stays a ``UsageError``. With ``listing``, an index's malformed entries are recorded in
    ``malformed`` instead.
    """
    digest = digest or digest_bytes(raw)
    where = f"manifest {digest}" + (f" of {source}" if source else "")

    def fail(problem: str) -> MalformedError:
        return MalformedError(f"{where}: {problem}", problem=problem,
                              hint="the content is not a valid OCI manifest; do not use it")

    doc = Fields.of(load_json(raw, fail), fail)
    declared = doc.optional_string("mediaType") or media_type
    if not declared:
        declared = mediatypes.OCI_INDEX if "manifests" in doc.doc else mediatypes.OCI_MANIFEST
    if not mediatypes.is_manifest_type(declared):
        raise UsageError(f"unsupported manifest media type {declared!r}")
    schema_version = doc.optional_integer("schemaVersion")
    if schema_version is not None and schema_version != 2:
        raise fail(f'"schemaVersion" must be 2, not {schema_version}')
    config = doc.optional_child("config")
    subject = doc.optional_child("subject")
    manifests, malformed = _entries(doc, listing)
    layers = "layers" if doc.has("layers") or not doc.has("blobs") else "blobs"
    return Manifest(
        raw=raw,
        media_type=declared,
        digest=digest,
        artifact_type=doc.optional_string("artifactType") or None,
        config=Descriptor.from_fields(config) if config is not None else None,
        layers=tuple(Descriptor.from_fields(d) for d in doc.children(layers)),
        manifests=manifests,
        subject=Descriptor.from_fields(subject) if subject is not None else None,
        annotations=doc.string_map("annotations"),
        malformed=malformed,
    )


def _entries(doc: Fields, listing: bool) -> tuple[tuple[Descriptor, ...], tuple[MalformedEntry, ...]]:
    """An index's ``manifests``; with ``listing``, the malformed entries apart instead of raising."""
    if not listing:
        return tuple(Descriptor.from_fields(entry) for entry in doc.children("manifests")), ()

    good: list[Descriptor] = []
    bad: list[MalformedEntry] = []
    for position, item in enumerate(doc.array("manifests")):
        try:
            good.append(Descriptor.from_fields(Fields.of(item, MalformedError, doc.name(f"manifests[{position}]"))))
        except MalformedError as exc:
            bad.append(MalformedEntry(position, exc.problem, *_claims(item)))
    return tuple(good), tuple(bad)


def _claims(item: object) -> tuple[str | None, str | None, str | None]:
    """What a malformed entry says about itself, as far as it is readable: digest, media type, artifact type."""
    if not isinstance(item, dict):
        return None, None, None
    digest, media_type, artifact_type = (item.get(key) for key in ("digest", "mediaType", "artifactType"))
    return _text(digest), _text(media_type), _text(artifact_type)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def declared_subject(raw: bytes) -> tuple[str, str | None] | None:
    """The digest a manifest names as its ``subject`` and its ``artifactType``, read leniently: for finding
    where (and as what) a manifest too malformed to parse was meant to be listed, so that it is reported
    there instead of vanishing."""
    try:
        doc = load_json(raw, MalformedError)
    except MalformedError:
        return None
    if not isinstance(doc, dict):
        return None
    subject = doc.get("subject")
    digest = _text(subject.get("digest")) if isinstance(subject, dict) else None
    return (digest, _text(doc.get("artifactType"))) if digest else None


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
