"""Many CI jobs attaching to one subject at once must not lose each other's referrers.

distribution (like GHCR and GitLab) has no referrers API and ignores ``If-Match``, so every attach rewrites the
subject's ``sha256-<hex>`` index and the last writer wins; a registry with the API can drop list updates under
concurrent pushes. ``ATTACHERS`` separate ``ci-oras attach`` processes are started, wait at a barrier
(``harness/parallel.py``) and are released together; afterwards every referrer must be listed, by
``ci-oras discover`` and in what the registry itself serves.

``make test`` runs one round of 20; ``make stress-referrers`` sets ``CI_ORAS_CONCURRENCY_ATTACHERS`` (20, 50)
and ``CI_ORAS_CONCURRENCY_REPETITIONS`` (10).

The watch that makes this safe waits a window sized from the round trips it measured; a latency proxy shows
it stretching with the registry's distance (the one place a lower bound on time is asserted: the watch must
wait at least that long, so it cannot flake on a slow machine).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness.cli import clean_env, run_cli
from harness.fake_registry import FakeRegistry
from harness.oci import MANIFEST_ACCEPT, push_image
from harness.parallel import run_released_together
from harness.proxy import RegistryProxy
from harness.registry import RunningRegistry

ATTACHERS = int(os.environ.get("CI_ORAS_CONCURRENCY_ATTACHERS", "20"))
REPETITIONS = int(os.environ.get("CI_ORAS_CONCURRENCY_REPETITIONS", "1"))
ARTIFACT_TYPE = "application/vnd.example.signature"


def attach_all_at_once(host: str, repo: str, work: Path, env: dict[str, str], count: int, tag: str) -> set[str]:
    """Start ``count`` attach processes, release them together, return the digests they reported."""
    commands = []
    for number in range(count):
        path = work / f"signature-{number}.txt"
        path.write_text(f"signature {number} of {tag}\n")
        commands.append(["attach", f"{host}/{repo}:v1", path.name, "--artifact-type", ARTIFACT_TYPE,
                         "--output", "json"])
    results, _ = run_released_together(commands, cwd=work, env=env)
    for result in results:
        assert result.returncode == 0, result.stderr
    digests = {json.loads(result.stdout)["digest"] for result in results}
    assert len(digests) == count
    return digests


@pytest.fixture
def work(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    yield tmp_path, clean_env(tmp_path)


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_parallel_attaches_on_the_tag_schema_are_all_discoverable(
        registry_plain: RunningRegistry, work: tuple[Path, dict[str, str]], unique_repo: str,
        repetition: int) -> None:
    tmp_path, env = work
    with httpx.Client(timeout=30) as client:
        subject = push_image(client, registry_plain.url, unique_repo, tag="v1")

    digests = attach_all_at_once(registry_plain.host, unique_repo, tmp_path, env, ATTACHERS, f"round {repetition}")

    discovered = run_cli("discover", f"{registry_plain.host}/{unique_repo}:v1", "--output", "json", env=env)
    assert discovered.returncode == 0, discovered.stderr
    assert {r["digest"] for r in discovered.json()["referrers"]} == digests
    # What any other tool reads: the raw fallback index.
    hex_part = subject.manifest_digest.split(":")[1]
    raw = httpx.get(f"{registry_plain.url}/v2/{unique_repo}/manifests/sha256-{hex_part}",
                    headers={"Accept": MANIFEST_ACCEPT}, timeout=30).json()
    assert {entry["digest"] for entry in raw["manifests"]} == digests
    assert all(entry["artifactType"] == ARTIFACT_TYPE for entry in raw["manifests"])


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_parallel_attaches_on_an_api_registry_that_drops_list_updates_are_all_listed(
        work: tuple[Path, dict[str, str]], repetition: int) -> None:
    tmp_path, env = work
    dropped = max(1, ATTACHERS // 4)
    with FakeRegistry(drop_referrer_updates=0) as fake:
        with httpx.Client(timeout=30) as client:
            subject = push_image(client, fake.url, "app", tag="v1")
        fake.drop_referrer_updates = dropped  # the first referrer pushes are stored but not listed

        digests = attach_all_at_once(fake.host, "app", tmp_path, env, ATTACHERS, f"round {repetition}")

        assert fake.drop_referrer_updates == 0, "the registry really dropped updates"
        assert {entry["digest"] for entry in fake.referrers("app", subject.manifest_digest)} == digests
        reputs = [r for r in fake.requests if r.method == "PUT" and r.path.endswith(tuple(digests))]
        assert len(reputs) == ATTACHERS + dropped, "each dropped update was repaired by one more PUT"
        discovered = run_cli("discover", f"{fake.host}/app:v1", "--output", "json", env=env)
        assert discovered.returncode == 0, discovered.stderr
        assert {r["digest"] for r in discovered.json()["referrers"]} == digests


def test_the_watch_stretches_with_the_registry_latency(registry_plain: RunningRegistry, tmp_path: Path,
                                                       unique_repo: str) -> None:
    """100 ms per request: the confirming read comes a window of measured cycles after the index write."""
    from ci_oras.files import FileSpec
    from ci_oras.oci.reference import parse_registry_reference
    from ci_oras.registry.referrers import SettleOptions
    from ci_oras.registry.transport import TransportOptions
    from ci_oras.runtime import LoginFlags, Runtime
    from ci_oras.steps.attach import attach
    from ci_oras.steps.common import AttachOptions, resolve_subject
    from ci_oras.store.registry import RegistryRepository

    latency = 0.1
    with httpx.Client(timeout=30) as client:
        subject = push_image(client, registry_plain.url, unique_repo, tag="v1")
    (tmp_path / "signature.json").write_text('{"signature": "slow"}\n')
    with RegistryProxy(registry_plain) as proxy:
        proxy.latency = latency
        reference = parse_registry_reference(f"{proxy.host}/{unique_repo}:v1")
        run = Runtime(TransportOptions(retries=0), LoginFlags(), {"HOME": str(tmp_path)})
        try:
            target = RegistryRepository(reference, run.session.client_for(reference), writable=True)
            attach(target, unique_repo, resolve_subject(target, "v1", "v1"),
                   [FileSpec(tmp_path / "signature.json", "signature.json")],
                   AttachOptions(artifact_type=ARTIFACT_TYPE))
            windows = target.referrers_backend.windows
        finally:
            run.close()
        index_path = f"/v2/{unique_repo}/manifests/sha256-{subject.manifest_digest.split(':')[1]}"
        on_index = [(r.method, r.time) for r in proxy.requests if r.path == index_path]

    factor = SettleOptions().factor
    # The cycle it measured (its read sent → its write answered) spans two proxied requests.
    assert len(windows) == 1 and windows[0] >= factor * 2 * latency
    # read, write, a look two cycles after the write, the confirming read a window after it
    assert [method for method, _ in on_index] == ["GET", "PUT", "GET", "GET"]
    (_, put_arrived), (_, look_arrived), (_, check_arrived) = on_index[1:]
    assert look_arrived - put_arrived < latency + windows[0], "the look comes inside the window"
    assert check_arrived - put_arrived >= latency + windows[0], "the check waited the window after the answer"


def test_sequential_attaches_leave_no_replaced_index_and_delete_graph_leaves_nothing(
        registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    env = clean_env(tmp_path)
    with httpx.Client(timeout=30) as client:
        subject = push_image(client, registry_plain.url, unique_repo, tag="v1")
    index_url = f"{registry_plain.url}/v2/{unique_repo}/manifests/sha256-{subject.manifest_digest.split(':')[1]}"
    indexes: list[str] = []
    referrers: list[str] = []
    for number in range(3):
        (tmp_path / "note.txt").write_text(f"note {number}\n")
        done = run_cli("attach", f"{registry_plain.host}/{unique_repo}:v1", "note.txt", "--artifact-type",
                       ARTIFACT_TYPE, "--output", "json", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        referrers.append(done.json()["digest"])
        current = httpx.get(index_url, headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
        indexes.append(current.headers["Docker-Content-Digest"])
        assert [e["digest"] for e in current.json()["manifests"]] == referrers
        for replaced in indexes[:-1]:
            assert _status(registry_plain.url, unique_repo, replaced) == 404, "a replaced index stayed behind"

    deleted = run_cli("delete", f"{registry_plain.host}/{unique_repo}:v1", "--graph", env=env, cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    for digest in [subject.manifest_digest, *referrers, *indexes]:
        assert _status(registry_plain.url, unique_repo, digest) == 404, digest
    tags = httpx.get(f"{registry_plain.url}/v2/{unique_repo}/tags/list", timeout=30).json()
    assert not tags.get("tags")


def _status(url: str, repo: str, digest: str) -> int:
    return httpx.head(f"{url}/v2/{repo}/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT},
                      timeout=30).status_code
