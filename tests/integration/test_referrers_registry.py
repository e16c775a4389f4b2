"""Referrers on the real registry (distribution 2.8: no referrers API, so the ``sha256-<hex>`` tag schema).

A deep supply-chain graph is built once through the CLI (image ← SBOM ← signature ← countersignature, the
signature attached to the SBOM's digest) and then looked at in every ``discover`` format. A loop that only a
hand-made (or broken) set of fallback indexes can produce is seeded by raw HTTP: discover must terminate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness.cli import clean_env, expect, run_cli
from harness.graphs import SignedSbom, attach_signed_sbom
from harness.oci import (CYCLONEDX, MANIFEST_ACCEPT, NOTARY, OCI_INDEX, OCI_MANIFEST, fallback_tag,
                         push_fallback_index, push_image, push_index, push_referrer, subject_of,
                         with_platform)
from harness.registry import RunningRegistry

COUNTER = "application/vnd.example.countersignature.v1"
REPORT = "application/vnd.example.report.v1"


def _raw_fallback(registry: RunningRegistry, repo: str, subject_digest: str) -> dict[str, Any]:
    response = httpx.get(f"{registry.url}/v2/{repo}/manifests/{fallback_tag(subject_digest)}",
                         headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(OCI_INDEX)
    doc: dict[str, Any] = response.json()
    return doc


@dataclass(frozen=True)
class DeepGraph(SignedSbom):
    countersignature: str


@pytest.fixture(scope="module")
def deep_graph(registry_plain: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeepGraph]:
    """image ← SBOM ← Notary signature (of the SBOM) ← countersignature, attached with the real CLI."""
    work = tmp_path_factory.mktemp("deep-graph")
    repo = f"test/deep-{uuid.uuid4().hex[:8]}"
    g = attach_signed_sbom(registry_plain, repo, work)
    (work / "countersig.txt").write_text("countersigned by the release manager\n")
    counter = expect(g.cli("attach", f"{g.ref}@{g.signature}", "countersig.txt", "--artifact-type", COUNTER,
                           "-O", "json")).json()
    assert counter["subject"]["digest"] == g.signature
    yield DeepGraph(**vars(g), countersignature=counter["digest"])


def test_fallback_indexes_hold_each_level(deep_graph: DeepGraph) -> None:
    g = deep_graph
    for subject, referrer, artifact_type in ((g.image, g.sbom, CYCLONEDX), (g.sbom, g.signature, NOTARY),
                                             (g.signature, g.countersignature, COUNTER)):
        index = _raw_fallback(g.registry, g.repo, subject)
        assert [(e["digest"], e["artifactType"]) for e in index["manifests"]] == [(referrer, artifact_type)]
        assert index["manifests"][0]["mediaType"] == OCI_MANIFEST
    tags = expect(g.cli("tags", g.ref)).stdout.split()
    assert sorted(tags) == sorted(["v1", *(fallback_tag(d) for d in (g.image, g.sbom, g.signature))])


def test_discover_tree_shows_the_whole_depth(deep_graph: DeepGraph) -> None:
    g = deep_graph
    tree = expect(g.cli("discover", f"{g.ref}:v1")).stdout.splitlines()
    assert tree == [
        f"{g.ref}@{g.image}",
        f"└── {CYCLONEDX}",
        f"    └── {g.sbom}",
        f"        └── {NOTARY}",
        f"            └── {g.signature}",
        f"                └── {COUNTER}",
        f"                    └── {g.countersignature}",
    ]


def test_discover_json_nests_referrers(deep_graph: DeepGraph) -> None:
    g = deep_graph
    doc = expect(g.cli("discover", f"{g.ref}:v1", "--format", "json")).json()
    assert doc["schema"] == "ci-oras/discover/v1"
    assert doc["digest"] == g.image and doc["count"] == 3
    (sbom,) = doc["referrers"]
    (signature,) = sbom["referrers"]
    (counter,) = signature["referrers"]
    assert (sbom["digest"], sbom["artifactType"]) == (g.sbom, CYCLONEDX)
    assert sbom["annotations"]["dev.ci-oras.sbom.format"] == "cyclonedx"
    assert (signature["digest"], signature["artifactType"]) == (g.signature, NOTARY)
    assert "io.cncf.notary.x509chain.thumbprint#S256" in signature["annotations"]
    assert (counter["digest"], counter["artifactType"], counter["referrers"]) == (g.countersignature, COUNTER, [])
    assert counter["reference"] == f"{g.ref}@{g.countersignature}"
    # --output json is the same document.
    assert expect(g.cli("discover", f"{g.ref}:v1", "--output", "json")).json() == doc


def test_discover_depth_limits_the_walk(deep_graph: DeepGraph) -> None:
    g = deep_graph
    one = expect(g.cli("discover", f"{g.ref}:v1", "--depth", "1", "-O", "json")).json()
    assert [(n["digest"], n["referrers"]) for n in one["referrers"]] == [(g.sbom, [])]
    assert one["count"] == 1
    two = expect(g.cli("discover", f"{g.ref}:v1", "--depth", "2", "-O", "json")).json()
    assert two["count"] == 2 and two["referrers"][0]["referrers"][0]["referrers"] == []
    # Starting from the middle of the graph works the same way.
    middle = expect(g.cli("discover", f"{g.ref}@{g.sbom}", "-O", "json")).json()
    assert middle["digest"] == g.sbom and middle["count"] == 2
    tree = expect(g.cli("discover", f"{g.ref}:v1", "--depth", "1")).stdout
    assert g.sbom in tree and g.signature not in tree
    zero = g.cli("discover", f"{g.ref}:v1", "--depth", "0")
    assert zero.returncode == 2


def test_discover_table_and_mermaid(deep_graph: DeepGraph) -> None:
    g = deep_graph
    table = expect(g.cli("discover", f"{g.ref}:v1", "--format", "table")).stdout.splitlines()
    assert table[0].split() == ["DEPTH", "ARTIFACT", "TYPE", "DIGEST", "SUBJECT"]
    rows = [line.split() for line in table[1:]]
    assert rows == [["1", CYCLONEDX, g.sbom, g.image], ["2", NOTARY, g.signature, g.sbom],
                    ["3", COUNTER, g.countersignature, g.signature]]

    mermaid = expect(g.cli("discover", f"{g.ref}:v1", "--format", "mermaid")).stdout
    lines = mermaid.splitlines()
    assert lines[0] == "graph TD"
    for digest in (g.sbom, g.signature, g.countersignature):
        short = digest[: len("sha256:") + 12]
        assert short in mermaid
    assert f"{g.ref}@{g.image}" in mermaid
    edges = [line.strip() for line in lines if "-->" in line]
    assert edges == ["n0 --> n1", "n1 --> n2", "n2 --> n3"]


def _seed_loop(registry: RunningRegistry, repo: str) -> tuple[str, str]:
    """Index I ← referrer R, and R's fallback index lists I (and R itself) again; returns (I, R)."""
    base = registry.url
    with httpx.Client(timeout=30) as client:
        image = push_image(client, base, repo, tag="image")
        index_desc = push_index(client, base, repo, "loop", [with_platform(subject_of(image), "linux/amd64")])
        index = index_desc["digest"]
        referrer_desc = push_referrer(client, base, repo, index_desc, REPORT, b"a report about the index\n",
                                      layer_type="text/plain")
        referrer = referrer_desc["digest"]
        push_fallback_index(client, base, repo, index, [referrer_desc])
        push_fallback_index(client, base, repo, referrer, [index_desc, referrer_desc])
    return index, referrer


def test_discover_terminates_on_a_loop(registry_plain: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    """A loop only hand-made or broken fallback indexes can build: shown once, never expanded again."""
    repo = unique_repo
    index, referrer = _seed_loop(registry_plain, repo)
    env = clean_env(tmp_path)
    ref = f"{registry_plain.host}/{repo}"
    tree = run_cli("discover", f"{ref}:loop", env=env, timeout=30)
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.splitlines() == [
        f"{ref}@{index}",
        f"└── {REPORT}",
        f"    └── {referrer}",
        f"        ├── {OCI_INDEX}",
        f"        │   └── {index} (shown above)",
        f"        └── {REPORT}",
        f"            └── {referrer} (shown above)",
    ]

    doc = run_cli("discover", f"{ref}:loop", "-O", "json", env=env, timeout=30)
    assert doc.returncode == 0, doc.stderr
    (node,) = doc.json()["referrers"]
    assert node["digest"] == referrer
    assert [(n["digest"], n["referrers"]) for n in node["referrers"]] == [(index, []), (referrer, [])]

    for fmt in ("table", "mermaid"):
        shown = run_cli("discover", f"{ref}:loop", "--format", fmt, env=env, timeout=30)
        assert shown.returncode == 0, shown.stderr
        assert referrer[: len("sha256:") + 12] in shown.stdout


def test_attach_and_discover_with_token_auth(registry_token: RunningRegistry, tmp_path: Path,
                                             unique_repo: str) -> None:
    """The tag schema needs pull and push on the repository: one token serves the whole attach."""
    issuer = registry_token.issuer
    assert issuer and registry_token.username and registry_token.password
    env = clean_env(tmp_path, {"CI_ORAS_USERNAME": registry_token.username,
                               "CI_ORAS_PASSWORD": registry_token.password, "CI_ORAS_REGISTRY": registry_token.host})
    ref = f"{registry_token.host}/{unique_repo}"
    (tmp_path / "app.txt").write_text("app\n")
    (tmp_path / "report.txt").write_text("report\n")
    expect(run_cli("push", f"{ref}:v1", "app.txt", env=env, cwd=tmp_path))

    issuer.clear_requests()
    attached = expect(run_cli("attach", f"{ref}:v1", "report.txt", "--artifact-type", REPORT, "-O", "json",
                           env=env, cwd=tmp_path)).json()
    assert [r.scopes for r in issuer.requests] == [(f"repository:{unique_repo}:pull,push",)]

    issuer.clear_requests()
    found = expect(run_cli("discover", f"{ref}:v1", "-O", "json", env=env)).json()
    assert [n["digest"] for n in found["referrers"]] == [attached["digest"]]
    assert [r.scopes for r in issuer.requests] == [(f"repository:{unique_repo}:pull",)]


def test_discover_json_marks_repeated_nodes(registry_plain: RunningRegistry, tmp_path: Path,
                                            unique_repo: str) -> None:
    """In JSON a node shown above must be told apart from a node without referrers (the tree says
    "(shown above)"); otherwise a consumer reads "the index has no referrers", which is false."""
    index, referrer = _seed_loop(registry_plain, unique_repo)
    doc = run_cli("discover", f"{registry_plain.host}/{unique_repo}:loop", "-O", "json", env=clean_env(tmp_path),
                  timeout=30)
    assert doc.returncode == 0, doc.stderr
    (node,) = doc.json()["referrers"]
    assert node.get("repeated") in (None, False)
    assert [(n["digest"], n.get("repeated")) for n in node["referrers"]] == [(index, True), (referrer, True)]
