"""``pull`` is all or nothing, bounded when unpacking, and pulls image indexes like oras.

Content is seeded with raw HTTP into a real docker-registry (never with ci-oras itself), so a bug shared by
push and pull cannot hide.

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``): a subprocess would add only its
start-up, some 0.2 s of CPU a run; the process boundary is tested elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import clean_env, invoke_cli
from harness.layers import TITLE, directory_layer, push_directory_layer
from harness.oci import OCI_INDEX, push_artifact, push_index, push_layer, with_platform
from harness.proxy import RegistryProxy, matching
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_AUTH, EXIT_INTEGRITY, EXIT_NOT_FOUND, EXIT_REGISTRY, EXIT_USAGE
from ci_oras.schemas import load_schema

MIB = 1024 * 1024


def _artifact(client: httpx.Client, registry: RunningRegistry, repo: str, layers: list[dict[str, Any]],
              tag: str | None = None) -> dict[str, Any]:
    """Push an artifact manifest over ``layers`` (descriptors of blobs already pushed); return its descriptor."""
    pushed = push_artifact(client, registry.url, repo, layers, reference=tag, artifact_type="application/vnd.test")
    return {key: pushed[key] for key in ("mediaType", "digest", "size")}


def _file_layer(client: httpx.Client, registry: RunningRegistry, repo: str, title: str, data: bytes) -> dict[str, Any]:
    return push_layer(client, registry.url, repo, data, "text/plain", {TITLE: title})


def _dir_layer(client: httpx.Client, registry: RunningRegistry, repo: str, files: dict[str, bytes],
               tar_digest: str | None = None) -> dict[str, Any]:
    blob, real_tar_digest = directory_layer("docs", files)
    return push_directory_layer(client, registry.url, repo, blob, tar_digest or real_tar_digest)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".ci-oras-"))


# -- all or nothing -------------------------------------------------------------------------------------------------

SECOND_LAYER_FAILURES = {
    # case: (pull flags, whether the registry keeps the blob, wrong tar digest, exit code, text in the message)
    "entry-limit": (["--max-unpack-entries", "3"], True, False, EXIT_INTEGRITY, "--max-unpack-entries"),
    "size-limit": (["--max-unpack-size", "1KiB"], True, False, EXIT_INTEGRITY, "--max-unpack-size"),
    "ratio-limit": (["--max-unpack-ratio", "5"], True, False, EXIT_INTEGRITY, "--max-unpack-ratio"),
    "tar-digest": ([], True, True, EXIT_INTEGRITY, "digest mismatch"),
    "blob-gone": ([], False, False, EXIT_NOT_FOUND, "not found"),
}


@pytest.mark.parametrize("existing_output", [True, False], ids=["into-existing-dir", "into-new-dir"])
@pytest.mark.parametrize("case", sorted(SECOND_LAYER_FAILURES))
def test_a_failing_second_layer_leaves_nothing(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str,
                                               case: str, existing_output: bool) -> None:
    flags, keep_blob, wrong_digest, exit_code, message = SECOND_LAYER_FAILURES[case]
    log = b"".join(b"%08d the quick brown fox jumps over the lazy dog, again and again\n" % i for i in range(40_000))
    files = {f"page{i}.html": b"<p>%d</p>" % i for i in range(5)} | {"build.log": log}  # ~3 MB, ~20:1
    with httpx.Client() as client:
        first = _file_layer(client, registry_plain, unique_repo, "first.txt", b"the first layer\n")
        second = _dir_layer(client, registry_plain, unique_repo, files,
                            tar_digest="sha256:" + "0" * 64 if wrong_digest else None)
        _artifact(client, registry_plain, unique_repo, [first, second], tag="v1")
        if not keep_blob:
            gone = client.delete(f"{registry_plain.url}/v2/{unique_repo}/blobs/{second['digest']}")
            assert gone.status_code == 202, gone.text
    sandbox = tmp_path / "sandbox"
    out = sandbox / "out"
    sandbox.mkdir()
    if existing_output:
        out.mkdir()
        (out / "keep.txt").write_bytes(b"mine")
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), *flags,
                     env=clean_env(tmp_path))
    assert result.returncode == exit_code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if existing_output:
        assert sorted(os.listdir(out)) == ["keep.txt"], "the first layer's file must not be installed"
        assert (out / "keep.txt").read_bytes() == b"mine"
    else:
        assert not out.exists(), "a failed pull must not create the output directory"
    assert sorted(os.listdir(sandbox)) == (["out"] if existing_output else [])


@pytest.mark.parametrize(("status", "exit_code"), [(503, EXIT_REGISTRY), (403, EXIT_AUTH)])
def test_a_registry_failure_on_the_second_layer_leaves_nothing(registry_plain: RunningRegistry, tmp_path: Path,
                                                               unique_repo: str, status: int, exit_code: int) -> None:
    with httpx.Client() as client:
        first = _file_layer(client, registry_plain, unique_repo, "first.txt", b"the first layer\n")
        second = _file_layer(client, registry_plain, unique_repo, "second.txt", b"the second layer\n")
        _artifact(client, registry_plain, unique_repo, [first, second], tag="v1")
    out = tmp_path / "out"
    with RegistryProxy(registry_plain) as proxy:
        # Retry-After: 0 keeps the retries of a 503 instant; every one of them fails.
        rule = proxy.inject(matching("GET", rf"/blobs/{second['digest']}$"), status, times=50,
                            headers={"Retry-After": "0"})
        result = invoke_cli("pull", f"127.0.0.1:{proxy.port}/{unique_repo}:v1", "-o", str(out), env=clean_env(tmp_path))
    assert rule.hits, "the second layer's download must have been attempted"
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists(), "the first layer must not be installed"
    assert _leftovers(tmp_path) == []


def test_limits_do_not_stop_an_honest_pull_and_a_merge_keeps_other_files(
        registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    files = {f"page{i}.html": b"<p>%d</p>" % i for i in range(5)}
    with httpx.Client() as client:
        first = _file_layer(client, registry_plain, unique_repo, "notes/first.txt", b"the first layer\n")
        second = _dir_layer(client, registry_plain, unique_repo, files)
        _artifact(client, registry_plain, unique_repo, [first, second], tag="v1")
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "mine.txt").write_bytes(b"mine")
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), "--max-unpack-entries", "6",
                     env=clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (out / "notes" / "first.txt").read_bytes() == b"the first layer\n"
    assert (out / "notes" / "mine.txt").read_bytes() == b"mine"
    assert sorted(os.listdir(out / "docs")) == sorted(files)
    assert _leftovers(out) == [] and _leftovers(tmp_path) == []


def test_a_conflict_found_late_changes_nothing(registry_plain: RunningRegistry, tmp_path: Path,
                                              unique_repo: str) -> None:
    """The directory layer conflicts with an existing file: the new plain file must not be installed either."""
    with httpx.Client() as client:
        first = _file_layer(client, registry_plain, unique_repo, "first.txt", b"new\n")
        second = _dir_layer(client, registry_plain, unique_repo, {"index.html": b"theirs"})
        _artifact(client, registry_plain, unique_repo, [first, second], tag="v1")
    out = tmp_path / "out"
    (out / "docs").mkdir(parents=True)
    (out / "docs" / "index.html").write_bytes(b"mine")
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), env=clean_env(tmp_path))
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "--overwrite" in result.stderr
    assert sorted(os.listdir(out)) == ["docs"]
    assert (out / "docs" / "index.html").read_bytes() == b"mine"


# -- image indexes --------------------------------------------------------------------------------------------------


def _index(client: httpx.Client, registry: RunningRegistry, repo: str, children: list[tuple[str, dict[str, Any]]],
           tag: str = "v1") -> str:
    listed = [with_platform(desc, platform) for platform, desc in children]
    index = push_index(client, registry.url, repo, tag, listed)
    digest: str = index["digest"]
    return digest


@pytest.fixture
def same_named_children(registry_plain: RunningRegistry, unique_repo: str) -> dict[str, str]:
    """An index whose linux/amd64 and linux/arm64/v8 children both carry a file titled app.txt."""
    digests = {}
    with httpx.Client() as client:
        children = []
        for platform in ("linux/amd64", "linux/arm64/v8"):
            layer = _file_layer(client, registry_plain, unique_repo, "app.txt", f"built for {platform}\n".encode())
            child = _artifact(client, registry_plain, unique_repo, [layer])
            children.append((platform, child))
            digests[platform] = child["digest"]
        _index(client, registry_plain, unique_repo, children)
    return digests


def test_index_children_writing_one_name_need_a_platform(registry_plain: RunningRegistry, tmp_path: Path,
                                                         unique_repo: str, same_named_children: dict[str, str]) -> None:
    out = tmp_path / "out"
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), env=clean_env(tmp_path))
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "'app.txt'" in result.stderr and "linux/amd64 and linux/arm64/v8" in result.stderr
    assert "--platform" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("platform", ["linux/arm64", "linux/arm64/v8"])
def test_platform_picks_one_child(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str,
                                  same_named_children: dict[str, str], platform: str) -> None:
    out = tmp_path / "out"
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), "--platform", platform,
                     "-O", "json", env=clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (out / "app.txt").read_text() == "built for linux/arm64/v8\n"
    document = result.json()
    jsonschema.validate(document, load_schema("pull"))
    assert document["platform"] == platform and document["mediaType"] == OCI_INDEX
    assert [f["manifest"] for f in document["files"]] == [same_named_children["linux/arm64/v8"]]


def test_platform_that_is_not_there(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str,
                                    same_named_children: dict[str, str]) -> None:
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(tmp_path / "out"),
                     "--platform", "windows/amd64", env=clean_env(tmp_path))
    assert result.returncode == EXIT_NOT_FOUND, result.stderr
    assert "available: linux/amd64, linux/arm64/v8" in result.stderr
    bad = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(tmp_path / "out"),
                  "--platform", "linux", env=clean_env(tmp_path))
    assert bad.returncode == EXIT_USAGE and "OS/ARCH" in bad.stderr
    assert not (tmp_path / "out").exists()


def test_index_pull_takes_every_childs_files(registry_plain: RunningRegistry, tmp_path: Path,
                                             unique_repo: str) -> None:
    with httpx.Client() as client:
        amd = _artifact(client, registry_plain, unique_repo,
                        [_file_layer(client, registry_plain, unique_repo, "bin/app-amd64", b"amd64")])
        arm = _artifact(client, registry_plain, unique_repo,
                        [_file_layer(client, registry_plain, unique_repo, "bin/app-arm64", b"arm64"),
                         _dir_layer(client, registry_plain, unique_repo, {"README": b"docs"})])
        _index(client, registry_plain, unique_repo, [("linux/amd64", amd), ("linux/arm64", arm)])
    out = tmp_path / "out"
    result = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}:v1", "-o", str(out), "-O", "json",
                     env=clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (out / "bin" / "app-amd64").read_bytes() == b"amd64"
    assert (out / "bin" / "app-arm64").read_bytes() == b"arm64"
    assert (out / "docs" / "README").read_bytes() == b"docs"
    document = result.json()
    jsonschema.validate(document, load_schema("pull"))
    assert document["platform"] is None
    assert [f["manifest"] for f in document["files"]] == [amd["digest"], arm["digest"], arm["digest"]]
    # --platform on a plain artifact has nothing to pick from.
    child = invoke_cli("pull", f"{registry_plain.host}/{unique_repo}@{amd['digest']}", "-o", str(tmp_path / "x"),
                    "--platform", "linux/amd64", env=clean_env(tmp_path))
    assert child.returncode == EXIT_USAGE and "not an image index" in child.stderr
