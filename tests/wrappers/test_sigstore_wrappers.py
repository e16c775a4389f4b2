"""The ``verify`` wrappers' Sigstore inputs, run for real on each platform against a docker-registry.

The test's local Sigstore instance (``tests/harness/sigstore_instance.py``) mints bundles as cosign v3 and
GitHub's attest actions make them, and the test attaches them as those tools push them: to GOOD a cosign
signature and a SLSA provenance attestation, both signed by acme/shop's release workflow; to STRANGER a
signature by mallory/shop's. On GitHub (act), GitLab (gitlab-ci-local) and Azure (the task's ``index.js`` run
as the agent runs it), each in one run, ``verify`` gates on them with the instance's ``trusted_root.json``
(``trusted-root``):

* GOOD under cosign's identity (``certificate-identity``, ``certificate-oidc-issuer``) and under gh
  attestation's (``github-repo``, ``signer-workflow``), requiring ``signature`` and
  ``attestation:https://slsa.dev/provenance/v1``: the gates pass, both bundles verified as signed by that
  workflow, none merely counted;
* STRANGER under cosign's regular expressions (``certificate-identity-regexp``,
  ``certificate-oidc-issuer-regexp``, anchored and escaped as a user writes them) and GOOD under another
  workflow (``signer-workflow``): the step fails the job with exit 1, every bundle failed on the ``identity``
  check, with the reason in the result document and in the log;
* GOOD under another repository (``github-repo``) with ``fail-on-missing: false``: refused the same way, yet the
  step passes with ``ok`` false.

So each of the seven inputs is seen to reach ci-oras intact on each platform: the refusals' reasons quote the
identity regexp, the workflow and the repository given; an identity without its issuer (or the reverse) is a
usage error (exit 2), so the gates on cosign's flags need both of their pair; and without ``trusted-root`` the
public-good root would refuse the local instance's certificates (the ``chain`` check).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gitlab_runner import job_output
from harness.cli import clean_env, invoke_cli_many
from harness.oci import push_image
from harness.registry import RunningRegistry
from harness.sigstore_instance import SigstoreInstance, Signer
from test_gitlab import _gitlab_ci_local
from test_sign_wrappers import AzureAgent, TaskRun
from wrapper_tools import ActRunner

integration = pytest.mark.integration

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"
PROVENANCE = "https://slsa.dev/provenance/v1"
#: Who signs GOOD (the harness's default signer); the workflow files name it too.
WORKFLOW = "https://github.com/acme/shop/.github/workflows/release.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"
STRANGER = Signer(identity="https://github.com/mallory/shop/.github/workflows/release.yml@refs/heads/main",
                  github_repository="mallory/shop")

#: The bundles the test attaches: name -> (the tag of the subject, the predicate type signed, the signer).
MINTED = {
    "signature": ("good", COSIGN_SIGN, Signer()),
    "provenance": ("good", PROVENANCE, Signer()),
    "stranger": ("stranger", COSIGN_SIGN, STRANGER),
}
#: What the refused gate on STRANGER gives as cosign's regular expressions.
IDENTITY_REGEXP = r"^https://github\.com/acme/shop/\.github/workflows/[a-z]+\.yml@refs/heads/main$"
ISSUER_REGEXP = r"^https://token\.actions\.githubusercontent\.com$"
#: The gates, as the workflow files name them: those that pass on GOOD, and those refused on the identity check,
#: with the subject they judge and what the reason must say (it quotes the input that reached ci-oras, as
#: ci-oras quotes it: a regular expression by its repr). The last, ``soft``, has ``fail-on-missing: false``:
#: refused, yet its step passes.
PASSING = ("identity", "github")
REFUSED = {
    "stranger": ("stranger", f"signed by {STRANGER.identity}, which does not match {IDENTITY_REGEXP!r}"),
    "other-workflow": ("good", f"signed by {WORKFLOW}, not the workflow acme/shop/.github/workflows/nightly.yml"),
    "soft": ("good", "built in repository acme/shop, not acme/other"),
}
GATES = (*PASSING, *REFUSED)


@dataclass(frozen=True)
class Seeded:
    """The two subjects, the digests of the bundles attached to them, and the root that trusts their signer."""

    good: str  # REGISTRY/REPO:good
    stranger: str  # REGISTRY/REPO:stranger
    bundles: dict[str, str]  # name (of MINTED) -> referrer digest
    trusted_root: Path

    def on(self, tag: str) -> dict[str, str]:
        """The bundles attached to the subject ``tag`` ("good" or "stranger"): digest -> the predicate type signed."""
        return {self.bundles[name]: predicate for name, (subject, predicate, _) in MINTED.items() if subject == tag}


def _seed(registry: RunningRegistry, sigstore: SigstoreInstance, tmp_path: Path, platform: str) -> Seeded:
    """Push GOOD and STRANGER and attach their bundles (cosign v3's and actions/attest's artifact type, layer
    and ``dev.sigstore.bundle.*`` annotations), as ``ci-oras attach`` does for a user."""
    assert Signer().identity == WORKFLOW and Signer().issuer == ISSUER
    repo = f"sigstore-{platform}/{uuid.uuid4().hex[:8]}"
    with httpx.Client(timeout=30) as client:
        digests = {tag: push_image(client, registry.url, repo, tag=tag, layer=f"{platform} {tag}\n".encode())
                   .manifest_digest for tag in ("good", "stranger")}
    work = tmp_path / "bundles"
    work.mkdir()
    runs = []
    for name, (tag, predicate, signer) in MINTED.items():
        bundle = sigstore.dsse_bundle(sigstore.statement(digests[tag], predicate), signer)
        (work / f"{name}.sigstore.json").write_bytes(bundle)
        runs.append(["attach", f"{registry.host}/{repo}@{digests[tag]}", f"{name}.sigstore.json:{BUNDLE}",
                     "--artifact-type", BUNDLE, "-a", "dev.sigstore.bundle.content=dsse-envelope",
                     "-a", f"dev.sigstore.bundle.predicateType={predicate}", "--plain-http", "--emit", "none",
                     "-O", "json"])
    attached = invoke_cli_many(runs, env=clean_env(tmp_path / "home"), cwd=work)
    assert all(result.returncode == 0 for result in attached), [result.stderr for result in attached]
    bundles = {name: json.loads(result.stdout)["digest"] for name, result in zip(MINTED, attached)}
    return Seeded(f"{registry.host}/{repo}:good", f"{registry.host}/{repo}:stranger", bundles,
                  sigstore.trusted_root)


def _verified(result: dict[str, Any], bundles: Mapping[str, str]) -> None:
    """Both requirements held, each of ``bundles`` (digest -> predicate type) verified as signed by WORKFLOW."""
    assert result["ok"] is True and result["missing"] == [], result
    held = {entry["spec"]: entry["satisfied"] for entry in result["requirements"]}
    assert held == {"signature": True, f"attestation:{PROVENANCE}": True}, result["requirements"]
    assert "unverifiedBundles" not in result, "the identity inputs did not reach ci-oras: nothing was verified"
    judged = {entry["digest"]: entry for entry in result["signatures"]}
    assert set(judged) == set(bundles), result["signatures"]
    for digest, entry in judged.items():
        assert (entry["result"], entry["predicateType"]) == ("verified", bundles[digest]), entry
        assert (entry["signer"], entry["issuer"]) == (WORKFLOW, ISSUER) and entry["logIndex"] >= 0, entry


def _refused(result: dict[str, Any], present: Mapping[str, str], reason: str) -> None:
    """The signature requirement missing, and every bundle of the subject (``present``: as none counted, verify
    judged them all) failed on the identity check for ``reason``."""
    assert result["ok"] is False and result["missing"] == ["signature"], result
    assert "unverifiedBundles" not in result, result
    failed = {entry["digest"]: (entry["result"], entry["failedCheck"], entry["reason"])
              for entry in result["signatures"]}
    assert failed == {digest: ("failed", "identity", reason) for digest in present}, failed


def _assert_gates(seeded: Seeded, ok: Mapping[str, str], results: Mapping[str, dict[str, Any]]) -> None:
    """What each gate of a platform's run reported (``ok`` and ``result`` outputs, by the gate's name)."""
    for gate in PASSING:
        assert ok[gate] == "true", (gate, results[gate])
        _verified(results[gate], seeded.on("good"))
    for gate, (subject, reason) in REFUSED.items():
        assert ok[gate] == "false", (gate, results[gate])
        _refused(results[gate], seeded.on(subject), reason)


# --- GitHub Actions under act --------------------------------------------------------------------------------


@integration
def test_github_verify_sigstore_identities(act: ActRunner, registry_plain: RunningRegistry,
                                           sigstore_instances: tuple[SigstoreInstance, SigstoreInstance],
                                           tmp_path: Path) -> None:
    seeded = _seed(registry_plain, sigstore_instances[0], tmp_path, "github")
    run = act("sigstore.yml", {"GOOD": seeded.good, "STRANGER": seeded.stranger,
                               "TRUSTED_ROOT": str(seeded.trusted_root)})
    assert run.returncode == 0, run.log

    outputs = {gate: run.recorded(f"{gate}.json") for gate in GATES}
    _assert_gates(seeded, {gate: outputs[gate]["ok"] for gate in GATES},
                  {gate: json.loads(outputs[gate]["result"]) for gate in GATES})
    for gate in GATES:
        assert json.loads(outputs[gate]["missing"]) == ([] if gate in PASSING else ["signature"]), outputs[gate]
    # the refused gates failed their steps (continue-on-error keeps the job going); the soft one did not
    assert run.recorded("outcomes.txt").split() == ["failure", "failure", "success"]
    soft = run.messages("soft")  # (a failed step's last lines may be lost under act: see ActRun.messages)
    assert f"refused, identity: {REFUSED['soft'][1]}" in soft
    assert "a required referrer is missing (fail-on-missing: false)" in soft


# --- GitLab CI under gitlab-ci-local -------------------------------------------------------------------------


@integration
def test_gitlab_verify_sigstore_identities(registry_plain: RunningRegistry,
                                           sigstore_instances: tuple[SigstoreInstance, SigstoreInstance],
                                           tmp_path: Path) -> None:
    seeded = _seed(registry_plain, sigstore_instances[0], tmp_path, "gitlab")
    run = _gitlab_ci_local(tmp_path, "sigstore.yml", {"GOOD": seeded.good, "STRANGER": seeded.stranger,
                                                      "TRUSTED_ROOT": str(seeded.trusted_root)})
    assert run.returncode == 0, run.log

    _assert_gates(seeded, {gate: run.recorded(f"{gate}-ok") for gate in GATES},
                  {gate: json.loads(run.recorded(f"{gate}-result.json")) for gate in GATES})
    # the refused jobs failed with ci-oras's exit code 1 (verification failed), the soft one passed
    for gate in ("stranger", "other-workflow"):
        assert re.search(rf"^verify-{gate}\s+finished in .* WARN 1\s*$", run.log, re.M), (gate, run.log)
    for gate in (*PASSING, "soft"):
        assert re.search(rf"^ PASS  verify-{gate}\s*$", run.log, re.M), (gate, run.log)
    for gate, (_, reason) in REFUSED.items():  # the reason, in the job's own log
        assert f"refused, identity: {reason}" in job_output(run.log, f"verify-{gate}"), (gate, run.log)
    assert "a required referrer is missing (fail-on-missing: false)" in job_output(run.log, "verify-soft")


# --- Azure Pipelines: the task's index.js, run as the agent runs it ----------------------------------------


@integration
def test_azure_verify_sigstore_identities(node: str, staged: Path, registry_plain: RunningRegistry,
                                          sigstore_instances: tuple[SigstoreInstance, SigstoreInstance],
                                          tmp_path: Path) -> None:
    seeded = _seed(registry_plain, sigstore_instances[0], tmp_path, "azure")
    both = "signature\nattestation:https://slsa.dev/provenance/v1\n"
    inputs = {
        "identity": {"reference": seeded.good, "require": both, "certificateIdentity": WORKFLOW,
                     "certificateOidcIssuer": ISSUER},
        "github": {"reference": seeded.good, "require": both, "githubRepo": "acme/shop",
                   "signerWorkflow": "acme/shop/.github/workflows/release.yml@refs/heads/main"},
        "stranger": {"reference": seeded.stranger, "require": "signature",
                     "certificateIdentityRegexp": IDENTITY_REGEXP, "certificateOidcIssuerRegexp": ISSUER_REGEXP},
        "other-workflow": {"reference": seeded.good, "require": "signature",
                           "signerWorkflow": "acme/shop/.github/workflows/nightly.yml"},
        "soft": {"reference": seeded.good, "require": "signature", "githubRepo": "acme/other",
                 "failOnMissing": "false"},
    }
    assert tuple(inputs) == GATES

    def run(gate: str) -> TaskRun:  # each in a directory of its own (HOME, agent temp), as on its own agent
        (tmp_path / gate).mkdir()
        agent = AzureAgent(node, staged, tmp_path / gate)
        return agent.run("verify", {"trustedRoot": str(seeded.trusted_root), "plainHttp": "true", **inputs[gate]})

    with ThreadPoolExecutor(max_workers=len(GATES)) as pool:
        runs = dict(zip(GATES, pool.map(run, GATES)))

    expected = {"stranger": "Failed", "other-workflow": "Failed", "soft": "SucceededWithIssues"}
    for gate, ran in runs.items():
        assert ran.result == expected.get(gate, "Succeeded"), (gate, ran.log)
        if ran.result == "Failed":
            assert ran.returncode != 0 and "ci-oras verify failed with exit code 1" in ran.log, (gate, ran.log)
        if gate in REFUSED:
            assert f"refused, identity: {REFUSED[gate][1]}" in ran.log, (gate, ran.log)
        assert json.loads(ran.variables["missing"]) == ([] if gate in PASSING else ["signature"]), ran.variables
    _assert_gates(seeded, {gate: ran.variables["ok"] for gate, ran in runs.items()},
                  {gate: json.loads(ran.variables["result"]) for gate, ran in runs.items()})
