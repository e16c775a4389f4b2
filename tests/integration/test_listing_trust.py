"""A referrers listing is a claim: verify, promote and delete --graph check each entry against its manifest.

The reproductions of "trust nothing a listing says", against the real registry (distribution 2.8, no referrers
API, so the ``sha256-<hex>`` tag schema that anyone with push access can write) through the real CLI, and the
case-insensitive type match also on the spec-faithful fake with the referrers API and its (exact) server-side
filter. Graphs and forged listings are seeded by raw HTTP, independent of the code under test; outcomes are
checked by raw HTTP too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import CliResult
from harness.fake_registry import FakeRegistry
from harness import oci
from harness.proxy import RegistryProxy
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_OK, EXIT_VERIFICATION_FAILED
from ci_oras.schemas import load_schema

SIG = "application/vnd.example.sig+json"
SBOM = "application/vnd.example.sbom+json"

Desc = dict[str, Any]


class Repo:
    """Raw-HTTP seeding of one repository: images, referrers, and fallback indexes written as anyone could."""

    def __init__(self, client: httpx.Client, url: str, name: str) -> None:
        self.client, self.url, self.name = client, url, name

    def image(self, tag: str) -> Desc:
        return oci.subject_of(
            oci.push_image(self.client, self.url, self.name, tag=tag, layer=f"{tag} {uuid.uuid4()}\n".encode()))

    def referrer(self, subject: Desc, artifact_type: str) -> Desc:
        """An artifact whose ``subject`` is ``subject``, pushed by digest (not listed anywhere yet)."""
        payload = f"{artifact_type} of {subject['digest']} {uuid.uuid4()}".encode()
        return oci.push_referrer(self.client, self.url, self.name, subject, artifact_type, payload)

    def listing(self, subject: Desc, entries: list[Desc]) -> str:
        """The tag schema's index for ``subject`` listing ``entries`` (true or not); returns its digest."""
        return oci.push_fallback_index(self.client, self.url, self.name, subject["digest"], entries)

    def status(self, reference: str) -> int:
        return self.client.get(f"{self.url}/v2/{self.name}/manifests/{reference}",
                               headers={"Accept": oci.MANIFEST_ACCEPT}).status_code

    def delete(self, digest: str) -> None:
        assert self.client.delete(f"{self.url}/v2/{self.name}/manifests/{digest}").status_code == 202


def as_listed(desc: Desc, artifact_type: str) -> Desc:
    """``desc`` as a listing entry claiming ``artifact_type``."""
    return {"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"],
            "artifactType": artifact_type}


@pytest.fixture
def repo(registry_plain: RunningRegistry, client: httpx.Client, unique_repo: str) -> Repo:
    return Repo(client, registry_plain.url, unique_repo)


def document(result: CliResult, step: str, code: int = EXIT_OK) -> dict[str, Any]:
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    doc: dict[str, Any] = result.json()
    jsonschema.validate(doc, load_schema(step))
    return doc


def rejections(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(entry["digest"], entry["subject"], entry["reason"]) for entry in doc["rejected"]}


# -- delete --graph ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """S (tag v1) with a genuine signature R1 listed under it."""

    subject: Desc
    signature: Desc


def signed(repo: Repo) -> Signed:
    subject = repo.image("v1")
    signature = repo.referrer(subject, SIG)
    repo.listing(subject, [signature])
    return Signed(subject, signature)


@pytest.mark.parametrize("forgery", ["index-naming-P", "P-itself-under-the-tag"])
def test_delete_graph_never_deletes_what_a_forged_listing_names(
        repo: Repo, registry_plain: RunningRegistry, cli: Callable[..., CliResult], forgery: str) -> None:
    """The issue's reproduction: an index listing P under ``sha256-<R1>``; and the worse forgery, the tag
    pointing at P's own image index (deleting "R1's referrers index" by digest would delete P and ``prod``)."""
    s = signed(repo)
    children = [repo.image(f"arch-{n}") for n in range(2)]
    raw = oci.compact({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": children})
    digest = oci.push_manifest(repo.client, repo.url, repo.name, "prod", raw, oci.OCI_INDEX)
    p = {"mediaType": oci.OCI_INDEX, "digest": digest, "size": len(raw)}
    if forgery == "index-naming-P":
        forged = repo.listing(s.signature, [as_listed(p, SIG)])
        expected = {(p["digest"], s.signature["digest"], "subject-mismatch")}
    else:
        forged = oci.push_manifest(repo.client, repo.url, repo.name, oci.fallback_tag(s.signature["digest"]), raw, oci.OCI_INDEX)
        expected = {(child["digest"], s.signature["digest"], "subject-mismatch") for child in children}

    result = cli("delete", f"{registry_plain.host}/{repo.name}@{s.signature['digest']}", "--graph", "-O", "json")

    doc = document(result, "delete")
    assert [entry["digest"] for entry in doc["deleted"]] == [s.signature["digest"]]
    assert rejections(doc) == expected
    assert doc["indexesDeleted"] == [], "an index listing foreign manifests is left in place, never deleted"
    assert "WARNING: skipped" in result.stderr
    assert repo.status(s.signature["digest"]) == 404
    for reference in ("prod", p["digest"], *(c["digest"] for c in children), "v1", forged):
        assert repo.status(reference) == 200, reference
    assert repo.status(oci.fallback_tag(s.subject["digest"])) == 404, "the subject's emptied index went with R1's entry"


def test_delete_graph_with_a_loop_keeps_the_subject(repo: Repo, registry_plain: RunningRegistry,
                                                    cli: Callable[..., CliResult]) -> None:
    """R1's index lists S (R1's own subject): deleting R1's graph deleted S before."""
    s = signed(repo)
    sbom = repo.referrer(s.signature, SBOM)  # a genuine referrer of R1, listed with the loop
    repo.listing(s.signature, [as_listed(s.subject, SIG), sbom, as_listed(s.signature, SIG)])

    doc = document(cli("delete", f"{registry_plain.host}/{repo.name}@{s.signature['digest']}", "--graph",
                       "-O", "json"), "delete")

    assert [entry["digest"] for entry in doc["deleted"]] == [sbom["digest"], s.signature["digest"]]
    assert rejections(doc) == {(s.subject["digest"], s.signature["digest"], "subject-mismatch"),
                               (s.signature["digest"], s.signature["digest"], "self-reference")}
    assert repo.status("v1") == 200 and repo.status(s.subject["digest"]) == 200
    assert repo.status(sbom["digest"]) == 404 and repo.status(s.signature["digest"]) == 404


def _release_index(repo: Repo, subject: Desc, entries: list[Desc]) -> str:
    """An image index tagged ``release`` and, by the same bytes, ``sha256-<subject>``: a tag schema index that
    is also someone's release. Deleting it by digest would take ``release`` with it."""
    digest: str = oci.push_index(repo.client, repo.url, repo.name, "release", entries)["digest"]
    assert oci.push_fallback_index(repo.client, repo.url, repo.name, subject["digest"], entries) == digest
    return digest


def test_plain_delete_moves_the_tag_off_an_image_index_instead_of_deleting_it(
        repo: Repo, registry_plain: RunningRegistry, cli: Callable[..., CliResult]) -> None:
    s = signed(repo)
    platformed = oci.with_platform(as_listed(s.signature, SIG), "linux/amd64")
    release = _release_index(repo, s.subject, [platformed])

    result = cli("delete", f"{registry_plain.host}/{repo.name}@{s.signature['digest']}")

    assert result.returncode == EXIT_OK, result.stderr
    assert repo.status(s.signature["digest"]) == 404
    assert repo.status("release") == 200 and repo.status(release) == 200
    listed = repo.client.get(f"{repo.url}/v2/{repo.name}/manifests/{oci.fallback_tag(s.subject['digest'])}",
                             headers={"Accept": oci.OCI_INDEX}).json()
    assert listed["manifests"] == [], "the tag moved to an index without the deleted referrer"


def test_attach_never_deletes_an_image_index_it_replaced(repo: Repo, registry_plain: RunningRegistry,
                                                         cli: Callable[..., CliResult], tmp_path: Path) -> None:
    subject = repo.image("v1")
    child = oci.with_platform(repo.image("arch-amd64"), "linux/amd64")
    release = _release_index(repo, subject, [child])
    (tmp_path / "sig.json").write_text("{}")

    result = cli("attach", f"{registry_plain.host}/{repo.name}@{subject['digest']}", "--artifact-type", SIG,
                 "sig.json", "--referrers", "tag")

    assert result.returncode == EXIT_OK, result.stderr
    assert repo.status("release") == 200 and repo.status(release) == 200


# -- verify ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """S (v1) with one genuine signature and four listed entries that must not count."""

    signed: Signed
    gone: Desc
    unrelated: Desc
    other: Desc
    foreign: Desc


@pytest.fixture
def gate(repo: Repo) -> Gate:
    s = signed(repo)
    gone = repo.referrer(s.subject, SIG)
    unrelated = repo.image("unrelated")
    other = repo.image("other")
    foreign = repo.referrer(other, SIG)  # a real signature, made for another image
    repo.listing(s.subject, [s.signature, gone, as_listed(unrelated, SIG), foreign, as_listed(s.subject, SIG)])
    repo.delete(gone["digest"])  # as garbage collection does: the listing still names it
    return Gate(s, gone, unrelated, other, foreign)


def test_verify_counts_only_what_the_manifests_confirm(gate: Gate, repo: Repo, registry_plain: RunningRegistry,
                                                       cli: Callable[..., CliResult]) -> None:
    g, subject = gate, gate.signed.subject["digest"]
    with RegistryProxy(registry_plain) as proxy:
        result = cli("verify", f"{proxy.host}/{repo.name}:v1", "-r", f"{SIG}*3", "-r", SIG, "-O", "json")
        fetched = [r.path.rsplit("/", 1)[1] for r in proxy.requests
                   if r.method == "GET" and "/manifests/sha256:" in r.path]

    doc = document(result, "verify", EXIT_VERIFICATION_FAILED)
    by_spec = {entry["spec"]: entry for entry in doc["requirements"]}
    assert by_spec[f"{SIG}*3"]["found"] == [g.signed.signature["digest"]]
    assert by_spec[SIG]["satisfied"] is True
    assert doc["missing"] == [f"{SIG}*3"]
    assert rejections(doc) == {(g.gone["digest"], subject, "not-found"),
                               (g.unrelated["digest"], subject, "subject-mismatch"),
                               (g.foreign["digest"], subject, "subject-mismatch"),
                               (subject, subject, "self-reference")}
    messages = {entry["digest"]: entry["message"] for entry in doc["rejected"]}
    assert messages[g.foreign["digest"]] == f"the manifest's subject is {g.other['digest']}"
    assert messages[g.unrelated["digest"]] == "not a referrer: the manifest has no subject"
    # One GET per listed entry that could match, each once for both requirements; none for the self-entry.
    assert sorted(fetched) == sorted([g.signed.signature["digest"], g.gone["digest"], g.unrelated["digest"],
                                      g.foreign["digest"]])
    assert doc["fetches"] == 4 and doc["trustListing"] is False
    assert f"WARNING: not counted: {g.gone['digest']} listed under {subject}: listed but not found" in result.stderr


def test_trust_listing_counts_the_listing_without_fetching(gate: Gate, repo: Repo, registry_plain: RunningRegistry,
                                                            cli: Callable[..., CliResult]) -> None:
    g, subject = gate, gate.signed.subject["digest"]
    with RegistryProxy(registry_plain) as proxy:
        result = cli("verify", f"{proxy.host}/{repo.name}:v1", "-r", f"{SIG}*4", "--trust-listing", "-O", "json")
        fetched = [r for r in proxy.requests if r.method == "GET" and "/manifests/sha256:" in r.path]

    doc = document(result, "verify")
    assert doc["requirements"][0]["found"] == [g.signed.signature["digest"], g.gone["digest"],
                                               g.unrelated["digest"], g.foreign["digest"]]
    assert fetched == [] and doc["fetches"] == 0 and doc["trustListing"] is True
    # Even trusting the listing, a node listed under itself is no referrer of itself (no request needed).
    assert rejections(doc) == {(subject, subject, "self-reference")}
    assert "--trust-listing" in cli("verify", "--help").stdout


# -- promote ---------------------------------------------------------------------------------------------------


def test_promote_with_a_loop_copies_the_real_referrers(repo: Repo, registry_plain: RunningRegistry,
                                                       cli: Callable[..., CliResult]) -> None:
    """R1's index lists S: promote S copied 0 referrers (S was taken for R1's referrer); a listed referrer
    that is gone made it fail."""
    s = signed(repo)
    gone = repo.referrer(s.subject, SIG)
    sbom = repo.referrer(s.subject, SBOM)
    repo.listing(s.subject, [s.signature, gone, sbom])
    repo.delete(gone["digest"])  # distribution checks an index's entries when it is written, not after
    repo.listing(s.signature, [as_listed(s.subject, SIG)])
    destination = f"{registry_plain.host}/{repo.name}-prod:v1"

    doc = document(cli("promote", f"{registry_plain.host}/{repo.name}:v1", destination, "-O", "json"), "promote")

    assert doc["referrers"] == 2 and doc["copied"]["manifests"] == 3
    assert rejections(doc) == {(gone["digest"], s.subject["digest"], "not-found"),
                               (s.subject["digest"], s.signature["digest"], "subject-mismatch")}
    found = document(cli("discover", destination, "-O", "json"), "discover")
    assert sorted(r["digest"] for r in found["referrers"]) == sorted([s.signature["digest"], sbom["digest"]])
    assert all(r["referrers"] == [] for r in found["referrers"])


# -- artifact types compare case-insensitively ------------------------------------------------------------------


MIXED = "Application/Vnd.Example.Sig+JSON"


def test_types_match_case_insensitively_on_the_tag_schema(repo: Repo, registry_plain: RunningRegistry,
                                                          cli: Callable[..., CliResult]) -> None:
    subject = repo.image("v1")
    signature = repo.referrer(subject, MIXED)
    repo.listing(subject, [signature])
    ref = f"{registry_plain.host}/{repo.name}:v1"

    one = document(cli("verify", ref, "-r", SIG, "-O", "json"), "verify")
    two = document(cli("verify", ref, "-r", SIG, "-r", f"{SIG}>{SBOM}", "-O", "json"), "verify",
                   EXIT_VERIFICATION_FAILED)
    assert one["requirements"][0]["found"] == [signature["digest"]]
    assert two["requirements"][0]["found"] == [signature["digest"]], "the same answer with a second spec"
    promoted = document(cli("promote", ref, f"{registry_plain.host}/{repo.name}-prod:v1", "--artifact-type", SIG,
                            "-O", "json"), "promote")
    assert promoted["referrers"] == 1 and promoted["rejected"] == []


def test_types_match_case_insensitively_with_the_servers_filter(
        fake_registry: Callable[..., FakeRegistry], client: httpx.Client, cli: Callable[..., CliResult]) -> None:
    """The fake applies ``?artifactType=`` exactly, as the spec says: sending it would lose the referrer."""
    fake = fake_registry(filter_header=True)
    repo = Repo(client, fake.url, "app")
    subject = repo.image("v1")
    signature = repo.referrer(subject, MIXED)
    fake.clear()

    one = document(cli("verify", f"{fake.host}/app:v1", "-r", SIG, "-O", "json"), "verify")
    two = document(cli("verify", f"{fake.host}/app:v1", "-r", SIG, "-r", f"{SIG}>{SBOM}", "-O", "json"), "verify",
                   EXIT_VERIFICATION_FAILED)
    assert one["requirements"][0]["found"] == two["requirements"][0]["found"] == [signature["digest"]]
    referrers = [r for r in fake.requests if "/referrers/" in r.path]
    assert referrers and all("artifactType" not in r.params for r in referrers)
    found = document(cli("discover", f"{fake.host}/app:v1", "--artifact-type", SIG, "-O", "json"), "discover")
    assert [r["digest"] for r in found["referrers"]] == [signature["digest"]]
