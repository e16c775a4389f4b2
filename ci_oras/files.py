"""Local files as layers: ``FILE[:MEDIA_TYPE]`` arguments, annotation files, and packed directories.

Titles follow ORAS: the path as the user typed it (forward slashes, cleaned), which is where ``pull`` writes it
back. Absolute paths and paths climbing out with ``..`` are refused, because pulling them would write outside
the output directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ci_oras.errors import UsageError
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import (
    ANNOTATION_CONTENT_DIGEST,
    ANNOTATION_CONTENT_UNPACK,
    ANNOTATION_TITLE,
    Descriptor,
)
from ci_oras.oci.shape import load_json

READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileSpec:
    """One ``FILE[:MEDIA_TYPE]`` argument."""

    path: Path
    title: str
    media_type: str | None = None


def parse_file_argument(argument: str) -> FileSpec:
    """Split ``path[:media/type]``; a path that exists as typed wins over a split (names may hold ':')."""
    path_text, media_type = argument, None
    if not os.path.lexists(argument) and ":" in argument:
        path_text, media_type = argument.rsplit(":", 1)
        if not media_type or "/" not in media_type:
            raise UsageError(
                f"invalid media type {media_type!r} in {argument!r}", hint="use FILE[:TYPE/SUBTYPE]"
            )
    if not path_text:
        raise UsageError(f"empty file name in {argument!r}", hint="use FILE[:MEDIA_TYPE]")
    title = posixpath.normpath(path_text.replace(os.sep, "/"))
    if title == ".":
        raise UsageError(
            "cannot push '.' as a file name",
            hint="pass the directory by its name from its parent (e.g. 'cd .. && ci-oras push REF mydir')",
        )
    if posixpath.isabs(title) or title == ".." or title.startswith("../"):
        raise UsageError(
            f"file {path_text!r} is outside the working directory",
            hint="run from a directory that contains it and pass a relative path (pull writes titles back as paths)",
        )
    path = Path(path_text)
    if not path.exists():
        raise UsageError(f"file not found: {path_text}", hint="check the path (relative to the working directory)")
    if not (path.is_file() or path.is_dir()):
        raise UsageError(f"{path_text} is not a regular file or directory")
    return FileSpec(path=path, title=title, media_type=media_type)


@dataclass(frozen=True)
class AnnotationFile:
    """ORAS's annotation file: ``{"$manifest": {...}, "$config": {...}, "<title>": {...}}``."""

    manifest: dict[str, str] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)


def load_annotation_file(path: str) -> AnnotationFile:
    hint = 'expected JSON like {"$manifest": {"key": "value"}}'
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"annotation file not found: {path}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read annotation file {path}: {exc}", hint=hint) from exc
    doc = load_json(raw, lambda problem: UsageError(f"annotation file {path} is {problem}", hint=hint),
                    encoding="utf-8")
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise UsageError(f"annotation file {path} must map names to objects of strings",
                         hint='expected JSON like {"$manifest": {"key": "value"}}')
    as_strings = {name: {str(k): str(v) for k, v in values.items()} for name, values in doc.items()}
    return AnnotationFile(
        manifest=as_strings.pop("$manifest", {}),
        config=as_strings.pop("$config", {}),
        files=as_strings,
    )


def parse_annotations(pairs: list[str]) -> dict[str, str]:
    annotations: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid annotation {pair!r}", hint="use --annotation KEY=VALUE")
        if key in annotations:
            raise UsageError(f"annotation {key!r} given twice", hint="give each key once")
        annotations[key] = value
    return annotations


@dataclass(frozen=True)
class PreparedLayer:
    """A layer ready to upload: its descriptor and where its bytes are read from."""

    descriptor: Descriptor
    source: Path

    def __iter__(self) -> Iterator[bytes]:
        """Each iteration reopens the file, so an interrupted upload can be retried from the start."""
        with self.source.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                yield chunk


def file_digest(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return f"sha256:{hasher.hexdigest()}", size


@contextlib.contextmanager
def prepare_layers(
    specs: list[FileSpec],
    *,
    file_annotations: dict[str, dict[str, str]] | None = None,
    mtime: int | None = None,
) -> Iterator[list[PreparedLayer]]:
    """Describe every file (hashing it once) and pack directories into temporary tar+gzip files.

    The temporary files live until the context ends, so the upload streams from disk, never from memory.
    """
    titles = [spec.title for spec in specs]
    duplicates = sorted({t for t in titles if titles.count(t) > 1})
    if duplicates:
        raise UsageError(f"file {duplicates[0]!r} given twice", hint="each file becomes one layer; name it once")
    extra = dict(file_annotations or {})
    unknown = sorted(set(extra) - set(titles))
    if unknown:
        raise UsageError(f"annotation file names {unknown[0]!r}, which is not among the files pushed",
                         hint="use the file name exactly as passed on the command line")
    workdir = Path(tempfile.mkdtemp(prefix="ci-oras-pack-"))
    try:
        layers: list[PreparedLayer] = []
        for index, spec in enumerate(specs):
            annotations = {ANNOTATION_TITLE: spec.title, **extra.get(spec.title, {})}
            if spec.path.is_dir():
                from ci_oras.archive import pack_directory  # tarfile and gzip only for directories

                packed_path = workdir / f"{index}.tar.gz"
                with packed_path.open("wb") as out:
                    packed = pack_directory(spec.path, spec.title, out, mtime=mtime)
                annotations[ANNOTATION_CONTENT_DIGEST] = packed.tar_digest
                annotations[ANNOTATION_CONTENT_UNPACK] = "true"
                descriptor = Descriptor(
                    media_type=spec.media_type or mediatypes.OCI_LAYER_TAR_GZIP,
                    digest=packed.digest,
                    size=packed.size,
                    annotations=annotations,
                )
                layers.append(PreparedLayer(descriptor, packed_path))
            else:
                digest, size = file_digest(spec.path)
                descriptor = Descriptor(
                    media_type=spec.media_type or mediatypes.OCI_LAYER_TAR,
                    digest=digest,
                    size=size,
                    annotations=annotations,
                )
                layers.append(PreparedLayer(descriptor, spec.path))
        yield layers
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename: a job killed mid-write
    leaves the old file or none, never half of one."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide a plan from the next job's user
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="check that the directory exists and is writable") from exc
