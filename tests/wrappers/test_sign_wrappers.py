"""The ``sign`` wrappers and verify's trust inputs, run for real on each platform against a docker-registry.

On GitHub (act), GitLab (gitlab-ci-local) and Azure (each task's ``index.js`` run as the agent runs it), a
subject pushed for the test is signed through the wrapper (the key in an environment variable named by
``key-env``, and in a file named by ``key``), then gated with ``verify`` and ``signed-by`` (the root from
``tests/harness/notary_pki.py``) or, on GitHub and Azure, ``trust-policy`` with ``trust-store``:

* the gates on the trusted root pass, and each sign step's ``digest`` output is a Notary signature referring to
  the subject, the very one verify reports as verified;
* the gate on a stranger's root fails the job, with the failed check and its reason in the result document;
* neither ``key`` nor ``key-env`` fails with the CLI's one-line message, and a key pasted where a path or a
  variable's name belongs is refused before the command line is echoed;
* the key's text, and any PEM ``PRIVATE KEY`` line, appears nowhere in the job's log. The key is given as a
  plain, unmasked variable, so that no platform masking can hide a leak.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from harness.cli import clean_env, run_cli
from harness.notary_pki import make_pki, make_root
from harness.registry import RunningRegistry
from test_azure import _result, _run_task, _substitute, _variables
from test_gitlab import _gitlab_ci_local
from wrapper_tools import REPO_ROOT, ActRunner, failed_summary, installed_path

integration = pytest.mark.integration

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
NOTARY = "application/vnd.cncf.notary.signature"
NO_KEY = "sign needs exactly one of --key and --key-env"
PASTED = "must be the path of a file, not its content"


@dataclass(frozen=True)
class Signing:
    """A signer's files: its key (text and file), its chain, its root, the root of a stranger, and a notation
    trust policy with its trust store trusting the signer's root (strict, any identity)."""

    key_pem: str
    key_file: Path
    chain: Path
    root: Path
    stranger_root: Path
    trust_policy: Path
    trust_store: Path

    def assert_not_in(self, log: str) -> None:
        """Neither the key (nor any line of it) nor any PEM private-key armour is in ``log``."""
        assert "PRIVATE KEY" not in log, "a PEM private key line reached the log"
        body = [line for line in self.key_pem.splitlines() if line and not line.startswith("-----")]
        assert body, "the key has no body"
        leaked = [line for line in body if line in log]
        assert not leaked, f"{len(leaked)} line(s) of the key reached the log"


def _signing(directory: Path, kind: str) -> Signing:
    directory.mkdir(parents=True, exist_ok=True)
    pki = make_pki(kind)
    _, stranger = make_root("Stranger Root CA", slot=1)
    key_pem = pki.key_pem().decode("ascii")
    (directory / "key.pem").write_text(key_pem, encoding="ascii")
    (directory / "chain.pem").write_bytes(pki.chain_pem)
    (directory / "root.pem").write_bytes(pki.root_pem)
    (directory / "stranger.pem").write_bytes(stranger.public_bytes(serialization.Encoding.PEM))
    store = pki.write_store(directory / "truststore", "acme")
    policy = {"version": "1.0", "trustPolicies": [{
        "name": "release", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}]}
    (directory / "trustpolicy.json").write_text(json.dumps(policy), encoding="utf-8")
    return Signing(key_pem, directory / "key.pem", directory / "chain.pem", directory / "root.pem",
                   directory / "stranger.pem", directory / "trustpolicy.json", store)


@dataclass(frozen=True)
class Subject:
    reference: str  # REGISTRY/REPO:v1
    digest: str
    home: Path  # for CLI calls of the test itself

    def notary_referrers(self) -> set[str]:
        """The digests of the Notary signatures the registry lists for the subject."""
        found = _cli(self.home, "discover", self.reference)
        return {r["digest"] for r in found["referrers"] if r["artifactType"] == NOTARY}


def _cli(home: Path, *args: str, cwd: Path | None = None) -> dict[str, Any]:
    result = run_cli(*args, "--output", "json", "--plain-http", "--emit", "none", env=clean_env(home), cwd=cwd)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = result.json()
    return document


def _subject(registry: RunningRegistry, tmp_path: Path, platform: str) -> Subject:
    work = tmp_path / "subject"
    work.mkdir()
    (work / "app.txt").write_text(f"signed on {platform}\n", encoding="utf-8")
    reference = f"{registry.host}/sign-{platform}/{uuid.uuid4().hex[:8]}:v1"
    pushed = _cli(tmp_path / "home", "push", reference, "app.txt", cwd=work)
    return Subject(reference, pushed["digest"], tmp_path / "home")


def _failed_signatures(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(failed check, reason) of each signature a verify result document lists as failed."""
    return [(s["failedCheck"], s["reason"]) for s in result["signatures"] if s["result"] == "failed"]


def _assert_stranger_refused(result: dict[str, Any], signatures: set[str]) -> None:
    assert result["ok"] is False and result["missing"] == ["signature"], result
    assert {s["digest"] for s in result["signatures"]} == signatures
    failed = _failed_signatures(result)
    assert len(failed) == len(signatures), result["signatures"]
    for check, reason in failed:
        assert check == "authenticity" and "trust store" in reason, (check, reason)


def _assert_trusted(result: dict[str, Any], signatures: set[str]) -> None:
    assert result["ok"] is True, result
    assert {s["digest"] for s in result["signatures"] if s["result"] == "verified"} == signatures


# --- GitHub Actions under act --------------------------------------------------------------------------------


@integration
def test_github_sign_then_verify_signed_by(act: ActRunner, registry_plain: RunningRegistry, tmp_path: Path) -> None:
    signing = _signing(tmp_path / "keys", "ec256")
    subject = _subject(registry_plain, tmp_path, "github")
    run = act("sign.yml", {
        "SUBJECT": subject.reference, "KEY_PEM": signing.key_pem, "KEY_FILE": str(signing.key_file),
        "CHAIN": str(signing.chain), "ROOT": str(signing.root), "STRANGER_ROOT": str(signing.stranger_root),
        "TRUST_POLICY": str(signing.trust_policy), "TRUST_STORE": str(signing.trust_store),
    })
    assert run.returncode == 0, run.log

    jws, cose = run.recorded("jws.json"), run.recorded("cose.json")
    for outputs, envelope in ((jws, "jws"), (cose, "cose")):
        assert DIGEST.match(outputs["digest"]), outputs
        assert outputs["subject"] == subject.digest
        assert outputs["artifact-type"] == NOTARY
        assert json.loads(outputs["result"])["signature"]["format"] == envelope
    # the optional inputs reached ci-oras: expiry 1d, one annotation per line
    signed = json.loads(cose["result"])
    assert signed["annotations"]["org.example.pipeline"] == "act"
    times = [dt.datetime.fromisoformat(signed["signature"][k].replace("Z", "+00:00"))
             for k in ("signingTime", "expiry")]
    assert times[1] - times[0] == dt.timedelta(days=1)
    assert "expiry" not in json.loads(jws["result"])["signature"]
    signatures = {jws["digest"], cose["digest"]}
    assert len(signatures) == 2
    # the digest outputs are the signatures the registry lists for the subject
    assert subject.notary_referrers() == signatures

    trusted = run.recorded("trusted.json")
    assert trusted["ok"] == "true"
    _assert_trusted(json.loads(trusted["result"]), signatures)
    policy = json.loads(run.recorded("policy.json")["result"])
    _assert_trusted(policy, signatures)
    assert {s["policy"] for s in policy["signatures"]} == {"release"}

    stranger = run.recorded("stranger.json")
    assert stranger["ok"] == "false"
    _assert_stranger_refused(json.loads(stranger["result"]), signatures)
    # every step that had to fail did (continue-on-error keeps the job going)
    assert run.recorded("outcomes.txt").split() == ["failure"] * 4
    # Each reason is read from the job summary: act drops what a failing step printed last when it exits
    # before act's terminal reader caught up (host mode returns on the exit status without draining).
    assert NO_KEY in failed_summary(run, "no-key")
    assert f"input 'key' {PASTED}" in failed_summary(run, "pasted-key")
    assert "sign --emit github" in run.messages("no-key")  # ci-oras ran and refused
    assert "input 'key-env' must be the name of an environment variable" in failed_summary(run, "value-as-name")
    for refused in ("pasted-key", "value-as-name"):  # refused before anything was echoed or run
        assert "sign --emit github" not in run.messages(refused)

    signing.assert_not_in(run.raw)


# --- GitLab CI under gitlab-ci-local -------------------------------------------------------------------------


@integration
def test_gitlab_sign_then_verify_signed_by(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    signing = _signing(tmp_path / "keys", "rsa2048")
    subject = _subject(registry_plain, tmp_path, "gitlab")
    run = _gitlab_ci_local(tmp_path, "sign.yml", {
        "SUBJECT": subject.reference, "KEY_FILE": str(signing.key_file), "SIGNING_KEY": signing.key_pem,
        "CHAIN": str(signing.chain), "ROOT": str(signing.root), "STRANGER_ROOT": str(signing.stranger_root),
    })
    assert run.returncode == 0, run.log

    signatures = {run.recorded("jws-digest"), run.recorded("cose-digest")}
    assert all(DIGEST.match(digest) for digest in signatures) and len(signatures) == 2, run.log
    assert run.recorded("jws-subject") == run.recorded("cose-subject") == subject.digest
    assert subject.notary_referrers() == signatures

    assert run.recorded("trusted-ok") == "true"
    _assert_trusted(json.loads(run.recorded("trusted-result.json")), signatures)
    assert run.recorded("stranger-ok") == "false"
    _assert_stranger_refused(json.loads(run.recorded("stranger-result.json")), signatures)
    assert "refused, authenticity:" in run.log  # the reason, in the failed job's own log
    # the jobs that had to fail did, with ci-oras's exit code: 1 verification failed, 2 bad input
    for job, code in (("verify-stranger", 1), ("sign-without-key", 2), ("sign-pasted-key", 2),
                      ("sign-value-as-name", 2)):
        assert re.search(rf"^{job}\s+finished in .* WARN {code}\s*$", run.log, re.M), (job, run.log)
    for job in ("sign-jws", "sign-cose", "verify-trusted"):
        assert re.search(rf"^ PASS  {job}\s*$", run.log, re.M), (job, run.log)

    assert NO_KEY in run.log
    assert f"input 'key' {PASTED}" in run.log
    assert "input 'key-env' must be the name of a variable holding the secret" in run.log
    signing.assert_not_in(run.log)


# --- Azure Pipelines: each task's index.js, run as the agent runs it ----------------------------------------


@dataclass(frozen=True)
class TaskRun:
    returncode: int
    log: str  # stdout and stderr: what the agent would log
    result: str  # from ##vso[task.complete]
    variables: dict[str, str]  # the output variables set


@dataclass(frozen=True)
class AzureAgent:
    """Runs a staged task the way the agent does (``_run_task`` of test_azure.py, debug logging on)."""

    node: str
    staged: Path
    tmp_path: Path

    def run(self, step: str, inputs: dict[str, str], env: dict[str, str] | None = None) -> TaskRun:
        ran = _run_task(self.node, self.staged, step, inputs, self.tmp_path, extra_env=env)
        log = ran.stdout + ran.stderr
        return TaskRun(ran.returncode, log, _result(ran), _variables(log))


@integration
def test_azure_sign_then_verify_signed_by(node: str, staged: Path, registry_plain: RunningRegistry,
                                          tmp_path: Path) -> None:
    signing = _signing(tmp_path / "keys", "ec384")
    subject = _subject(registry_plain, tmp_path, "azure")
    agent = AzureAgent(node, staged, tmp_path)
    common = {"SUBJECT": subject.reference, "CERT": str(signing.chain), "PLAINHTTP": "true"}

    # a secure file: DownloadSecureFile@1's secureFilePath is the key input
    jws = agent.run("sign", {**common, "KEY": str(signing.key_file)})
    # a secret variable mapped into the step's env, named by keyEnv
    cose = agent.run("sign", {**common, "KEYENV": "SIGNING_KEY", "SIGNATUREFORMAT": "cose", "EXPIRY": "1d"},
                     env={"SIGNING_KEY": signing.key_pem})
    for ran, envelope in ((jws, "jws"), (cose, "cose")):
        assert ran.result == "Succeeded", ran.log
        assert DIGEST.match(ran.variables["digest"]) and ran.variables["subject"] == subject.digest
        assert ran.variables["artifactType"] == NOTARY
        assert json.loads(ran.variables["result"])["signature"]["format"] == envelope
    signatures = {jws.variables["digest"], cose.variables["digest"]}
    assert len(signatures) == 2 and subject.notary_referrers() == signatures

    gate = {"REFERENCE": subject.reference, "PLAINHTTP": "true"}
    trusted = agent.run("verify", {**gate, "REQUIRE": "signature*2", "SIGNEDBY": str(signing.root)})
    assert trusted.result == "Succeeded", trusted.log
    assert trusted.variables["ok"] == "true"
    _assert_trusted(json.loads(trusted.variables["result"]), signatures)
    policy = agent.run("verify", {**gate, "REQUIRE": "signature*2", "TRUSTPOLICY": str(signing.trust_policy),
                                  "TRUSTSTORE": str(signing.trust_store)})
    assert policy.result == "Succeeded", policy.log
    _assert_trusted(json.loads(policy.variables["result"]), signatures)

    stranger = agent.run("verify", {**gate, "REQUIRE": "signature", "SIGNEDBY": str(signing.stranger_root)})
    assert stranger.result == "Failed" and stranger.returncode != 0, stranger.log
    assert "ci-oras verify failed with exit code 1" in stranger.log
    assert stranger.variables["ok"] == "false"
    _assert_stranger_refused(json.loads(stranger.variables["result"]), signatures)

    no_key = agent.run("sign", common)
    assert no_key.result == "Failed" and NO_KEY in no_key.log, no_key.log
    assert "ci-oras sign failed with exit code 2" in no_key.log and 'ci-oras "sign"' in no_key.log
    # the key's text where its path or its variable's name belongs: refused before ci-oras runs, and never
    # read through the task library, whose debug log (on here) shows every value it reads
    pasted = agent.run("sign", {**common, "KEY": signing.key_pem})
    assert pasted.result == "Failed" and f"input 'key' {PASTED}" in pasted.log, pasted.log
    as_name = agent.run("sign", {**common, "KEYENV": signing.key_pem})
    assert as_name.result == "Failed", as_name.log
    assert "input 'keyEnv' must be the name of an environment variable" in as_name.log
    for refused in (pasted, as_name):
        assert "ci-oras \"sign\"" not in refused.log  # the command line was never echoed: ci-oras never ran

    for ran in (jws, cose, trusted, policy, stranger, no_key, pasted, as_name):
        signing.assert_not_in(ran.log)


@integration
def test_azure_template_signs_with_a_secret_variable_mapped_by_its_env_parameter(
        registry_plain: RunningRegistry, tmp_path: Path) -> None:
    """templates/sign.yml: the ``env`` parameter maps the secret into the step, ``keyEnv`` names it. The bash
    step runs with parameters substituted as Azure would (``_substitute`` of test_azure.py, plus the ``each``)."""
    signing = _signing(tmp_path / "keys", "ec256")
    subject = _subject(registry_plain, tmp_path, "azure-template")
    mapped = {"SIGNING_KEY": signing.key_pem}
    script, env = _substitute(REPO_ROOT / "azure-pipelines/templates/sign.yml", {
        "subject": subject.reference, "keyEnv": "SIGNING_KEY", "cert": str(signing.chain), "plainHttp": "true",
        "env": mapped})
    each = [name for name in env if name.startswith("${{ each ")]
    assert each == ["${{ each variable in parameters.env }}"], env
    del env[each[0]]
    base = {k: v for k, v in clean_env(tmp_path / "home").items() if not k.startswith("INPUT_")}
    base["PATH"] = installed_path(tmp_path / "bin")
    ran = subprocess.run(["bash", "-c", script], cwd=tmp_path, env={**base, **env, **mapped}, capture_output=True,
                         text=True, check=False, timeout=120)
    log = ran.stdout + ran.stderr
    assert ran.returncode == 0, log
    assert _variables(log)["digest"] in subject.notary_referrers()
    signing.assert_not_in(log)
