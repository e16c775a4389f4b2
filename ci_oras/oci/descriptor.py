"""OCI content descriptors."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field, replace
from typing import Any

from ci_oras.errors import UsageError
from ci_oras.oci import mediatypes
from ci_oras.oci.digest import Digest
from ci_oras.oci.shape import Fail, Fields

ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
#: ORAS's annotations for a directory packed as tar+gzip: digest of the uncompressed tar, and "unpack me".
ANNOTATION_CONTENT_DIGEST = "io.deis.oras.content.digest"
ANNOTATION_CONTENT_UNPACK = "io.deis.oras.content.unpack"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_fields(cls, fields: Fields) -> Platform:
        return cls(
            os=fields.optional_string("os") or "",
            architecture=fields.optional_string("architecture") or "",
            variant=fields.optional_string("variant") or None,
            os_version=fields.optional_string("os.version") or None,
        )

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says about a piece of content: its type, digest and size, plus optional metadata."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    data: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """Fields in the order of image-spec's Go struct, so encoded bytes match ORAS's."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_dict(cls, data: object, fail: Fail | None = None) -> Descriptor:
        """A descriptor read from outside JSON; ``fail`` makes the boundary's error (default: usage)."""
        return cls.from_fields(Fields.of(data, fail or _invalid_descriptor, what="a descriptor"))

    @classmethod
    def from_fields(cls, fields: Fields) -> Descriptor:
        """Every field type-checked (a problem names its path, as ``layers[1].size``); unknown fields ignored."""
        media_type = fields.string("mediaType")
        digest = fields.string("digest")
        size = fields.integer("size")
        if size < 0:
            raise fields.fail(f'"{fields.name("size")}" must not be negative')
        try:
            Digest.parse(digest)
        except UsageError as exc:
            raise fields.fail(f'"{fields.name("digest")}" is not a digest ({exc.message})') from exc
        platform = fields.optional_child("platform")
        embedded = fields.optional_string("data")
        try:
            data = base64.b64decode(embedded, validate=True) if embedded is not None else None
        except (binascii.Error, ValueError) as exc:
            raise fields.fail(f'"{fields.name("data")}" is not base64') from exc
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=fields.string_map("annotations"),
            artifact_type=fields.optional_string("artifactType") or None,
            platform=Platform.from_fields(platform) if platform is not None else None,
            urls=tuple(fields.strings("urls")),
            data=data,
        )

    def with_annotations(self, extra: dict[str, str]) -> Descriptor:
        return replace(self, annotations={**self.annotations, **extra})

    def plain(self) -> Descriptor:
        """Only what identifies the content (media type, digest, size): how a ``subject`` is written (as ORAS
        writes it) and what a referrers listing is asked about."""
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size)

    @property
    def is_manifest(self) -> bool:
        return mediatypes.is_manifest_type(self.media_type)

    @property
    def title(self) -> str | None:
        return self.annotations.get(ANNOTATION_TITLE)


def _invalid_descriptor(problem: str) -> UsageError:
    return UsageError(f"invalid descriptor: {problem}")


EMPTY_JSON = b"{}"
#: image-spec's empty descriptor, with the content embedded the way ORAS writes it.
EMPTY_DESCRIPTOR = Descriptor(
    media_type=mediatypes.OCI_EMPTY,
    digest="sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    size=2,
    data=EMPTY_JSON,
)
