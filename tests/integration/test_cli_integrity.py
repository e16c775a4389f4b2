"""Integrity: tampered content, unsafe archives and unsafe titles end in exit 6 with nothing written outside.

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``): a subprocess would add only its
start-up, some 0.2 s of CPU a run; the process boundary is tested elsewhere.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import httpx
import pytest
from harness.cli import clean_env, push_one_file, invoke_cli
from harness.layers import TITLE, push_directory_layer
from harness.oci import push_artifact, push_layer
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_INTEGRITY


def _tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


UNSAFE_ARCHIVES = {
    "absolute-path": [(_entry("/tmp/ci-oras-escape-abs"), b"x")],
    "dot-dot": [(_entry("docs", tarfile.DIRTYPE), None), (_entry("docs/../../escape.txt"), b"x")],
    "outside-prefix": [(_entry("other/file.txt"), b"x")],
    "symlink-out-then-write": [(_entry("docs", tarfile.DIRTYPE), None),
                               (_entry("docs/link", tarfile.SYMTYPE, "../../outside"), None),
                               (_entry("docs/link/pwned.txt"), b"x")],
    "absolute-symlink": [(_entry("docs", tarfile.DIRTYPE), None),
                         (_entry("docs/passwd", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "hardlink-out": [(_entry("docs", tarfile.DIRTYPE), None),
                     (_entry("docs/hard", tarfile.LNKTYPE, "/etc/passwd"), None)],
}


def _seed_directory_artifact(registry: RunningRegistry, repo: str, blob: bytes, tar_digest: str,
                             title: str = "docs") -> None:
    with httpx.Client() as client:
        layer = push_directory_layer(client, registry.url, repo, blob, tar_digest, title)
        push_artifact(client, registry.url, repo, [layer], reference="v1", artifact_type="application/vnd.test")


@pytest.mark.parametrize("case", sorted(UNSAFE_ARCHIVES))
def test_unsafe_archive_is_refused(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str,
                                   case: str) -> None:
    blob, tar_digest = _tar_gz(UNSAFE_ARCHIVES[case])
    _seed_directory_artifact(registry_plain, unique_repo, blob, tar_digest)
    sandbox = tmp_path / "sandbox"
    out = sandbox / "out"
    out.mkdir(parents=True)
    before = sorted(p.name for p in Path("/tmp").iterdir())
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), env=clean_env(tmp_path))
    assert result.returncode == EXIT_INTEGRITY, result.stderr
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert list(out.iterdir()) == [], "nothing may be left in the output directory"
    assert sorted(p.name for p in sandbox.iterdir()) == ["out"], "nothing may be written beside it"
    assert not Path("/tmp/ci-oras-escape-abs").exists()
    assert "ci-oras-escape-abs" not in set(p.name for p in Path("/tmp").iterdir()) - set(before)


def test_wrong_tar_digest_is_refused(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    blob, _ = _tar_gz([(_entry("docs", tarfile.DIRTYPE), None), (_entry("docs/a.txt"), b"a")])
    _seed_directory_artifact(registry_plain, unique_repo, blob, "sha256:" + "0" * 64)
    out = tmp_path / "out"
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), env=clean_env(tmp_path))
    assert result.returncode == EXIT_INTEGRITY
    assert not (out / "docs").exists()


@pytest.mark.parametrize("title", ["../escape.txt", "/tmp/ci-oras-abs-title.txt"])
def test_unsafe_file_title_is_refused(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str,
                                      title: str) -> None:
    with httpx.Client() as client:
        layer = push_layer(client, registry_plain.url, unique_repo, b"payload", "text/plain", {TITLE: title})
        push_artifact(client, registry_plain.url, unique_repo, [layer], reference="v1")
    out = tmp_path / "sandbox" / "out"
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), env=clean_env(tmp_path))
    assert result.returncode == EXIT_INTEGRITY, result.stderr
    assert not (tmp_path / "sandbox" / "escape.txt").exists()
    assert not Path("/tmp/ci-oras-abs-title.txt").exists()


def test_tampered_layout_blob_is_integrity_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "file.txt").write_text("original\n")
    env = clean_env(tmp_path)
    layout = tmp_path / "layout"
    pushed = invoke_cli("push", f"oci:{layout}:v1", "file.txt", "--output", "json", env=env, cwd=src)
    assert pushed.returncode == 0, pushed.stderr
    layer_digest = pushed.json()["layers"][0]["digest"]
    blob = layout / "blobs" / "sha256" / layer_digest.split(":")[1]
    blob.write_text("tampered\n")
    out = tmp_path / "out"
    result = invoke_cli("pull", f"oci:{layout}:v1", "-o", str(out), env=env)
    assert result.returncode == EXIT_INTEGRITY, result.stderr
    assert "mismatch" in result.stderr
    assert not (out / "file.txt").exists(), "a file that failed verification must not be left behind"
    assert not [p for p in out.iterdir()] if out.exists() else True


def test_manifest_digest_mismatch_is_integrity_error(registry_plain: RunningRegistry, tmp_path: Path,
                                                     unique_repo: str) -> None:
    """Asking for a digest and getting other bytes (a lying registry or proxy) must fail, not be used."""
    env, digest = push_one_file(f"oci:{tmp_path / 'layout'}:v1", tmp_path)
    manifest_file = tmp_path / "layout" / "blobs" / "sha256" / digest.split(":")[1]
    manifest_file.write_bytes(manifest_file.read_bytes() + b" ")
    result = invoke_cli("manifest", "fetch", f"oci:{tmp_path / 'layout'}@{digest}", env=env)
    assert result.returncode == EXIT_INTEGRITY, result.stderr
