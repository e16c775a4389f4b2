"""Directory layers built in memory, as another tool would write them, for unpack and pull tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile


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
