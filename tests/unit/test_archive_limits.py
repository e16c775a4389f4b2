"""Unpack limits: bombs stop early with IntegrityError naming the limit and its flag, and leave nothing behind.

Archives are built in memory, small; the one "huge" stream is a lazy generator that would expand to 10 GiB
and is measured to stop after kilobytes.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.layers import directory_layer

from ci_oras.archive import (
    UnpackBudget,
    UnpackLimits,
    format_size,
    install_staged,
    parse_size,
    unpack_tar_gzip,
)
from ci_oras.errors import IntegrityError, UsageError

MIB = 1024 * 1024


def _layer(files: dict[str, bytes]) -> bytes:
    return directory_layer("dist", files)[0]


def _zero_bomb(total: int) -> Iterator[bytes]:
    """A tar+gzip layer holding one ``total``-byte file of zeros, compressed lazily a MiB at a time."""
    directory, member = tarfile.TarInfo("dist"), tarfile.TarInfo("dist/zeros")
    directory.type, member.size = tarfile.DIRTYPE, total
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    yield compressor.compress(directory.tobuf(tarfile.PAX_FORMAT) + member.tobuf(tarfile.PAX_FORMAT))
    zeros = bytes(MIB)
    for _ in range(total // MIB):
        if out := compressor.compress(zeros):
            yield out
    yield compressor.flush()


def _left_behind(dest: Path) -> list[str]:
    return sorted(os.listdir(dest)) if dest.exists() else []


def test_entry_limit(tmp_path: Path) -> None:
    layer = _layer({f"f{i}.txt": b"x" for i in range(50)})
    budget = UnpackBudget(UnpackLimits(max_entries=10))
    with pytest.raises(IntegrityError, match=r"more than 10 entries \(limit --max-unpack-entries\)") as caught:
        unpack_tar_gzip([layer], tmp_path, "dist", expected_tar_digest=None, overwrite=False, budget=budget)
    assert caught.value.exit_code == 6
    assert "--max-unpack-entries" in (caught.value.hint or "")
    assert _left_behind(tmp_path) == []


def test_byte_limit_refuses_before_writing_the_file(tmp_path: Path) -> None:
    layer = _layer({"small.txt": b"s" * 1000, "big.bin": os.urandom(2 * MIB)})
    budget = UnpackBudget(UnpackLimits(max_bytes=MIB))
    with pytest.raises(IntegrityError, match=r"writes more than 1 MiB \(limit --max-unpack-size\)"):
        unpack_tar_gzip([layer], tmp_path, "dist", expected_tar_digest=None, overwrite=False, budget=budget)
    assert budget.written == 1000  # big.bin was refused from its header: not a byte of it was counted or written
    assert _left_behind(tmp_path) == []


def test_byte_and_entry_budgets_add_up_over_layers(tmp_path: Path) -> None:
    """One budget per pull: two layers under the limit each can be over it together."""
    budget = UnpackBudget(UnpackLimits(max_bytes=3 * 1000))
    unpack_tar_gzip([_layer({"a": b"a" * 2000})], tmp_path / "one", "dist", expected_tar_digest=None,
                    overwrite=False, budget=budget)
    with pytest.raises(IntegrityError, match="--max-unpack-size"):
        unpack_tar_gzip([_layer({"b": b"b" * 2000})], tmp_path / "two", "dist", expected_tar_digest=None,
                        overwrite=False, budget=budget)
    assert (tmp_path / "one" / "dist" / "a").stat().st_size == 2000
    assert _left_behind(tmp_path / "two") == []


def test_low_ratio_limit_stops_a_compressible_layer(tmp_path: Path) -> None:
    """10 MB of zeros (about 10 KB compressed) with --max-unpack-ratio 5: stops at the 1 MiB floor."""
    layer = _layer({"zeros": bytes(10 * 1000 * 1000)})
    budget = UnpackBudget(UnpackLimits(max_ratio=5))
    with pytest.raises(IntegrityError, match=r"more than 5 times its compressed size \(limit --max-unpack-ratio\)"):
        unpack_tar_gzip([layer], tmp_path, "dist", expected_tar_digest=None, overwrite=False, budget=budget)
    assert _left_behind(tmp_path) == []


def test_honest_compressible_layer_passes_the_default_ratio(tmp_path: Path) -> None:
    text = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(100_000))
    layer = _layer({"log.txt": text})
    assert len(text) / len(layer) > 5  # compressible, yet far from a bomb
    unpack_tar_gzip([layer], tmp_path, "dist", expected_tar_digest=None, overwrite=False)
    assert (tmp_path / "dist" / "log.txt").read_bytes() == text


def test_default_ratio_stops_a_10_gib_bomb_early_in_little_time_and_memory(tmp_path: Path) -> None:
    consumed = 0

    def counted() -> Iterator[bytes]:
        nonlocal consumed
        for chunk in _zero_bomb(10 * 1024 * MIB):
            consumed += len(chunk)
            yield chunk

    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(IntegrityError, match="--max-unpack-ratio"):
            unpack_tar_gzip(counted(), tmp_path, "dist", expected_tar_digest=None, overwrite=False)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # ~10 MB of the layer would be 10 GiB unpacked; it stopped after kilobytes (64 KiB reads up to Python
    # 3.12; 3.13's gzip module reads 128 KiB at a time)
    assert consumed <= 256 * 1024
    assert elapsed < 5
    assert peak < 32 * MIB
    assert _left_behind(tmp_path) == []


def test_trailing_padding_after_the_archive_counts_towards_the_ratio(tmp_path: Path) -> None:
    """A valid small tar followed by a gigabyte of zeros inside the gzip stream is still a bomb."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        top = tarfile.TarInfo("dist")
        top.type = tarfile.DIRTYPE
        archive.addfile(top)

    def stream() -> Iterator[bytes]:
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        yield compressor.compress(raw.getvalue())
        for _ in range(1024):
            yield compressor.compress(bytes(MIB))
        yield compressor.flush()

    with pytest.raises(IntegrityError, match="--max-unpack-ratio"):
        unpack_tar_gzip(stream(), tmp_path, "dist", expected_tar_digest=None, overwrite=False)
    assert _left_behind(tmp_path) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("1024", 1024), ("500MiB", 500 * MIB), ("2GB", 2 * 1000**3), ("32GiB", 32 * 1024 * MIB), ("10g", 10 * 1000**3),
    ("1.5 KiB", 1536),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text, "--max-unpack-size") == expected


@pytest.mark.parametrize("text", ["", "0", "-5", "ten", "5XB", "1e30GiB", "nan"])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(UsageError, match="--max-unpack-size"):
        parse_size(text, "--max-unpack-size")


def test_format_size() -> None:
    assert format_size(32 * 1024**3) == "32 GiB"
    assert format_size(1000) == "1000 bytes"


def test_install_staged_checks_every_name_before_changing_anything(tmp_path: Path) -> None:
    staged, dest = tmp_path / "staged", tmp_path / "dest"
    (staged / "a").mkdir(parents=True)
    (staged / "a" / "new.txt").write_bytes(b"new")
    (staged / "z.txt").write_bytes(b"theirs")
    dest.mkdir()
    (dest / "z.txt").write_bytes(b"mine")
    with pytest.raises(UsageError, match="z.txt already exists with different content"):
        install_staged(staged, dest, ["a", "z.txt"], overwrite=False)
    assert sorted(os.listdir(dest)) == ["z.txt"], "'a' sorts first but must not be installed"
    install_staged(staged, dest, ["a", "z.txt"], overwrite=True)
    assert (dest / "a" / "new.txt").read_bytes() == b"new" and (dest / "z.txt").read_bytes() == b"theirs"
