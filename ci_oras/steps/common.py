"""Small pieces several steps share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ci_oras.oci.descriptor import ANNOTATION_CREATED, EMPTY_DESCRIPTOR, EMPTY_JSON, Descriptor
from ci_oras.store.protocols import Target


def ensure_blob(target: Target, desc: Descriptor, chunks: Iterable[bytes]) -> bool:
    """Upload ``desc`` unless the target already has it; True when bytes were sent.

    One HEAD is cheaper than an upload (POST + PUT), and blobs are content-addressed, so an existing blob with
    this digest is exactly these bytes.
    """
    if target.exists(desc):
        return False
    target.push_blob(desc, chunks)
    return True


def ensure_empty_config(target: Target) -> bool:
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


def upload_layers(target: Target, layers: Sequence[LayerSource]) -> tuple[list[Descriptor], int]:
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
