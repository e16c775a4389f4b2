"""``pull``: write an artifact's titled layers into a directory, verified, unpacking directory layers.

Every layer is checked before anything is written (unsafe titles, files that would be overwritten), then each
file is streamed into a temporary file beside its destination and renamed into place only once its digest is
verified, so a failure leaves no half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_oras.errors import UsageError
from ci_oras.files import file_digest
from ci_oras.oci.descriptor import ANNOTATION_CONTENT_DIGEST, ANNOTATION_CONTENT_UNPACK, Descriptor
from ci_oras.store.protocols import Target


@dataclass(frozen=True)
class PulledFile:
    title: str
    path: str
    digest: str
    size: int
    unpacked: bool
    skipped: bool  # already present with identical content


@dataclass(frozen=True)
class PullResult:
    reference: str
    digest: str
    media_type: str
    artifact_type: str | None
    output: str
    files: tuple[PulledFile, ...]
    skipped_layers: int  # layers without a title (ORAS skips them too)

    def document(self) -> dict[str, Any]:
        return {
            "schema": "ci-oras/pull/v1",
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "output": self.output,
            "files": [
                {"title": f.title, "path": f.path, "digest": f.digest, "size": f.size,
                 "unpacked": f.unpacked, "skipped": f.skipped}
                for f in self.files
            ],
            "skippedLayers": self.skipped_layers,
        }


def pull(target: Target, reference: str, shown: str, output: Path, *, overwrite: bool = False) -> PullResult:
    from ci_oras.archive import safe_output_path

    manifest = target.fetch_manifest(reference)
    if manifest.is_index:
        raise UsageError(
            f"{shown} is an image index, not an artifact",
            hint="pull one of its manifests by digest (see 'ci-oras manifest fetch')",
        )
    output.mkdir(parents=True, exist_ok=True)
    titled = [layer for layer in manifest.layers if layer.title]
    plans = [(layer, safe_output_path(output, layer.title or "")) for layer in titled]
    _refuse_conflicts(plans, overwrite)
    pulled = [_pull_layer(target, layer, path, output, overwrite) for layer, path in plans]
    return PullResult(
        reference=shown,
        digest=manifest.digest,
        media_type=manifest.media_type,
        artifact_type=manifest.effective_artifact_type,
        output=str(output),
        files=tuple(pulled),
        skipped_layers=len(manifest.layers) - len(titled),
    )


def _is_directory_layer(layer: Descriptor) -> bool:
    return layer.annotations.get(ANNOTATION_CONTENT_UNPACK) == "true"


def _refuse_conflicts(plans: list[tuple[Descriptor, Path]], overwrite: bool) -> None:
    """Fail before downloading anything when a plain file would replace different existing content."""
    if overwrite:
        return
    for layer, path in plans:
        if _is_directory_layer(layer) or not path.exists():
            continue
        if not path.is_file() or file_digest(path)[0] != layer.digest:
            raise UsageError(
                f"{path} exists with different content",
                hint="remove it, choose another -o directory, or pass --overwrite",
            )


def _pull_layer(target: Target, layer: Descriptor, path: Path, output: Path, overwrite: bool) -> PulledFile:
    from ci_oras.archive import unpack_tar_gzip

    title = layer.title or ""
    if _is_directory_layer(layer):
        with contextlib.closing(target.fetch(layer)) as chunks:
            unpack_tar_gzip(chunks, output, title, expected_tar_digest=layer.annotations.get(ANNOTATION_CONTENT_DIGEST),
                            overwrite=overwrite)
        return PulledFile(title, str(path), layer.digest, layer.size, unpacked=True, skipped=False)
    if path.is_file() and file_digest(path)[0] == layer.digest:
        return PulledFile(title, str(path), layer.digest, layer.size, unpacked=False, skipped=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=".ci-oras-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out, contextlib.closing(target.fetch(layer)) as chunks:
            for chunk in chunks:
                out.write(chunk)
        os.chmod(temp_name, _default_file_mode())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return PulledFile(title, str(path), layer.digest, layer.size, unpacked=False, skipped=False)




def _default_file_mode() -> int:
    """Temporary files are created 0600; pulled files get the mode a plain ``open()`` would give them."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
