"""The example pipelines in ``examples/``, run end to end on each platform's local runner.

Each example builds an image, attaches its SBOM, gates on it, promotes the image with its graph to a second
registry that takes other credentials, and gates again there, handing the digest from step to step. The tests
run the example files themselves, after a small explicit transformation that swaps only what cannot run here
(remote includes and actions, the docker build, tools fetched from the internet) for fixtures; everything
else (the wrappers, the credentials, the digests passed along) is what a user's copy runs. The two registries
are Basic-auth docker-registry processes behind recording proxies, so the tests see which credential reached
which host.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from harness import notary_pki as pki
from harness.cli import clean_env, run_cli
from samples.make_samples import cyclonedx_json
from wrapper_tools import REPO_ROOT, Guarded, assert_only_own_credentials, require_tool

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


def _assert_promoted_with_graph(home: Path, dev: Guarded, dev_repo: str, prod: Guarded, prod_repo: str,
                                digest: str, *tags: str) -> None:
    """``prod_repo`` holds ``digest`` under ``tags`` with the same referrers (types) as ``dev_repo``."""
    for tag in tags:
        assert _cli_json(home, "manifest", "fetch", f"{prod.registry.host}/{prod_repo}:{tag}",
                         registry=prod)["digest"] == digest, tag

    def referrer_types(registry: Guarded, repo: str) -> list[str]:
        graph = _cli_json(home, "discover", f"{registry.registry.host}/{repo}@{digest}", registry=registry)
        return sorted(node["artifactType"] for node in graph["referrers"])

    assert referrer_types(dev, dev_repo) == referrer_types(prod, prod_repo)
    assert CYCLONEDX in referrer_types(prod, prod_repo)


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
    for item in variant["include"]:
        assert item.keys() == {"project", "ref", "file", "inputs"}, item
        item["local"] = item.pop("file")
        del item["project"], item["ref"]
        assert item["inputs"]["package"].startswith("ci-oras=="), item  # pinned in the example
        item["inputs"]["package"] = ""
    variant["variables"]["PROD"] = prod
    build = variant["build"]
    assert "docker build" in "\n".join(build["script"])
    variant["build"] = {key: build[key] for key in ("stage", "rules", "artifacts")}
    variant["build"]["script"] = GITLAB_FIXTURE_BUILD
    return variant


def _gitlab_ci_local(tmp_path: Path, pipeline: dict[str, Any], variables: dict[str, str],
                     files: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    """Runs ``pipeline`` with gitlab-ci-local in a fresh git repository holding this checkout's ``gitlab/``
    templates and ``files`` (it only sees tracked files); ``variables`` come in with ``--variable``."""
    binary = require_tool("gitlab-ci-local")
    require_tool("rsync")
    git = require_tool("git")
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copytree(REPO_ROOT / "gitlab", work / "gitlab")
    (work / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    for name, content in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(content)
    env = {k: v for k, v in clean_env(tmp_path / "home").items() if not k.startswith(("GITLAB_", "CI_"))}
    env["HOME"] = os.environ.get("HOME", str(tmp_path / "home"))  # gitlab-ci-local keeps its state there
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "pipeline"]):
        subprocess.run([git, *command], cwd=work, env=env, check=True, capture_output=True, timeout=60)
    command = [binary, "--file", ".gitlab-ci.yml", "--force-shell-executor", "--shell-isolation",
               "--no-artifacts-to-source", "--no-color"]
    for key, value in variables.items():
        command += ["--variable", f"{key}={value}"]
    return subprocess.run(command, cwd=work, env=env, check=False, capture_output=True, text=True, timeout=600)


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
    run = _gitlab_ci_local(tmp_path, pipeline, {
        "CI_COMMIT_TAG": TAG, "CI_REGISTRY": dev.host, "CI_REGISTRY_IMAGE": f"{dev.host}/{project}",
        "CI_REGISTRY_USER": dev.username, "CI_REGISTRY_PASSWORD": dev.password,
        "PROD_REGISTRY_USER": prod.username, "PROD_REGISTRY_PASSWORD": prod.password,
        "SIGNING_KEY": str(secrets["key"]), "SIGNING_CERT": str(secrets["cert"]),
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
        "build", "ci-oras-attach-sbom", "ci-oras-sign", "gate", "ci-oras-promote", "verify-production"], log

    digest = _cli_json(tmp_path / "h", "manifest", "fetch", f"{dev.registry.host}/{project}/dev:{TAG}",
                       registry=dev)["digest"]
    # the digest went from job to job: every ci-oras step named the image by it
    for reference in (f"{dev.host}/{project}/dev@{digest}", f"{prod.host}/{prod_repo}@{digest}"):
        assert f"{reference}" in log, reference
    # both gates counted a signature that verified against the committed root, not one merely attached
    verified = rf"^([\w-]+) +> +✓ sha256:[0-9a-f]{{64}} \(of {digest}\): verified by CN=Release Signer,"
    assert re.findall(verified, log, re.M) == ["gate", "verify-production"], log
    _assert_promoted_with_graph(tmp_path / "h", dev, f"{project}/dev", prod, prod_repo, digest, TAG, "latest")
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
    assert re.findall(r"^ PASS  ([\w-]+)", log, re.M) == ["build", "ci-oras-attach-sbom", "ci-oras-sign"], log
    assert re.search(r"^ FAIL  gate", log, re.M), log
    assert re.search(r"^gate +> .*✗ signature", log, re.M), log
    assert "ci-oras-promote" not in re.findall(r"^([\w-]+) +starting", log, re.M)
    assert not prod.proxy.requests, "nothing reached production"
