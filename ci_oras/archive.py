"""Directories as ORAS-compatible tar+gzip layers, and unpacking such layers without trusting them.

Packing follows oras-go ``content/file`` (``tarDirectory``) so ``oras pull`` unpacks what ci-oras pushes and
the other way round: entries are ``name/<relative path>``, the root directory first, a depth-first walk in
lexical order (Go's ``filepath.Walk``), owner 0:0 without names, symlinks kept as symlinks. Everything streams:
a multi-gigabyte directory is never held in memory, and both digests ORAS annotates (the compressed layer and
the uncompressed tar, ``io.deis.oras.content.digest``) are computed while the bytes go by.

Unpacking treats the layer as hostile, because it comes from a registry: nothing may be written outside the
destination (absolute names, ``..``, links pointing out, writes through symlinks are refused with
IntegrityError), and nothing half-written is left behind: entries are extracted into a staging directory
inside the destination, checked, and only then moved into place. A small layer may expand without bound
(a gzip of zeros grows about a thousandfold), so unpacking stops with IntegrityError as soon as it passes
``UnpackLimits``: the bytes it would write, the ratio of unpacked to compressed bytes, or the number of entries.

Walks and removals are iterative: a tree thousands of levels deep must not exhaust Python's recursion limit.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ci_oras.errors import CiOrasError, IntegrityError, UsageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK_SIZE = 1024 * 1024
#: Go's compress/gzip default level, which is what ``oras`` uses: a good speed/size balance for CI.
GZIP_LEVEL = 6
STAGING_PREFIX = ".ci-oras-unpack-"
_BLOCK = tarfile.BLOCKSIZE
_GIB = 1024**3
_MIB = 1024**2
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # file names that are not UTF-8 survive the round trip byte for byte


@dataclass(frozen=True)
class PackedDirectory:
    """What a packed directory's layer descriptor needs: the blob's digest and size, and the tar's digest."""

    digest: str
    size: int
    tar_digest: str


@dataclass(frozen=True)
class UnpackLimits:
    """Bounds on what unpacking directory layers may do, shared by every layer of one pull.

    The defaults sit far above honest artifacts (source trees and build outputs compress 2-20:1 and hold
    thousands of entries) and far below what fills a CI runner's disk. The ratio is only judged once a layer
    has unpacked ``ratio_floor`` bytes: a tiny layer cannot do harm, and gzip's first block may look extreme.
    """

    max_bytes: int = 32 * _GIB
    max_ratio: int = 200
    max_entries: int = 1_000_000
    ratio_floor: int = _MIB


@dataclass
class UnpackBudget:
    """What the layers unpacked so far have used of ``limits`` (file bytes and entries add up over a pull)."""

    limits: UnpackLimits = field(default_factory=UnpackLimits)
    written: int = 0
    entries: int = 0

    def add_entry(self, prefix: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise IntegrityError(
                f"refusing to unpack {prefix}: more than {self.limits.max_entries} entries "
                f"(limit --max-unpack-entries)",
                hint="raise --max-unpack-entries if you trust this artifact",
            )

    def add_bytes(self, prefix: str, size: int) -> None:
        """Called with a file's size from its header, before a byte of it is written."""
        if self.written + size > self.limits.max_bytes:
            raise IntegrityError(
                f"refusing to unpack {prefix}: it writes more than {format_size(self.limits.max_bytes)} "
                f"(limit --max-unpack-size)",
                hint="raise --max-unpack-size if you trust this artifact",
            )
        self.written += size

    def check_ratio(self, prefix: str, unpacked: int, compressed: int) -> None:
        limits = self.limits
        if unpacked > limits.ratio_floor and unpacked > limits.max_ratio * max(compressed, 1):
            raise IntegrityError(
                f"refusing to unpack {prefix}: it expands more than {limits.max_ratio} times its compressed size "
                f"(limit --max-unpack-ratio), a decompression bomb or an unusual artifact",
                hint="raise --max-unpack-ratio if you trust this artifact",
            )


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
               "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": _MIB, "gib": _GIB, "tib": 1024**4}


def parse_size(text: str, flag: str) -> int:
    """``500MiB``, ``2GB``, ``10g`` or plain bytes to a byte count; UsageError naming ``flag`` otherwise."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmgtib")
    unit = value[len(number):]
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if unit not in _SIZE_UNITS or not 0 < amount < 2**63 / _SIZE_UNITS[unit]:
        raise UsageError(f"invalid {flag} {text!r}", hint=f"write {flag} as bytes or with a unit: 500MiB, 32GiB, 2GB")
    return int(amount * _SIZE_UNITS[unit])


def format_size(size: int) -> str:
    for unit, factor in (("TiB", 1024**4), ("GiB", _GIB), ("MiB", _MIB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


# -- packing -----------------------------------------------------------------------------------------------------


class _HashingWriter:
    """Counts and hashes every byte on its way to ``sink`` (gzip and the caller's file both write to one)."""

    def __init__(self, sink: BinaryIO | _HashingWriter | gzip.GzipFile) -> None:
        self._sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        self._sink.flush()

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


def pack_directory(directory: Path, name: str, out: BinaryIO, *, mtime: int | None = None) -> PackedDirectory:
    """Write ``directory`` to ``out`` as a gzip-compressed tar whose entries live under ``name``.

    ``mtime`` (from SOURCE_DATE_EPOCH) replaces every entry's time so the same tree gives the same digest on
    every machine; the gzip header never carries a time or a file name, for the same reason.
    """
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    try:
        prefix = _relative_name(name)
    except IntegrityError as exc:
        raise UsageError(f"invalid name {name!r} for directory {directory}: {exc.message}") from exc
    compressed = _HashingWriter(out)
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=GZIP_LEVEL, mtime=0) as gz:
        tar = _HashingWriter(gz)
        try:
            for path, arcname, info in _walk(directory, prefix):
                _write_entry(tar, path, arcname, info, mtime)
        except OSError as exc:
            raise UsageError(f"cannot read {exc.filename or directory}: {exc.strerror or exc}") from exc
        # End of archive: two zero blocks and no padding to a 10 KiB record, as Go's archive/tar writes it.
        tar.write(b"\0" * (2 * _BLOCK))
    return PackedDirectory(digest=compressed.digest, size=compressed.size, tar_digest=tar.digest)


def _walk(root: Path, prefix: str) -> Iterator[tuple[Path, str, os.stat_result]]:
    """The root first, then depth first with each directory's names sorted bytewise, like Go's filepath.Walk.

    The root itself is followed when it is a symlink (the user named it); nothing below it is.
    """
    yield root, prefix, root.stat()
    yield from _walk_children(root, prefix)


def _walk_children(directory: Path, arcname: str) -> Iterator[tuple[Path, str, os.stat_result]]:
    """Depth first with an explicit stack, so a directory thousands of levels deep packs like any other."""
    stack = [_children(directory, arcname)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        path, child_name = entry
        info = path.lstat()
        yield path, child_name, info
        if stat.S_ISDIR(info.st_mode):
            stack.append(_children(path, child_name))


def _children(directory: Path, arcname: str) -> Iterator[tuple[Path, str]]:
    for child in sorted(os.listdir(directory), key=os.fsencode):
        yield directory / child, f"{arcname}/{child}"


def _write_entry(tar: _HashingWriter, path: Path, arcname: str, info: os.stat_result, mtime: int | None) -> None:
    header = tarfile.TarInfo(arcname)
    header.mode = stat.S_IMODE(info.st_mode)
    header.mtime = int(info.st_mtime) if mtime is None else mtime
    header.uid = header.gid = 0
    header.uname = header.gname = ""
    if stat.S_ISDIR(info.st_mode):
        header.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(info.st_mode):
        header.type = tarfile.SYMTYPE
        header.linkname = os.readlink(path)
    elif stat.S_ISREG(info.st_mode):
        header.type = tarfile.REGTYPE
        header.size = info.st_size
    else:
        return  # sockets, devices and fifos have no place in an artifact
    tar.write(header.tobuf(tarfile.PAX_FORMAT, _ENCODING, _ERRORS))
    if header.type == tarfile.REGTYPE:
        _write_file_data(tar, path, header.size)


def _write_file_data(tar: _HashingWriter, path: Path, size: int) -> None:
    """Copy exactly ``size`` bytes (the header promised them), then pad to a whole tar block."""
    remaining = size
    with path.open("rb") as handle:
        while remaining:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                raise UsageError(f"{path} shrank while it was being packed", hint="do not modify it during push")
            tar.write(chunk)
            remaining -= len(chunk)
    if size % _BLOCK:
        tar.write(b"\0" * (_BLOCK - size % _BLOCK))


# -- safe paths --------------------------------------------------------------------------------------------------


def safe_output_path(dest: Path, title: str) -> Path:
    """Where a layer titled ``title`` goes under ``dest``; IntegrityError when it would land outside ``dest``.

    Titles come from manifests in a registry, that is from anyone: ``/etc/cron.d/x``, ``../../.bashrc`` or a
    path through a symlink that points out of ``dest`` must never be written.
    """
    relative = _relative_name(title)
    target = dest / relative
    root, resolved = os.path.realpath(dest), os.path.realpath(target)
    if resolved == root or not _is_within(resolved, root):
        raise IntegrityError(
            f"refusing to write {title!r}: it resolves outside {dest}", hint="a symlink in the output points away"
        )
    return target


def safe_relative_name(title: str) -> str:
    """``title`` as the relative path it is written to (normalised); IntegrityError when it is unsafe."""
    return _relative_name(title)


def _relative_name(title: str) -> str:
    """``title`` normalised to a relative POSIX path that stays below its base, else IntegrityError."""
    if not title or title.startswith("/") or posixpath.isabs(title) or os.path.isabs(title) or "\0" in title:
        raise IntegrityError(f"refusing unsafe path {title!r}: it is absolute or empty")
    normal = posixpath.normpath(title.replace(os.sep, "/"))
    if normal in (".", "..") or normal.startswith("../"):
        raise IntegrityError(f"refusing unsafe path {title!r}: it escapes the output directory")
    return normal


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# -- unpacking ---------------------------------------------------------------------------------------------------


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of chunks, so tarfile can stream a layer straight off the network."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self.consumed = 0  # compressed bytes handed to gzip so far: the denominator of the expansion ratio

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.consumed += count
        return count


class _HashingReader(io.RawIOBase):
    """Hashes the uncompressed tar as tarfile reads it: the digest ORAS annotates is of these bytes.

    It also measures the expansion as it goes, so a decompression bomb stops after a few megabytes, whether
    its bytes are files to write or padding after the end of the archive.
    """

    def __init__(self, source: gzip.GzipFile, compressed: _ChunkReader, budget: UnpackBudget, prefix: str) -> None:
        self._source = source
        self._compressed = compressed
        self._budget = budget
        self._prefix = prefix
        self.hash = hashlib.sha256()
        self.unpacked = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        target = memoryview(buffer).cast("B")
        data = self._take(len(target))
        target[: len(data)] = data
        return len(data)

    def _take(self, size: int) -> bytes:
        data = self._source.read(size)
        self.hash.update(data)
        self.unpacked += len(data)
        self._budget.check_ratio(self._prefix, self.unpacked, self._compressed.consumed)
        return data

    def drain(self) -> str:
        """Read to the very end (trailing padding counts in the digest) and return the digest."""
        while self._take(CHUNK_SIZE):
            pass
        return f"sha256:{self.hash.hexdigest()}"


@dataclass
class _Staging:
    """The extraction in progress: a private directory in ``dest`` mirroring what ``dest`` will receive."""

    root: Path
    prefix: str
    budget: UnpackBudget
    written: dict[str, None] = field(default_factory=dict)  # an ordered set
    links: list[str] = field(default_factory=list)
    dir_modes: dict[str, int] = field(default_factory=dict)
    #: Staged paths known to be real directories. Extraction never turns a directory into anything else, so
    #: each is checked once, not once per entry below it (which is cubic for a tree thousands of levels deep).
    dirs: set[str] = field(default_factory=set)

    def record(self, relative: str) -> None:
        self.written[relative] = None


def unpack_tar_gzip(
    chunks: Iterable[bytes],
    dest: Path,
    name: str,
    *,
    expected_tar_digest: str | None,
    overwrite: bool,
    budget: UnpackBudget | None = None,
) -> list[Path]:
    """Unpack a directory layer to ``dest/name``; return the files (and symlinks) it holds, in archive order.

    An existing ``dest/name`` is fine when every file would be identical; a differing file needs
    ``overwrite``. Raises IntegrityError for an unsafe or corrupt archive or one past ``budget``'s limits
    (default limits when None), UsageError for a conflict.
    """
    prefix = _relative_name(name)
    safe_output_path(dest, prefix)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        staging_root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest))
    except OSError as exc:
        raise UsageError(f"cannot write to {dest}: {exc.strerror or exc}") from exc
    try:
        staging = _Staging(staging_root, prefix, budget or UnpackBudget())
        _extract(chunks, staging, expected_tar_digest)
        _check_links(staging)
        _install(staging, dest, overwrite=overwrite)
        return [dest / relative for relative in staging.written]
    except CiOrasError:
        raise
    except OSError as exc:
        raise UsageError(f"cannot unpack {name} into {dest}: {exc.strerror or exc}") from exc
    finally:
        remove_tree(staging_root)


def _extract(chunks: Iterable[bytes], staging: _Staging, expected_tar_digest: str | None) -> None:
    """Stream the layer into the staging directory, then check the uncompressed tar digest."""
    compressed = _ChunkReader(chunks)
    try:
        # A small read-ahead on the compressed side keeps ``compressed.consumed`` close to what gzip has used.
        with gzip.GzipFile(fileobj=io.BufferedReader(compressed, io.DEFAULT_BUFFER_SIZE), mode="rb") as gz:
            reader = _HashingReader(gz, compressed, staging.budget, staging.prefix)
            with tarfile.open(fileobj=io.BufferedReader(reader, CHUNK_SIZE), mode="r|") as archive:
                for member in archive:
                    staging.budget.add_entry(staging.prefix)
                    _extract_member(archive, member, staging)
            tar_digest = reader.drain()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise IntegrityError(f"the layer for {staging.prefix} is not a valid tar+gzip archive ({exc})") from exc
    if expected_tar_digest is not None and tar_digest != expected_tar_digest:
        raise IntegrityError(
            f"digest mismatch for the unpacked {staging.prefix}: expected {expected_tar_digest}, got {tar_digest}",
            hint="the layer was corrupted or tampered with; do not use it",
        )
    (staging.root / staging.prefix).mkdir(parents=True, exist_ok=True)
    for relative, mode in sorted(staging.dir_modes.items(), reverse=True):
        os.chmod(staging.root / relative, mode)


def _archive_path(entry: str, prefix: str) -> str:
    """An entry name normalised, which must be ``prefix`` or below it."""
    relative = _relative_name(entry)
    if relative != prefix and not relative.startswith(prefix + "/"):
        raise IntegrityError(f"refusing archive entry {entry!r}: it is outside {prefix!r}")
    return relative


def _extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo, staging: _Staging) -> None:
    relative = _archive_path(member.name, staging.prefix)
    if relative == staging.prefix and not member.isdir():
        raise IntegrityError(f"refusing archive entry {member.name!r}: {staging.prefix!r} must be a directory")
    if member.isdir():
        _make_dirs(staging, relative)
        staging.dir_modes[relative] = (member.mode & 0o777) | 0o700
        return
    if not (member.isreg() or member.issym() or member.islnk()):
        return  # devices and fifos are skipped, as ORAS does
    _make_dirs(staging, posixpath.dirname(relative))
    target = staging.root / relative
    _clear(target, member.name)
    if member.issym():
        _check_link_text(member, relative, staging.prefix)
        os.symlink(member.linkname, target)
        staging.links.append(relative)
    elif member.islnk():
        os.link(_hardlink_source(member, staging), target, follow_symlinks=False)
    else:
        staging.budget.add_bytes(staging.prefix, member.size)
        _write_member(archive, member, target)
    staging.record(relative)


def _make_dirs(staging: _Staging, relative: str) -> None:
    """Create each directory of ``relative`` in staging, refusing to go through a symlink or a file."""
    base, missing = posixpath.normpath(relative) if relative else "", []
    while base and base not in staging.dirs:  # a known directory's ancestors were all checked before it
        base, part = posixpath.split(base)
        missing.append(part)
    current = staging.root / base if base else staging.root
    for part in reversed(missing):
        current = current / part
        base = f"{base}/{part}" if base else part
        staging.dirs.add(base)
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            current.mkdir(mode=0o755)
            continue
        if stat.S_ISLNK(mode):
            raise IntegrityError(f"refusing to write through the symlink {current.relative_to(staging.root)}")
        if not stat.S_ISDIR(mode):
            raise IntegrityError(f"archive entry {current.relative_to(staging.root)} is both a file and a directory")


def _clear(target: Path, entry: str) -> None:
    """A later entry replaces an earlier one (tar semantics), by unlinking first: never write through a link."""
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise IntegrityError(f"archive entry {entry!r} is both a directory and a file")
    target.unlink()


def _check_link_text(member: tarfile.TarInfo, relative: str, prefix: str) -> None:
    """A symlink's target, read relative to the link, must stay inside ``prefix``."""
    link = member.linkname
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), link))
    if posixpath.isabs(link) or not (resolved == prefix or resolved.startswith(prefix + "/")):
        raise IntegrityError(f"refusing symlink {member.name!r} -> {link!r}: it points outside {prefix!r}")


def _hardlink_source(member: tarfile.TarInfo, staging: _Staging) -> Path:
    """A hard link names an earlier archive entry; it must be a regular file already extracted inside."""
    try:
        relative = _archive_path(member.linkname, staging.prefix)
    except IntegrityError as exc:
        raise IntegrityError(f"refusing hard link {member.name!r} -> {member.linkname!r}: {exc.message}") from exc
    source = staging.root / relative
    through_link = os.path.realpath(source) != os.path.join(os.path.realpath(staging.root), relative)
    try:
        is_file = stat.S_ISREG(source.lstat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_file = False
    if through_link or not is_file:
        raise IntegrityError(f"refusing hard link {member.name!r}: {member.linkname!r} is not a file in the archive")
    return source


def _write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = archive.extractfile(member)
    if source is None:  # pragma: no cover - only for non-regular members, filtered out before
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(target, flags, member.mode & 0o777)
    with os.fdopen(fd, "wb") as handle, source:
        shutil.copyfileobj(source, handle, CHUNK_SIZE)
    os.utime(target, (member.mtime, member.mtime))


def _check_links(staging: _Staging) -> None:
    """After extraction, every symlink must really resolve inside ``prefix`` (chains of links included)."""
    inside = os.path.realpath(staging.root / staging.prefix)
    for relative in staging.links:
        resolved = os.path.realpath(staging.root / relative)
        if not _is_within(resolved, inside):
            raise IntegrityError(f"refusing symlink {relative!r}: it resolves outside {staging.prefix!r}")


# -- moving into place -------------------------------------------------------------------------------------------


# Paths below are plain strings: a Path is re-parsed part by part on every join, which is quadratic work per
# entry in a tree thousands of levels deep.


def _staged_entries(root: Path, prefix: str) -> Iterator[str]:
    """Every staged path from ``prefix`` down, parents before children (iterative: trees may be very deep)."""
    yield prefix
    base = os.fspath(root)
    pending = [prefix]
    while pending:
        relative_dir = pending.pop()
        directory = os.path.join(base, relative_dir)
        if not stat.S_ISDIR(os.lstat(directory).st_mode):
            continue
        for entry in sorted(os.listdir(directory)):
            relative = f"{relative_dir}/{entry}"
            yield relative
            pending.append(relative)


def remove_tree(path: Path | str) -> None:
    """Remove ``path`` and everything below it, best effort, without recursion and without following links.

    ``shutil.rmtree`` recurses once per level and gives up on a tree deeper than the recursion limit, which
    is exactly the tree a hostile layer leaves in a staging directory.
    """
    top = os.fspath(path)
    try:
        if not stat.S_ISDIR(os.lstat(top).st_mode):
            os.unlink(top)
            return
    except OSError:
        return
    stack = [(top, False)]
    while stack:
        current, emptied = stack.pop()
        if emptied:
            with contextlib.suppress(OSError):
                os.rmdir(current)
            continue
        with contextlib.suppress(OSError):
            os.chmod(current, 0o700)  # a staged directory may be read-only until it is installed
        stack.append((current, True))
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, False))
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _same(staged: str, existing: str) -> bool:
    """True when ``existing`` already is what ``staged`` would put there (type and bytes or link target)."""
    try:
        mine, theirs = os.lstat(staged).st_mode, os.lstat(existing).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISDIR(mine) or stat.S_ISLNK(mine):
        kind = stat.S_ISDIR if stat.S_ISDIR(mine) else stat.S_ISLNK
        return kind(theirs) and (stat.S_ISDIR(mine) or os.readlink(staged) == os.readlink(existing))
    return stat.S_ISREG(theirs) and _same_bytes(staged, existing)


def _same_bytes(left: str, right: str) -> bool:
    if os.stat(left).st_size != os.stat(right).st_size:
        return False
    with open(left, "rb") as one, open(right, "rb") as other:
        while True:
            a, b = one.read(CHUNK_SIZE), other.read(CHUNK_SIZE)
            if a != b:
                return False
            if not a:
                return True


def _exists(path: Path | str) -> bool:
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _install(staging: _Staging, dest: Path, *, overwrite: bool) -> None:
    install_staged(staging.root, dest, [staging.prefix], overwrite=overwrite)


def install_staged(root: Path, dest: Path, names: list[str], *, overwrite: bool) -> None:
    """Move the staged ``names`` (paths relative to ``root``) into ``dest``, all or nothing.

    Every name is planned and checked before anything in ``dest`` changes, so a conflict found for the last
    name leaves ``dest`` as it was. A name new to ``dest`` moves with one rename; an existing one is merged,
    changing only what differs.
    """
    plans: list[tuple[str, list[str] | None]] = []
    conflicts: list[str] = []
    for name in names:
        safe_output_path(dest, name)
        if not _exists(dest / name):
            plans.append((name, None))
            continue
        changes, clashes = _plan(root, name, dest)
        plans.append((name, changes))
        conflicts += clashes
    if conflicts and not overwrite:
        raise UsageError(
            f"{dest / conflicts[0]} already exists with different content",
            hint="pass --overwrite to replace it, or pull into another directory",
        )
    for name, planned in plans:
        if planned is None:
            final = dest / name
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(root / name, final)
            continue
        for relative in planned:
            _replace(os.path.join(root, relative), os.path.join(dest, relative))


def _plan(root: Path, prefix: str, dest: Path) -> tuple[list[str], list[str]]:
    """What must change in ``dest``, and which of those changes replace something already there.

    Below a directory that is new or replaced everything is new: an existing path there may lead through a
    symlink, so it is neither compared nor counted as a conflict.
    """
    changes: list[str] = []
    conflicts: list[str] = []
    replaced_dirs: set[str] = set()
    root_text, dest_text = os.fspath(root), os.fspath(dest)
    for relative in _staged_entries(root, prefix):
        staged, existing = os.path.join(root_text, relative), os.path.join(dest_text, relative)
        if posixpath.dirname(relative) not in replaced_dirs:
            if _same(staged, existing):
                continue
            if _exists(existing):
                conflicts.append(relative)
        changes.append(relative)
        if stat.S_ISDIR(os.lstat(staged).st_mode):
            replaced_dirs.add(relative)
    return changes, conflicts


def _replace(staged: str, target: str) -> None:
    """Put one staged entry at ``target``; parents were handled first, so they are real directories."""
    is_dir = stat.S_ISDIR(os.lstat(staged).st_mode)
    if _exists(target):
        if stat.S_ISDIR(os.lstat(target).st_mode):
            if is_dir:
                return
            remove_tree(target)
        elif is_dir:
            os.unlink(target)
    if is_dir:
        os.mkdir(target, mode=os.stat(staged).st_mode & 0o777)
    else:
        os.replace(staged, target)
