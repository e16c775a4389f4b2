"""Directory layers built in memory, as another tool would write them, for unpack and pull tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from typing import Any

import httpx

from .oci import push_layer

#: The media type ORAS pushes a directory as, and the annotation naming a file or directory.
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TITLE = "org.opencontainers.image.title"


def directory_layer(top: str, files: dict[str, bytes]) -> tuple[bytes, str]:
    """A tar+gzip holding the directory ``top`` and ``top/<name>`` files; returns it and its tar's digest."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directory = tarfile.TarInfo(top)
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(directory)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()


def push_directory_layer(client: httpx.Client, base_url: str, repo: str, blob: bytes, tar_digest: str,
                         title: str = "docs") -> dict[str, Any]:
    """Upload ``blob`` (a tar+gzip) as ORAS pushes the directory ``title``: annotated to be unpacked, and with
    the digest its tar must have; returns the layer's descriptor."""
    return push_layer(client, base_url, repo, blob, TAR_GZIP, {
        TITLE: title, "io.deis.oras.content.digest": tar_digest, "io.deis.oras.content.unpack": "true"})
