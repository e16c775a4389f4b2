"""promote: the whole graph, subjects before referrers, tags last, re-runs that write nothing.

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``) where the process boundary adds only
start-up (some 0.2 s of CPU a run); the runs killed mid-way are real subprocesses.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import CliResult, clean_env, invoke_cli
from harness.oci import MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST, push_blob, push_image, push_layer, push_manifest
from harness.proxy import RegistryProxy
from harness.registry import RegistryFactory, RunningRegistry

from ci_oras.schemas import load_schema

WRITES = ("PUT", "POST", "PATCH", "DELETE")


def _graph(result: CliResult) -> set[tuple[str, str]]:
    """(subject, referrer) edges of a discover JSON document."""
    assert result.returncode == 0, result.stderr
    edges: set[tuple[str, str]] = set()

    def visit(node: dict[str, Any]) -> None:
        for child in node.get("manifests", []):
            edges.add((node["digest"], child["digest"]))
            visit(child)
        for referrer in node["referrers"]:
            edges.add((node["digest"], referrer["digest"]))
            visit(referrer)

    visit(result.json())
    return edges


def _attach(repo: str, subject: str, name: str, artifact_type: str, env: dict[str, str], cwd: Path) -> str:
    (cwd / name).write_text(f"{name} for {subject}\n")
    result = invoke_cli("attach", f"{repo}{subject}", name, "--artifact-type", artifact_type, "-O", "json",
                     env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return str(result.json()["digest"])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path)


@pytest.fixture(scope="module")
def source_graph(registry_plain: RunningRegistry,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[str, set[tuple[str, str]]]:
    """An image with a signature, an SBOM and a signature of the SBOM (depth 2), on the tag schema: shared by
    the module's tests, which only read it and promote it into repositories of their own."""
    work = tmp_path_factory.mktemp("promote-source")
    env, name = clean_env(work), f"test/{uuid.uuid4().hex[:8]}-source"
    with httpx.Client(timeout=30) as client:
        push_image(client, registry_plain.url, name, tag="v1", layer=os.urandom(50_000))
    repo = f"{registry_plain.host}/{name}"
    _attach(repo, ":v1", "signature.json", "application/vnd.example.signature", env, work)
    sbom = _attach(repo, ":v1", "sbom.json", "application/vnd.cyclonedx+json", env, work)
    _attach(repo, f"@{sbom}", "sbom-signature.json", "application/vnd.example.signature", env, work)
    edges = _graph(invoke_cli("discover", f"{repo}:v1", "-O", "json", env=env))
    assert len(edges) == 3
    return repo, edges


def test_same_registry_promotion_mounts_and_rerun_writes_nothing(
        registry_plain: RunningRegistry, source_graph: tuple[str, set[tuple[str, str]]], env: dict[str, str],
        unique_repo: str) -> None:
    repo, edges = source_graph
    with RegistryProxy(registry_plain) as proxy:
        src = f"{repo.replace(registry_plain.host, proxy.host)}:v1"
        dst = f"{proxy.host}/{unique_repo}-staging:v1"
        first = invoke_cli("promote", src, dst, "-O", "json", env=env)
        assert first.returncode == 0, first.stderr
        doc = first.json()
        assert doc["copied"]["blobs"] == 0 and doc["mounted"] == 5  # image layer, {} config, 3 referrer layers
        uploads = proxy.requests_matching(method="PUT", path=r"/blobs/uploads/")
        assert uploads == [], "same-registry promotion must mount, not upload"
        mounts = proxy.requests_matching(method="POST", path=r"/blobs/uploads/", query=r"mount=")
        assert mounts and all("from=" in m.query and m.status == 201 for m in mounts)
        # A mount succeeds whether or not the blob is there: no HEAD of the destination's blobs before it.
        assert proxy.requests_matching(method="HEAD", path=rf"/{unique_repo}-staging/blobs/") == []
        # One referrers-index write per subject with referrers (the image and the SBOM), not one per referrer.
        index_puts = proxy.requests_matching(method="PUT", path=r"/manifests/sha256-")
        assert len(index_puts) == 2
        # Tag written last, after every manifest and referrers index.
        writes = [r for r in proxy.requests if r.method in WRITES]
        assert writes[-1].method == "PUT" and writes[-1].path.endswith("/manifests/v1")

        proxy.clear()
        again = invoke_cli("promote", src, dst, "-O", "json", env=env)
        assert again.returncode == 0, again.stderr
        assert [r for r in proxy.requests if r.method in WRITES] == [], "a re-run writes nothing"
        # every manifest is there, so its blobs are too: the re-run asks nothing about blobs
        assert proxy.requests_matching(path=r"/blobs/") == []
        assert again.json()["skipped"]["blobs"] == 5
        assert again.json()["copied"] == {"manifests": 0, "blobs": 0} and again.json()["tagsWritten"] == []
    promoted = _graph(invoke_cli("discover", f"{registry_plain.host}/{unique_repo}-staging:v1", "-O", "json", env=env))
    assert promoted == edges


def test_cross_registry_streams_and_verifies(registry_plain: RunningRegistry, registry_factory: RegistryFactory,
                                            source_graph: tuple[str, set[tuple[str, str]]], env: dict[str, str],
                                            tmp_path: Path, unique_repo: str) -> None:
    repo, edges = source_graph
    other = registry_factory("plain")
    dst = f"{other.host}/prod/{unique_repo}:v1,stable"
    result = invoke_cli("promote", f"{repo}:v1", dst, "-O", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.json()["copied"]["manifests"] == 4 and result.json()["tags"] == ["v1", "stable"]
    assert _graph(invoke_cli("discover", f"{other.host}/prod/{unique_repo}:stable", "-O", "json", env=env)) == edges
    pulled = invoke_cli("pull", f"{other.host}/prod/{unique_repo}:v1", "-o", str(tmp_path / "out"), env=env)
    assert pulled.returncode == 0, pulled.stderr


def test_registry_to_layout_and_back(registry_plain: RunningRegistry, source_graph: tuple[str, set[tuple[str, str]]],
                                     env: dict[str, str], tmp_path: Path, unique_repo: str) -> None:
    repo, edges = source_graph
    layout = f"oci:{tmp_path / 'layout'}"
    assert invoke_cli("promote", f"{repo}:v1", f"{layout}:v1", env=env).returncode == 0
    assert _graph(invoke_cli("discover", f"{layout}:v1", "-O", "json", env=env)) == edges
    back = f"{registry_plain.host}/{unique_repo}-from-layout:v1"
    result = invoke_cli("promote", f"{layout}:v1", back, env=env)
    assert result.returncode == 0, result.stderr
    assert _graph(invoke_cli("discover", back, "-O", "json", env=env)) == edges


def test_artifact_type_filters(registry_plain: RunningRegistry, source_graph: tuple[str, set[tuple[str, str]]],
                               env: dict[str, str], unique_repo: str) -> None:
    repo, edges = source_graph
    only_sbom = f"{registry_plain.host}/{unique_repo}-sbom:v1"
    result = invoke_cli("promote", f"{repo}:v1", only_sbom, "--artifact-type", "application/vnd.cyclonedx+json",
                     env=env)
    assert result.returncode == 0, result.stderr
    # The SBOM comes with its own signature; the image's direct signature stays behind.
    assert len(_graph(invoke_cli("discover", only_sbom, "-O", "json", env=env))) == 2
    no_signatures = f"{registry_plain.host}/{unique_repo}-nosig:v1"
    assert invoke_cli("promote", f"{repo}:v1", no_signatures, "--exclude-artifact-type",
                   "application/vnd.example.signature", env=env).returncode == 0
    assert len(_graph(invoke_cli("discover", no_signatures, "-O", "json", env=env))) == 1
    bare = f"{registry_plain.host}/{unique_repo}-bare:v1"
    assert invoke_cli("promote", f"{repo}:v1", bare, "--no-referrers", env=env).returncode == 0
    assert _graph(invoke_cli("discover", bare, "-O", "json", env=env)) == set()


def test_dry_run_writes_nothing(registry_plain: RunningRegistry, source_graph: tuple[str, set[tuple[str, str]]],
                                env: dict[str, str], unique_repo: str) -> None:
    repo, _ = source_graph
    with RegistryProxy(registry_plain) as proxy:
        result = invoke_cli("promote", f"{repo.replace(registry_plain.host, proxy.host)}:v1",
                         f"{proxy.host}/{unique_repo}-dry:v1", "--dry-run", "-O", "json", env=env)
        assert result.returncode == 0, result.stderr
        assert [r for r in proxy.requests if r.method in WRITES] == []
    doc = result.json()
    assert doc["dryRun"] and doc["copied"]["manifests"] == 4 and doc["tagsWritten"] == ["v1"]
    missing = httpx.get(f"{registry_plain.url}/v2/{unique_repo}-dry/tags/list")
    assert missing.status_code == 404


def _seed_multiarch(client: httpx.Client, url: str, repo: str) -> dict[str, str]:
    children = {}
    for arch in ("amd64", "arm64"):
        image = push_image(client, url, repo, tag=f"only-{arch}", layer=f"{arch} layer".encode())
        children[arch] = image.manifest_digest
    entries = [{"mediaType": OCI_MANIFEST, "digest": digest,
                "size": len(client.get(f"{url}/v2/{repo}/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT}).content),
                "platform": {"architecture": arch, "os": "linux"}} for arch, digest in children.items()]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    children["index"] = push_manifest(client, url, repo, "multi", index, OCI_INDEX)
    return children


def test_multiarch_index_with_referrers_on_index_and_child(registry_plain: RunningRegistry, env: dict[str, str],
                                                           tmp_path: Path, unique_repo: str) -> None:
    with httpx.Client(timeout=30) as client:
        digests = _seed_multiarch(client, registry_plain.url, unique_repo)
    repo = f"{registry_plain.host}/{unique_repo}"
    _attach(repo, ":multi", "index-sig.json", "application/vnd.example.signature", env, tmp_path)
    arm_sbom = _attach(repo, f"@{digests['arm64']}", "arm-sbom.json", "application/vnd.cyclonedx+json", env, tmp_path)
    dst = f"{registry_plain.host}/{unique_repo}-copy"
    result = invoke_cli("promote", f"{repo}:multi", f"{dst}:multi", "-O", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.json()["copied"]["manifests"] == 5  # index, 2 children, 2 referrers
    promoted = _graph(invoke_cli("discover", f"{dst}:multi", "--include-children", "-O", "json", env=env))
    assert (digests["arm64"], arm_sbom) in promoted
    assert (digests["index"], digests["amd64"]) in promoted
    only_arm = invoke_cli("promote", f"{repo}:multi", f"{dst}-arm:v1", "--platform", "linux/arm64", "-O", "json", env=env)
    assert only_arm.returncode == 0, only_arm.stderr
    assert only_arm.json()["digest"] == digests["arm64"]
    assert _graph(invoke_cli("discover", f"{dst}-arm:v1", "-O", "json", env=env)) == {(digests["arm64"], arm_sbom)}


@pytest.fixture
def wide_graph(registry_plain: RunningRegistry, unique_repo: str) -> tuple[str, set[tuple[str, str]]]:
    """A subject with 20 referrers, written by raw HTTP (one fallback index)."""
    with httpx.Client(timeout=30) as client:
        subject = push_image(client, registry_plain.url, unique_repo, tag="v1", layer=os.urandom(20_000))
        config = push_blob(client, registry_plain.url, unique_repo, b"{}")
        entries = []
        for number in range(20):
            layer = push_blob(client, registry_plain.url, unique_repo, f"referrer {number}".encode() * 100)
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.r",
                               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config,
                                          "size": 2},
                               "layers": [{"mediaType": "application/x.r", "digest": layer,
                                           "size": len(f"referrer {number}".encode() * 100)}],
                               "subject": {"mediaType": OCI_MANIFEST, "digest": subject.manifest_digest,
                                           "size": len(subject.manifest)}}).encode()
            digest = push_manifest(client, registry_plain.url, unique_repo,
                                   "sha256:" + hashlib.sha256(body).hexdigest(), body)
            entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
                            "artifactType": "application/x.r"})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        push_manifest(client, registry_plain.url, unique_repo, "sha256-" + subject.manifest_digest.split(":")[1],
                      index, OCI_INDEX)
    return f"{registry_plain.host}/{unique_repo}", {(subject.manifest_digest, e["digest"]) for e in entries}


def _promote_process(src: str, dst: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ci_oras", "promote", src, dst], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_promotion_never_leaves_a_tag_on_an_incomplete_graph(
        registry_plain: RunningRegistry, wide_graph: tuple[str, set[tuple[str, str]]], env: dict[str, str],
        unique_repo: str) -> None:
    repo, edges = wide_graph
    with RegistryProxy(registry_plain) as proxy:
        proxy.latency = 0.01
        src = f"{proxy.host}/{unique_repo}:v1"
        started = time.monotonic()
        reference = _promote_process(src, f"{proxy.host}/{unique_repo}-timing:v1", env)
        assert reference.wait(timeout=120) == 0
        duration = time.monotonic() - started
        fractions = (0.15, 0.25, 0.35, 0.45, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
        # make test kills at every other point (the walk, the copies, the listing updates and the tag all
        # covered, denser towards the end); make stress at all thirteen.
        every = 1 if os.environ.get("CI_ORAS_KILL_POINTS") == "all" else 2
        points = [duration * fraction for fraction in fractions[::every]]
        outcomes = []
        for number, delay in enumerate(points):
            dst = f"{registry_plain.host}/{unique_repo}-kill{number}:v1"
            process = _promote_process(src, dst.replace(registry_plain.host, proxy.host), env)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            tag = httpx.head(f"{registry_plain.url}/v2/{unique_repo}-kill{number}/manifests/v1",
                             headers={"Accept": MANIFEST_ACCEPT})
            if tag.status_code == 200:
                outcomes.append("tagged")
                assert _graph(invoke_cli("discover", dst, "-O", "json", env=env)) == edges, f"kill at {delay:.2f}s"
            else:
                outcomes.append("untagged")
            rerun = invoke_cli("promote", src, dst.replace(registry_plain.host, proxy.host), env=env)
            assert rerun.returncode == 0, rerun.stderr
            assert _graph(invoke_cli("discover", dst, "-O", "json", env=env)) == edges
        assert "untagged" in outcomes, outcomes  # the kills really interrupted promotions


def test_promote_document_matches_schema(registry_plain: RunningRegistry, env: dict[str, str], tmp_path: Path,
                                         unique_repo: str) -> None:
    (tmp_path / "f").write_text("x")
    layout = f"oci:{tmp_path / 'layout'}"
    assert invoke_cli("push", f"{layout}:v1", "f", env=env, cwd=tmp_path).returncode == 0
    result = invoke_cli("promote", f"{layout}:v1", f"{registry_plain.host}/{unique_repo}", "-O", "json", env=env)
    assert result.returncode == 0, result.stderr
    jsonschema.validate(result.json(), load_schema("promote"))
    assert result.json()["tags"] == ["v1"]  # DST without a tag takes SRC's


def test_promote_to_and_from_a_registry_with_the_referrers_api(
        registry_plain: RunningRegistry, fake_registry: Any, source_graph: tuple[str, set[tuple[str, str]]],
        env: dict[str, str], unique_repo: str) -> None:
    repo, edges = source_graph
    fake = fake_registry()
    to_api = f"{fake.host}/{unique_repo}:v1"
    result = invoke_cli("promote", f"{repo}:v1", to_api, "-O", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert _graph(invoke_cli("discover", to_api, "-O", "json", env=env)) == edges
    # The API registry keeps the lists itself: no sha256-<hex> fallback tag was written there.
    assert [r for r in fake.requests if r.method == "PUT" and "/manifests/sha256-" in r.path] == []
    assert fake.tags(unique_repo) == ["v1"]
    fake.clear()
    rerun = invoke_cli("promote", f"{repo}:v1", to_api, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert [r for r in fake.requests if r.method in WRITES] == []

    back = f"{registry_plain.host}/{unique_repo}-from-api:v1"
    result = invoke_cli("promote", to_api, back, env=env)
    assert result.returncode == 0, result.stderr
    assert _graph(invoke_cli("discover", back, "-O", "json", env=env)) == edges


def test_many_uploads_at_once_never_wait_for_their_own_source_reads(
        registry_plain: RunningRegistry, registry_factory: RegistryFactory, env: dict[str, str],
        unique_repo: str) -> None:
    """Each upload holds a connection to DST while its body is read from SRC through another connection. With
    one cap on connections shared by every host, enough uploads at once took every connection and their source
    reads waited for one, until a timeout broke the copy up (a release copy of 16 images stalled 25 s this
    way; here 64 uploads at once, their source 50 ms away). Now every upload's read finds a connection at once: no request is retried."""
    with httpx.Client(timeout=30) as client:
        layers = [push_layer(client, registry_plain.url, unique_repo, os.urandom(40_000) + bytes([n]))
                  for n in range(80)]
        config = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": push_blob(
            client, registry_plain.url, unique_repo, b"{}"), "size": 2}
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                               "layers": layers}).encode()
        push_manifest(client, registry_plain.url, unique_repo, "v1", manifest)
    other = registry_factory("plain")
    with RegistryProxy(other) as proxy, RegistryProxy(registry_plain) as source:
        source.latency = 0.05  # each source read takes a while: the uploads waiting on them pile up
        started = time.monotonic()
        result = invoke_cli("promote", f"{source.host}/{unique_repo}:v1", f"{proxy.host}/copy/{unique_repo}:v1",
                         "--concurrency", "64", "-O", "json", env=env)
        took = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert result.json()["copied"]["blobs"] == 81
        uploads = proxy.requests_matching(method="PUT", path=r"/blobs/uploads/")
        assert len(uploads) == 81 and all(upload.status == 201 for upload in uploads), "no upload was retried"
    assert took < 5, f"the copy took {took:.1f} s"
