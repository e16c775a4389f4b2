"""Raw writes into an OCI image layout directory, the way another tool would make them.

The layout counterpart of :mod:`harness.oci`: content the code under test must read (referrers another tool
stored only in the referrers tag schema, a tag pointing where it should not) is written to the files
directly, so that a symmetric bug in the layout store's writing and reading cannot hide itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .oci import OCI_EMPTY_DIGEST, OCI_EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, compact, fallback_tag

__all__ = ["REF_NAME", "add_tag_schema_referrers", "index_entries", "tag_entry", "write_blob"]

#: The annotation an ``index.json`` entry is tagged with.
REF_NAME = "org.opencontainers.image.ref.name"


def index_entries(layout: Path) -> list[dict[str, Any]]:
    """The descriptors ``index.json`` lists."""
    entries: list[dict[str, Any]] = json.loads((layout / "index.json").read_text())["manifests"]
    return entries


def write_blob(layout: Path, data: bytes) -> str:
    """Store ``data`` under ``blobs/sha256/``; returns its digest."""
    hex_digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hex_digest).write_bytes(data)
    return f"sha256:{hex_digest}"


def tag_entry(layout: Path, entry: dict[str, Any], tag: str) -> None:
    """Add ``entry`` to ``index.json`` tagged ``tag`` (any other annotations of it are replaced)."""
    doc = json.loads((layout / "index.json").read_text())
    doc["manifests"].append({**entry, "annotations": {REF_NAME: tag}})
    (layout / "index.json").write_text(json.dumps(doc))


def add_tag_schema_referrers(layout: Path, subject: str, artifact_type: str,
                             referrers: list[tuple[str, bytes, dict[str, str]]],
                             index_annotations: dict[str, str] | None = None) -> tuple[list[str], str]:
    """Store referrers of the manifest ``subject`` as a tool using only the tag schema does: each ``(layer
    media type, payload, annotations of its listing entry)`` becomes an artifact manifest blob that
    ``index.json`` does not list, and one index tagged ``sha256-<hex>`` of the subject lists them all.

    Returns the referrers' digests and the index's.
    """
    size = next(entry["size"] for entry in index_entries(layout) if entry["digest"] == subject)
    write_blob(layout, b"{}")
    listed: list[dict[str, Any]] = []
    for media_type, payload, entry_annotations in referrers:
        raw = compact({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY_JSON, "digest": OCI_EMPTY_DIGEST, "size": 2},
            "layers": [{"mediaType": media_type, "digest": write_blob(layout, payload), "size": len(payload)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
        })
        listed.append({"mediaType": OCI_MANIFEST, "digest": write_blob(layout, raw), "size": len(raw),
                       "artifactType": artifact_type, "annotations": entry_annotations})
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed}
    if index_annotations:
        doc["annotations"] = index_annotations
    raw = compact(doc)
    index = write_blob(layout, raw)
    tag_entry(layout, {"mediaType": OCI_INDEX, "digest": index, "size": len(raw)}, fallback_tag(subject))
    return [entry["digest"] for entry in listed], index
