"""Many CI jobs attaching to one subject at once must not lose each other's referrers.

distribution (like GHCR and GitLab) has no referrers API and ignores ``If-Match``, so every attach rewrites the
subject's ``sha256-<hex>`` index and the last writer wins. 20 separate ``ci-oras attach`` processes are
started together, ten times over; afterwards all 20 must be listed both by ``ci-oras discover`` and in the
raw fallback index that any other tool reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness.cli import clean_env, run_cli
from harness.oci import MANIFEST_ACCEPT, push_image
from harness.registry import RunningRegistry

ATTACHERS = 20
REPETITIONS = int(os.environ.get("CI_ORAS_CONCURRENCY_REPETITIONS", "10"))


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_parallel_attaches_are_all_discoverable(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str,
                                                repetition: int) -> None:
    with httpx.Client(timeout=30) as client:
        subject = push_image(client, registry_plain.url, unique_repo, tag="v1")
    env = clean_env(tmp_path)
    files = []
    for number in range(ATTACHERS):
        path = tmp_path / f"signature-{number}.txt"
        path.write_text(f"signature {number} of repetition {repetition}\n")
        files.append(path)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "ci_oras", "attach", f"{registry_plain.host}/{unique_repo}:v1", path.name,
             "--artifact-type", "application/vnd.example.signature", "--output", "json"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path in files
    ]
    digests = set()
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        digests.add(json.loads(stdout)["digest"])
    assert len(digests) == ATTACHERS

    discovered = run_cli("discover", f"{registry_plain.host}/{unique_repo}:v1", "--output", "json", env=env)
    assert discovered.returncode == 0, discovered.stderr
    assert {r["digest"] for r in discovered.json()["referrers"]} == digests

    hex_part = subject.manifest_digest.split(":")[1]
    raw = httpx.get(f"{registry_plain.url}/v2/{unique_repo}/manifests/sha256-{hex_part}",
                    headers={"Accept": MANIFEST_ACCEPT}, timeout=30).json()
    assert {entry["digest"] for entry in raw["manifests"]} == digests
    assert all(entry["artifactType"] == "application/vnd.example.signature" for entry in raw["manifests"])
