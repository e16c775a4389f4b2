"""Directory layers: packing like ORAS, and unpacking hostile archives without writing outside the destination."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.prerequisites import missing

from ci_oras.archive import PackedDirectory, pack_directory, safe_output_path, unpack_tar_gzip
from ci_oras.errors import IntegrityError, UsageError

EPOCH = 1_700_000_000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tree(root: Path) -> Path:
    """nested dirs, an empty file, an empty dir and a relative symlink inside the tree."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "deep.txt").write_bytes(b"deep content\n")
    (root / "a.txt").write_bytes(b"sorted after the directory a\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "link").symlink_to("a/b/deep.txt")
    os.chmod(root / "a.txt", 0o755)
    return root


def pack(directory: Path, name: str = "dist", mtime: int | None = EPOCH) -> tuple[bytes, PackedDirectory]:
    out = io.BytesIO()
    packed = pack_directory(directory, name, out, mtime=mtime)
    return out.getvalue(), packed


def chunked(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Everything under ``root``: file bytes, symlink targets, directories as 'dir'."""
    result: dict[str, bytes | str] = {}
    for current, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = Path(current) / entry
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                result[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                result[key] = "dir"
            else:
                result[key] = path.read_bytes()
    return result


# -- packing -------------------------------------------------------------------------------------------------------


def test_pack_digests_describe_the_bytes_written(tmp_path: Path) -> None:
    data, packed = pack(make_tree(tmp_path / "src"))
    assert packed.digest == sha256(data)
    assert packed.size == len(data)
    assert packed.tar_digest == sha256(gzip.decompress(data))


def test_pack_matches_oras_entry_layout(tmp_path: Path) -> None:
    data, _ = pack(make_tree(tmp_path / "src"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == [
        "dist", "dist/a", "dist/a/b", "dist/a/b/deep.txt", "dist/a.txt", "dist/big.bin",
        "dist/empty-dir", "dist/empty.txt", "dist/link",
    ]
    assert all((m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH) for m in members)
    by_name = {m.name: m for m in members}
    assert by_name["dist"].isdir()
    assert by_name["dist/link"].issym() and by_name["dist/link"].linkname == "a/b/deep.txt"
    assert by_name["dist/a.txt"].mode & 0o777 == 0o755
    assert by_name["dist/empty.txt"].isreg() and by_name["dist/empty.txt"].size == 0


def test_gzip_header_has_no_name_and_no_time(tmp_path: Path) -> None:
    data, _ = pack(make_tree(tmp_path / "src"), mtime=None)
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0  # no FNAME, no FEXTRA, no comment
    assert data[4:8] == b"\0\0\0\0"


def test_pack_is_reproducible_with_mtime(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    first = pack(source)[1]
    for path in source.rglob("*"):
        os.utime(path, (EPOCH + 99, EPOCH + 99), follow_symlinks=False)
    assert pack(source)[1] == first
    assert pack(source, mtime=None)[1].digest != first.digest


def test_pack_skips_sockets_and_fifos(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "file").write_bytes(b"x")
    os.mkfifo(source / "pipe")
    data, _ = pack(source)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        assert archive.getnames() == ["dist", "dist/file"]


def test_pack_output_is_readable_by_system_tar(tmp_path: Path) -> None:
    tar = shutil.which("tar")
    if tar is None:
        missing("tar was not found (install: apt-get install -y tar)")
    data, _ = pack(make_tree(tmp_path / "src"))
    (tmp_path / "layer.tgz").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([tar, "-xzf", str(tmp_path / "layer.tgz"), "-C", str(out)], check=True)
    assert snapshot(out / "dist") == snapshot(tmp_path / "src")


def test_pack_rejects_a_file_and_a_bad_name(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(UsageError):
        pack_directory(tmp_path / "f", "f", io.BytesIO())
    with pytest.raises(UsageError):
        pack_directory(tmp_path, "../up", io.BytesIO())


# -- unpacking -----------------------------------------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    data, packed = pack(source)
    dest = tmp_path / "dest"
    written = unpack_tar_gzip(chunked(data), dest, "dist", expected_tar_digest=packed.tar_digest, overwrite=False)
    assert snapshot(dest / "dist") == snapshot(source)
    assert os.readlink(dest / "dist" / "link") == "a/b/deep.txt"
    assert (dest / "dist" / "a.txt").stat().st_mode & 0o100
    assert sorted(p.relative_to(dest).as_posix() for p in written) == [
        "dist/a.txt", "dist/a/b/deep.txt", "dist/big.bin", "dist/empty.txt", "dist/link"]
    assert os.listdir(dest) == ["dist"]  # no staging directory left


def test_round_trip_with_a_nested_name(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    data, packed = pack(source, name="out/site")
    dest = tmp_path / "dest"
    unpack_tar_gzip([data], dest, "out/site", expected_tar_digest=packed.tar_digest, overwrite=False)
    assert snapshot(dest / "out" / "site") == snapshot(source)


def test_tar_digest_covers_trailing_padding_of_other_tools(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        archive.add(source, arcname="dist")  # Python pads the tar to a 10 KiB record
    dest = tmp_path / "dest"
    unpack_tar_gzip([gzip.compress(raw.getvalue())], dest, "dist",
                    expected_tar_digest=sha256(raw.getvalue()), overwrite=False)
    assert snapshot(dest / "dist") == snapshot(source)


def test_wrong_tar_digest_leaves_nothing(tmp_path: Path) -> None:
    data, _ = pack(make_tree(tmp_path / "src"))
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError, match="digest mismatch"):
        unpack_tar_gzip(chunked(data), dest, "dist", expected_tar_digest=sha256(b"other"), overwrite=False)
    assert os.listdir(dest) == []


def test_not_a_gzip_is_an_integrity_error(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError):
        unpack_tar_gzip([b"this is not gzip"], dest, "dist", expected_tar_digest=None, overwrite=False)
    data, _ = pack(make_tree(tmp_path / "src"))
    with pytest.raises(IntegrityError):
        unpack_tar_gzip([data[: len(data) // 2]], dest, "dist", expected_tar_digest=None, overwrite=False)
    assert os.listdir(dest) == []


def test_identical_existing_tree_is_fine(tmp_path: Path) -> None:
    data, packed = pack(make_tree(tmp_path / "src"))
    dest = tmp_path / "dest"
    unpack_tar_gzip([data], dest, "dist", expected_tar_digest=packed.tar_digest, overwrite=False)
    (dest / "dist" / "mine.txt").write_bytes(b"user file, not in the archive")
    unpack_tar_gzip([data], dest, "dist", expected_tar_digest=packed.tar_digest, overwrite=False)
    assert (dest / "dist" / "mine.txt").read_bytes() == b"user file, not in the archive"
    assert sorted(os.listdir(dest)) == ["dist"]


def test_different_existing_file_needs_overwrite(tmp_path: Path) -> None:
    data, packed = pack(make_tree(tmp_path / "src"))
    dest = tmp_path / "dest"
    (dest / "dist" / "a" / "b").mkdir(parents=True)
    (dest / "dist" / "a" / "b" / "deep.txt").write_bytes(b"local edit\n")
    with pytest.raises(UsageError) as info:
        unpack_tar_gzip([data], dest, "dist", expected_tar_digest=packed.tar_digest, overwrite=False)
    assert "deep.txt" in str(info.value) and "--overwrite" in str(info.value)
    assert info.value.exit_code == 2
    assert (dest / "dist" / "a" / "b" / "deep.txt").read_bytes() == b"local edit\n"
    assert not (dest / "dist" / "a.txt").exists()  # nothing half-done
    assert sorted(os.listdir(dest)) == ["dist"]

    unpack_tar_gzip([data], dest, "dist", expected_tar_digest=packed.tar_digest, overwrite=True)
    assert snapshot(dest / "dist") == snapshot(tmp_path / "src")


def test_overwrite_replaces_type_conflicts_without_following_symlinks(tmp_path: Path) -> None:
    data, packed = pack(make_tree(tmp_path / "src"))
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    (dest / "dist").mkdir(parents=True)
    (dest / "dist" / "a").symlink_to(outside)  # the archive has a directory here
    (dest / "dist" / "empty.txt").mkdir()  # the archive has a file here
    with pytest.raises(UsageError):
        unpack_tar_gzip([data], dest, "dist", expected_tar_digest=packed.tar_digest, overwrite=False)
    unpack_tar_gzip([data], dest, "dist", expected_tar_digest=packed.tar_digest, overwrite=True)
    assert os.listdir(outside) == []
    assert snapshot(dest / "dist") == snapshot(tmp_path / "src")


# -- hostile archives ----------------------------------------------------------------------------------------------


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, data


def _evil_layer(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for info, data in [_member("dist", tarfile.DIRTYPE), _member("dist/fine.txt", data=b"fine"), *members]:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return raw.getvalue()


@pytest.fixture
def arena(tmp_path: Path) -> Path:
    """tmp_path with a victim file next to (outside) the destination."""
    (tmp_path / "victim.txt").write_bytes(b"original")
    (tmp_path / "dest").mkdir()
    return tmp_path


EVIL = {
    "absolute path": lambda arena: [_member(str(arena / "absolute.txt"), data=b"pwned")],
    "dot-dot escape": lambda arena: [_member("../escape.txt", data=b"pwned")],
    "dot-dot inside the prefix": lambda arena: [_member("dist/../../escape.txt", data=b"pwned")],
    "outside the prefix": lambda arena: [_member("other/file.txt", data=b"pwned")],
    "prefix look-alike": lambda arena: [_member("dist2/file.txt", data=b"pwned")],
    "symlink to /etc/passwd then a write through it": lambda arena: [
        _member("dist/passwd", tarfile.SYMTYPE, link="/etc/passwd"),
        _member("dist/passwd", data=b"root::0:0::/:/bin/sh\n"),
    ],
    "relative symlink out then a write through it": lambda arena: [
        _member("dist/up", tarfile.SYMTYPE, link="../.."),
        _member("dist/up/victim.txt", data=b"pwned"),
    ],
    "symlink to the victim": lambda arena: [
        _member("dist/v", tarfile.SYMTYPE, link="../../victim.txt"),
    ],
    "write through an inside symlink": lambda arena: [
        _member("dist/sub", tarfile.DIRTYPE),
        _member("dist/alias", tarfile.SYMTYPE, link="sub"),
        _member("dist/alias/file.txt", data=b"through a link"),
    ],
    "symlink chain that resolves out": lambda arena: [
        _member("dist/q", tarfile.SYMTYPE, link="."),
        _member("dist/p", tarfile.SYMTYPE, link="q/.."),
    ],
    "hard link to an absolute path": lambda arena: [
        _member("dist/h", tarfile.LNKTYPE, link=str(arena / "victim.txt")),
    ],
    "hard link outside the prefix": lambda arena: [
        _member("dist/h", tarfile.LNKTYPE, link="../victim.txt"),
    ],
    "hard link to a missing file": lambda arena: [
        _member("dist/h", tarfile.LNKTYPE, link="dist/missing"),
    ],
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_hostile_archive_is_refused_and_leaves_nothing(arena: Path, case: str) -> None:
    layer = _evil_layer(*EVIL[case](arena))
    dest = arena / "dest"
    before = snapshot(arena)
    with pytest.raises(IntegrityError) as info:
        unpack_tar_gzip(chunked(layer, 100), dest, "dist", expected_tar_digest=None, overwrite=True)
    assert info.value.exit_code == 6
    assert snapshot(arena) == before  # nothing outside dest, nothing inside dest, no staging directory
    assert (arena / "victim.txt").read_bytes() == b"original"


def test_devices_and_fifos_are_skipped(arena: Path) -> None:
    layer = _evil_layer(_member("dist/fifo", tarfile.FIFOTYPE), _member("dist/null", tarfile.CHRTYPE))
    written = unpack_tar_gzip([layer], arena / "dest", "dist", expected_tar_digest=None, overwrite=False)
    assert written == [arena / "dest" / "dist" / "fine.txt"]
    assert sorted(os.listdir(arena / "dest" / "dist")) == ["fine.txt"]


def test_hard_link_inside_the_tree_is_kept(arena: Path) -> None:
    layer = _evil_layer(_member("dist/again", tarfile.LNKTYPE, link="dist/fine.txt"))
    unpack_tar_gzip([layer], arena / "dest", "dist", expected_tar_digest=None, overwrite=False)
    assert (arena / "dest" / "dist" / "again").read_bytes() == b"fine"


@pytest.mark.parametrize("name", ["/abs", "../up", "a/../../up", ".", ""])
def test_unsafe_name_is_refused(arena: Path, name: str) -> None:
    with pytest.raises(IntegrityError):
        unpack_tar_gzip([_evil_layer()], arena / "dest", name, expected_tar_digest=None, overwrite=False)
    assert os.listdir(arena / "dest") == []


# -- plain layers --------------------------------------------------------------------------------------------------


def test_safe_output_path_accepts_relative_titles(tmp_path: Path) -> None:
    assert safe_output_path(tmp_path, "sbom.json") == tmp_path / "sbom.json"
    assert safe_output_path(tmp_path, "reports/./sarif.json") == tmp_path / "reports" / "sarif.json"
    assert safe_output_path(tmp_path, "a/../b.txt") == tmp_path / "b.txt"


@pytest.mark.parametrize("title", ["/etc/passwd", "../x", "a/../../x", "..", "", "."])
def test_safe_output_path_refuses_escapes(tmp_path: Path, title: str) -> None:
    with pytest.raises(IntegrityError):
        safe_output_path(tmp_path / "dest", title)


def test_safe_output_path_refuses_symlinks_out_of_dest(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "out").symlink_to(tmp_path)
    (dest / "file-link").symlink_to(tmp_path / "victim")
    (dest / "inside").symlink_to("sub")
    with pytest.raises(IntegrityError):
        safe_output_path(dest, "out/x")
    with pytest.raises(IntegrityError):
        safe_output_path(dest, "file-link")
    assert safe_output_path(dest, "inside/x") == dest / "inside" / "x"


def test_a_later_file_replaces_an_earlier_symlink_instead_of_writing_through_it(arena: Path) -> None:
    layer = _evil_layer(
        _member("dist/x", tarfile.SYMTYPE, link="fine.txt"),
        _member("dist/x", data=b"replacement"),
    )
    unpack_tar_gzip([layer], arena / "dest", "dist", expected_tar_digest=None, overwrite=False)
    assert not (arena / "dest" / "dist" / "x").is_symlink()
    assert (arena / "dest" / "dist" / "x").read_bytes() == b"replacement"
    assert (arena / "dest" / "dist" / "fine.txt").read_bytes() == b"fine"


def test_root_entry_must_be_a_directory(arena: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        archive.addfile(_member("dist", tarfile.SYMTYPE, link="dist/x")[0])
    with pytest.raises(IntegrityError):
        unpack_tar_gzip([raw.getvalue()], arena / "dest", "dist", expected_tar_digest=None, overwrite=False)
    assert os.listdir(arena / "dest") == []


def test_unpack_streams_and_a_failing_source_leaves_nothing(tmp_path: Path) -> None:
    data, packed = pack(make_tree(tmp_path / "src"))
    dest = tmp_path / "dest"
    seen_staged_files: list[str] = []

    def source() -> Iterator[bytes]:
        pieces = list(chunked(data, 65536))
        yield from pieces[:-1]
        # Entries before the last chunk are already on disk: the layer is not buffered in memory.
        seen_staged_files.extend(p.name for p in dest.glob(".ci-oras-unpack-*/dist/**/*") if p.is_file())
        yield pieces[-1]
        raise IntegrityError("digest mismatch: the layer blob itself was corrupt")

    with pytest.raises(IntegrityError, match="layer blob itself"):
        unpack_tar_gzip(source(), dest, "dist", expected_tar_digest=packed.tar_digest, overwrite=False)
    assert "deep.txt" in seen_staged_files
    assert os.listdir(dest) == []


def test_unpacks_an_oras_style_archive(tmp_path: Path) -> None:
    """What ``oras push`` writes for a directory: USTAR headers from Go's archive/tar, directory names without a
    trailing slash (ORAS overwrites the header name), uid/gid 0, empty user and group names, and a gzip
    stream with no file name. ``oras pull`` output must unpack identically with ci-oras."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, kind, data in [("docs", tarfile.DIRTYPE, None), ("docs/a.txt", tarfile.REGTYPE, b"alpha\n"),
                                 ("docs/sub", tarfile.DIRTYPE, None), ("docs/sub/b.txt", tarfile.REGTYPE, b"beta\n"),
                                 ("docs/link", tarfile.SYMTYPE, None)]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 1700000000
            if kind == tarfile.SYMTYPE:
                info.linkname = "a.txt"
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    tar_bytes = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, filename="") as gz:
        gz.write(tar_bytes)
    blob = compressed.getvalue()

    dest = tmp_path / "out"
    dest.mkdir()
    unpack_tar_gzip([blob[:100], blob[100:]], dest, "docs", expected_tar_digest=sha256(tar_bytes), overwrite=False)

    assert (dest / "docs" / "a.txt").read_bytes() == b"alpha\n"
    assert (dest / "docs" / "sub" / "b.txt").read_bytes() == b"beta\n"
    assert os.readlink(dest / "docs" / "link") == "a.txt"
