"""The example pipelines in ``examples/``, run end to end on each platform's local runner.

Each example builds an image, attaches its SBOM, signs the image and the SBOM (the key from the platform's
secret store), gates on ``sbom>signature`` and ``signature`` verified against a root certificate, promotes the
image with its graph to a second registry that takes other credentials, and gates again there, handing the
digests from step to step. A second test per platform signs with a chain from another root: the gate fails
and nothing reaches production. The tests
run the example files themselves, after a small explicit transformation that swaps only what cannot run here
(remote includes and actions, the docker build, tools fetched from the internet) for fixtures; everything
else (the wrappers, the credentials, the digests passed along) is what a user's copy runs. The two registries
are Basic-auth docker-registry processes behind recording proxies, so the tests see which credential reached
which host.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure_runner import AZURE, AZURE_MACRO, AzureStep, assert_masked, run_azure_steps
from cryptography.hazmat.primitives import serialization
from gitlab_runner import gitlab_ci_local, local_templates
from harness import notary_pki as pki
from harness.cli import clean_env, run_cli
from samples.make_samples import cyclonedx_json
from wrapper_tools import (REPO_ROOT, ActRun, ActRunner, Guarded, assert_only_own_credentials, failed_summary,
                           missing, require_tool)

EXAMPLES = REPO_ROOT / "examples"
CYCLONEDX = "application/vnd.cyclonedx+json"
TAG = "v1.2.3"

pytestmark = pytest.mark.integration


def _cli_json(home: Path, *args: str, registry: Guarded) -> Any:
    """``ci-oras ARGS --output json`` with ``registry``'s own credentials (the test's view, not the pipeline's)."""
    result = run_cli(*args, "--output", "json", "--emit", "none", "-u", registry.username, "--password-stdin",
                     env=clean_env(home), stdin=registry.password + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.json()


SIGNATURE = "application/vnd.cncf.notary.signature"
VERIFIED = re.compile(r"✓ sha256:[0-9a-f]{64} \(of (sha256:[0-9a-f]{64})\): verified by CN=Release Signer,")


def _assert_promoted_with_graph(home: Path, dev: Guarded, dev_repo: str, prod: Guarded, prod_repo: str,
                                digest: str, *tags: str) -> str:
    """``prod_repo`` holds ``digest`` under ``tags`` with the same graph as ``dev_repo``: the image signed and
    its SBOM signed. Returns the SBOM's digest."""
    for tag in tags:
        assert _cli_json(home, "manifest", "fetch", f"{prod.registry.host}/{prod_repo}:{tag}",
                         registry=prod)["digest"] == digest, tag

    def shape(node: dict[str, Any]) -> list[Any]:
        return sorted([child.get("artifactType", ""), child["digest"], shape(child)] for child in node["referrers"])

    graphs = [shape(_cli_json(home, "discover", f"{registry.registry.host}/{repo}@{digest}", registry=registry))
              for registry, repo in ((dev, dev_repo), (prod, prod_repo))]
    assert graphs[0] == graphs[1]
    by_type = {artifact_type: (child_digest, children) for artifact_type, child_digest, children in graphs[1]}
    assert len(graphs[1]) == 2 and by_type.keys() == {CYCLONEDX, SIGNATURE}, graphs[1]
    sbom, sbom_referrers = by_type[CYCLONEDX]
    assert [child[0] for child in sbom_referrers] == [SIGNATURE] and by_type[SIGNATURE][1] == [], graphs[1]
    return str(sbom)


# --- GitLab: gitlab-ci-local -----------------------------------------------------------------------------------

#: Replaces the example's docker-in-docker build job: pushes a small artifact as the image (with the job
#: token, as ``docker push`` does) and hands over the digest and a fixture SBOM exactly as that job does.
GITLAB_FIXTURE_BUILD = [
    'printf "fixture app %s\\n" "$CI_COMMIT_TAG" > app.txt',
    'echo "$CI_REGISTRY_PASSWORD" | ci-oras push --emit none --output json -u "$CI_REGISTRY_USER" --password-stdin'
    ' --artifact-type application/vnd.example.app "$DEV:$CI_COMMIT_TAG" app.txt > pushed.json',
    'python3 -c \'import json; print("IMAGE_DIGEST=" + json.load(open("pushed.json"))["digest"])\' > build.env',
    'cp "$FIXTURE_SBOM" sbom.cdx.json',
]


def _signing_files(directory: Path, signer: pki.Pki) -> dict[str, Path]:
    """The secrets a pipeline gets from its platform's secret store (key, chain), and the fixture SBOM."""
    directory.mkdir(parents=True)
    files = {"key": directory / "signing-key.pem", "cert": directory / "chain.pem",
             "sbom": directory / "sbom.cdx.json"}
    files["key"].write_bytes(signer.key_pem())
    files["cert"].write_bytes(signer.chain_pem)
    files["sbom"].write_bytes(cyclonedx_json())
    return files


def _assert_no_secret(log: str, *secrets: str | pki.Pki) -> None:
    """No password, and no line of a signing key, reached the log."""
    for secret in secrets:
        if isinstance(secret, pki.Pki):
            body = [line for line in secret.key_pem().decode().splitlines() if not line.startswith("-----")]
            assert body and not any(line in log for line in body), "the signing key reached the log"
        else:
            assert secret not in log


def gitlab_test_variant(example: dict[str, Any], *, prod: str) -> dict[str, Any]:
    """The GitLab example as the test runs it: ``include: project:`` -> ``include: local:`` (this checkout's
    templates) with ``package: ""`` (this checkout's ci-oras on PATH), ``PROD`` pointed at the second
    registry (a placeholder a user replaces too), and the ``build`` job's docker/syft script replaced by
    :data:`GITLAB_FIXTURE_BUILD`. Everything else runs as written."""
    variant = copy.deepcopy(example)
    variant["include"] = local_templates(variant["include"])
    variant["variables"]["PROD"] = prod
    build = variant["build"]
    assert "docker build" in "\n".join(build["script"])
    variant["build"] = {key: build[key] for key in ("stage", "rules", "artifacts")}
    variant["build"]["script"] = GITLAB_FIXTURE_BUILD
    return variant


def _run_gitlab_example(tmp_path: Path, dev: Guarded, prod: Guarded, signer: pki.Pki, trusted_root: bytes,
                        *, gate_once: bool = False) -> tuple[subprocess.CompletedProcess[str], str, str]:
    """The GitLab example under gitlab-ci-local: the job token on ``dev`` ($CI_REGISTRY), the production
    account on ``prod``, ``signer``'s key and chain as the File variables (paths outside the repository) and
    ``trusted_root`` committed as ci/notary-root.pem; ``gate_once`` drops the gate's ``wait`` (a gate meant to
    fail would otherwise spend it all). Returns the run, the project and the production repo."""
    project = f"group/app-{uuid.uuid4().hex[:8]}"
    prod_repo = f"team/app-{uuid.uuid4().hex[:8]}"
    example = yaml.safe_load((EXAMPLES / "gitlab" / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    pipeline = gitlab_test_variant(example, prod=f"{prod.host}/{prod_repo}")
    if gate_once:
        (gate,) = [item for item in pipeline["include"] if item["inputs"].get("job-name") == "gate"]
        del gate["inputs"]["wait"]
    secrets = _signing_files(tmp_path / "secrets", signer)
    run = gitlab_ci_local(tmp_path, pipeline, {
        "CI_COMMIT_TAG": TAG, "CI_REGISTRY": dev.host, "CI_REGISTRY_IMAGE": f"{dev.host}/{project}",
        "CI_REGISTRY_USER": dev.username, "CI_REGISTRY_PASSWORD": dev.password,
        "PROD_REGISTRY_USER": prod.username, "PROD_REGISTRY_PASSWORD": prod.password,
        "SIGNING_KEY_FILE": str(secrets["key"]), "SIGNING_CHAIN_FILE": str(secrets["cert"]),
        "FIXTURE_SBOM": str(secrets["sbom"]),
    }, {"ci/notary-root.pem": trusted_root})
    return run, project, prod_repo


def test_gitlab_example_runs_end_to_end(guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    dev, prod = guarded_pair
    signer = pki.make_pki()
    run, project, prod_repo = _run_gitlab_example(tmp_path, dev, prod, signer, signer.root_pem)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    assert re.findall(r"^ PASS  ([\w-]+)", log, re.M) == [
        "build", "ci-oras-attach-sbom", "ci-oras-sign", "sign-sbom", "gate", "ci-oras-promote",
        "verify-production"], log

    digest = _cli_json(tmp_path / "h", "manifest", "fetch", f"{dev.registry.host}/{project}/dev:{TAG}",
                       registry=dev)["digest"]
    # the digest went from job to job: every ci-oras step named the image by it
    for reference in (f"{dev.host}/{project}/dev@{digest}", f"{prod.host}/{prod_repo}@{digest}"):
        assert f"{reference}" in log, reference
    sbom = _assert_promoted_with_graph(tmp_path / "h", dev, f"{project}/dev", prod, prod_repo, digest, TAG,
                                       "latest")
    assert f"{dev.host}/{project}/dev@{sbom}" in log  # the SBOM's digest went from attach-sbom to sign-sbom
    # both gates counted signatures of the image and of the SBOM that verified against the committed root
    for job in ("gate", "verify-production"):
        lines = "\n".join(re.findall(rf"^{job} +> (.*)$", log, re.M))
        assert sorted(VERIFIED.findall(lines)) == sorted([digest, sbom]), log
    assert_only_own_credentials(dev, prod)
    _assert_no_secret(log, dev.password, prod.password, signer)


def test_gitlab_example_gate_refuses_a_signature_from_another_root(guarded_pair: tuple[Guarded, Guarded],
                                                                   tmp_path: Path) -> None:
    dev, prod = guarded_pair
    _, other_root = pki.make_root("Someone Else's Root", slot=1)
    run, _, _ = _run_gitlab_example(tmp_path, dev, prod, pki.make_pki(),
                                    other_root.public_bytes(serialization.Encoding.PEM), gate_once=True)
    log = run.stdout + run.stderr
    assert run.returncode != 0, log
    assert re.findall(r"^ PASS  ([\w-]+)", log, re.M) == [
        "build", "ci-oras-attach-sbom", "ci-oras-sign", "sign-sbom"], log
    assert re.search(r"^ FAIL  gate", log, re.M), log
    assert re.search(r"^gate +> .*✗ signature", log, re.M), log
    assert "ci-oras-promote" not in re.findall(r"^([\w-]+) +starting", log, re.M)
    assert not prod.proxy.requests, "nothing reached production"


# --- Azure Pipelines: the tasks in order ------------------------------------------------------------------------
# (by azure_runner.run_azure_steps, the small agent the Azure release example's test shares)

#: Replaces the example's docker steps (login, build and push, digest and syft SBOM): pushes a small artifact as
#: the image and hands over ``build.digest`` and ``sbom.cdx.json`` exactly as those steps do. The credential
#: comes from the test, as the docker login's would.
AZURE_FIXTURE_BUILD = {
    "bash": "\n".join([
        "set -eu",
        'printf "fixture app %s\\n" "$(Build.SourceBranchName)" > app.txt',
        "ci-oras push --emit none --output json --artifact-type application/vnd.example.app"
        ' "$(DEV):$(Build.SourceBranchName)" app.txt > pushed.json',
        "python3 -c 'import json; print(\"##vso[task.setvariable variable=digest;isOutput=true]\""
        " + json.load(open(\"pushed.json\"))[\"digest\"])'",
        'cp "$FIXTURE_SBOM" sbom.cdx.json',
    ]),
    "env": {"CI_ORAS_REGISTRY": "$(FIXTURE_REGISTRY)", "CI_ORAS_USERNAME": "$(FIXTURE_USERNAME)",
            "CI_ORAS_PASSWORD": "$(FIXTURE_PASSWORD)", "FIXTURE_SBOM": "$(FIXTURE_SBOM)"},
    "name": "build",
    "displayName": "Fixture image, digest and SBOM",
}


def azure_test_variant(example: dict[str, Any]) -> dict[str, Any]:
    """The Azure example as the test runs it: its leading docker steps (``Docker@2`` tasks and the script that
    runs docker) replaced by :data:`AZURE_FIXTURE_BUILD`, which keeps the step name ``build``. Everything else
    runs as written; ``DownloadSecureFile@1`` is played by the runner (:func:`run_azure_steps`)."""
    variant = copy.deepcopy(example)
    steps = variant["steps"]
    docker = [i for i, step in enumerate(steps)
              if step.get("task") == "Docker@2" or "docker " in step.get("bash", "")]
    assert docker == list(range(len(docker))) and steps[docker[-1]].get("name") == "build", docker
    variant["steps"] = [AZURE_FIXTURE_BUILD, *steps[len(docker):]]
    return variant


@pytest.fixture(scope="module")
def azure_tasks(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Node and the extension's tasks as ``stage.sh`` stages them for the .vsix (each with the shared handler)."""
    node = shutil.which("node")
    if node is None:
        missing("node was not found (install Node 20: apt-get install -y nodejs)")
    if not (AZURE / "node_modules/azure-pipelines-task-lib").is_dir():
        missing("azure-pipelines/node_modules is missing (run: npm ci --prefix azure-pipelines)")
    dest = tmp_path_factory.mktemp("azure-stage")
    subprocess.run(["bash", str(AZURE / "stage.sh"), str(dest)], check=True, capture_output=True, timeout=60)
    return node, dest / "tasks"


def _run_azure_example(tmp_path: Path, azure_tasks: tuple[str, Path], dev: Guarded, prod: Guarded,
                       signer: pki.Pki, trusted_root: bytes, *, gate_once: bool = False,
                       ) -> tuple[list[AzureStep], dict[str, str], str, str]:
    """The Azure example's steps in order: ``dev-registry`` connects to ``dev``, the secret variables hold the
    ``prod`` account, the secure files ``signer``'s key and chain, ci/notary-root.pem is ``trusted_root``;
    ``gate_once`` drops the gate's ``wait``. Returns the steps run, the variables, the two repositories."""
    node, tasks = azure_tasks
    dev_repo = f"dev/app-{uuid.uuid4().hex[:8]}"
    prod_repo = f"app-{uuid.uuid4().hex[:8]}"
    example = yaml.safe_load((EXAMPLES / "azure" / "azure-pipelines.yml").read_text(encoding="utf-8"))
    pipeline = azure_test_variant(example)
    if gate_once:
        (gate,) = [step for step in pipeline["steps"] if step.get("name") == "gate"]
        del gate["inputs"]["wait"]
    # the placeholders a user replaces
    pipeline["variables"].update(DEV=f"{dev.host}/{dev_repo}", PROD=f"{prod.host}/{prod_repo}")
    secrets = _signing_files(tmp_path / "secure-files", signer)
    work = tmp_path / "s"
    (work / "ci").mkdir(parents=True)
    (work / "ci" / "notary-root.pem").write_bytes(trusted_root)
    steps, values = run_azure_steps(pipeline, node=node, tasks=tasks, work=work, variables={
        "Build.SourceBranchName": TAG,
        "PROD_REGISTRY_USER": prod.username, "PROD_REGISTRY_PASSWORD": prod.password,
        "FIXTURE_REGISTRY": dev.host, "FIXTURE_USERNAME": dev.username, "FIXTURE_PASSWORD": dev.password,
        "FIXTURE_SBOM": str(secrets["sbom"]),
    }, connections={"dev-registry": dev}, secure_files={
        "signing-key.pem": secrets["key"], "signing-chain.pem": secrets["cert"]})
    return steps, values, dev_repo, prod_repo


def test_azure_example_runs_end_to_end(azure_tasks: tuple[str, Path], guarded_pair: tuple[Guarded, Guarded],
                                       tmp_path: Path) -> None:
    dev, prod = guarded_pair
    signer = pki.make_pki()
    steps, values, dev_repo, prod_repo = _run_azure_example(tmp_path, azure_tasks, dev, prod, signer,
                                                            signer.root_pem)
    everything = "\n".join(f"--- {step.label}\n{step.log}" for step in steps)
    assert [step.label for step in steps if step.ok] == [
        "build", "sbom", "signingKey", "signingChain", "CiOrasSign@0", "Sign the SBOM", "gate", "promote",
        "verifyProduction", "Report"], everything

    digest = _cli_json(tmp_path / "h", "manifest", "fetch", f"{dev.registry.host}/{dev_repo}:{TAG}",
                       registry=dev)["digest"]
    assert values["build.digest"] == digest and values["promote.digest"] == digest
    assert values["gate.ok"] == "true" and values["verifyProduction.ok"] == "true"
    assert steps[-1].log.strip() == f"promoted {digest} (gate ok=true, production ok=true)"
    sbom = _assert_promoted_with_graph(tmp_path / "h", dev, dev_repo, prod, prod_repo, digest, TAG, "latest")
    assert values["sbom.digest"] == sbom
    for step in steps:
        expected = [digest, sbom] if step.label in ("gate", "verifyProduction") else []
        assert sorted(VERIFIED.findall(step.log)) == sorted(expected), step.log
    assert_only_own_credentials(dev, prod)
    task_steps = [step for step in steps if step.label != "build"]  # the fixture's own push is the test's
    assert_masked(dev.password, task_steps)
    assert_masked(prod.password, task_steps)
    _assert_no_secret(everything, signer)


def test_azure_example_gate_refuses_a_signature_from_another_root(
        azure_tasks: tuple[str, Path], guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    dev, prod = guarded_pair
    _, other_root = pki.make_root("Someone Else's Root", slot=1)
    steps, values, _, _ = _run_azure_example(tmp_path, azure_tasks, dev, prod, pki.make_pki(),
                                             other_root.public_bytes(serialization.Encoding.PEM), gate_once=True)
    assert [(step.label, step.ok) for step in steps][-2:] == [("Sign the SBOM", True), ("gate", False)]
    assert values["gate.ok"] == "false"
    assert "✗ signature" in steps[-1].log
    assert not prod.proxy.requests, "nothing reached production"


# --- GitHub Actions: act -----------------------------------------------------------------------------------------

GITHUB_EXAMPLE = EXAMPLES / "github" / "release.yml"
CI_ORAS_ACTION = re.compile(r"^your-org/ci-oras/actions/([a-z-]+)$")

#: The remote actions act cannot fetch offline, each replaced by a step that does the same here: the docker
#: login writes the docker config (ci-oras login writes the same file), the build pushes a small artifact as
#: the image and outputs its digest, the SBOM action writes the fixture SBOM. ``id`` and ``env`` of the
#: replaced step are kept.
GITHUB_FIXTURES: dict[str, dict[str, Any]] = {
    "docker/login-action": {"run": 'echo "$FIXTURE_PASSWORD" | ci-oras login --emit none "$FIXTURE_REGISTRY"'
                                   ' -u "$FIXTURE_USERNAME" --password-stdin'},
    "docker/build-push-action": {"run": "\n".join([
        'printf "fixture app %s\\n" "$GITHUB_REF_NAME" > app.txt',
        'ci-oras push --emit none --output json --artifact-type application/vnd.example.app'
        ' "$DEV:$GITHUB_REF_NAME" app.txt > pushed.json',
        'python3 -c \'import json; print("digest=" + json.load(open("pushed.json"))["digest"])\' >> "$GITHUB_OUTPUT"',
    ])},
    "anchore/sbom-action": {"run": 'cp "$FIXTURE_SBOM" sbom.cdx.json'},
}


def github_test_variant(example: dict[Any, Any], env: dict[str, str]) -> dict[str, Any]:
    """The GitHub example as act runs it offline: the steps using a remote action in :data:`GITHUB_FIXTURES`
    replaced by their fixture step, ``your-org/ci-oras/actions/X@…`` -> ``./actions/X`` (this checkout's
    actions), and the workflow ``env`` placeholders set from ``env``. ``actions/checkout`` stays: act copies
    the local repository for it."""
    # PyYAML reads the `on` key as YAML 1.1's true: give the workflow its key back
    variant = {("on" if key is True else key): value for key, value in copy.deepcopy(example).items()}
    (job,) = variant["jobs"].values()
    replaced = set()
    for index, step in enumerate(job["steps"]):
        action = step.get("uses", "").partition("@")[0]
        if action in GITHUB_FIXTURES:
            job["steps"][index] = {key: step[key] for key in ("id", "env") if key in step}
            job["steps"][index].update(name=f"Fixture for {action}", **GITHUB_FIXTURES[action])
            replaced.add(action)
        elif match := CI_ORAS_ACTION.match(action):
            step["uses"] = f"./actions/{match.group(1)}"
        else:
            assert action in ("", "actions/checkout"), action
    assert replaced == set(GITHUB_FIXTURES)
    assert set(env) <= set(variant["env"]), "only the example's placeholders"
    variant["env"].update(env)
    return variant


def test_github_example_pins_every_action_by_commit() -> None:
    """What a user copies fetches nothing unpinned: each third-party action by full commit SHA and version."""
    uses = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", GITHUB_EXAMPLE.read_text(encoding="utf-8"), re.M)
    third_party = [(ref, rest) for ref, rest in uses if not ref.startswith("your-org/ci-oras/")]
    assert {ref.partition("@")[0] for ref, _ in third_party} == {"actions/checkout", *GITHUB_FIXTURES}
    for ref, rest in third_party:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref) and re.match(r"\s+# v\d+\.\d+\.\d+", rest), ref


def _run_github_example(tmp_path: Path, act: ActRunner, dev: Guarded, prod: Guarded, signer: pki.Pki,
                        trusted_root: bytes, *, gate_once: bool = False) -> tuple[ActRun, str, str]:
    """The GitHub example under act: ``dev`` stands for ghcr.io (its login by the fixture), the secrets hold
    the production account and ``signer``'s key, the chain and root are files (committed, in a user's copy);
    ``gate_once`` drops the gate's ``wait``. Returns the run and the two repositories."""
    dev_repo = f"owner/app-dev-{uuid.uuid4().hex[:8]}"
    prod_repo = f"team/app-{uuid.uuid4().hex[:8]}"
    files = _signing_files(tmp_path / "files", signer)
    root = tmp_path / "files" / "notary-root.pem"
    root.write_bytes(trusted_root)
    example = yaml.safe_load(GITHUB_EXAMPLE.read_text(encoding="utf-8"))
    variant = github_test_variant(example, {
        "DEV": f"{dev.host}/{dev_repo}", "PROD": f"{prod.host}/{prod_repo}",
        "SIGNING_CHAIN": str(files["cert"]), "TRUSTED_ROOT": str(root)})
    if gate_once:
        (gate,) = [step for step in variant["jobs"]["release"]["steps"] if step.get("id") == "gate"]
        del gate["with"]["wait"]
    workflow = tmp_path / "release.yml"
    workflow.write_text(yaml.safe_dump(variant, sort_keys=False), encoding="utf-8")
    run = act(workflow, {"FIXTURE_REGISTRY": dev.host, "FIXTURE_USERNAME": dev.username,
                         "FIXTURE_PASSWORD": dev.password, "FIXTURE_SBOM": str(files["sbom"])},
              secrets={"SIGNING_KEY": signer.key_pem().decode(), "PROD_REGISTRY_USER": prod.username,
                       "PROD_REGISTRY_PASSWORD": prod.password},
              event={"ref": f"refs/tags/{TAG}"})  # a tag push, as the example's trigger says
    return run, dev_repo, prod_repo


def test_github_example_runs_end_to_end(act: ActRunner, guarded_pair: tuple[Guarded, Guarded],
                                        tmp_path: Path) -> None:
    dev, prod = guarded_pair
    signer = pki.make_pki()
    run, dev_repo, prod_repo = _run_github_example(tmp_path, act, dev, prod, signer, signer.root_pem)
    assert run.returncode == 0, run.log
    digest = _cli_json(tmp_path / "h", "manifest", "fetch", f"{dev.registry.host}/{dev_repo}:{TAG}",
                       registry=dev)["digest"]
    copied = re.search(rf"promoted {digest} \((\d+) manifests and blobs copied; gate ok=true, production ok=true\)",
                       run.log)
    assert copied and int(copied.group(1)) > 0, run.log
    sbom = _assert_promoted_with_graph(tmp_path / "h", dev, dev_repo, prod, prod_repo, digest, TAG, "latest")
    assert f"{dev.host}/{dev_repo}@{sbom}" in run.messages("sign-sbom")
    for step in ("gate", "verify-production"):
        assert sorted(VERIFIED.findall(run.messages(step))) == sorted([digest, sbom]), run.log
    assert_only_own_credentials(dev, prod)
    # the production password shows only in the ::add-mask:: commands that mask it; the rest nowhere
    seen = [event for event in run.events if prod.password in json.dumps(event)]
    assert seen and all(event.get("command") == "add-mask" for event in seen), seen
    _assert_no_secret(run.log, prod.password)
    _assert_no_secret(run.raw, dev.password, signer)


def test_github_example_gate_refuses_a_signature_from_another_root(
        act: ActRunner, guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    dev, prod = guarded_pair
    _, other_root = pki.make_root("Someone Else's Root", slot=1)
    run, _, _ = _run_github_example(tmp_path, act, dev, prod, pki.make_pki(),
                                    other_root.public_bytes(serialization.Encoding.PEM), gate_once=True)
    assert run.returncode != 0, run.log
    assert re.search(r"\*\*Failed\*\*: missing .*signature", failed_summary(run, "gate")), run.log
    assert run.messages("promote") == "" and not prod.proxy.requests, "nothing reached production"


# --- what a user copies -------------------------------------------------------------------------------------------

PINNED_IMAGE = re.compile(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}")


def test_gitlab_and_azure_examples_pin_their_images_by_digest() -> None:
    gitlab = yaml.safe_load((EXAMPLES / "gitlab" / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    build = gitlab["build"]
    azure = yaml.safe_load((EXAMPLES / "azure" / "azure-pipelines.yml").read_text(encoding="utf-8"))
    images = [build["image"], *(service["name"] for service in build["services"]), build["variables"]["SYFT_IMAGE"],
              azure["variables"]["SYFT_IMAGE"]]
    assert all(PINNED_IMAGE.fullmatch(image) for image in images), images


def _example_scripts() -> dict[str, str]:
    """The shell the examples run themselves (not the wrappers'), platform expressions replaced by values."""
    gitlab = yaml.safe_load((EXAMPLES / "gitlab" / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    azure = yaml.safe_load((EXAMPLES / "azure" / "azure-pipelines.yml").read_text(encoding="utf-8"))
    github = yaml.safe_load(GITHUB_EXAMPLE.read_text(encoding="utf-8"))
    scripts = {"gitlab/build": "\n".join(gitlab["build"]["script"])}
    for index, step in enumerate(azure["steps"]):
        if "bash" in step:
            label = step.get("name") or step.get("displayName") or index
            scripts[f"azure/{label}"] = AZURE_MACRO.sub("value", step["bash"])
    for index, step in enumerate(github["jobs"]["release"]["steps"]):
        if "run" in step:
            assert "${{" not in step["run"], "expressions reach run: through env only"
            scripts[f"github/{step.get('name') or index}"] = step["run"]
    return scripts


@pytest.mark.parametrize("name", sorted(_example_scripts()))
def test_example_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    script = tmp_path / "script.sh"
    script.write_text(_example_scripts()[name] + "\n", encoding="utf-8")
    shell = "sh" if name.startswith("gitlab/") else "bash"
    result = subprocess.run([shellcheck, f"--shell={shell}", str(script)], check=False, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
