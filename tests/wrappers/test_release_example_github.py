"""``examples/github/release-images.yml``, the multi-image release on GitHub Actions, run end to end under act.

The workflow's three jobs run as act runs them in host mode: ``plan`` (ci-oras release-plan on the release file
``examples/github/release-file.yaml``), ``copy`` once per shard of the matrix ``plan`` outputs
(``strategy.matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}``), then ``commit``. Checked on act 0.2.89: job
outputs reach ``needs.<job>.outputs``, the dynamic matrix expands to one job per shard (``copy-1``, ``copy-2``,
side by side), ``commit`` starts only after every shard succeeded, and a failed ``plan`` starts neither.
act ignores ``fail-fast`` (a failing shard never cancels the other, whatever the setting), so the example's
``fail-fast: false`` is not what these tests check. In host mode every job gets its own workspace and
``RUNNER_TEMP`` (nothing in them travels between jobs, as on GitHub) but they all share one HOME.

The example file runs after a small explicit transformation (:func:`act_variant`) that swaps only what act
cannot run offline:

- ``your-org/ci-oras/actions/X@…`` -> ``./actions/X`` (this checkout's actions), and a checkout step first in
  the jobs without one: act finds a local action in the job's workspace, which only a checkout fills (on
  GitHub the runner fetches the remote action, so ``copy`` and ``commit`` need no checkout);
- ``actions/upload-artifact`` / ``actions/download-artifact`` -> steps copying the file to and from
  ``$FIXTURE_ARTIFACTS/<name>/``, a directory the test provides (same name and path inputs);
- ``docker/login-action`` -> ``ci-oras login`` with the step's own ``registry``/``username``/``password``
  inputs (the login action writes the same docker config), into a docker config of the job's own
  (``$RUNNER_TEMP``, then ``DOCKER_CONFIG`` for the job's later steps): act's jobs share HOME, GitHub's each
  run on a fresh machine, so a job that does not log in itself must not read staging with another job's login;
- the placeholders a user replaces: ``STAGING_REGISTRY`` and ``RELEASE_FILE`` (the example release file with
  its registries replaced, :func:`release_file_for`), ``secrets.GITHUB_TOKEN`` and ``github.actor`` (the
  staging account), the production account's secrets.

Everything else (the job graph, the matrix from the plan's output, the inputs, the credentials each action
gets) runs as written. Staging and production are two Basic-auth registries with different accounts behind
recording proxies (:mod:`release_examples`).
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from release_examples import (TAG, Staged, assert_production_untouched, assert_released, copy_shards_run,
                              release_file, stage_release)
from wrapper_tools import (REPO_ROOT, ActRun, ActRunner, Guarded, assert_example_passes_jactionlint,
                           assert_only_own_credentials, failed_summary, require_tool, third_party_actions)

EXAMPLE = REPO_ROOT / "examples" / "github" / "release-images.yml"
EXAMPLE_RELEASE_FILE = REPO_ROOT / "examples" / "github" / "release-file.yaml"
#: The example release file's placeholders: the staging repositories and the production registry's path.
STAGING_PLACEHOLDER = "ghcr.io/your-org/shop-staging"
PROD_PLACEHOLDER = "registry.example.com/shop"
OWN_ACTION = "your-org/ci-oras/actions/"

pytestmark = pytest.mark.integration


def _login_fixture(inputs: dict[str, str]) -> dict[str, Any]:
    assert inputs.keys() == {"registry", "username", "password"}, inputs
    return {
        "env": {"LOGIN_REGISTRY": inputs["registry"], "LOGIN_USERNAME": inputs["username"],
                "LOGIN_PASSWORD": inputs["password"]},
        "run": 'echo "DOCKER_CONFIG=$RUNNER_TEMP/docker-config" >> "$GITHUB_ENV"\n'
               'echo "$LOGIN_PASSWORD" | DOCKER_CONFIG="$RUNNER_TEMP/docker-config" ci-oras login --emit none'
               ' "$LOGIN_REGISTRY" -u "$LOGIN_USERNAME" --password-stdin\n',
    }


def _upload_fixture(inputs: dict[str, str]) -> dict[str, Any]:
    assert inputs.keys() == {"name", "path", "if-no-files-found"} and inputs["if-no-files-found"] == "error", inputs
    return {"env": {"ARTIFACT_NAME": inputs["name"], "ARTIFACT_PATH": inputs["path"]},
            "run": 'mkdir -p "$FIXTURE_ARTIFACTS/$ARTIFACT_NAME"\n'
                   'cp "$ARTIFACT_PATH" "$FIXTURE_ARTIFACTS/$ARTIFACT_NAME/"\n'}  # fails without the file


def _download_fixture(inputs: dict[str, str]) -> dict[str, Any]:
    assert inputs.keys() <= {"name", "path"}, inputs
    return {"env": {"ARTIFACT_NAME": inputs["name"], "ARTIFACT_PATH": inputs.get("path", ".")},
            "run": 'mkdir -p "$ARTIFACT_PATH"\ncp -R "$FIXTURE_ARTIFACTS/$ARTIFACT_NAME/." "$ARTIFACT_PATH/"\n'}


#: The remote actions act cannot fetch offline, each replaced by a step doing its part here from the step's
#: own inputs (``id`` and ``env`` of the replaced step kept).
FIXTURES = {"docker/login-action": _login_fixture, "actions/upload-artifact": _upload_fixture,
            "actions/download-artifact": _download_fixture}


def act_variant(example: dict[Any, Any], env: dict[str, str]) -> dict[str, Any]:
    """The example as act runs it offline (the module docstring lists each change): remote actions replaced
    by :data:`FIXTURES` or this checkout's actions, a checkout first in each job, the ``env`` placeholders
    set from ``env``."""
    # PyYAML reads the `on` key as YAML 1.1's true: give the workflow its key back
    variant = {("on" if key is True else key): value for key, value in copy.deepcopy(example).items()}
    checkout = next(step for step in variant["jobs"]["plan"]["steps"]
                    if step.get("uses", "").startswith("actions/checkout@"))
    replaced = set()
    for job in variant["jobs"].values():
        steps = job["steps"]
        for index, step in enumerate(steps):
            action = step.get("uses", "").partition("@")[0]
            if action in FIXTURES:
                steps[index] = {key: step[key] for key in ("id", "env") if key in step}
                fixture = FIXTURES[action](step["with"])
                steps[index]["env"] = {**steps[index].get("env", {}), **fixture.pop("env")}
                steps[index].update(name=f"Fixture for {action}", **fixture)
                replaced.add(action)
            elif action.startswith(OWN_ACTION):
                step["uses"] = "./actions/" + action.removeprefix(OWN_ACTION)
            else:
                assert action in ("", "actions/checkout"), action
        if steps[0] != checkout:
            steps.insert(0, dict(checkout))
    assert replaced == set(FIXTURES)
    assert set(env) <= set(variant["env"]), "only the example's placeholders"
    variant["env"].update(env)
    return variant


def release_file_for(staged: Staged) -> str:
    """The example release file with its placeholders replaced by the staged registries: it must say what
    :func:`release_examples.release_file` says (the release the checks expect)."""
    text = EXAMPLE_RELEASE_FILE.read_text(encoding="utf-8")
    text = text.replace(STAGING_PLACEHOLDER, f"{staged.dev.host}/{staged.base}")
    text = text.replace(PROD_PLACEHOLDER, f"{staged.prod.host}/{staged.base}")
    assert yaml.safe_load(text) == yaml.safe_load(release_file(staged))
    return text


def _run_example(act: ActRunner, tmp_path: Path, staged: Staged) -> ActRun:
    """The example under act, released from ``staged``: the staging account as ``github.actor`` and
    ``secrets.GITHUB_TOKEN``, the production account as the production secrets; a tag push."""
    dev, prod = staged.dev, staged.prod
    release = tmp_path / "release.yaml"
    release.write_text(release_file_for(staged), encoding="utf-8")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    variant = act_variant(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")),
                          {"STAGING_REGISTRY": dev.host, "RELEASE_FILE": str(release)})
    workflow = tmp_path / "release-images.yml"
    workflow.write_text(yaml.safe_dump(variant, sort_keys=False), encoding="utf-8")
    return act(workflow, {"FIXTURE_ARTIFACTS": str(artifacts)},
               secrets={"GITHUB_TOKEN": dev.password, "PROD_REGISTRY_USER": prod.username,
                        "PROD_REGISTRY_PASSWORD": prod.password},
               event={"ref": f"refs/tags/{TAG}"}, actor=dev.username)


def _job_results(run: ActRun) -> dict[str, str]:
    """Each job's result by name (``copy-1``: the copy job of shard 1), as act reported it."""
    results = {}
    for event in run.events:
        if "jobResult" in event:
            shard = (event.get("matrix") or {}).get("shard")
            results[event["jobID"] + (f"-{shard}" if shard is not None else "")] = event["jobResult"]
    return results


def _first_event(run: ActRun, job_id: str) -> int:
    return next(index for index, event in enumerate(run.events) if event.get("jobID") == job_id)


def _assert_no_password(run: ActRun, dev: Guarded, prod: Guarded) -> None:
    """The production password shows only in the ``::add-mask::`` commands of the actions that mask it; the
    staging password (a secret act masks) nowhere."""
    seen = [event for event in run.events if prod.password in json.dumps(event)]
    assert seen and all(event.get("command") == "add-mask" for event in seen), seen
    assert prod.password not in run.log
    assert dev.password not in run.raw


def test_release_example_pins_every_action_by_commit() -> None:
    """What a user copies fetches nothing unpinned: each third-party action by full commit SHA and version."""
    actions = third_party_actions(EXAMPLE.read_text(encoding="utf-8"), own=OWN_ACTION)
    assert actions == {"actions/checkout", *FIXTURES}


def test_release_example_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    scripts = [step["run"] for job in example["jobs"].values() for step in job["steps"] if "run" in step]
    assert scripts
    for index, script in enumerate(scripts):
        assert "${{" not in script, "expressions reach run: through env only"
        path = tmp_path / f"script-{index}.sh"
        path.write_text(script + "\n", encoding="utf-8")
        result = subprocess.run([shellcheck, "--shell=bash", str(path)], check=False, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_release_example_passes_jactionlint(tmp_path: Path) -> None:
    assert_example_passes_jactionlint(EXAMPLE, tmp_path, own_uses=3)


def test_release_example_runs_end_to_end(act: ActRunner, guarded_pair: tuple[Guarded, Guarded],
                                         tmp_path: Path) -> None:
    dev, prod = guarded_pair
    staged = stage_release(dev, prod, tmp_path / "stage")
    run = _run_example(act, tmp_path, staged)
    assert run.returncode == 0, run.log
    # the plan's matrix (as the example writes it, not a fixed list) made one copy job per shard, and the
    # commit waited for both
    jobs = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["jobs"]
    assert jobs["plan"]["outputs"]["matrix"] == "${{ steps.plan.outputs.matrix }}"
    assert jobs["copy"]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert _job_results(run) == {"plan": "success", "copy-1": "success", "copy-2": "success",
                                 "commit": "success"}, run.log
    assert copy_shards_run(run.log) == [1, 2], run.log
    finished = [index for index, event in enumerate(run.events)
                if event.get("jobID") == "copy" and "jobResult" in event]
    assert len(finished) == 2 and _first_event(run, "commit") > max(finished)
    assert "release committed: 6 tags moved in production" in run.log
    assert_released(staged, tmp_path / "check")
    assert_only_own_credentials(dev, prod)
    _assert_no_password(run, dev, prod)


def test_release_example_gate_failure_copies_and_commits_nothing(
        act: ActRunner, guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    dev, prod = guarded_pair
    staged = stage_release(dev, prod, tmp_path / "stage", unsigned="web")
    run = _run_example(act, tmp_path, staged)
    assert run.returncode != 0, run.log
    assert _job_results(run) == {"plan": "failure"}, run.log
    assert not [event for event in run.events if event.get("jobID") in ("copy", "commit")], run.log
    # the job summary names the image whose gate failed: the release file's second entry, web
    assert yaml.safe_load(release_file(staged))["images"][1]["source"] == staged.source("web")
    assert '| `failed` | `["images[2]"]` |' in failed_summary(run, "plan")
    assert_production_untouched(staged)
    _assert_no_password(run, dev, prod)
