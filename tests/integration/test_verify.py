"""``ci-oras verify``, the deployment gate, through the real CLI.

Two back-ends: the real registry (distribution 2.8, no referrers API: the ``sha256-<hex>`` tag schema) with a
graph attached by the real ``attach-sbom``/``attach-signature`` (kept to two attaches: each settles ~1.5 s),
and the spec-faithful fake with the referrers API, seeded by raw HTTP so its recorded requests can be counted.
A multi-arch index is seeded by raw HTTP on both (fallback indexes written by hand on the real registry).
Every ``--output json`` document is validated against the shipped schema.

Verify runs in this process (``harness.cli.invoke_cli``) but for the run that races a concurrent change,
which needs a real subprocess; the graph fixtures attach with real subprocesses.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import CliResult, clean_env, expect, invoke_cli
from harness.fake_registry import FakeRegistry
from harness.graphs import SignedSbom, attach_signed_sbom
from harness.oci import (CYCLONEDX, NOTARY, OCI_INDEX, SIGSTORE_BUNDLE, SPDX, push_fallback_index, push_image,
                         push_index, push_referrer, subject_of, with_platform)
from harness.registry import RunningRegistry
from samples.make_samples import make_chain, notary_jws

from ci_oras.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, EXIT_VERIFICATION_FAILED
from ci_oras.schemas import load_schema

SARIF = "application/sarif+json"
PREDICATE = {"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"}


def _document(result: CliResult, code: int) -> dict[str, Any]:
    """The JSON document (on exit 0 and on exit 1 alike), validated against the shipped schema."""
    expect(result, code)
    document: dict[str, Any] = result.json()
    jsonschema.validate(document, load_schema("verify"))
    assert document["ok"] is (code == EXIT_OK)
    return document


def _by_spec(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["spec"]: entry for entry in document["requirements"]}


# -- raw-HTTP seeding, for the fake (API) and the real registry (tag schema, fallback indexes by hand) ---------


class Seeder:
    """Images, indexes and referrers in one repository; with ``fallback``, each referrer is also listed in
    its subject's tag-schema index, as a client writes it on a registry without the referrers API."""

    def __init__(self, client: httpx.Client, url: str, repo: str, *, fallback: bool) -> None:
        self.client, self.url, self.repo, self.fallback = client, url, repo, fallback
        self._listed: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.descriptors: dict[str, dict[str, Any]] = {}

    def image(self, tag: str, layer: bytes) -> dict[str, Any]:
        return subject_of(push_image(self.client, self.url, self.repo, tag=tag, layer=layer))

    def index(self, tag: str, children: list[dict[str, Any]]) -> dict[str, Any]:
        return push_index(self.client, self.url, self.repo, tag, children)

    def referrer(self, subject: dict[str, Any], artifact_type: str,
                 annotations: dict[str, str] | None = None) -> str:
        """An artifact whose subject is ``subject``, pushed by digest; listed in the fallback index if asked."""
        payload = f"{artifact_type} for {subject['digest']} #{uuid.uuid4().hex}".encode()
        entry = push_referrer(self.client, self.url, self.repo, subject, artifact_type, payload,
                              annotations=annotations)
        digest: str = entry["digest"]
        self.descriptors[digest] = {key: entry[key] for key in ("mediaType", "digest", "size")}
        if self.fallback:
            listed = self._listed[subject["digest"]]
            listed.append(entry)
            push_fallback_index(self.client, self.url, self.repo, subject["digest"], listed)
        return digest


# =============================================================================================================
# The real registry: a graph attached with the real CLI (tag schema)
# =============================================================================================================


class Attached(SignedSbom):
    def verify(self, *args: str) -> CliResult:
        return self.cli("verify", *args)


@pytest.fixture(scope="module")
def attached(registry_plain: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attached]:
    """image ← CycloneDX SBOM ← Notary signature (of the SBOM): two real attaches, shared by the module."""
    work = tmp_path_factory.mktemp("verify-attached")
    repo = f"test/verify-{uuid.uuid4().hex[:8]}"
    yield Attached(**vars(attach_signed_sbom(registry_plain, repo, work)))


def test_tag_schema_aliases_and_chain_hold(attached: Attached) -> None:
    a = attached
    document = _document(a.verify(f"{a.ref}:v1", "-r", "sbom", "-r", "sbom > signature", "-r", CYCLONEDX,
                                  "-O", "json"), EXIT_OK)
    assert document["reference"] == f"{a.ref}:v1"
    assert document["digest"] == a.image
    assert document["missing"] == []
    assert document["attempts"] == 1
    entries = _by_spec(document)
    assert list(entries) == ["sbom", "sbom>signature", CYCLONEDX]
    assert entries["sbom"]["found"] == [a.sbom] and entries["sbom"]["paths"] == [[a.sbom]]
    assert entries["sbom>signature"]["found"] == [a.sbom]
    assert entries["sbom>signature"]["paths"] == [[a.sbom, a.signature]]
    assert all(e["subject"] == a.image and e["needed"] == 1 and e["satisfied"] for e in entries.values())
    assert "platform" not in entries["sbom"]
    # the image and the SBOM, each listed once for all three requirements
    assert document["listings"] == 2


def test_tag_schema_text_output(attached: Attached) -> None:
    a = attached
    result = expect(a.verify(f"{a.ref}:v1", "-r", "sbom>signature"), EXIT_OK)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"Checked {a.ref}:v1 ({a.image})"
    assert lines[1] == "✓ sbom>signature: 1 of 1"
    assert lines[2].strip() == f"{a.sbom} > {a.signature}"
    assert lines[-1] == "The requirement holds"


def test_missing_referrer_exits_1_with_the_document_on_stdout(attached: Attached) -> None:
    a = attached
    # the signature signs the SBOM, not the image: a plain "signature" is missing, and so is a second SBOM
    result = a.verify(f"{a.ref}:v1", "-r", "sbom", "-r", "signature", "-r", "sbom*2", "-O", "json")
    document = _document(result, EXIT_VERIFICATION_FAILED)
    assert document["missing"] == ["signature", "sbom*2"]
    entries = _by_spec(document)
    assert entries["sbom"]["satisfied"] is True
    assert entries["signature"] == {"spec": "signature", "satisfied": False, "found": [], "needed": 1,
                                    "paths": [], "subject": a.image, "candidates": 0, "examined": []}
    assert entries["sbom*2"]["found"] == [a.sbom] and entries["sbom*2"]["needed"] == 2
    # unmet: every candidate was examined
    assert entries["sbom*2"]["candidates"] == 1 and entries["sbom*2"]["examined"] == [a.sbom]
    assert result.stderr.strip().splitlines()[-1] == "Error: verification failed: missing signature, sbom*2"


def test_missing_referrer_text_marks(attached: Attached) -> None:
    a = attached
    result = expect(a.verify(f"{a.ref}:v1", "-r", "sbom", "-r", "sbom>attestation"), EXIT_VERIFICATION_FAILED)
    assert "✓ sbom: 1 of 1" in result.stderr
    assert "✗ sbom>attestation: missing (0 of 1)" in result.stderr
    assert result.stderr.splitlines()[-1] == "Error: verification failed: missing sbom>attestation"


def test_chain_from_the_signed_sbom_by_digest(attached: Attached) -> None:
    a = attached
    document = _document(a.verify(f"{a.ref}@{a.sbom}", "-r", "signature", "-O", "json"), EXIT_OK)
    assert _by_spec(document)["signature"]["found"] == [a.signature]


def test_require_file(attached: Attached, tmp_path: Path) -> None:
    a = attached
    gate = tmp_path / "gate.txt"
    gate.write_text("# production gate\n\nsbom            # an SBOM\nsbom > signature  # and it is signed\n")
    document = _document(a.verify(f"{a.ref}:v1", "--require-file", str(gate), "-O", "json"), EXIT_OK)
    assert [e["spec"] for e in document["requirements"]] == ["sbom", "sbom>signature"]

    stricter = tmp_path / "stricter.txt"
    stricter.write_text("sbom\nvuln-report, signature\n")
    document = _document(a.verify(f"{a.ref}:v1", "-r", "sbom", "--require-file", str(stricter), "-O", "json"),
                         EXIT_VERIFICATION_FAILED)
    assert [e["spec"] for e in document["requirements"]] == ["sbom", "vuln-report", "signature"]
    assert document["missing"] == ["vuln-report", "signature"]


def test_wait_times_out_with_exit_1(attached: Attached) -> None:
    a = attached
    started = time.monotonic()
    result = a.verify(f"{a.ref}:v1", "-r", "sbom", "-r", "vuln-report", "--wait", "1.5s", "--interval", "500ms",
                      "-O", "json")
    elapsed = time.monotonic() - started
    document = _document(result, EXIT_VERIFICATION_FAILED)
    assert document["missing"] == ["vuln-report"]
    assert document["waited"] >= 1.5 and elapsed >= 1.5
    assert document["attempts"] >= 3  # checks at 0 s, 0.5 s, 1 s and the last one at 1.5 s
    # the met requirement is not asked again: one listing of the image per check, never one per requirement
    assert document["listings"] == document["attempts"]
    assert "Waiting for vuln-report: check 1 done" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: verification failed: missing vuln-report (after ")


def _verify_then(args: tuple[str, ...], env: dict[str, str], meanwhile: Callable[[], None]) -> CliResult:
    """Run ``ci-oras verify`` and call ``meanwhile`` once its first check has reported a miss (the progress
    line on stderr): the write happens strictly between two checks, whatever the machine's load, with no
    fixed delay to guess."""
    process = subprocess.Popen([sys.executable, "-m", "ci_oras", "verify", *args], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    assert process.stderr is not None and process.stdout is not None
    try:
        for line in process.stderr:
            lines.append(line)
            if "check 1 done" in line:
                meanwhile()
                break
        lines.extend(process.stderr)
        stdout = process.stdout.read()
        returncode = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return CliResult(returncode, stdout, "".join(lines))


def test_wait_succeeds_when_a_referrer_is_attached_meanwhile(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    """verify starts first and polls; ``ci-oras attach-signature`` runs once its first check found nothing."""
    repo = f"test/verify-wait-{uuid.uuid4().hex[:8]}"
    env = clean_env(tmp_path)
    with httpx.Client(timeout=30) as client:
        pushed = push_image(client, registry_plain.url, repo, tag="v1")
    image = pushed.manifest_digest
    (tmp_path / "image.sig").write_bytes(notary_jws(make_chain(), target=subject_of(pushed)))
    ref = f"{registry_plain.host}/{repo}"
    attach: dict[str, CliResult] = {}

    def attach_now() -> None:
        attach["result"] = invoke_cli("attach-signature", f"{ref}:v1", "image.sig", "-O", "json", env=env,
                                   cwd=tmp_path)

    result = _verify_then((f"{ref}:v1", "-r", "signature", "--wait", "1m", "--interval", "0.3", "-O", "json"),
                          env, attach_now)
    signature = expect(attach["result"], 0).json()["digest"]
    document = _document(result, EXIT_OK)
    assert _by_spec(document)["signature"]["found"] == [signature]
    assert document["digest"] == image
    # it really waited for the attach: the first check found nothing, a later one found the signature
    assert document["attempts"] >= 2
    assert document["waited"] < 60
    assert "Waiting for signature: check 1 done" in result.stderr


def _assert_error_document(result: CliResult, kind: str) -> None:
    """A verify that failed before judging anything prints the error document, not a verify result."""
    document = result.json()
    jsonschema.validate(document, load_schema("error"))
    assert document["step"] == "verify" and document["error"]["kind"] == kind, document
    assert document["error"]["message"] in result.stderr


def test_not_found_exits_3(attached: Attached) -> None:
    a = attached
    result = a.verify(f"{a.ref}:nope", "-r", "sbom", "-O", "json")
    _assert_error_document(expect(result, EXIT_NOT_FOUND), "not-found")
    expect(a.verify(f"{a.registry.host}/test/missing-{uuid.uuid4().hex[:8]}:v1", "-r", "sbom"), EXIT_NOT_FOUND)
    # --wait waits for referrers, not for the subject: a missing REF fails at once
    started = time.monotonic()
    expect(a.verify(f"{a.ref}:nope", "-r", "sbom", "--wait", "30s"), EXIT_NOT_FOUND)
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(("args", "message"), [
    ((), "needs at least one requirement"),
    (("-r", "sbm"), "did you mean 'sbom'"),
    (("-r", "sbom>"), "empty element"),
    (("-r", "signature*0"), "count of 0"),
    (("-r", "sbom", "--wait", "soon"), "invalid --wait 'soon'"),
    (("-r", "sbom", "--wait", "5s", "--interval", "0"), "--interval must be more than 0"),
    (("-r", "sbom", "--require-file", "/nonexistent/gate.txt"), "requirements file not found"),
    (("-r", "sbom", "--platform", "linux/amd64", "--all-platforms"), "mutually exclusive"),
    (("-r", "sbom", "--platform", "linux/amd64"), "not an image index"),
    (("-r", "sbom", "--referrers", "sometimes"), "invalid --referrers"),
])
def test_usage_errors_exit_2(attached: Attached, args: tuple[str, ...], message: str) -> None:
    a = attached
    result = expect(a.verify(f"{a.ref}:v1", *args, "-O", "json"), EXIT_USAGE)
    _assert_error_document(result, "usage")
    assert message in result.stderr


def test_bad_line_in_require_file_names_file_and_line(attached: Attached, tmp_path: Path) -> None:
    a = attached
    gate = tmp_path / "gate.txt"
    gate.write_text("sbom\n# ok\nsignature*two\n")
    result = expect(a.verify(f"{a.ref}:v1", "--require-file", str(gate)), EXIT_USAGE)
    assert f"{gate}:3:" in result.stderr and "signature*2" in result.stderr


# =============================================================================================================
# The fake registry with the referrers API (seeded by raw HTTP; requests counted)
# =============================================================================================================


@dataclass(frozen=True)
class ApiGraph:
    fake: FakeRegistry
    repo: str
    env: dict[str, str]
    image: dict[str, Any]
    cyclonedx: str
    cyclonedx_signature: str
    spdx: str
    signature: str
    bundle_signature: str
    bundle_attestation: str
    sarif: str

    @property
    def ref(self) -> str:
        return f"{self.fake.host}/{self.repo}"

    def verify(self, *args: str) -> CliResult:
        return invoke_cli("verify", *args, env=self.env)

    def referrer_requests(self) -> list[str]:
        return [r.target for r in self.fake.requests if "/referrers/" in r.path]


@pytest.fixture(scope="module")
def api_graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiGraph]:
    """image ← CycloneDX ← Notary; ← SPDX (unsigned); ← Notary; ← Sigstore bundle (signature);
    ← Sigstore bundle with predicateType (attestation); ← SARIF."""
    fake = FakeRegistry()
    repo = "verify/app"
    try:
        with httpx.Client(timeout=30) as client:
            seed = Seeder(client, fake.url, repo, fallback=False)
            image = seed.image("v1", b"the api image\n")
            cyclonedx = seed.referrer(image, CYCLONEDX)
            spdx = seed.referrer(image, SPDX)
            signature = seed.referrer(image, NOTARY)
            bundle_signature = seed.referrer(image, SIGSTORE_BUNDLE,
                                             {"dev.sigstore.bundle.content": "message-signature"})
            bundle_attestation = seed.referrer(image, SIGSTORE_BUNDLE,
                                               {**PREDICATE, "dev.sigstore.bundle.content": "dsse-envelope"})
            sarif = seed.referrer(image, SARIF)
            cyclonedx_signature = seed.referrer(seed.descriptors[cyclonedx], NOTARY)
        yield ApiGraph(fake, repo, clean_env(tmp_path_factory.mktemp("verify-api")), image, cyclonedx,
                       cyclonedx_signature, spdx, signature, bundle_signature, bundle_attestation, sarif)
    finally:
        fake.stop()


def test_api_aliases(api_graph: ApiGraph) -> None:
    g = api_graph
    document = _document(g.verify(f"{g.ref}:v1", "-r", "sbom", "-r", "signature", "-r", "attestation",
                                  "-r", "vuln-report", "-r", "sbom*2", "-r", "signature*2", "-O", "json"), EXIT_OK)
    entries = _by_spec(document)
    # one is needed: the first candidate in listing order (none has a creation time) holds it, the rest
    # are not examined
    assert entries["sbom"]["found"] == entries["sbom"]["examined"] == [g.cyclonedx]
    # candidates: both SBOMs and both Sigstore bundles (a bundle's predicate may make it an SBOM attestation)
    assert entries["sbom"]["candidates"] == 4 and entries["sbom"]["unexamined"]["count"] == 3
    # a Sigstore bundle with a predicateType is an attestation, not a signature
    assert entries["signature*2"]["found"] == [g.signature, g.bundle_signature]
    assert entries["attestation"]["found"] == [g.bundle_attestation]
    assert entries["vuln-report"]["found"] == [g.sarif]
    assert entries["sbom*2"]["found"] == [g.cyclonedx, g.spdx]
    assert entries["sbom*2"]["needed"] == 2 and entries["signature*2"]["needed"] == 2


def test_api_counts_and_chains_that_fail(api_graph: ApiGraph) -> None:
    g = api_graph
    document = _document(g.verify(f"{g.ref}:v1", "-r", "sbom*3", "-r", "signature*3", "-r", "sbom>signature",
                                  "-r", "sbom>signature*2", "-r", f"{SPDX}>signature", "-O", "json"),
                         EXIT_VERIFICATION_FAILED)
    entries = _by_spec(document)
    assert document["missing"] == ["sbom*3", "signature*3", "sbom>signature*2", f"{SPDX}>signature"]
    assert entries["sbom>signature"]["satisfied"] is True
    assert entries["sbom>signature"]["paths"] == [[g.cyclonedx, g.cyclonedx_signature]]
    assert entries["sbom>signature*2"]["found"] == [g.cyclonedx]
    assert entries[f"{SPDX}>signature"] == {"spec": f"{SPDX}>signature", "satisfied": False, "found": [],
                                             "needed": 1, "paths": [], "subject": g.image["digest"],
                                             "candidates": 1, "examined": [g.spdx]}


def test_api_lists_each_node_once_for_all_requirements(api_graph: ApiGraph) -> None:
    g = api_graph
    g.fake.clear()
    document = _document(g.verify(f"{g.ref}:v1", "-r", "sbom", "-r", "signature", "-r", "attestation",
                                  "-r", "vuln-report", "-r", "sbom>signature", "-r", "sbom>attestation",
                                  "-O", "json"), EXIT_VERIFICATION_FAILED)
    assert document["missing"] == ["sbom>attestation"]
    listed = g.referrer_requests()
    # the image once, unfiltered; each SBOM once (both match 'sbom'); never the signatures or the report
    assert sorted(listed) == sorted(f"/v2/{g.repo}/referrers/{d}" for d in (g.image["digest"], g.cyclonedx, g.spdx))
    assert document["listings"] == 3


def test_api_single_type_is_matched_here_not_by_the_server_filter(api_graph: ApiGraph) -> None:
    """The registry's filter compares case-sensitively, types do not: one unfiltered listing, then one GET of
    the one listed manifest that can match, to check it."""
    g = api_graph
    g.fake.clear()
    document = _document(g.verify(f"{g.ref}:v1", "-r", SPDX, "-O", "json"), EXIT_OK)
    assert _by_spec(document)[SPDX]["found"] == [g.spdx]
    (request,) = [r for r in g.fake.requests if "/referrers/" in r.path]
    assert request.params == {}
    assert [r.path for r in g.fake.requests if r.method == "GET" and "/manifests/sha256:" in r.path] == [
        f"/v2/{g.repo}/manifests/{g.spdx}"]
    assert document["fetches"] == 1 and document["rejected"] == []


def test_api_chain_follows_only_matching_referrers(api_graph: ApiGraph) -> None:
    g = api_graph
    g.fake.clear()
    _document(g.verify(f"{g.ref}:v1", "-r", f"{CYCLONEDX}>signature", "-O", "json"), EXIT_OK)
    listed = [(r.path, r.params) for r in g.fake.requests if "/referrers/" in r.path]
    # the image (never filtered by the registry); then only the CycloneDX SBOM
    assert listed == [(f"/v2/{g.repo}/referrers/{g.image['digest']}", {}),
                      (f"/v2/{g.repo}/referrers/{g.cyclonedx}", {})]


def test_api_not_found_exits_3(api_graph: ApiGraph) -> None:
    g = api_graph
    result = g.verify(f"{g.ref}:v9", "-r", "sbom", "-O", "json")
    _assert_error_document(expect(result, EXIT_NOT_FOUND), "not-found")


def test_api_wait_succeeds_when_seeded_meanwhile(fake_registry: Any, tmp_path: Path) -> None:
    fake: FakeRegistry = fake_registry()
    repo = "verify/wait"
    with httpx.Client(timeout=30) as client:
        seed = Seeder(client, fake.url, repo, fallback=False)
        image = seed.image("v1", b"waiting image\n")
        seed.referrer(image, CYCLONEDX)
        seeded: list[str] = []
        result = _verify_then((f"{fake.host}/{repo}:v1", "-r", "sbom", "-r", "attestation", "--wait", "30",
                               "--interval", "200ms", "-O", "json"), clean_env(tmp_path),
                              lambda: seeded.append(seed.referrer(image, SIGSTORE_BUNDLE, PREDICATE)))
    document = _document(result, EXIT_OK)
    assert _by_spec(document)["attestation"]["found"] == seeded
    # it waited: the first check without the attestation, a later one with it
    assert document["attempts"] >= 2
    assert "Waiting for attestation: check 1 done" in result.stderr
    # 'sbom' held at the first check and was not asked again: one image listing per check
    assert document["listings"] == document["attempts"]


@dataclass(frozen=True)
class MultiArch:
    host: str
    repo: str
    env: dict[str, str]
    index: str
    amd64: str
    arm64: str
    amd64_sbom: str

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:multi"

    def verify(self, *args: str) -> CliResult:
        return invoke_cli("verify", self.ref, *args, env=self.env)


@pytest.fixture(scope="module", params=["tag-schema", "api"])
def multi_arch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiArch]:
    """index(linux/amd64, linux/arm64, a buildx attestation manifest) ← signature;
    amd64 ← SBOM, ← signature; arm64 ← signature. Nothing refers to the buildx attestation manifest."""
    fake: FakeRegistry | None = None
    if request.param == "api":
        fake = FakeRegistry()
        host, url = fake.host, fake.url
    else:
        registry: RunningRegistry = request.getfixturevalue("registry_plain")
        host, url = registry.host, registry.url
    repo = f"test/multi-{uuid.uuid4().hex[:8]}"
    try:
        with httpx.Client(timeout=30) as client:
            seed = Seeder(client, url, repo, fallback=request.param == "tag-schema")
            amd64 = seed.image("amd64", b"amd64 image\n")
            arm64 = seed.image("arm64", b"arm64 image\n")
            buildx = seed.image("buildx-attestation", b"in-toto provenance, buildx style\n")
            index = seed.index("multi", [
                with_platform(amd64, "linux/amd64"),
                with_platform(arm64, "linux/arm64"),
                with_platform(buildx, "unknown/unknown", annotations={
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": amd64["digest"]}),
            ])
            seed.referrer(index, NOTARY)
            amd64_sbom = seed.referrer(amd64, SPDX)
            seed.referrer(amd64, NOTARY)
            seed.referrer(arm64, SIGSTORE_BUNDLE)
        yield MultiArch(host, repo, clean_env(tmp_path_factory.mktemp("verify-multi")), index["digest"],
                        amd64["digest"], arm64["digest"], amd64_sbom)
    finally:
        if fake is not None:
            fake.stop()


def test_platform_checks_that_child(multi_arch: MultiArch) -> None:
    m = multi_arch
    document = _document(m.verify("--platform", "linux/amd64", "-r", "sbom", "-r", "signature", "-O", "json"),
                         EXIT_OK)
    assert document["digest"] == m.index and document["mediaType"] == OCI_INDEX
    assert [(e["spec"], e["subject"], e["platform"]) for e in document["requirements"]] == [
        ("sbom", m.amd64, "linux/amd64"), ("signature", m.amd64, "linux/amd64")]
    assert _by_spec(document)["sbom"]["found"] == [m.amd64_sbom]

    result = expect(m.verify("--platform", "linux/arm64", "-r", "sbom", "-r", "signature"),
                    EXIT_VERIFICATION_FAILED)
    assert "✗ [linux/arm64] sbom: missing (0 of 1)" in result.stderr
    assert "✓ [linux/arm64] signature: 1 of 1" in result.stderr
    assert result.stderr.splitlines()[-1] == "Error: verification failed: missing sbom on linux/arm64"


def test_all_platforms_checks_every_child(multi_arch: MultiArch) -> None:
    m = multi_arch
    document = _document(m.verify("--all-platforms", "-r", "signature", "-O", "json"), EXIT_OK)
    # the buildx attestation manifest (unknown/unknown) is not a platform: not checked
    assert [(e["subject"], e["platform"]) for e in document["requirements"]] == [
        (m.amd64, "linux/amd64"), (m.arm64, "linux/arm64")]

    result = m.verify("--all-platforms", "-r", "sbom", "-r", "signature", "-O", "json")
    document = _document(result, EXIT_VERIFICATION_FAILED)
    assert [(e["platform"], e["spec"], e["satisfied"]) for e in document["requirements"]] == [
        ("linux/amd64", "sbom", True), ("linux/amd64", "signature", True),
        ("linux/arm64", "sbom", False), ("linux/arm64", "signature", True)]
    assert document["missing"] == ["sbom"]
    assert result.stderr.splitlines()[-1] == "Error: verification failed: missing sbom on linux/arm64"


def test_index_itself_without_platform_flags(multi_arch: MultiArch) -> None:
    m = multi_arch
    document = _document(m.verify("-r", "signature", "-O", "json"), EXIT_OK)
    assert [(e["subject"], "platform" in e) for e in document["requirements"]] == [(m.index, False)]
    result = expect(m.verify("-r", "sbom"), EXIT_VERIFICATION_FAILED)
    # the SBOM hangs off a child: the error says how to check the children
    assert "--all-platforms" in result.stderr.splitlines()[-1]


def test_platform_errors(multi_arch: MultiArch) -> None:
    m = multi_arch
    missing = expect(m.verify("--platform", "linux/s390x", "-r", "sbom"), EXIT_NOT_FOUND)
    assert "available: linux/amd64, linux/arm64" in missing.stderr
    expect(m.verify("--platform", "linux", "-r", "sbom"), EXIT_USAGE)
