"""OCI content descriptors."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any

from ci_oras.errors import UsageError
from ci_oras.oci import mediatypes
from ci_oras.oci.digest import Digest

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
    def from_dict(cls, data: dict[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=data.get("variant"),
            os_version=data.get("os.version"),
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
    def from_dict(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict):
            raise UsageError("invalid descriptor: not a JSON object")
        try:
            media_type = str(data["mediaType"])
            digest = str(data["digest"])
            size = data["size"]
        except KeyError as exc:
            raise UsageError(f"invalid descriptor: missing {exc.args[0]!r}") from exc
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UsageError(f"invalid descriptor size {size!r} for {digest}")
        Digest.parse(digest)
        annotations = data.get("annotations") or {}
        platform = data.get("platform")
        raw_data = data.get("data")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations={str(k): str(v) for k, v in annotations.items()},
            artifact_type=data.get("artifactType") or None,
            platform=Platform.from_dict(platform) if isinstance(platform, dict) else None,
            urls=tuple(data.get("urls") or ()),
            data=base64.b64decode(raw_data) if isinstance(raw_data, str) else None,
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


EMPTY_JSON = b"{}"
#: image-spec's empty descriptor, with the content embedded the way ORAS writes it.
EMPTY_DESCRIPTOR = Descriptor(
    media_type=mediatypes.OCI_EMPTY,
    digest="sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    size=2,
    data=EMPTY_JSON,
)
