"""Small pieces several steps share (steps import this module, never each other)."""

from __future__ import annotations

from collections.abc import Iterable

from datetime import datetime, timezone

from ci_oras.errors import UsageError
from ci_oras.files import PreparedLayer
from ci_oras.oci.descriptor import ANNOTATION_CREATED, EMPTY_DESCRIPTOR, EMPTY_JSON, Descriptor
from ci_oras.oci.platform import platform_child
from ci_oras.store.protocols import Target

#: 9999-12-31T23:59:59Z: RFC 3339 (and so ``org.opencontainers.image.created``) has four-digit years.
MAX_EPOCH = 253402300799


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


def upload_layers(target: Target, layers: list[PreparedLayer]) -> tuple[list[Descriptor], int]:
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


def resolve_subject(target: Target, reference: str, shown: str, platform: str | None = None,
                    purpose: str = "attach to") -> Descriptor:
    """The descriptor to refer to: the manifest at ``reference``, or its child for ``platform``."""
    if platform is None:
        return target.resolve(reference).plain()
    return platform_child(target.fetch_manifest(reference), shown, platform, purpose).plain()
