"""``pull``: write an artifact's titled layers into a directory, verified, unpacking directory layers.

All or nothing: every layer is downloaded (and directory layers unpacked) into one staging directory on the
output's file system, each digest verified on the way; only when every layer is in does the staged tree move
into the output directory (one rename when the directory is new, else a merge planned in full before the first
change). A failure at any layer, of any kind, leaves the output directory as it was.

An image index is pulled as ``oras`` pulls it: the files of every child manifest, or of the one child that
``platform`` picks. Two layers writing the same path is an error rather than a silent last-one-wins.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_oras.errors import UsageError
from ci_oras.files import file_digest
from ci_oras.oci.descriptor import ANNOTATION_CONTENT_DIGEST, ANNOTATION_CONTENT_UNPACK, Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.store.protocols import Fetcher, ManifestFetcher, ReadOnlyTarget

if TYPE_CHECKING:
    from ci_oras.archive import UnpackBudget, UnpackLimits

#: Staging directories are hidden and named so a user who finds one after a crash knows what made it.
PULL_STAGING_PREFIX = ".ci-oras-pull-"
#: Indexes of indexes are legal but rare; a deeper chain is a loop or an attack, not an artifact.
MAX_INDEX_DEPTH = 8


@dataclass(frozen=True)
class PulledFile:
    title: str
    path: str
    digest: str
    size: int
    unpacked: bool
    skipped: bool  # already present with identical content
    manifest: str  # digest of the manifest that lists the layer (a child's, when pulling an index)


@dataclass(frozen=True)
class PullResult:
    reference: str
    digest: str
    media_type: str
    artifact_type: str | None
    output: str
    files: tuple[PulledFile, ...]
    skipped_layers: int  # layers without a title (ORAS skips them too)
    platform: str | None = None

    def document(self) -> dict[str, Any]:
        return {
            "schema": "ci-oras/pull/v1",
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "output": self.output,
            "platform": self.platform,
            "files": [
                {"title": f.title, "path": f.path, "digest": f.digest, "size": f.size,
                 "unpacked": f.unpacked, "skipped": f.skipped, "manifest": f.manifest}
                for f in self.files
            ],
            "skippedLayers": self.skipped_layers,
        }


@dataclass(frozen=True)
class PullOptions:
    overwrite: bool = False
    #: OS/ARCH[/VARIANT]: of an index, pull only this child.
    platform: str | None = None
    limits: UnpackLimits | None = None


@dataclass(frozen=True)
class _Layer:
    """A titled layer and what it came from, with its normalised relative path in the output."""

    descriptor: Descriptor
    manifest: Manifest
    source: str  # how the user knows the manifest: its platform, or its digest
    relative: str


@dataclass
class _Plan:
    layers: list[_Layer] = field(default_factory=list)
    untitled: int = 0


def pull(target: ReadOnlyTarget, reference: str, shown: str, output: Path,
         options: PullOptions | None = None) -> PullResult:
    from ci_oras.archive import UnpackBudget

    options = options or PullOptions()
    base = _staging_base(output)
    root = target.fetch_manifest(reference)
    plan = _plan(target, root, shown, options.platform)
    _refuse_conflicts(plan.layers, output, options.overwrite)
    budget = UnpackBudget(options.limits) if options.limits is not None else UnpackBudget()
    pulled = _stage_and_install(target, plan.layers, base, output, options.overwrite, budget)
    return PullResult(
        reference=shown,
        digest=root.digest,
        media_type=root.media_type,
        artifact_type=root.effective_artifact_type,
        output=str(output),
        files=tuple(pulled),
        skipped_layers=plan.untitled,
        platform=options.platform,
    )


# -- what to pull ------------------------------------------------------------------------------------------------


def _plan(target: ManifestFetcher, root: Manifest, shown: str, platform: str | None) -> _Plan:
    """The titled layers to pull: the manifest's, or those of an index's children (one, with ``platform``)."""
    from ci_oras.oci.platform import platform_child

    plan = _Plan()
    if platform is not None:
        child = platform_child(root, shown, platform, "pull")
        _collect(target, target.fetch_manifest(child.digest), str(child.platform), plan, {root.digest}, 1)
    else:
        _collect(target, root, shown, plan, set(), 0)
    _refuse_overlaps(plan.layers, several_sources=root.is_index and platform is None)
    return plan


def _collect(target: ManifestFetcher, manifest: Manifest, source: str, plan: _Plan, seen: set[str],
             depth: int) -> None:
    """Gather titled layers, walking into index children (each manifest once, a bounded depth deep)."""
    from ci_oras.archive import safe_relative_name

    if manifest.digest in seen or depth > MAX_INDEX_DEPTH:
        raise UsageError(f"the index {source} nests too deeply or refers to itself",
                         hint="pull one of its manifests by digest")
    seen.add(manifest.digest)
    if manifest.is_index:
        for child in manifest.manifests:
            label = str(child.platform) if child.platform else child.digest
            _collect(target, target.fetch_manifest(child.digest), label, plan, seen, depth + 1)
        return
    for layer in manifest.layers:
        if not layer.title:
            plan.untitled += 1
            continue
        plan.layers.append(_Layer(layer, manifest, source, safe_relative_name(layer.title)))


def _refuse_overlaps(layers: list[_Layer], *, several_sources: bool) -> None:
    """Two layers writing one path (or one inside the other) would depend on download order: refuse them."""
    owners: dict[str, _Layer] = {}
    for layer in layers:
        parts = layer.relative.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        other = next((owners[p] for p in prefixes if p in owners), None)
        if other is None:
            other = next((o for path, o in owners.items() if path.startswith(layer.relative + "/")), None)
        if other is not None:
            where = ("both" if other.source == layer.source
                     else f"{other.source} and {layer.source}")
            hint = ("pick one child with --platform OS/ARCH[/VARIANT]" if several_sources and other.source != layer.source
                    else "the artifact is malformed: each layer needs a title of its own")
            raise UsageError(f"{other.descriptor.title!r} and {layer.descriptor.title!r} from {where} would write "
                             f"the same path", hint=hint)
        owners[layer.relative] = layer


def _is_directory_layer(layer: Descriptor) -> bool:
    return layer.annotations.get(ANNOTATION_CONTENT_UNPACK) == "true"


# -- checks before downloading -----------------------------------------------------------------------------------


def _refuse_conflicts(layers: list[_Layer], output: Path, overwrite: bool) -> None:
    """Fail before downloading anything when a plain file would replace different existing content."""
    from ci_oras.archive import safe_output_path

    for layer in layers:
        path = safe_output_path(output, layer.relative)
        if overwrite or _is_directory_layer(layer.descriptor) or not os.path.lexists(path):
            continue
        if not path.is_file() or file_digest(path)[0] != layer.descriptor.digest:
            raise UsageError(
                f"{path} exists with different content",
                hint="remove it, choose another -o directory, or pass --overwrite",
            )


# -- staging and installing --------------------------------------------------------------------------------------


def _staging_base(output: Path) -> Path:
    """Where to stage: in the output when it exists, else in its nearest existing ancestor (same file system).

    Checked before any network request, so a wrong ``-o`` is reported at once.
    """
    try:
        if output.exists() and not output.is_dir():
            raise UsageError(f"the output {output} exists and is not a directory",
                             hint="choose a directory with -o (it is created when missing)")
        base = output.absolute()
        while not base.exists() and base.parent != base:
            base = base.parent
        if not base.is_dir():
            raise UsageError(f"cannot create the output {output}: {base} is not a directory",
                             hint="choose a directory with -o")
    except OSError as exc:
        raise UsageError(f"cannot use the output {output}: {exc.strerror or exc}",
                         hint="choose a writable directory with -o") from exc
    return base


def _stage_and_install(target: Fetcher, layers: list[_Layer], base: Path, output: Path, overwrite: bool,
                       budget: UnpackBudget) -> list[PulledFile]:
    from ci_oras.archive import install_staged, remove_tree

    _remove_abandoned_stages(base)
    try:
        stage = Path(tempfile.mkdtemp(prefix=_stage_prefix(), dir=base))
    except OSError as exc:
        where = "" if base == output.absolute() else f" (staging in {base})"
        raise UsageError(f"cannot write to {output}{where}: {exc.strerror or exc}",
                         hint="choose a writable directory with -o") from exc
    try:
        pulled = [_stage_layer(target, layer, stage, output, budget) for layer in layers]
        staged = sorted({layer.relative.split("/", 1)[0] for layer, done in zip(layers, pulled) if not done.skipped})
        if output.exists():
            install_staged(stage, output, staged, overwrite=overwrite)
        else:
            os.chmod(stage, _default_mode(0o777))
            output.parent.mkdir(parents=True, exist_ok=True)
            os.rename(stage, output)
        return pulled
    except OSError as exc:
        raise UsageError(f"cannot write to {output}: {exc.strerror or exc}",
                         hint="check the -o directory (free space, permissions, path length)") from exc
    finally:
        remove_tree(stage)


def _stage_prefix() -> str:
    """``.ci-oras-pull-<host>-<pid>-``: whose staging directory it is, so a later pull can tell an abandoned one."""
    import socket

    return f"{PULL_STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def _remove_abandoned_stages(base: Path) -> None:
    """Remove staging directories of pulls on this host whose process is gone.

    Ctrl-C and every error path clean up after themselves; a pull killed outright (SIGKILL, an OOM kill, a
    cancelled CI job) cannot, and would leave a hidden partial tree next to the output for good. Only this
    host's are judged (a process ID means nothing on another machine sharing the directory), and only when
    the process no longer exists: a live or reused PID keeps its directory.
    """
    import socket

    from ci_oras.archive import remove_tree

    prefix = f"{PULL_STAGING_PREFIX}{socket.gethostname()}-"
    try:
        entries = list(os.scandir(base))
    except OSError:
        return  # creating the stage reports the problem
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        pid = entry.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            with contextlib.suppress(OSError):
                remove_tree(Path(entry.path))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (e.g. another user's process): not ours to judge
    return True


def _stage_layer(target: Fetcher, layer: _Layer, stage: Path, output: Path, budget: UnpackBudget) -> PulledFile:
    from ci_oras.archive import unpack_tar_gzip

    desc = layer.descriptor
    title = desc.title or ""
    final = output / layer.relative

    def result(*, unpacked: bool, skipped: bool) -> PulledFile:
        return PulledFile(title, str(final), desc.digest, desc.size, unpacked=unpacked, skipped=skipped,
                          manifest=layer.manifest.digest)

    if _is_directory_layer(desc):
        with contextlib.closing(target.fetch(desc)) as chunks:
            unpack_tar_gzip(chunks, stage, layer.relative, expected_tar_digest=desc.annotations.get(
                ANNOTATION_CONTENT_DIGEST), overwrite=False, budget=budget)
        return result(unpacked=True, skipped=False)
    if final.is_file() and file_digest(final)[0] == desc.digest:
        return result(unpacked=False, skipped=True)
    path = stage / layer.relative
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), _default_mode(0o666))
    with os.fdopen(fd, "wb") as out, contextlib.closing(target.fetch(desc)) as chunks:
        for chunk in chunks:
            out.write(chunk)
    return result(unpacked=False, skipped=False)


def _default_mode(mode: int) -> int:
    """The mode a plain ``open()``/``mkdir()`` would give (staging directories are created 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask

