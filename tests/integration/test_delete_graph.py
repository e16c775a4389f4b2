"""``ci-oras delete`` with referrers: ``--graph``, ``--dry-run`` and the referrers indexes kept consistent.

Three stores, through the real CLI: the real registry (distribution 2.8, no referrers API, so the ``sha256-<hex>``
tag schema), the spec-faithful fake with the referrers API (and with GitLab's dash-tag bug), and an OCI layout.
Graphs are seeded by raw HTTP (fast and independent of the code under test): image ← SBOM ← signature of the
SBOM, and image ← report. Outcomes are checked by raw HTTP too (manifests 404, ``tags/list`` empty), and the
order and kind of requests from what the fake or a recording proxy saw.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import CliResult, expect
from harness.fake_registry import FakeRegistry
from harness.oci import (MANIFEST_ACCEPT, OCI_MANIFEST, compact, digest_of, fallback_tag, push_fallback_index,
                         push_image, push_index, push_referrer, subject_of, with_platform)
from harness.oci_layout import REF_NAME, add_tag_schema_referrers, index_entries
from harness.proxy import RegistryProxy, matching
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_AUTH
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.reference import parse_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.schemas import load_schema

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"
REPORT = "application/vnd.example.report.v1"
FOREIGN = "application/vnd.other-tool.attestation.v1"
READS = {"GET", "HEAD"}


# -- seeding and inspecting by raw HTTP --------------------------------------------------------------------------


@dataclass(frozen=True)
class Graph:
    """image ← sbom ← sig, image ← report (digests); ``indexes``: subject digest → its fallback index digest."""

    repo: str
    image: str
    sbom: str
    sig: str
    report: str
    indexes: dict[str, str]

    @property
    def manifests(self) -> list[str]:
        return [self.image, self.sbom, self.sig, self.report]


def seed_graph(base: str, repo: str, *, tag_schema: bool) -> Graph:
    with httpx.Client(timeout=30) as client:
        pushed = push_image(client, base, repo, tag="v1", layer=f"image {repo}\n".encode())
        image = subject_of(pushed)
        sbom = push_referrer(client, base, repo, image, SBOM, b"the sbom\n")
        sig = push_referrer(client, base, repo, sbom, SIGNATURE, b"signature of the sbom\n")
        report = push_referrer(client, base, repo, image, REPORT, b"a report\n")
        indexes = {}
        if tag_schema:
            indexes[image["digest"]] = push_fallback_index(client, base, repo, image["digest"],
                                                           [sbom, report])
            indexes[sbom["digest"]] = push_fallback_index(client, base, repo, sbom["digest"], [sig])
    return Graph(repo, image["digest"], sbom["digest"], sig["digest"], report["digest"], indexes)


def status(base: str, repo: str, reference: str) -> int:
    return httpx.get(f"{base}/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT},
                     timeout=30).status_code


def listed_tags(base: str, repo: str) -> list[str]:
    response = httpx.get(f"{base}/v2/{repo}/tags/list", timeout=30)
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return sorted(response.json().get("tags") or [])  # distribution may answer "tags": null


def fallback_entries(base: str, repo: str, subject: str) -> list[str]:
    response = httpx.get(f"{base}/v2/{repo}/manifests/{fallback_tag(subject)}",
                         headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
    assert response.status_code == 200, response.text
    return [entry["digest"] for entry in response.json()["manifests"]]


# -- the CLI -------------------------------------------------------------------------------------------------------


def delete_json(cli: Callable[..., CliResult], *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = expect(cli("delete", *args, "-O", "json")).json()
    jsonschema.validate(doc, load_schema("delete"))
    return doc


def digests(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["digest"] for entry in entries]


def deleted_paths(requests: list[Any]) -> list[str]:
    """The last path component of every DELETE, in order."""
    return [r.path.rsplit("/", 1)[1] for r in requests if r.method == "DELETE"]


@pytest.fixture
def proxy(registry_plain: RunningRegistry) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry_plain) as recording:
        yield recording


# -- the tag schema on the real registry ---------------------------------------------------------------------------


def test_graph_delete_removes_every_manifest_and_fallback_tag_deepest_first(
        registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str,
        cli: Callable[..., CliResult]) -> None:
    g = seed_graph(registry_plain.url, unique_repo, tag_schema=True)
    assert listed_tags(registry_plain.url, unique_repo) == sorted(
        ["v1", fallback_tag(g.image), fallback_tag(g.sbom)])

    doc = delete_json(cli, f"{proxy.host}/{unique_repo}:v1", "--graph")

    assert doc["dryRun"] is False and doc["digest"] == g.image
    assert digests(doc["deleted"]) == [g.sig, g.sbom, g.report, g.image]
    assert [(e.get("artifactType"), e.get("subject")) for e in doc["deleted"][:3]] == [
        (SIGNATURE, g.sbom), (SBOM, g.image), (REPORT, g.image)]
    assert "subject" not in doc["deleted"][3]
    assert doc["indexesDeleted"] == [{"subject": g.sbom, "tag": fallback_tag(g.sbom)},
                                     {"subject": g.image, "tag": fallback_tag(g.image)}]
    assert doc["alreadyDeleted"] == [] and doc["indexesUpdated"] == [] and doc["orphanedReferrers"] == []
    # Deepest first; a subject's index goes once its referrers are gone, just before the subject itself.
    assert deleted_paths(proxy.requests) == [g.sig, g.indexes[g.sbom], g.sbom, g.report, g.indexes[g.image], g.image]
    assert not [r for r in proxy.requests if r.method not in READS | {"DELETE"}], "no index is ever rewritten"
    fetched = [r.path.rsplit("/", 1)[1] for r in proxy.requests if r.method == "GET" and "/manifests/sha256:" in r.path]
    assert sorted(fetched) == sorted([g.sig, g.sbom, g.report]), "one GET per listed referrer, to check it"

    assert listed_tags(registry_plain.url, unique_repo) == []
    for reference in [*g.manifests, *g.indexes.values(), fallback_tag(g.image), fallback_tag(g.sbom), "v1"]:
        assert status(registry_plain.url, unique_repo, reference) == 404, reference


def test_deleting_one_referrer_updates_the_subjects_fallback_index(
        registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str,
        cli: Callable[..., CliResult]) -> None:
    g = seed_graph(registry_plain.url, unique_repo, tag_schema=True)
    ref = f"{proxy.host}/{unique_repo}"

    doc = delete_json(cli, f"{ref}@{g.report}")

    assert [(e["digest"], e["artifactType"], e["subject"]) for e in doc["deleted"]] == [(g.report, REPORT, g.image)]
    assert doc["indexesUpdated"] == [{"subject": g.image, "tag": fallback_tag(g.image)}]
    assert doc["indexesDeleted"] == [] and doc["orphanedReferrers"] == []
    assert status(registry_plain.url, unique_repo, g.report) == 404
    assert fallback_entries(registry_plain.url, unique_repo, g.image) == [g.sbom], "the other referrer stays"
    # The index is updated before the referrer is deleted: a crash in between never leaves it listed. The
    # index it replaced is deleted by digest (it would stay behind untagged), once the update held.
    writes = [(r.method, r.path.rsplit("/", 1)[1]) for r in proxy.requests if r.method not in READS]
    assert writes == [("PUT", fallback_tag(g.image)), ("DELETE", g.indexes[g.image]), ("DELETE", g.report)]
    assert status(registry_plain.url, unique_repo, g.indexes[g.image]) == 404

    found = expect(cli("discover", f"{ref}:v1", "-O", "json")).json()
    assert digests(found["referrers"]) == [g.sbom]
    assert digests(found["referrers"][0]["referrers"]) == [g.sig]
    assert g.report not in expect(cli("discover", f"{ref}:v1")).stdout


def test_deleting_the_last_referrer_removes_the_index_tag_and_orphans_are_cleaned_up_by_digest(
        registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str,
        cli: Callable[..., CliResult]) -> None:
    g = seed_graph(registry_plain.url, unique_repo, tag_schema=True)
    ref = f"{proxy.host}/{unique_repo}"
    expect(cli("delete", f"{ref}@{g.report}"))
    proxy.clear()

    # The SBOM is the image's last referrer, and it has a referrer itself (the signature).
    result = expect(cli("delete", f"{ref}@{g.sbom}", "-O", "json"))
    doc = result.json()
    jsonschema.validate(doc, load_schema("delete"))
    assert doc["indexesUpdated"] == [{"subject": g.image, "tag": fallback_tag(g.image)}]
    assert digests(doc["orphanedReferrers"]) == [g.sig]
    assert "WARNING: 1 referrer of " + g.sbom in result.stderr
    assert f"ci-oras delete --graph {ref}@{g.sbom}" in result.stderr
    assert status(registry_plain.url, unique_repo, fallback_tag(g.image)) == 404, "the emptied index is deleted"
    writes = [(r.method, r.path.rsplit("/", 1)[1]) for r in proxy.requests if r.method not in READS]
    assert [method for method, _ in writes] == ["DELETE", "DELETE"], "no empty index is written"
    assert writes[1] == ("DELETE", g.sbom) and writes[0][1] not in (g.image, g.sbom)
    # The signature stays discoverable under the deleted SBOM's digest ...
    assert fallback_entries(registry_plain.url, unique_repo, g.sbom) == [g.sig]
    assert listed_tags(registry_plain.url, unique_repo) == sorted(["v1", fallback_tag(g.sbom)])

    # ... so --graph by digest cleans it up, although the SBOM itself is already gone.
    doc = delete_json(cli, f"{ref}@{g.sbom}", "--graph")
    assert digests(doc["deleted"]) == [g.sig]
    assert digests(doc["alreadyDeleted"]) == [g.sbom]
    assert doc["indexesDeleted"] == [{"subject": g.sbom, "tag": fallback_tag(g.sbom)}]
    assert listed_tags(registry_plain.url, unique_repo) == ["v1"]
    assert status(registry_plain.url, unique_repo, g.sig) == 404
    assert status(registry_plain.url, unique_repo, "v1") == 200


def test_dry_run_makes_only_read_requests(registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str,
                                          cli: Callable[..., CliResult]) -> None:
    g = seed_graph(registry_plain.url, unique_repo, tag_schema=True)
    ref = f"{proxy.host}/{unique_repo}"

    doc = delete_json(cli, f"{ref}:v1", "--graph", "--dry-run")
    assert doc["dryRun"] is True
    assert digests(doc["deleted"]) == [g.sig, g.sbom, g.report, g.image]
    assert [e["subject"] for e in doc["indexesDeleted"]] == [g.sbom, g.image]
    text = expect(cli("delete", f"{ref}:v1", "--graph", "--dry-run")).stderr.splitlines()
    assert text[0] == "Dry run: would delete 4 manifests:"
    assert text[1:5] == [f"{g.image}  application/vnd.ci-oras.test", f"  {g.sbom}  {SBOM}",
                         f"    {g.sig}  {SIGNATURE}", f"  {g.report}  {REPORT}"], "tree order"
    single = delete_json(cli, f"{ref}@{g.report}", "--dry-run")
    assert digests(single["deleted"]) == [g.report] and [e["subject"] for e in single["indexesUpdated"]] == [g.image]

    assert proxy.requests and {r.method for r in proxy.requests} <= READS
    for reference in [*g.manifests, fallback_tag(g.image), fallback_tag(g.sbom), "v1"]:
        assert status(registry_plain.url, unique_repo, reference) == 200, reference
    assert fallback_entries(registry_plain.url, unique_repo, g.image) == [g.sbom, g.report]


def test_rerunning_an_interrupted_graph_delete_finishes_it(
        registry_plain: RunningRegistry, proxy: RegistryProxy, unique_repo: str,
        cli: Callable[..., CliResult]) -> None:
    g = seed_graph(registry_plain.url, unique_repo, tag_schema=True)
    ref = f"{proxy.host}/{unique_repo}:v1"
    proxy.inject(matching("DELETE", path=f"/manifests/{g.report}$"), 403, headers={"Content-Type": "application/json"},
                 body=compact({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}))

    failed = cli("delete", ref, "--graph")
    assert failed.returncode == EXIT_AUTH, failed.stderr
    assert status(registry_plain.url, unique_repo, g.sig) == 404 and status(registry_plain.url, unique_repo, g.sbom) == 404
    assert status(registry_plain.url, unique_repo, g.report) == 200 and status(registry_plain.url, unique_repo, "v1") == 200
    # What is left is still reachable from v1: the image's index lists the report (and the deleted SBOM).
    assert fallback_entries(registry_plain.url, unique_repo, g.image) == [g.sbom, g.report]

    doc = delete_json(cli, ref, "--graph")
    assert digests(doc["deleted"]) == [g.report, g.image]
    # The image's index still lists the deleted SBOM: a listed manifest that is gone is reported, not acted on.
    assert doc["alreadyDeleted"] == []
    assert [(e["digest"], e["subject"], e["reason"]) for e in doc["rejected"]] == [(g.sbom, g.image, "not-found")]
    assert listed_tags(registry_plain.url, unique_repo) == []
    for reference in g.manifests:
        assert status(registry_plain.url, unique_repo, reference) == 404


# -- the referrers API (fake registry) -----------------------------------------------------------------------------


def _fallback_requests(fake: FakeRegistry) -> list[Any]:
    return [r for r in fake.requests if "/manifests/sha256-" in r.path]


def test_graph_delete_with_the_referrers_api(fake_registry: Callable[..., FakeRegistry],
                                             cli: Callable[..., CliResult]) -> None:
    fake = fake_registry()
    g = seed_graph(fake.url, "app", tag_schema=False)
    fake.clear()

    doc = delete_json(cli, f"{fake.host}/app:v1", "--graph")

    assert digests(doc["deleted"]) == [g.sig, g.sbom, g.report, g.image]
    assert deleted_paths(fake.requests) == [g.sig, g.sbom, g.report, g.image]
    assert doc["indexesDeleted"] == [] and doc["indexesUpdated"] == []
    assert _fallback_requests(fake) == [], "the registry keeps the lists: no tag-schema request at all"
    assert [fake.manifest("app", d) for d in g.manifests] == [None] * 4
    assert fake.tags("app") == [] and fake.referrers("app", g.image) == []


def test_deleting_a_referrer_with_the_referrers_api_writes_nothing_else(
        fake_registry: Callable[..., FakeRegistry], cli: Callable[..., CliResult]) -> None:
    fake = fake_registry()
    g = seed_graph(fake.url, "app", tag_schema=False)
    fake.clear()

    doc = delete_json(cli, f"{fake.host}/app@{g.report}")

    assert digests(doc["deleted"]) == [g.report] and doc["indexesUpdated"] == []
    assert [(r.method, r.path) for r in fake.requests if r.method not in READS] == [
        ("DELETE", f"/v2/app/manifests/{g.report}")]
    assert _fallback_requests(fake) == []
    assert [d["digest"] for d in fake.referrers("app", g.image)] == [g.sbom]


def test_index_root_deletes_referrers_then_the_index_then_its_manifests(
        fake_registry: Callable[..., FakeRegistry], cli: Callable[..., CliResult]) -> None:
    fake = fake_registry()
    with httpx.Client(timeout=30) as client:
        children = []
        for arch in ("amd64", "arm64"):
            image = push_image(client, fake.url, "multi", tag=f"only-{arch}", layer=f"{arch}\n".encode())
            children.append(with_platform(subject_of(image), f"linux/{arch}"))
            client.delete(f"{fake.url}/v2/multi/manifests/only-{arch}")  # untag (the fake allows it)
        index = push_index(client, fake.url, "multi", "v1", children)
        on_index = push_referrer(client, fake.url, "multi", index, SIGNATURE, b"signs the index\n")
        on_child = push_referrer(client, fake.url, "multi", children[0], SBOM, b"sbom of amd64\n")
        on_sbom = push_referrer(client, fake.url, "multi", on_child, SIGNATURE, b"signs the sbom\n")
    fake.clear()

    doc = delete_json(cli, f"{fake.host}/multi:v1", "--graph")

    expected = [on_sbom["digest"], on_child["digest"], on_index["digest"], index["digest"],
                children[0]["digest"], children[1]["digest"]]
    assert digests(doc["deleted"]) == expected
    assert deleted_paths(fake.requests) == expected
    assert fake.tags("multi") == [] and all(fake.manifest("multi", d) is None for d in expected)


def test_dash_tag_bug_never_deletes_the_subject(fake_registry: Callable[..., FakeRegistry],
                                                cli: Callable[..., CliResult]) -> None:
    """GitLab resolves a missing ``sha256-<hex>`` tag to the subject itself: that is no index to delete."""
    fake = fake_registry(referrers_api=False, dash_tag_returns_subject=True)
    g = seed_graph(fake.url, "app", tag_schema=True)

    delete_json(cli, f"{fake.host}/app@{g.report}")
    doc = delete_json(cli, f"{fake.host}/app@{g.sbom}", "--graph")  # the image's last referrer, and its index

    assert digests(doc["deleted"]) == [g.sig, g.sbom]
    assert doc["indexesDeleted"] == [{"subject": g.sbom, "tag": fallback_tag(g.sbom)}]
    assert doc["indexesUpdated"] == [{"subject": g.image, "tag": fallback_tag(g.image)}]
    assert fake.manifest("app", g.image) is not None, "the image must survive"
    assert fake.tags("app") == ["v1"]
    deletes = deleted_paths(fake.requests)
    # report, the image's index its removal replaced, sig, both indexes, sbom
    assert g.image not in deletes and len(deletes) == 6
    # A graph delete of a manifest without referrers reads the tag (which answers the subject) and moves on.
    assert digests(delete_json(cli, f"{fake.host}/app:v1", "--graph")["deleted"]) == [g.image]


def test_dash_tag_bug_is_no_index_to_drop_or_edit(fake_registry: Callable[..., FakeRegistry]) -> None:
    """The store methods themselves, where the tag answers the subject (e.g. another job already dropped it)."""
    fake = fake_registry(referrers_api=False, dash_tag_returns_subject=True)
    with httpx.Client(timeout=30) as client:
        pushed = push_image(client, fake.url, "app", tag="v1")
    subject = Descriptor(OCI_MANIFEST, pushed.manifest_digest, len(pushed.manifest))
    run = Runtime(TransportOptions(retries=0), LoginFlags(), {})
    try:
        target = run.open(parse_reference(f"{fake.host}/app:v1"))
        assert target.referrers_index(subject) is None
        assert target.drop_referrers_index(subject) is False
        assert target.forget_referrer(subject, digest_of(b"anything")) is False
    finally:
        run.close()
    assert fake.manifest("app", pushed.manifest_digest) is not None
    assert [r for r in fake.requests if r.method not in READS | {"POST", "PUT", "PATCH"}] == []


# -- OCI layout ------------------------------------------------------------------------------------------------


def _foreign(layout: Path, subject: str, names: list[str]) -> tuple[list[str], str]:
    """Referrers another tool stored only in the tag schema (blobs plus a ``sha256-<hex>`` index entry)."""
    return add_tag_schema_referrers(layout, subject, FOREIGN,
                                    [("text/plain", name.encode(), {"tool": name}) for name in names],
                                    {"written-by": "other-tool"})


def _layout_graph(tmp_path: Path, cli: Callable[..., CliResult]) -> tuple[Path, str, dict[str, str]]:
    layout = tmp_path / "layout"
    ref = f"oci:{layout}"
    for name in ("app.txt", "sbom.json", "sbom.sig"):
        (tmp_path / name).write_text(f"{name}\n")
    image = expect(cli("push", f"{ref}:v1", "app.txt", "-O", "json")).json()["digest"]
    sbom = expect(cli("attach", f"{ref}:v1", "sbom.json", "--artifact-type", SBOM, "-O", "json")).json()["digest"]
    sig = expect(cli("attach", f"{ref}@{sbom}", "sbom.sig", "--artifact-type", SIGNATURE, "-O", "json")).json()["digest"]
    return layout, ref, {"image": image, "sbom": sbom, "sig": sig}


def test_layout_graph_delete(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    layout, ref, d = _layout_graph(tmp_path, cli)
    foreign, index = _foreign(layout, d["image"], ["attestation"])

    dry = delete_json(cli, f"{ref}:v1", "--graph", "--dry-run")
    assert set(digests(dry["deleted"])) == {d["sig"], d["sbom"], *foreign, d["image"]}
    assert len(index_entries(layout)) == 4, "a dry run changes nothing"

    doc = delete_json(cli, f"{ref}:v1", "--graph")

    deleted = digests(doc["deleted"])
    assert deleted[0] == d["sig"] and deleted[-1] == d["image"]
    assert sorted(deleted[1:3]) == sorted([d["sbom"], *foreign])
    assert doc["indexesDeleted"] == [{"subject": d["image"], "tag": fallback_tag(d["image"])}]
    assert index_entries(layout) == []
    blobs = layout / "blobs" / "sha256"
    for digest in [*deleted, index]:
        assert not (blobs / digest.split(":")[1]).exists(), digest


def test_layout_deleting_a_referrer_updates_another_tools_fallback_index(
        tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    layout, ref, d = _layout_graph(tmp_path, cli)
    (first, second), index = _foreign(layout, d["image"], ["one", "two"])

    doc = delete_json(cli, f"{ref}@{first}")

    assert doc["indexesUpdated"] == [{"subject": d["image"], "tag": fallback_tag(d["image"])}]
    (entry,) = [e for e in index_entries(layout) if e.get("annotations", {}).get(REF_NAME) == fallback_tag(d["image"])]
    assert entry["digest"] != index and not (layout / "blobs" / "sha256" / index.split(":")[1]).exists()
    rewritten = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes())
    assert digests(rewritten["manifests"]) == [second]
    assert rewritten["manifests"][0]["annotations"] == {"tool": "two"}, "the other tool's fields are kept"
    assert rewritten["annotations"] == {"written-by": "other-tool"}
    found = expect(cli("discover", f"{ref}:v1", "-O", "json")).json()
    assert sorted(digests(found["referrers"])) == sorted([d["sbom"], second])

    doc = delete_json(cli, f"{ref}@{second}")  # the index's last entry: the tag goes
    assert doc["indexesUpdated"] == [{"subject": d["image"], "tag": fallback_tag(d["image"])}]
    assert not [e for e in index_entries(layout) if e.get("annotations", {}).get(REF_NAME, "").startswith("sha256-")]
    assert not (layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).exists()
    assert digests(expect(cli("discover", f"{ref}:v1", "-O", "json")).json()["referrers"]) == [d["sbom"]]
