"""Odd inputs end in one clear line and the documented exit code, never a traceback, and leave nothing behind.

Run through the real CLI in a subprocess: a traceback is only visible at that boundary.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from harness.cli import CliResult, clean_env, run_cli

from ci_oras.archive import remove_tree
from ci_oras.errors import EXIT_NOT_FOUND, EXIT_USAGE


def _one_line_error(result: CliResult, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("WARNING:")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result.stderr


@pytest.fixture
def layout(tmp_path: Path) -> str:
    """An OCI layout holding ``v1``: one small file."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("a\n")
    reference = f"oci:{tmp_path / 'layout'}"
    pushed = run_cli("push", f"{reference}:v1", "a.txt", env=clean_env(tmp_path), cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    return reference


def test_pull_into_an_unwritable_place(tmp_path: Path, layout: str) -> None:
    result = run_cli("pull", f"{layout}:v1", "-o", "/proc/x", env=clean_env(tmp_path), cwd=tmp_path)
    _one_line_error(result, EXIT_USAGE, "cannot write to /proc/x", "-o")
    assert not os.path.lexists("/proc/x")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ci-oras")) == []


def test_pull_into_an_existing_file(tmp_path: Path, layout: str) -> None:
    target = tmp_path / "a-file"
    target.write_bytes(b"keep me")
    result = run_cli("pull", f"{layout}:v1", "-o", str(target), env=clean_env(tmp_path))
    _one_line_error(result, EXIT_USAGE, f"{target} exists and is not a directory")
    assert target.read_bytes() == b"keep me"
    below = run_cli("pull", f"{layout}:v1", "-o", str(target / "sub"), env=clean_env(tmp_path))
    _one_line_error(below, EXIT_USAGE, "is not a directory")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ci-oras")) == []


def test_source_date_epoch_beyond_year_9999(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    env = clean_env(tmp_path, {"SOURCE_DATE_EPOCH": "99999999999999999"})
    result = run_cli("push", f"oci:{tmp_path / 'layout'}:v1", "a.txt", env=env, cwd=tmp_path)
    _one_line_error(result, EXIT_USAGE, "SOURCE_DATE_EPOCH", "253402300799")
    assert not (tmp_path / "layout").exists()
    last_second = run_cli("push", f"oci:{tmp_path / 'layout'}:v1", "a.txt", "-O", "json", cwd=tmp_path,
                          env=clean_env(tmp_path, {"SOURCE_DATE_EPOCH": "253402300799"}))
    assert last_second.returncode == 0, last_second.stderr


def test_very_deep_directory_pushes_and_pulls_twice(tmp_path: Path) -> None:
    """1500 levels: past Python's recursion limit in packing, unpacking, merging and cleaning up."""
    work = tmp_path / "work"
    current = work / "deep"
    current.mkdir(parents=True)
    try:
        for _ in range(1500):
            current = Path(os.path.join(current, "d"))
            os.mkdir(current)  # one level at a time: os.makedirs recurses per level
        (current / "leaf.txt").write_bytes(b"leaf")
        env = clean_env(tmp_path)
        reference = f"oci:{tmp_path / 'layout'}:deep"
        pushed = run_cli("push", reference, "deep", env=env, cwd=work)
        assert pushed.returncode == 0, pushed.stderr
        out = tmp_path / "out"
        for attempt in ("first", "second"):
            pulled = run_cli("pull", reference, "-o", str(out), env=env)
            assert pulled.returncode == 0, f"{attempt} pull: {pulled.stderr}"
            assert "Traceback" not in pulled.stderr
            assert sorted(os.listdir(out)) == ["deep"], f"{attempt} pull left {os.listdir(out)}"
        leaf = os.path.join(out, "deep", *["d"] * 1500, "leaf.txt")
        with open(leaf, "rb") as handle:
            assert handle.read() == b"leaf"
    finally:
        remove_tree(tmp_path)  # pytest's own clean-up of old tmp_paths recurses per level and would fail


@pytest.mark.parametrize(("command", "host"), [("login", "http://"), ("login", "https:///"), ("logout", ""),
                                               ("logout", "   ")])
def test_empty_registry_host(tmp_path: Path, command: str, host: str) -> None:
    extra = ["-u", "user", "--password-stdin"] if command == "login" else []
    result = run_cli(command, host, *extra, env=clean_env(tmp_path), stdin="secret\n")
    _one_line_error(result, EXIT_USAGE, "registry host is empty", "HOST[:PORT]")
    assert "ping-probe" not in result.stderr
    assert not (tmp_path / ".docker").exists()


def test_invalid_registry_host(tmp_path: Path) -> None:
    result = run_cli("logout", "bad_host:port!", env=clean_env(tmp_path))
    _one_line_error(result, EXIT_USAGE, "invalid registry host 'bad_host:port!'", "HOST[:PORT]")
    assert "ping-probe" not in result.stderr


@pytest.mark.parametrize("command", ["attach-sbom", "attach-signature"])
@pytest.mark.parametrize("kind", ["directory", "fifo", "missing"])
def test_attach_needs_a_regular_file(tmp_path: Path, layout: str, command: str, kind: str) -> None:
    path = tmp_path / kind
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    index = tmp_path / "layout" / "index.json"
    before = index.read_bytes()
    result = run_cli(command, f"{layout}:v1", str(path), env=clean_env(tmp_path), timeout=30)
    expected = "file not found" if kind == "missing" else f"{path} is not a regular file"
    _one_line_error(result, EXIT_USAGE, expected)
    assert index.read_bytes() == before, "nothing may be attached"


@pytest.mark.parametrize(("flag", "value"), [("--wait", "99999999999h"), ("--wait", "25h"), ("--interval", "1e300")])
def test_verify_refuses_absurd_durations(tmp_path: Path, layout: str, flag: str, value: str) -> None:
    result = run_cli("verify", f"{layout}:v1", "--require", "sbom", flag, value, env=clean_env(tmp_path))
    _one_line_error(result, EXIT_USAGE, flag, "maximum is 24h")


def test_manifest_fetch_prints_the_exact_bytes(tmp_path: Path, layout: str) -> None:
    env = clean_env(tmp_path)
    described = run_cli("manifest", "fetch", f"{layout}:v1", "-O", "json", env=env)
    assert described.returncode == 0, described.stderr
    document = described.json()
    raw = run_cli("manifest", "fetch", f"{layout}:v1", env=env)
    assert raw.returncode == 0, raw.stderr
    body = raw.stdout.encode()
    assert len(body) == document["size"]
    assert "sha256:" + hashlib.sha256(body).hexdigest() == document["digest"]
    assert json.loads(body) == document["manifest"]


def test_layout_with_null_manifests_is_empty(tmp_path: Path, layout: str) -> None:
    """oras writes ``"manifests": null`` after deleting a layout's last manifest."""
    index = tmp_path / "layout" / "index.json"
    doc = json.loads(index.read_text())
    index.write_text(json.dumps({**doc, "manifests": None}))
    env = clean_env(tmp_path)
    listed = run_cli("tags", layout, "-O", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.json()["tags"] == []
    missing = run_cli("pull", f"{layout}:v1", "-o", str(tmp_path / "out"), env=env)
    _one_line_error(missing, EXIT_NOT_FOUND, "v1")
    (tmp_path / "b.txt").write_text("b")
    again = run_cli("push", f"{layout}:v2", "b.txt", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in json.loads(index.read_text())["manifests"]] == ["v2"]
