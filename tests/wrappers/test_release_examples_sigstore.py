"""The keyless release examples, run end to end: ``examples/github/release-attested.yml`` under act (GitHub
artifact attestations of the build provenance and the SBOM, pushed to the registry) and
``examples/gitlab/release-cosign.gitlab-ci.yml`` under gitlab-ci-local (a cosign v3 signature), each gating
promotion with ci-oras verify on who signed, promoting to a second registry with other credentials and gating
again there.

The example files run after a small explicit transformation that swaps only what cannot run offline, as
:mod:`test_release_example_github` and :mod:`test_examples` do for theirs:

- GitHub: ``your-org/ci-oras/actions/X@…`` -> ``./actions/X``; each remote action -> a step doing its part here
  from the step's own inputs (``id`` and ``env`` kept): ``docker/login-action`` -> ``ci-oras login`` to the dev
  registry, which stands for ghcr.io; ``docker/build-push-action`` -> ``ci-oras push`` of a small artifact as the
  image, to the step's ``tags``, with its digest as the ``digest`` output; ``anchore/sbom-action`` -> a fixture
  SPDX 2.3 SBOM at the step's ``output-file``; ``actions/attest-build-provenance`` and ``actions/attest-sbom`` ->
  a bundle minted by the harness's local Sigstore instance (:data:`MINT_SCRIPT`) for the step's
  ``subject-name``/``subject-digest``, attached with ``ci-oras attach`` the way those actions push it with
  ``push-to-registry: true`` (artifact and layer type ``application/vnd.dev.sigstore.bundle.v0.3+json``,
  ``dev.sigstore.bundle.content=dsse-envelope``, ``dev.sigstore.bundle.predicateType=<the statement's>``).
- GitLab: ``include: project:`` -> ``include: local:`` of this checkout's templates with ``package: ""``; the
  ``build`` job's script (docker build and push, cosign sign) -> :data:`GITLAB_FIXTURE_BUILD`: ``ci-oras push`` of
  a small artifact with the job token, the same dotenv report, and a bundle minted as cosign v3 signs (an in-toto
  statement of predicate type ``https://sigstore.dev/cosign/sign/v1`` about the digest, in a DSSE envelope)
  attached as cosign v3 attaches it. The docker-in-docker ``image`` and ``services`` serve the docker build
  alone and go with it; the job keeps everything else, ``id_tokens`` included (gitlab-ci-local has no ID token
  to give; the minted certificate carries the identity GitLab.com's token would).
- Both: every verify step gets ``trusted-root:`` the harness instance's ``trusted_root.json``. The examples verify
  against the public-good root ci-oras ships (what the attest actions and cosign sign with on GitHub.com and
  GitLab.com); a bundle from the public-good instance cannot be made offline, and a local instance's cannot pass
  that root, so this one input is the substitution that lets the runs happen at all. The identity inputs run as
  written.
- Both: the placeholders a user replaces (``DEV``/``PROD`` on GitHub, ``PROD`` on GitLab), and the run's own
  context: on GitHub the repository ``acme/app`` (``GITHUB_REPOSITORY``; act would otherwise take it from a git
  remote this checkout lacks), the tag push ``refs/tags/v1.2.3``; on GitLab a project ``acme/app`` on
  GitLab.com (the test repository's git remote, from which gitlab-ci-local derives ``CI_PROJECT_URL``,
  ``CI_SERVER_URL``, ``CI_PROJECT_PATH``) and ``CI_COMMIT_TAG``.

Who signs is what Fulcio would certify for the run's OIDC token (:data:`MINT_SCRIPT`'s ``signer``): on GitHub
``https://github.com/<repository>/.github/workflows/release-attested.yml@<ref>`` (the ``job_workflow_ref`` claim;
the file where the example's header says to copy it) with issuer ``https://token.actions.githubusercontent.com``
and the repository claims; on GitLab ``https://<server>/<project path>//.gitlab-ci.yml@refs/tags/<tag>`` (the
``ci_config_ref_uri`` claim) with issuer ``CI_SERVER_URL``. The second run of each example signs as another
repository (``FIXTURE_SIGNER_REPOSITORY``: a fork, say), drops the first gate's ``wait`` (a gate meant to fail
would spend it all) and must stop at the gate with nothing sent to production.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitlab_runner import (failed, job_output, local_templates, make_repository, passed, run_gitlab_ci_local,
                           started)
from harness.cli import clean_env, run_cli
from samples.make_samples import spdx_json
from wrapper_tools import (REPO_ROOT, ActRun, ActRunner, Guarded, assert_example_passes_jactionlint,
                           assert_only_own_credentials, failed_summary, require_tool, third_party_actions)

GITHUB_EXAMPLE = REPO_ROOT / "examples" / "github" / "release-attested.yml"
GITLAB_EXAMPLE = REPO_ROOT / "examples" / "gitlab" / "release-cosign.gitlab-ci.yml"
#: Where the GitHub example's header says to copy it: the workflow file its certificates name.
WORKFLOW_PATH = ".github/workflows/release-attested.yml"
OWN_ACTION = "your-org/ci-oras/actions/"
TAG = "v1.2.3"
#: The repository (GitHub) and project (GitLab) the runs belong to, and the one that signs instead in the runs
#: whose gate must refuse.
REPOSITORY = "acme/app"
STRANGER = "mallory/app"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PROVENANCE = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document/v2.3"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_IDENTITY = f"https://github.com/{REPOSITORY}/{WORKFLOW_PATH}@refs/tags/{TAG}"
GITLAB_IDENTITY = f"https://gitlab.com/{REPOSITORY}//.gitlab-ci.yml@refs/tags/{TAG}"
#: A bundle as ci-oras verify's text output lists it: mark, bundle digest, predicate type, subject, verdict.
JUDGED = re.compile(r"([✓✗]) (sha256:[0-9a-f]{64})(?: (\S+))? \(of (sha256:[0-9a-f]{64})\): (.*)$", re.M)

pytestmark = pytest.mark.integration

#: Fulcio, Rekor and the signing client for the runs: ``python mint.py STATE init`` makes a local Sigstore
#: instance (tests/harness/sigstore_instance.py) in the directory STATE and prints its trusted_root.json;
#: ``python mint.py STATE KIND SUBJECT-NAME DIGEST OUT [SBOM]`` writes a bundle for KIND (``provenance``, ``sbom``
#: of the SBOM file, ``cosign-sign``) about DIGEST to OUT, signed as the job's OIDC identity, and prints the
#: statement's predicate type. The instance's keys live in STATE between calls (pickled, keys and certificates as
#: DER), so every bundle of a run chains to the one trusted root and lands in the one log.
MINT_SCRIPT = r'''
import json
import os
import pickle
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from harness.sigstore_instance import STATEMENT_TYPE, Signer, mint_instance

PROVENANCE = "https://slsa.dev/provenance/v1"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, ec.EllipticCurvePrivateKey):
            return ("key", obj.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        if isinstance(obj, x509.Certificate):
            return ("certificate", obj.public_bytes(serialization.Encoding.DER))
        return None


class Unpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        kind, der = pid
        return serialization.load_der_private_key(der, None) if kind == "key" else x509.load_der_x509_certificate(der)


def signer():
    """Who Fulcio certifies for this job's OIDC token; FIXTURE_SIGNER_REPOSITORY: a run of another repository."""
    env = os.environ
    if env.get("GITHUB_ACTIONS") == "true":
        repository = env.get("FIXTURE_SIGNER_REPOSITORY") or env["GITHUB_REPOSITORY"]
        path, ref = env["FIXTURE_WORKFLOW_PATH"], env["GITHUB_REF"]
        return Signer(identity=f"https://github.com/{repository}/{path}@{ref}", github_repository=repository,
                      github_ref=ref, github_workflow_path=path, github_sha=env["GITHUB_SHA"],
                      github_event=env["GITHUB_EVENT_NAME"], github_workflow_name=env["GITHUB_WORKFLOW"],
                      github_run_id=env["GITHUB_RUN_ID"])
    if env.get("CI_SERVER_URL"):
        project = env.get("FIXTURE_SIGNER_REPOSITORY") or env["CI_PROJECT_PATH"]
        ref = f"refs/tags/{env['CI_COMMIT_TAG']}" if env.get("CI_COMMIT_TAG") else f"refs/heads/{env['CI_COMMIT_BRANCH']}"
        config = env.get("CI_CONFIG_PATH") or ".gitlab-ci.yml"
        return Signer(identity=f"https://{env['CI_SERVER_HOST']}/{project}//{config}@{ref}",
                      issuer=env["CI_SERVER_URL"], github_repository=None)
    raise SystemExit("mint: neither a GitHub Actions step nor a GitLab job")


def provenance(who):
    """The SLSA v1 predicate actions/attest-build-provenance writes (GitHub's workflow build type)."""
    repository = f"https://github.com/{who.github_repository}"
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": who.github_ref, "repository": repository,
                                                "path": who.github_workflow_path}},
            "internalParameters": {"github": {"event_name": who.github_event,
                                              "repository_id": who.github_repository_id,
                                              "repository_owner_id": who.github_owner_id,
                                              "runner_environment": who.github_runner_environment}},
            "resolvedDependencies": [{"uri": f"git+{repository}@{who.github_ref}",
                                      "digest": {"gitCommit": who.github_sha}}],
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"},
                       "metadata": {"invocationId": f"{repository}/actions/runs/{who.github_run_id}/attempts/1"}},
    }


def sbom_predicate(path):
    """actions/attest-sbom's predicate: the SBOM itself, typed by its format (SPDX by its version)."""
    sbom = json.loads(Path(path).read_text(encoding="utf-8"))
    if sbom.get("spdxVersion") and sbom.get("SPDXID"):
        return f"https://spdx.dev/Document/v{sbom['spdxVersion'].split('-')[1]}", sbom
    if sbom.get("bomFormat") and sbom.get("serialNumber") and sbom.get("specVersion"):
        return "https://cyclonedx.org/bom", sbom
    raise SystemExit(f"mint: {path} is neither SPDX nor CycloneDX JSON")


def statement(kind, name, digest, extra, who):
    hex_digest = digest.removeprefix("sha256:")
    if kind == "cosign-sign":  # cosign v3: the digest (no name) with its annotations, an empty predicate
        return {"_type": STATEMENT_TYPE, "subject": [{"digest": {"sha256": hex_digest}, "annotations": {}}],
                "predicateType": COSIGN_SIGN, "predicate": {}}
    if kind == "provenance":
        predicate_type, predicate = PROVENANCE, provenance(who)
    elif kind == "sbom":
        predicate_type, predicate = sbom_predicate(extra[0])
    else:
        raise SystemExit(f"mint: unknown kind {kind}")
    return {"_type": STATEMENT_TYPE, "subject": [{"name": name, "digest": {"sha256": hex_digest}}],
            "predicateType": predicate_type, "predicate": predicate}


def main(state, command, *rest):
    state = Path(state)
    pickled = state / "instance.pickle"
    if command == "init":
        instance = mint_instance(state)
    else:
        with pickled.open("rb") as handle:
            instance = Unpickler(handle).load()
        name, digest, out, *extra = rest
        who = signer()
        document = statement(command, name, digest, extra, who)
        Path(out).write_bytes(instance.dsse_bundle(document, who))
    with pickled.open("wb") as handle:
        Pickler(handle).dump(instance)
    print(instance.trusted_root if command == "init" else document["predicateType"])


main(*sys.argv[1:])
'''


@dataclass(frozen=True)
class Minter:
    """:data:`MINT_SCRIPT` written for a test, its instance made: what the fixture steps run, and its root."""

    script: Path
    state: Path
    trusted_root: Path

    def env(self) -> dict[str, str]:
        """The variables the fixture steps read: the development python (it has the harness's cryptography),
        the script and the instance."""
        return {"FIXTURE_PYTHON": sys.executable, "FIXTURE_MINT": str(self.script),
                "FIXTURE_SIGSTORE": str(self.state)}


@pytest.fixture
def minter(tmp_path: Path) -> Minter:
    script = tmp_path / "mint.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(REPO_ROOT / 'tests')!r})\n{MINT_SCRIPT}",
                      encoding="utf-8")
    state = tmp_path / "sigstore"
    made = subprocess.run([sys.executable, str(script), str(state), "init"], check=True, capture_output=True,
                          text=True, timeout=60)
    trusted_root = Path(made.stdout.strip())
    assert trusted_root.is_file(), made.stdout + made.stderr
    return Minter(script, state, trusted_root)


def _cli_json(home: Path, registry: Guarded, *args: str) -> Any:
    """``ci-oras ARGS --output json`` straight at ``registry`` with its own account (the test's view)."""
    result = run_cli(*args, "--output", "json", "--emit", "none", "-u", registry.username, "--password-stdin",
                     env=clean_env(home), stdin=registry.password + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.json()


def _bundles(home: Path, registry: Guarded, repo: str, digest: str) -> dict[str, str]:
    """The Sigstore bundles referring to ``repo@digest`` (nothing else may): digest -> predicate type annotation."""
    graph = _cli_json(home, registry, "discover", f"{registry.registry.host}/{repo}@{digest}")
    found = {}
    for node in graph["referrers"]:
        assert node["artifactType"] == BUNDLE and not node["referrers"], node
        found[node["digest"]] = node["annotations"]["dev.sigstore.bundle.predicateType"]
        assert node["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope", node
    return found


def _assert_promoted(home: Path, dev: Guarded, dev_repo: str, prod: Guarded, prod_repo: str, digest: str,
                     predicate_types: list[str]) -> dict[str, str]:
    """Production holds ``digest`` under the tag and ``latest`` with the same bundles as dev, of these types."""
    for tag in (TAG, "latest"):
        fetched = _cli_json(home, prod, "manifest", "fetch", f"{prod.registry.host}/{prod_repo}:{tag}")
        assert fetched["digest"] == digest, tag
    bundles = _bundles(home, dev, dev_repo, digest)
    assert sorted(bundles.values()) == sorted(predicate_types), bundles
    assert _bundles(home, prod, prod_repo, digest) == bundles
    return bundles


def _judged(output: str) -> dict[str, tuple[str, str, str, str]]:
    """What a verify step's text output says of each bundle: digest -> (mark, predicate type, subject, verdict)."""
    return {bundle: (mark, kind, subject, verdict.strip())
            for mark, bundle, kind, subject, verdict in JUDGED.findall(output)}


# --- GitHub Actions: act -----------------------------------------------------------------------------------------


def _login_fixture(inputs: dict[str, Any]) -> dict[str, Any]:
    assert inputs.keys() == {"registry", "username", "password"} and inputs["registry"] == "ghcr.io", inputs
    return {"env": {"LOGIN_USERNAME": inputs["username"], "LOGIN_PASSWORD": inputs["password"]},
            "run": 'echo "$LOGIN_PASSWORD" | ci-oras login --emit none "$FIXTURE_REGISTRY" -u "$LOGIN_USERNAME"'
                   ' --password-stdin\n'}


def _build_fixture(inputs: dict[str, Any]) -> dict[str, Any]:
    assert inputs.keys() == {"push", "tags"} and inputs["push"] is True, inputs
    return {"env": {"BUILD_TAGS": inputs["tags"]},
            "run": 'printf "fixture app %s\\n" "$GITHUB_REF_NAME" > app.txt\n'
                   'ci-oras push --emit none --output json --artifact-type application/vnd.example.app'
                   ' "$BUILD_TAGS" app.txt > "$RUNNER_TEMP/pushed.json"\n'
                   'python3 -c \'import json, sys; print("digest=" + json.load(open(sys.argv[1]))["digest"])\''
                   ' "$RUNNER_TEMP/pushed.json" >> "$GITHUB_OUTPUT"\n'}


def _sbom_fixture(inputs: dict[str, Any]) -> dict[str, Any]:
    assert inputs.keys() == {"image", "format", "output-file", "upload-artifact"}, inputs
    assert inputs["format"] == "spdx-json" and inputs["upload-artifact"] is False, inputs
    return {"env": {"SBOM_OUTPUT": inputs["output-file"]}, "run": 'cp "$FIXTURE_SBOM" "$SBOM_OUTPUT"\n'}


#: What an attest action with push-to-registry leaves in the registry: a bundle minted for the step's subject,
#: attached with the artifact type and annotations actions/attest gives it.
ATTACH_BUNDLE = (
    'ci-oras attach --emit none "$SUBJECT_NAME@$SUBJECT_DIGEST" "$BUNDLE_FILE:' + BUNDLE + '"'
    ' --artifact-type ' + BUNDLE + ' -a dev.sigstore.bundle.content=dsse-envelope'
    ' -a "dev.sigstore.bundle.predicateType=$predicate_type"\n')


def _attest_fixture(kind: str) -> Any:
    def fixture(inputs: dict[str, Any]) -> dict[str, Any]:
        expected = {"subject-name", "subject-digest", "push-to-registry"} | ({"sbom-path"} if kind == "sbom" else set())
        assert inputs.keys() == expected and inputs["push-to-registry"] is True, inputs
        env = {"SUBJECT_NAME": inputs["subject-name"], "SUBJECT_DIGEST": inputs["subject-digest"],
               "BUNDLE_FILE": f"{kind}.sigstore.json", "SBOM_PATH": inputs.get("sbom-path", "")}
        return {"env": env,
                "run": f'predicate_type="$("$FIXTURE_PYTHON" "$FIXTURE_MINT" "$FIXTURE_SIGSTORE" {kind}'
                       ' "$SUBJECT_NAME" "$SUBJECT_DIGEST" "$BUNDLE_FILE"'
                       + (' "$SBOM_PATH"' if kind == "sbom" else "") + ')"\n' + ATTACH_BUNDLE}
    return fixture


#: The remote actions act cannot run offline, each replaced by a step doing its part here (module docstring).
GITHUB_FIXTURES = {"docker/login-action": _login_fixture, "docker/build-push-action": _build_fixture,
                   "anchore/sbom-action": _sbom_fixture,
                   "actions/attest-build-provenance": _attest_fixture("provenance"),
                   "actions/attest-sbom": _attest_fixture("sbom")}


def github_test_variant(example: dict[Any, Any], env: dict[str, str], trusted_root: Path) -> dict[str, Any]:
    """The GitHub example as act runs it offline (module docstring): remote actions -> :data:`GITHUB_FIXTURES`,
    this checkout's actions, ``trusted-root`` on each verify step, the ``env`` placeholders from ``env``."""
    # PyYAML reads the `on` key as YAML 1.1's true: give the workflow its key back
    variant = {("on" if key is True else key): value for key, value in copy.deepcopy(example).items()}
    (job,) = variant["jobs"].values()
    replaced, verify_steps = set(), 0
    for index, step in enumerate(job["steps"]):
        action = step.get("uses", "").partition("@")[0]
        if action in GITHUB_FIXTURES:
            fixture = GITHUB_FIXTURES[action](step["with"])
            job["steps"][index] = {key: step[key] for key in ("id", "env") if key in step}
            job["steps"][index]["env"] = {**job["steps"][index].get("env", {}), **fixture.pop("env")}
            job["steps"][index].update(name=f"Fixture for {action}", **fixture)
            replaced.add(action)
        elif action.startswith(OWN_ACTION):
            step["uses"] = "./actions/" + action.removeprefix(OWN_ACTION)
            if step["uses"] == "./actions/verify":
                assert "trusted-root" not in step["with"]
                step["with"]["trusted-root"] = str(trusted_root)
                verify_steps += 1
        else:
            assert action in ("", "actions/checkout"), action
    assert replaced == set(GITHUB_FIXTURES) and verify_steps == 2
    assert set(env) == set(variant["env"]), "the example's placeholders"
    variant["env"].update(env)
    return variant


def _run_github(act: ActRunner, tmp_path: Path, minter: Minter, dev: Guarded, prod: Guarded, *,
                signer_repository: str | None = None) -> tuple[ActRun, str, str]:
    """The example under act, a tag push of ``acme/app``: dev stands for ghcr.io (``github.actor`` and
    ``secrets.GITHUB_TOKEN`` its account), the production account in the secrets. ``signer_repository``: the
    attestations are signed in that repository's run instead, and the gate checks once. Returns the run and the
    two repositories."""
    dev_repo = f"acme/app-dev-{uuid.uuid4().hex[:8]}"
    prod_repo = f"team/app-{uuid.uuid4().hex[:8]}"
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_bytes(spdx_json())
    example = yaml.safe_load(GITHUB_EXAMPLE.read_text(encoding="utf-8"))
    variant = github_test_variant(example, {"DEV": f"{dev.host}/{dev_repo}", "PROD": f"{prod.host}/{prod_repo}"},
                                  minter.trusted_root)
    env = {**minter.env(), "FIXTURE_REGISTRY": dev.host, "FIXTURE_SBOM": str(sbom),
           "FIXTURE_WORKFLOW_PATH": WORKFLOW_PATH, "GITHUB_REPOSITORY": REPOSITORY}
    if signer_repository is not None:
        env["FIXTURE_SIGNER_REPOSITORY"] = signer_repository
        (gate,) = [step for step in variant["jobs"]["release"]["steps"] if step.get("id") == "gate"]
        del gate["with"]["wait"]
    workflow = tmp_path / "release-attested.yml"
    workflow.write_text(yaml.safe_dump(variant, sort_keys=False), encoding="utf-8")
    run = act(workflow, env, secrets={"GITHUB_TOKEN": dev.password, "PROD_REGISTRY_USER": prod.username,
                                      "PROD_REGISTRY_PASSWORD": prod.password},
              event={"ref": f"refs/tags/{TAG}"}, actor=dev.username)
    return run, dev_repo, prod_repo


def _assert_github_secrets_kept(run: ActRun, dev: Guarded, prod: Guarded) -> None:
    """The production password shows only in the ``::add-mask::`` commands of the actions that mask it; the
    ghcr.io token (a secret act masks) nowhere."""
    seen = [event for event in run.events if prod.password in json.dumps(event)]
    assert seen and all(event.get("command") == "add-mask" for event in seen), seen
    assert prod.password not in run.log and dev.password not in run.raw


def test_github_attested_example_pins_every_action_by_commit() -> None:
    """What a user copies fetches nothing unpinned: each third-party action by full commit SHA and version."""
    actions = third_party_actions(GITHUB_EXAMPLE.read_text(encoding="utf-8"), own=OWN_ACTION)
    assert actions == {"actions/checkout", *GITHUB_FIXTURES}


def test_github_attested_example_names_the_file_it_tells_users_to_copy_it_to() -> None:
    """The gates' signer-workflow is the path the header names, at the ref being released, in this repository;
    and the job may mint the OIDC token the attestations need."""
    text = GITHUB_EXAMPLE.read_text(encoding="utf-8")
    assert f"# Copy to {WORKFLOW_PATH} " in text
    example = yaml.safe_load(text)
    assert example["permissions"] == {}
    assert example["jobs"]["release"]["permissions"] == {"contents": "read", "packages": "write",
                                                         "id-token": "write", "attestations": "write"}
    gates = [step["with"] for step in example["jobs"]["release"]["steps"]
             if step.get("uses", "").startswith(OWN_ACTION + "verify@")]
    assert len(gates) == 2
    for gate in gates:
        assert gate["github-repo"] == "${{ github.repository }}"
        assert gate["signer-workflow"] == "${{ github.repository }}/" + WORKFLOW_PATH + "@${{ github.ref }}"
        assert gate["require"].split() == [f"attestation:{PROVENANCE}", "sbom"]
        assert "trusted-root" not in gate  # the public-good root, as the attest actions sign for public repositories


def test_github_attested_example_passes_jactionlint(tmp_path: Path) -> None:
    assert_example_passes_jactionlint(GITHUB_EXAMPLE, tmp_path, own_uses=3)


def test_github_attested_example_runs_end_to_end(act: ActRunner, guarded_pair: tuple[Guarded, Guarded],
                                                 minter: Minter, tmp_path: Path) -> None:
    dev, prod = guarded_pair
    run, dev_repo, prod_repo = _run_github(act, tmp_path, minter, dev, prod)
    assert run.returncode == 0, run.log
    home = tmp_path / "h"
    digest = _cli_json(home, dev, "manifest", "fetch", f"{dev.registry.host}/{dev_repo}:{TAG}")["digest"]
    copied = re.search(rf"promoted {digest} \((\d+) manifests and blobs copied; gate ok=true, production ok=true\)",
                       run.log)
    assert copied and int(copied.group(1)) > 0, run.log
    # both attestations reached production with the image, and each gate verified both as this workflow's, at
    # this tag, in this repository
    bundles = _assert_promoted(home, dev, dev_repo, prod, prod_repo, digest, [PROVENANCE, SPDX])
    for step in ("gate", "verify-production"):
        judged = _judged(run.messages(step))
        assert judged == {bundle: ("✓", kind, digest, f"verified by {GITHUB_IDENTITY} ({GITHUB_ISSUER})")
                          for bundle, kind in bundles.items()}, run.log
        assert "without checking who signed" not in run.messages(step)
    assert_only_own_credentials(dev, prod)
    _assert_github_secrets_kept(run, dev, prod)


def test_github_attested_example_gate_refuses_attestations_of_another_repository(
        act: ActRunner, guarded_pair: tuple[Guarded, Guarded], minter: Minter, tmp_path: Path) -> None:
    dev, prod = guarded_pair
    run, dev_repo, _ = _run_github(act, tmp_path, minter, dev, prod, signer_repository=STRANGER)
    assert run.returncode != 0, run.log
    # the attestations are there, well formed and logged, but signed in another repository's run
    digest = _cli_json(tmp_path / "h", dev, "manifest", "fetch", f"{dev.registry.host}/{dev_repo}:{TAG}")["digest"]
    bundles = _bundles(tmp_path / "h", dev, dev_repo, digest)
    assert sorted(bundles.values()) == [PROVENANCE, SPDX], bundles
    summary = failed_summary(run, "gate")
    assert re.search(r"\*\*Failed\*\*: missing .*attestation:https://slsa\.dev/provenance/v1.*sbom", summary), summary
    # each bundle refused for who signed it: the stranger's workflow, not this repository's
    refusals = set(re.findall(r"^\| `(sha256:[0-9a-f]{64})` \| `sha256:[0-9a-f]{64}` \| ❌ failed \| `([^`]*)` \| `([^`]*)` \|$",
                              summary, re.M))
    stranger = GITHUB_IDENTITY.replace(REPOSITORY, STRANGER)
    assert refusals == {(bundle, stranger, f"identity: built in repository {STRANGER}, not {REPOSITORY}")
                        for bundle in bundles}, summary
    assert run.messages("promote") == "" and not prod.proxy.requests, "nothing reached production"


# --- GitLab: gitlab-ci-local -------------------------------------------------------------------------------------

#: Replaces the build job's script (docker build and push, cosign sign): pushes a small artifact as the image
#: with the job token, as ``docker push`` does, hands over its digest exactly as that job does, and attaches a
#: bundle signed as this job's identity the way cosign v3 signs and attaches one.
GITLAB_FIXTURE_BUILD = [
    'printf "fixture app %s\\n" "$CI_COMMIT_TAG" > app.txt',
    'echo "$CI_REGISTRY_PASSWORD" | ci-oras push --emit none --output json -u "$CI_REGISTRY_USER" --password-stdin'
    ' --artifact-type application/vnd.example.app "$DEV:$CI_COMMIT_TAG" app.txt > pushed.json',
    'digest="$(python3 -c \'import json; print(json.load(open("pushed.json"))["digest"])\')"',
    'echo "IMAGE_DIGEST=$digest" > build.env',
    'predicate_type="$("$FIXTURE_PYTHON" "$FIXTURE_MINT" "$FIXTURE_SIGSTORE" cosign-sign "$DEV" "$digest"'
    ' signature.sigstore.json)"',
    'echo "$CI_REGISTRY_PASSWORD" | ci-oras attach --emit none -u "$CI_REGISTRY_USER" --password-stdin'
    f' "$DEV@$digest" "signature.sigstore.json:{BUNDLE}" --artifact-type {BUNDLE}'
    ' -a dev.sigstore.bundle.content=dsse-envelope -a "dev.sigstore.bundle.predicateType=$predicate_type"',
]


def gitlab_test_variant(example: dict[str, Any], *, prod: str, trusted_root: Path) -> dict[str, Any]:
    """The GitLab example as gitlab-ci-local runs it (module docstring): local templates, ``trusted-root`` on
    each verify include, ``PROD`` set, the build job's script -> :data:`GITLAB_FIXTURE_BUILD`."""
    variant = copy.deepcopy(example)
    variant["include"] = local_templates(variant["include"])
    verify = [item["inputs"] for item in variant["include"] if item["local"] == "/gitlab/verify.yml"]
    assert len(verify) == 2
    for inputs in verify:
        assert "trusted-root" not in inputs
        inputs["trusted-root"] = str(trusted_root)
    variant["variables"]["PROD"] = prod
    build = variant["build"]
    script = "\n".join(build.pop("script"))
    assert "docker push" in script and "cosign sign --yes" in script, script
    # the docker-in-docker image and service serve the docker build alone (gitlab-ci-local would start the
    # service even with the shell executor)
    del build["image"], build["services"]
    build["script"] = GITLAB_FIXTURE_BUILD
    return variant


def _run_gitlab(tmp_path: Path, minter: Minter, dev: Guarded, prod: Guarded, *,
                signer_repository: str | None = None) -> tuple[subprocess.CompletedProcess[str], str, str]:
    """The example under gitlab-ci-local in a project ``acme/app`` on GitLab.com, a tag pipeline: the job token
    on ``dev`` ($CI_REGISTRY), the production account on ``prod``. ``signer_repository``: the signature is made by
    that project's pipeline instead, and the gate checks once. Returns the run and the two repositories."""
    project = f"acme/app-{uuid.uuid4().hex[:8]}"
    prod_repo = f"team/app-{uuid.uuid4().hex[:8]}"
    example = yaml.safe_load(GITLAB_EXAMPLE.read_text(encoding="utf-8"))
    pipeline = gitlab_test_variant(example, prod=f"{prod.host}/{prod_repo}", trusted_root=minter.trusted_root)
    variables = {"CI_COMMIT_TAG": TAG, "CI_REGISTRY": dev.host, "CI_REGISTRY_IMAGE": f"{dev.host}/{project}",
                 "CI_REGISTRY_USER": dev.username, "CI_REGISTRY_PASSWORD": dev.password,
                 "PROD_REGISTRY_USER": prod.username, "PROD_REGISTRY_PASSWORD": prod.password, **minter.env()}
    if signer_repository is not None:
        variables["FIXTURE_SIGNER_REPOSITORY"] = signer_repository
        (gate,) = [item["inputs"] for item in pipeline["include"] if item["inputs"].get("job-name") == "gate"]
        del gate["wait"]
    work = make_repository(tmp_path / "repo", pipeline, {}, scratch=tmp_path)
    # the project's remote, as a clone has it: gitlab-ci-local derives CI_PROJECT_URL, CI_SERVER_URL and
    # CI_PROJECT_PATH from it
    git = require_tool("git")
    for command in (["remote", "add", "origin", f"git@gitlab.com:{REPOSITORY}.git"],
                    ["update-ref", "refs/remotes/origin/main", "HEAD"],
                    ["symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main"]):
        subprocess.run([git, *command], cwd=work, check=True, capture_output=True, timeout=60)
    return run_gitlab_ci_local(work, variables, scratch=tmp_path), f"{project}/dev", prod_repo


def test_gitlab_cosign_example_matches_the_gitlab_ci_schema() -> None:
    """GitLab's schema knows every key the example uses (``id_tokens`` among them)."""
    tool = require_tool("check-jsonschema")
    result = subprocess.run([tool, "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci",
                             str(GITLAB_EXAMPLE)], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_cosign_example_signs_keyless_and_pins_its_images(tmp_path: Path) -> None:
    """The build job gets a Sigstore ID token, runs cosign v3 from an image pinned by digest and signs the image
    by digest; both gates require the identity of this project's pipeline file at the released tag, issued for
    GitLab.com, with the public-good root. The job's shell passes shellcheck."""
    example = yaml.safe_load(GITLAB_EXAMPLE.read_text(encoding="utf-8"))
    build = example["build"]
    assert build["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    images = [build["image"], *(service["name"] for service in build["services"]), build["variables"]["COSIGN_IMAGE"]]
    assert all(re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image) for image in images), images
    assert build["variables"]["COSIGN_IMAGE"].startswith("ghcr.io/sigstore/cosign/cosign:v3.")
    assert 'cosign sign --yes --new-bundle-format=true "$DEV@${pushed#*@}"' in build["script"]
    gates = [item["inputs"] for item in example["include"] if item["file"] == "/gitlab/verify.yml"]
    assert [gate["job-name"] for gate in gates] == ["gate", "verify-production"]
    for gate in gates:
        assert gate["certificate-identity"] == "$CI_PROJECT_URL//.gitlab-ci.yml@refs/tags/$CI_COMMIT_TAG"
        assert gate["certificate-oidc-issuer"] == "https://gitlab.com" and "trusted-root" not in gate
        assert gate["require"] == "signature"
    shellcheck = require_tool("shellcheck")
    script = tmp_path / "build.sh"
    script.write_text("\n".join(build["script"]) + "\n", encoding="utf-8")
    result = subprocess.run([shellcheck, "--shell=sh", str(script)], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_cosign_example_runs_end_to_end(guarded_pair: tuple[Guarded, Guarded], minter: Minter,
                                               tmp_path: Path) -> None:
    dev, prod = guarded_pair
    run, dev_repo, prod_repo = _run_gitlab(tmp_path, minter, dev, prod)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    assert passed(log) == ["build", "gate", "ci-oras-promote", "verify-production"], log
    home = tmp_path / "h"
    digest = _cli_json(home, dev, "manifest", "fetch", f"{dev.registry.host}/{dev_repo}:{TAG}")["digest"]
    bundles = _assert_promoted(home, dev, dev_repo, prod, prod_repo, digest, [COSIGN_SIGN])
    # GitLab expanded the identity input to this project's pipeline at this tag, and both gates verified the
    # signature as made by it
    for job in ("gate", "verify-production"):
        output = job_output(log, job)
        assert f"--certificate-identity {GITLAB_IDENTITY} --certificate-oidc-issuer https://gitlab.com" in output
        assert _judged(output) == {bundle: ("✓", COSIGN_SIGN, digest, f"verified by {GITLAB_IDENTITY} "
                                                                      "(https://gitlab.com)")
                                   for bundle in bundles}, log
    assert_only_own_credentials(dev, prod)
    assert dev.password not in log and prod.password not in log


def test_gitlab_cosign_example_gate_refuses_a_signature_of_another_project(
        guarded_pair: tuple[Guarded, Guarded], minter: Minter, tmp_path: Path) -> None:
    dev, prod = guarded_pair
    run, dev_repo, _ = _run_gitlab(tmp_path, minter, dev, prod, signer_repository=STRANGER)
    log = run.stdout + run.stderr
    assert run.returncode != 0, log
    assert passed(log) == ["build"] and failed(log) == ["gate"], log
    assert "ci-oras-promote" not in started(log) and "verify-production" not in started(log), log
    digest = _cli_json(tmp_path / "h", dev, "manifest", "fetch", f"{dev.registry.host}/{dev_repo}:{TAG}")["digest"]
    (bundle,) = _bundles(tmp_path / "h", dev, dev_repo, digest)
    stranger = GITLAB_IDENTITY.replace(REPOSITORY, STRANGER)
    assert _judged(job_output(log, "gate")) == {
        bundle: ("✗", COSIGN_SIGN, digest, f"refused, identity: signed by {stranger}, not {GITLAB_IDENTITY}")}, log
    assert not prod.proxy.requests, "nothing reached production"
    assert dev.password not in log and prod.password not in log
