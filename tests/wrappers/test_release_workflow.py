"""ci-oras's own release workflow, ``.github/workflows/release.yml``: its offline parts run under act.

What runs is the workflow file itself, changed by the small, explicit transformation in
:func:`offline_variant`:

- the jobs that need the outside world are left out: the test run (``ci.yml``, a reusable workflow the
  release needs first: ``test_the_release_publishes_only_after_the_tests`` checks that wiring), publishing to
  the package index (trusted publishing) and creating the GitHub release; so are the build job's steps that install from an index (the lock check, the
  sdist/wheel build, the .vsix build, which ``tests/wrappers/test_azure.py`` builds offline on its own);
- third-party actions, which act cannot fetch offline, become fixture steps doing their part here:
  ``download-artifact`` writes release files, ``docker/login-action`` writes the docker config its inputs
  describe, ``anchore/sbom-action`` writes a CycloneDX SBOM; ``setup-python``/``setup-node`` are dropped
  (the host's interpreters serve);
- ``ghcr.io/${{ github.repository }}`` becomes a local password-protected docker-registry, and the verify step
  gets an ``id`` and a recording step after it.

Everything else (the tag check, the file listing, ci-oras's own push, attach-sbom and verify actions, with
credentials from the docker config) runs as written, on the tag the push event names.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.cli import clean_env, run_cli
from harness.registry import RunningRegistry
from samples.make_samples import cyclonedx_json
from wrapper_tools import REPO_ROOT, ActRunner, failed_summary

from ci_oras import __version__

RELEASE = REPO_ROOT / ".github" / "workflows" / "release.yml"
ONLINE_JOBS = ("tests", "publish-package", "github-release")
ONLINE_BUILD_STEPS = ("The lock still matches pyproject.toml", "Build the sdist and the wheel",
                      "Build the Azure DevOps extension")
RELEASE_FILES = (f"dist/ci_oras-{__version__}-py3-none-any.whl", f"dist/ci_oras-{__version__}.tar.gz",
                 f"vsix/ci-oras-{__version__}.vsix")
ACTOR = "release-bot"

pytestmark = pytest.mark.integration


def _uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def _fixture_for(step: dict[str, Any], sbom: Path) -> dict[str, Any] | None:
    """The fixture step standing in for a third-party action, or None to drop the step."""
    inputs = step.get("with", {})
    if _uses(step, "actions/download-artifact"):
        target = inputs.get("path", ".")
        script = "".join(f'mkdir -p "$(dirname "{target}/{name}")" && printf \'%s\\n\' "{name}" > "{target}/{name}"\n'
                         for name in RELEASE_FILES)
        script += f'printf "not a release file\\n" > "{target}/dist/NOTES.txt"\n'
        return {"name": "fixture: download-artifact", "run": script}
    if _uses(step, "docker/login-action"):
        return {
            "name": "fixture: docker/login-action",
            "env": {"LOGIN_REGISTRY": inputs["registry"], "LOGIN_USERNAME": inputs["username"],
                    "LOGIN_PASSWORD": inputs["password"]},
            "run": (
                'mkdir -p "$HOME/.docker"\n'
                'auth="$(printf \'%s:%s\' "$LOGIN_USERNAME" "$LOGIN_PASSWORD" | base64 -w0)"\n'
                'printf \'{"auths": {"%s": {"auth": "%s"}}}\' "$LOGIN_REGISTRY" "$auth" > "$HOME/.docker/config.json"\n'
            ),
        }
    if _uses(step, "anchore/sbom-action"):
        return {"name": "fixture: anchore/sbom-action", "run": f'cp "{sbom}" "{inputs["output-file"]}"\n'}
    if _uses(step, "actions/setup-python") or _uses(step, "actions/setup-node") \
            or _uses(step, "actions/upload-artifact"):
        return None
    return step


def offline_variant(target: Path, registry: str, repo: str, sbom: Path) -> Path:
    """Write the release workflow's offline variant (see the module docstring) to ``target``."""
    text = RELEASE.read_text(encoding="utf-8")
    assert text.count("ghcr.io/${{ github.repository }}") == 1 and text.count("registry: ghcr.io") == 1
    text = text.replace("ghcr.io/${{ github.repository }}", f"{registry}/{repo}")
    text = text.replace("registry: ghcr.io", f"registry: {registry}")
    workflow = yaml.safe_load(text)
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    jobs = workflow["jobs"]
    for name in ONLINE_JOBS:
        del jobs[name]
    assert jobs["build"].pop("needs") == "tests"

    build = jobs["build"]["steps"]
    assert all(any(step.get("name") == name for step in build) for name in ONLINE_BUILD_STEPS)
    build[:] = [step for step in build if step.get("name") not in ONLINE_BUILD_STEPS]
    tag_check = next(step for step in build if "does not name ci-oras" in step.get("run", ""))
    wrong_tag = {**tag_check, "id": "wrong-tag", "continue-on-error": True, "env": {"TAG": "v0.0.0-not-this"}}
    build.insert(build.index(tag_check) + 1, wrong_tag)
    build.append({"name": "record", "env": {"WRONG": "${{ steps.wrong-tag.outcome }}"},
                  "run": 'printf \'%s\' "$WRONG" > "$OUT/wrong-tag-outcome.txt"\n'})

    for job in jobs.values():
        job["steps"] = [fixture for step in job["steps"] if (fixture := _fixture_for(step, sbom)) is not None]
    oci = jobs["oci"]["steps"]
    verify = next(step for step in oci if _uses(step, "./actions/verify"))
    verify["id"] = "verify"
    oci.append({"name": "record", "env": {"PUSH": "${{ toJSON(steps.push.outputs) }}",
                                          "VERIFY": "${{ toJSON(steps.verify.outputs) }}"},
                "run": 'printf \'%s\' "$PUSH" > "$OUT/push.json"\nprintf \'%s\' "$VERIFY" > "$OUT/verify.json"\n'})
    target.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    return target


def test_the_release_workflow_runs_its_offline_parts(act: ActRunner, tmp_path: Path,
                                                    registry_factory: Callable[..., RunningRegistry]) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    registry = registry_factory("htpasswd", username=ACTOR, password=password)
    repo = f"ci-oras/{uuid.uuid4().hex[:8]}"
    sbom = tmp_path / "fixture.cdx.json"
    sbom.write_bytes(cyclonedx_json())
    workflow = offline_variant(tmp_path / "release.yml", registry.host, repo, sbom)

    run = act(workflow, event={"ref": f"refs/tags/v{__version__}"}, secrets={"GITHUB_TOKEN": password},
              actor=ACTOR)
    assert run.returncode == 0, run.log

    # the tag check is real: a tag naming another version fails it, with the reason
    assert run.recorded("wrong-tag-outcome.txt") == "failure"
    assert f"tag v0.0.0-not-this does not name ci-oras {__version__}" in failed_summary(run, "wrong-tag")

    pushed = run.recorded("push.json")
    reference = f"{registry.host}/{repo}/release:v{__version__}"
    assert pushed["reference"].startswith(reference)
    home = tmp_path / "home"
    login = ("-u", ACTOR, "--password-stdin")
    fetched = run_cli("manifest", "fetch", *login, reference, env=clean_env(home), stdin=password + "\n")
    assert fetched.returncode == 0, fetched.stderr
    manifest = json.loads(fetched.stdout)
    assert manifest["artifactType"] == "application/vnd.ci-oras.release.v1"
    titles = sorted(layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"])
    assert sorted(Path(title).name for title in titles) == sorted(Path(name).name for name in RELEASE_FILES)

    found = run_cli("discover", "--output", "json", *login, reference, env=clean_env(home), stdin=password + "\n")
    assert found.returncode == 0, found.stderr
    referrers = json.loads(found.stdout)["referrers"]
    assert [r["artifactType"] for r in referrers] == ["application/vnd.cyclonedx+json"]
    assert json.loads(run.recorded("verify.json")["result"])["ok"] is True

    assert password not in run.log, "the registry password reached the log"


def _load(path: Path) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return workflow


def test_the_release_publishes_only_after_the_tests() -> None:
    """Every job of the release depends, directly or through others, on ``tests``: ci.yml on the tagged commit."""
    jobs = _load(RELEASE)["jobs"]
    assert jobs["tests"]["uses"] == "./.github/workflows/ci.yml"

    def needs(name: str) -> set[str]:
        direct = jobs[name].get("needs", [])
        direct = {direct} if isinstance(direct, str) else set(direct)
        return direct.union(*(needs(each) for each in direct)) if direct else set()

    assert all("tests" in needs(name) for name in jobs if name != "tests"), {n: needs(n) for n in jobs}


def test_ci_runs_the_readme_test_command_and_ruff_on_pushes_and_pull_requests() -> None:
    ci = _load(REPO_ROOT / ".github" / "workflows" / "ci.yml")
    assert {"push", "pull_request", "workflow_call"} <= set(ci["on"])
    runs = {name: "\n".join(step.get("run", "") for step in job["steps"]) for name, job in ci["jobs"].items()}
    assert "ruff check" in runs["lint"]
    assert "bash .ci/run" in runs["test"] and "make test" in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    versions = ci["jobs"]["unit"]["strategy"]["matrix"]["python"]
    assert "3.10" in versions and "3.13" in versions
