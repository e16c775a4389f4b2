"""push → pull round trips through the real CLI, on a real registry and on an OCI layout on disk."""

from __future__ import annotations

import filecmp
import json
import os
from pathlib import Path

import httpx
import pytest
from harness.cli import clean_env, push_one_file, run_cli
from harness.oci import MANIFEST_ACCEPT, push_image
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_NOT_FOUND, EXIT_USAGE


def _make_tree(root: Path) -> None:
    (root / "readme.md").write_text("# Example\n")
    (root / "notes.txt").write_bytes(os.urandom(70_000))
    details = root / "details"
    (details / "nested" / "deeper").mkdir(parents=True)
    (details / "a.txt").write_text("a\n")
    (details / "nested" / "b.bin").write_bytes(os.urandom(5000))
    (details / "nested" / "deeper" / "empty").write_bytes(b"")
    (details / "link-to-a").symlink_to("a.txt")


@pytest.fixture(params=["registry", "layout"])
def target_repo(request: pytest.FixtureRequest, tmp_path: Path, unique_repo: str) -> str:
    if request.param == "registry":
        registry: RunningRegistry = request.getfixturevalue("registry_plain")
        return f"{registry.host}/{unique_repo}"
    return f"oci:{tmp_path / 'layout'}"


def test_files_and_directory_round_trip(tmp_path: Path, target_repo: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _make_tree(src)
    env = clean_env(tmp_path)
    pushed = run_cli("push", f"{target_repo}:v1,stable", "readme.md:text/markdown", "notes.txt", "details",
                     "--artifact-type", "application/vnd.acme.docs.v1", "--annotation", "team=platform",
                     "--output", "json", env=env, cwd=src)
    assert pushed.returncode == 0, pushed.stderr
    doc = pushed.json()
    assert doc["schema"] == "ci-oras/push/v1"
    assert doc["tags"] == ["v1", "stable"]
    assert [layer["annotations"]["org.opencontainers.image.title"] for layer in doc["layers"]] == [
        "readme.md", "notes.txt", "details"]

    pulled = run_cli("pull", f"{target_repo}:stable", "-o", str(tmp_path / "out"), "--output", "json", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.json()["digest"] == doc["digest"]
    out = tmp_path / "out"
    assert (out / "readme.md").read_bytes() == (src / "readme.md").read_bytes()
    assert (out / "notes.txt").read_bytes() == (src / "notes.txt").read_bytes()
    comparison = filecmp.dircmp(src / "details", out / "details")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    assert (out / "details" / "nested" / "b.bin").read_bytes() == (src / "details" / "nested" / "b.bin").read_bytes()
    assert os.readlink(out / "details" / "link-to-a") == "a.txt"

    fetched = run_cli("manifest", "fetch", f"{target_repo}@{doc['digest']}", env=env)
    assert fetched.returncode == 0
    manifest = json.loads(fetched.stdout)
    assert manifest["artifactType"] == "application/vnd.acme.docs.v1"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["annotations"]["team"] == "platform"
    assert "org.opencontainers.image.created" in manifest["annotations"]
    layers = {layer["annotations"]["org.opencontainers.image.title"]: layer for layer in manifest["layers"]}
    assert layers["readme.md"]["mediaType"] == "text/markdown"
    assert layers["notes.txt"]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert layers["details"]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert layers["details"]["annotations"]["io.deis.oras.content.unpack"] == "true"

    tags = run_cli("tags", target_repo, env=env)
    assert tags.stdout.split() == ["stable", "v1"]


def test_reproducible_digest_with_source_date_epoch(tmp_path: Path, target_repo: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _make_tree(src)
    env = clean_env(tmp_path, {"SOURCE_DATE_EPOCH": "1700000000"})
    digests = []
    for tag in ("a", "b"):
        result = run_cli("push", f"{target_repo}:{tag}", "readme.md", "details", "--output", "json", env=env, cwd=src)
        assert result.returncode == 0, result.stderr
        digests.append(result.json()["digest"])
        (src / "details" / "a.txt").touch()  # a new mtime must not change the digest
    assert digests[0] == digests[1]
    manifest = json.loads(run_cli("manifest", "fetch", f"{target_repo}:a", env=env).stdout)
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_pull_content_written_by_another_client(registry_plain: RunningRegistry, tmp_path: Path,
                                                unique_repo: str) -> None:
    """Content seeded over raw HTTP, so a symmetric bug in our push and pull cannot hide."""
    with httpx.Client() as client:
        image = push_image(client, registry_plain.url, unique_repo, tag="seeded")
    result = run_cli("pull", f"{registry_plain.host}/{unique_repo}:seeded", "-o", str(tmp_path / "o"),
                     env=clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "hello.txt").read_bytes() == image.layer


def test_existing_different_file_needs_overwrite(tmp_path: Path, target_repo: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "file.txt").write_text("new content\n")
    env = clean_env(tmp_path)
    assert run_cli("push", f"{target_repo}:v1", "file.txt", env=env, cwd=src).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "file.txt").write_text("precious local edits\n")
    refused = run_cli("pull", f"{target_repo}:v1", "-o", str(out), env=env)
    assert refused.returncode == EXIT_USAGE
    assert "--overwrite" in refused.stderr
    assert (out / "file.txt").read_text() == "precious local edits\n"
    assert run_cli("pull", f"{target_repo}:v1", "-o", str(out), "--overwrite", env=env).returncode == 0
    assert (out / "file.txt").read_text() == "new content\n"
    again = run_cli("pull", f"{target_repo}:v1", "-o", str(out), env=env)  # identical: fine without --overwrite
    assert again.returncode == 0, again.stderr


def test_delete_then_not_found(tmp_path: Path, target_repo: str) -> None:
    env, digest = push_one_file(f"{target_repo}:gone", tmp_path)
    deleted = run_cli("delete", f"{target_repo}:gone", "--output", "json", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.json()["deleted"][0]["digest"] == digest
    missing = run_cli("manifest", "fetch", f"{target_repo}@{digest}", env=env)
    assert missing.returncode == EXIT_NOT_FOUND
    assert missing.stderr.startswith("Error: ") and missing.stderr.count("\n") == 1


def test_push_without_tag_pushes_by_digest(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    (tmp_path / "f").write_text("untagged")
    env = clean_env(tmp_path)
    result = run_cli("push", f"{registry_plain.host}/{unique_repo}", "f", "--output", "json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    digest = result.json()["digest"]
    response = httpx.get(f"{registry_plain.url}/v2/{unique_repo}/manifests/{digest}",
                         headers={"Accept": MANIFEST_ACCEPT})
    assert response.status_code == 200
    assert httpx.get(f"{registry_plain.url}/v2/{unique_repo}/tags/list").json().get("tags") in (None, [])


def test_tags_can_hide_referrers_fallback_tags(registry_plain: RunningRegistry, tmp_path: Path,
                                               unique_repo: str) -> None:
    (tmp_path / "f").write_text("subject")
    (tmp_path / "sig").write_text("signature")
    env = clean_env(tmp_path)
    repo = f"{registry_plain.host}/{unique_repo}"
    pushed = run_cli("push", f"{repo}:v1", "f", "-O", "json", env=env, cwd=tmp_path)
    assert run_cli("attach", f"{repo}:v1", "sig", "--artifact-type", "signature/example", env=env,
                   cwd=tmp_path).returncode == 0
    fallback = "sha256-" + pushed.json()["digest"].split(":")[1]
    assert run_cli("tags", repo, env=env).stdout.split() == [fallback, "v1"]
    assert run_cli("tags", repo, "--exclude-digest-tags", env=env).stdout.split() == ["v1"]
