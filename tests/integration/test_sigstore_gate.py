"""The gate on Sigstore bundles, end to end: bundles of the shapes cosign v3 and GitHub's ``actions/attest-*``
push (artifact type and layer ``application/vnd.dev.sigstore.bundle.v0.3+json``, ``dev.sigstore.bundle.*``
annotations), minted by a local Sigstore instance, attached with ``ci-oras attach`` to docker-registry (tag
schema) and to a registry with the referrers API, then verified by ``ci-oras verify`` with cosign's and
``gh attestation verify``'s identity flags, promoted into a password-protected registry and verified there.

Every refusal is exit 1 with the check that failed in the JSON result; nothing counts that was not verified.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import CliResult, clean_env, invoke_cli
from harness.fake_registry import FakeRegistry
from harness.oci import push_image
from harness.registry import RunningRegistry
from harness.sigstore_instance import SigstoreInstance, Signer

from ci_oras.errors import EXIT_OK, EXIT_USAGE, EXIT_VERIFICATION_FAILED
from ci_oras.schemas import load_schema

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PREDICATE = "dev.sigstore.bundle.predicateType"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"
PROVENANCE = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document/v2.3"
WORKFLOW = "https://github.com/acme/shop/.github/workflows/release.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"


@dataclass
class Seeded:
    """A repository on one registry: tag -> manifest digest, and the bundles attached (name -> digest)."""

    host: str
    repo: str
    env: dict[str, str]
    trusted_root: Path
    digests: dict[str, str]
    bundles: dict[str, str]

    def verify(self, tag: str, *args: str, policy: bool = True, host: str | None = None,
               repo: str | None = None) -> CliResult:
        flags = ["--certificate-identity", WORKFLOW, "--certificate-oidc-issuer", ISSUER,
                 "--trusted-root", str(self.trusted_root)] if policy else []
        return invoke_cli("verify", f"{host or self.host}/{repo or self.repo}:{tag}", *args, *flags, "-O", "json",
                          env=self.env)


def _document(result: CliResult, code: int) -> dict[str, Any]:
    assert result.returncode == code, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    document: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(document, load_schema("verify"))
    return document


def _held(document: dict[str, Any]) -> dict[str, bool]:
    return {entry["spec"]: entry["satisfied"] for entry in document["requirements"]}


def _attach(env: dict[str, str], work: Path, subject: str, bundle: bytes, predicate: str | None) -> str:
    """Attach ``bundle`` to ``subject`` as cosign v3 and actions/attest push one; its referrer's digest."""
    path = work / f"{uuid.uuid4().hex}.sigstore.json"
    path.write_bytes(bundle)
    annotations = ["-a", "dev.sigstore.bundle.content=" + ("dsse-envelope" if predicate else "message-signature")]
    if predicate:
        annotations += ["-a", f"{PREDICATE}={predicate}"]
    result = invoke_cli("attach", subject, f"{path.name}:{BUNDLE}", "--artifact-type", BUNDLE, *annotations,
                        "-O", "json", env=env, cwd=work)
    assert result.returncode == EXIT_OK, result.stderr
    digest: str = json.loads(result.stdout)["digest"]
    return digest


def _seed(host: str, url: str, env: dict[str, str], work: Path, local: SigstoreInstance,
          other: SigstoreInstance) -> Seeded:
    repo = f"sig/{uuid.uuid4().hex[:8]}"
    digests: dict[str, str] = {}
    with httpx.Client(timeout=30) as client:
        for tag in ("good", "tampered", "elsewhere", "expired", "unlogged", "untrusted", "stranger", "lying",
                    "unsigned-sbom"):
            digests[tag] = push_image(client, url, repo, tag=tag, layer=f"image {tag}".encode()).manifest_digest
    bundles: dict[str, str] = {}

    def attach(tag: str, bundle: bytes, predicate: str | None, name: str, subject: str | None = None) -> None:
        bundles[name] = _attach(env, work, subject or f"{host}/{repo}@{digests[tag]}", bundle, predicate)

    def statement(tag: str, predicate: str, digest: str | None = None) -> dict[str, Any]:
        return local.statement(digest or digests[tag], predicate)

    good = digests["good"]
    attach("good", local.dsse_bundle(statement("good", COSIGN_SIGN)), COSIGN_SIGN, "sign")
    attach("good", local.dsse_bundle(statement("good", PROVENANCE)), PROVENANCE, "provenance")
    attach("good", local.dsse_bundle(statement("good", SPDX)), SPDX, "sbom")
    # the SBOM bundle is itself signed (cosign v3 sign of the bundle's manifest): sbom>signature
    attach("good", local.dsse_bundle(local.statement(bundles["sbom"], COSIGN_SIGN)), COSIGN_SIGN, "sbom-sign",
           subject=f"{host}/{repo}@{bundles['sbom']}")
    attach("tampered", local.dsse_bundle(statement("tampered", COSIGN_SIGN), tamper_payload=True), COSIGN_SIGN,
           "tampered")
    attach("elsewhere", local.dsse_bundle(statement("elsewhere", COSIGN_SIGN, good)), COSIGN_SIGN, "elsewhere")
    attach("expired", local.dsse_bundle(statement("expired", COSIGN_SIGN), expired=True), COSIGN_SIGN, "expired")
    attach("unlogged", local.dsse_bundle(statement("unlogged", COSIGN_SIGN), log_entry=False), COSIGN_SIGN,
           "unlogged")
    attach("untrusted", other.dsse_bundle(other.statement(digests["untrusted"], COSIGN_SIGN)), COSIGN_SIGN,
           "untrusted")
    stranger = Signer(identity="https://github.com/mallory/shop/.github/workflows/release.yml@refs/heads/main",
                      github_repository="mallory/shop")
    attach("stranger", local.dsse_bundle(statement("stranger", COSIGN_SIGN), stranger), COSIGN_SIGN, "stranger")
    # annotated as provenance, but the signed statement is a cosign signature
    attach("lying", local.dsse_bundle(statement("lying", COSIGN_SIGN)), PROVENANCE, "lying")
    attach("unsigned-sbom", local.dsse_bundle(statement("unsigned-sbom", SPDX)), SPDX, "unsigned-sbom")
    return Seeded(host, repo, env, local.trusted_root, digests, bundles)


@pytest.fixture(scope="module")
def api_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module", params=["tag-schema", "referrers-api"])
def seeded(request: pytest.FixtureRequest, registry_plain: RunningRegistry, api_registry: FakeRegistry,
           sigstore_instances: tuple[SigstoreInstance, SigstoreInstance],
           tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    work = tmp_path_factory.mktemp("seed")
    env = clean_env(work)
    if request.param == "tag-schema":
        return _seed(registry_plain.host, registry_plain.url, env, work, *sigstore_instances)
    return _seed(api_registry.host, api_registry.url, env, work, *sigstore_instances)


def test_a_signed_attested_image_passes_the_gate_with_every_bundle_reported(seeded: Seeded) -> None:
    result = seeded.verify("good", "-r", "signature", "-r", f"attestation:{PROVENANCE}*1", "-r", "sbom>signature",
                           "-r", "attestation*1")
    document = _document(result, EXIT_OK)
    assert result.stderr.strip() == "", "nothing but the result: no warning from the verifier's libraries"
    assert all(_held(document).values())
    judged = {entry["digest"]: entry for entry in document["signatures"]}
    for name, predicate in (("sign", COSIGN_SIGN), ("provenance", PROVENANCE), ("sbom", SPDX),
                            ("sbom-sign", COSIGN_SIGN)):
        entry = judged[seeded.bundles[name]]
        assert entry["result"] == "verified" and entry["predicateType"] == predicate, entry
        assert (entry["signer"], entry["issuer"]) == (WORKFLOW, ISSUER) and entry["logIndex"] >= 0
    assert "unverifiedBundles" not in document


def test_github_shorthand_and_signer_workflow(seeded: Seeded) -> None:
    base = ["--trusted-root", str(seeded.trusted_root), "-r", "signature"]
    passed = invoke_cli("verify", f"{seeded.host}/{seeded.repo}:good", *base, "--github-repo", "acme/shop",
                        "--signer-workflow", "acme/shop/.github/workflows/release.yml", "-O", "json", env=seeded.env)
    assert _held(_document(passed, EXIT_OK)) == {"signature": True}
    refused = invoke_cli("verify", f"{seeded.host}/{seeded.repo}:good", *base, "--github-repo", "acme/other",
                         "-O", "json", env=seeded.env)
    document = _document(refused, EXIT_VERIFICATION_FAILED)
    assert {entry["failedCheck"] for entry in document["signatures"]} == {"identity"}


@pytest.mark.parametrize(("tag", "check"), [
    ("tampered", "signature"), ("elsewhere", "subject"), ("expired", "chain"), ("unlogged", "tlog"),
    ("untrusted", "chain"), ("stranger", "identity"),
])
def test_each_spoiled_signature_fails_the_gate_naming_the_check(seeded: Seeded, tag: str, check: str) -> None:
    document = _document(seeded.verify(tag, "-r", "signature"), EXIT_VERIFICATION_FAILED)
    assert document["missing"] == ["signature"]
    [entry] = document["signatures"]
    assert (entry["digest"], entry["result"], entry["failedCheck"]) == (seeded.bundles[tag], "failed", check)
    assert entry["reason"]


def test_the_verified_statement_decides_the_kind_not_the_annotation(seeded: Seeded) -> None:
    document = _document(seeded.verify("lying", "-r", f"attestation:{PROVENANCE}", "-r", "signature"),
                         EXIT_VERIFICATION_FAILED)
    assert _held(document) == {f"attestation:{PROVENANCE}": False, "signature": True}
    # without a policy nothing is verified: the annotation is all there is, and the result says so
    unverified = _document(seeded.verify("lying", "-r", f"attestation:{PROVENANCE}", policy=False), EXIT_OK)
    assert unverified["unverifiedBundles"] == [seeded.bundles["lying"]] and "signatures" not in unverified


def test_an_unsigned_sbom_attestation_is_an_sbom_but_not_a_signed_one(seeded: Seeded) -> None:
    document = _document(seeded.verify("unsigned-sbom", "-r", "sbom", "-r", "sbom>signature"),
                         EXIT_VERIFICATION_FAILED)
    assert _held(document) == {"sbom": True, "sbom>signature": False}


def test_the_public_good_root_does_not_trust_a_local_instance(seeded: Seeded) -> None:
    """Without --trusted-root the shipped public-good root judges, offline: the local CA is not in it."""
    result = invoke_cli("verify", f"{seeded.host}/{seeded.repo}:good", "-r", "signature", "--certificate-identity",
                        WORKFLOW, "--certificate-oidc-issuer", ISSUER, "-O", "json", env=seeded.env)
    document = _document(result, EXIT_VERIFICATION_FAILED)
    assert {entry["failedCheck"] for entry in document["signatures"]} == {"chain"}


def test_bundles_still_verify_after_promotion_into_a_password_protected_registry(
        seeded: Seeded, registry_htpasswd: RunningRegistry, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    auth = base64.b64encode(f"{registry_htpasswd.username}:{registry_htpasswd.password}".encode()).decode()
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {registry_htpasswd.host: {"auth": auth}}}))
    env = clean_env(home)
    destination = f"prod/{uuid.uuid4().hex[:8]}"
    promoted = invoke_cli("promote", f"{seeded.host}/{seeded.repo}:good", f"{registry_htpasswd.host}/{destination}:v1",
                          "-O", "json", env=env)
    assert promoted.returncode == EXIT_OK, promoted.stderr
    gate = invoke_cli("verify", f"{registry_htpasswd.host}/{destination}:v1", "-r", "signature",
                      "-r", f"attestation:{PROVENANCE}", "-r", "sbom>signature", "--github-repo", "acme/shop",
                      "--trusted-root", str(seeded.trusted_root), "-O", "json", env=env)
    document = _document(gate, EXIT_OK)
    assert {entry["result"] for entry in document["signatures"]} == {"verified"}
    # discover shows the graph as cosign and actions/attest left it: the bundles under the image, the SBOM's
    # signature under the SBOM bundle, each with the predicate-type annotation it was attached with
    found = invoke_cli("discover", f"{registry_htpasswd.host}/{destination}:v1", "-O", "json", env=env)
    assert found.returncode == EXIT_OK, found.stderr
    below = {referrer["digest"]: referrer for referrer in json.loads(found.stdout)["referrers"]}
    for name in ("sign", "provenance", "sbom"):
        referrer = below[seeded.bundles[name]]
        assert referrer["artifactType"] == BUNDLE and PREDICATE in referrer.get("annotations", {}), referrer
    assert [child["digest"] for child in below[seeded.bundles["sbom"]]["referrers"]] == [seeded.bundles["sbom-sign"]]


@pytest.mark.parametrize(("args", "message"), [
    (["--trusted-root", "root.json"], "--trusted-root needs an identity"),
    (["--certificate-identity", WORKFLOW], "needs both who signed and who vouched"),
    (["--github-repo", "acme"], "is not OWNER/REPO"),
    (["--github-repo", "acme/shop", "--trusted-root", "missing.json"], "cannot read trusted root"),
    (["--github-repo", "acme/shop", "--trusted-root", "bad.json"], "is not a Sigstore trusted root"),
    (["--github-repo", "acme/shop", "--trust-listing"], "--trust-listing cannot be combined"),
])
def test_flags_that_cannot_work_are_usage_errors_before_any_request(tmp_path: Path, args: list[str],
                                                                    message: str) -> None:
    (tmp_path / "bad.json").write_text("{}")
    (tmp_path / "root.json").write_text("{}")
    result = invoke_cli("verify", "127.0.0.1:9/none/such:v1", "-r", "signature", *args, env=clean_env(tmp_path),
                        cwd=tmp_path)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
