"""Small pieces several steps share."""

from __future__ import annotations

from collections.abc import Iterable

from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, EMPTY_JSON, Descriptor
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
