"""A pull killed outright (SIGKILL: a cancelled CI job, the OOM killer) leaves its staging directory behind;
the next pull into the same place removes it, and never one whose process is still running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.cli import clean_env, run_cli
from harness.proxy import RegistryProxy, matching
from harness.registry import RunningRegistry

from ci_oras.steps.pull import PULL_STAGING_PREFIX

PAYLOAD = os.urandom(256 * 1024)


@pytest.fixture
def proxy(registry_plain: RunningRegistry) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry_plain) as running:
        yield running


def _stages(where: Path) -> list[Path]:
    return sorted(where.glob(f"{PULL_STAGING_PREFIX}*"))


def test_the_next_pull_removes_what_a_killed_pull_left(proxy: RegistryProxy, tmp_path: Path,
                                                       unique_repo: str) -> None:
    (tmp_path / "big.bin").write_bytes(PAYLOAD)
    reference = f"{proxy.host}/{unique_repo}:v1"
    env = clean_env(tmp_path / "home")
    assert run_cli("push", reference, "big.bin", env=env, cwd=tmp_path).returncode == 0
    work = tmp_path / "work"
    work.mkdir()
    # A pull of this host still running (this test's own process stands for it): never touched.
    alive = work / f"{PULL_STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-running"
    (alive / "partial").mkdir(parents=True)

    # The blob download stalls half-way, so the pull is caught with its staging directory on disk.
    proxy.slow_down(matching("GET", "/blobs/sha256:"), stall_after=len(PAYLOAD) // 2)
    pull = subprocess.Popen([sys.executable, "-m", "ci_oras", "pull", reference, "-o", "out"], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not [p for p in _stages(work) if p != alive] and time.monotonic() < deadline:
            assert pull.poll() is None, "the pull ended before staging anything"
            time.sleep(0.02)
        abandoned = [p for p in _stages(work) if p != alive]
        assert abandoned, "the pull never staged"
    finally:
        pull.send_signal(signal.SIGKILL)
        pull.wait()
    assert abandoned[0].exists(), "SIGKILL leaves the staging directory (nothing can clean up)"

    result = run_cli("pull", "--output", "json", reference, "-o", "out", env=env, cwd=work)

    assert result.returncode == 0, result.stderr
    assert _stages(work) == [alive], "the killed pull's staging directory is gone, the live one's kept"
    assert (work / "out" / "big.bin").read_bytes() == PAYLOAD
    assert [f["title"] for f in json.loads(result.stdout)["files"]] == ["big.bin"]
