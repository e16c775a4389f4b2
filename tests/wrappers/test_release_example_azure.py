"""The Azure Pipelines release example (``examples/azure/release-images.yml``), run end to end.

Three images with their SBOMs and signatures move from a staging registry (a Docker registry service
connection) to a production registry (another account, from a variable group's secret variables): the Plan
job pins, gates and shards the release, the Copy job runs once per leg of the matrix it reads from the plan's
``azureMatrix`` output variable, and the Commit job moves the tags. No local runner exists for Azure YAML, so
:mod:`azure_runner` plays the agent: each job, and each matrix leg, in its own workspace with the extension's
staged tasks; the matrix evaluated from the output variable the Plan task set; the plan passed between jobs
only through ``PublishPipelineArtifact@1``/``DownloadPipelineArtifact@2``. The example runs as written: it has
nothing that cannot run here (no remote action, no docker build). The test supplies what a user's project
does: release.yaml in the repository, the service connection, the variable group.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from azure_runner import AZURE_MACRO, AzureJob, assert_masked, run_azure_jobs
from release_examples import (IMAGES, TAG, Staged, assert_production_untouched, assert_released, copy_shards_run,
                              release_file, stage_release)
from wrapper_tools import REPO_ROOT, Guarded, assert_only_own_credentials, require_tool

EXAMPLE = REPO_ROOT / "examples" / "azure" / "release-images.yml"

pytestmark = pytest.mark.integration


def _run_example(tmp_path: Path, node: str, tasks: Path, staged: Staged) -> list[AzureJob]:
    """The example's jobs, with ``staging-registry`` connected to the staging registry, the variable group
    ``production-registry`` holding the production account, and the release file committed as release.yaml."""
    pipeline = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return run_azure_jobs(
        pipeline, node=node, tasks=tasks, root=tmp_path / "agent",
        variables={"Build.SourceBranchName": TAG},
        connections={"staging-registry": staged.dev},
        groups={"production-registry": {"PROD_REGISTRY_USER": staged.prod.username,
                                        "PROD_REGISTRY_PASSWORD": staged.prod.password}},
        sources={"release.yaml": release_file(staged).encode()})


def _assert_no_password(jobs: list[AzureJob], *registries: Guarded) -> None:
    """Each password shows only in the ``##vso[task.setsecret]`` commands that make the agent mask it."""
    steps = [step for job in jobs for step in job.steps]
    for registry in registries:
        assert_masked(registry.password, steps)


def test_the_release_runs_plan_then_one_copy_per_shard_then_commit(
        node: str, staged: Path, guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    dev, prod = guarded_pair
    release = stage_release(dev, prod, tmp_path / "seed")
    jobs = _run_example(tmp_path, node, staged, release)
    everything = "\n".join(job.log for job in jobs)
    assert [(job.name, job.result) for job in jobs] == [
        ("Plan", "Succeeded"), ("Copy shard_1", "Succeeded"), ("Copy shard_2", "Succeeded"),
        ("Commit", "Succeeded")], everything

    plan, *copies, commit = jobs
    assert plan.outputs["plan.ok"] == "true"
    # the matrix the Copy job ran is the plan's output variable, leg for leg
    assert json.loads(plan.outputs["plan.azureMatrix"]) == {copy.name.split()[1]: copy.matrix for copy in copies}
    assert [copy.matrix for copy in copies] == [{"shard": "1"}, {"shard": "2"}]
    # each shard copied exactly once, by its own job, and between them every image
    assert [copy_shards_run(copy.log.replace('"', "")) for copy in copies] == [[1], [2]]
    copied = [image for copy in copies for image in json.loads(copy.outputs["copy.images"])]
    assert sorted(copied) == [f"images[{number}]" for number in range(1, len(IMAGES) + 1)], copied
    assert commit.outputs["commit.ok"] == "true"
    assert commit.steps[-1].log.strip() == f"release committed, {2 * len(IMAGES)} tags moved"

    assert_released(release, tmp_path / "check")
    assert_only_own_credentials(dev, prod)
    _assert_no_password(jobs, dev, prod)


def test_a_failed_gate_stops_the_release_at_the_plan(
        node: str, staged: Path, guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    dev, prod = guarded_pair
    release = stage_release(dev, prod, tmp_path / "seed", unsigned="web")
    jobs = _run_example(tmp_path, node, staged, release)
    everything = "\n".join(job.log for job in jobs)
    assert [(job.name, job.result) for job in jobs] == [
        ("Plan", "Failed"), ("Copy", "Skipped"), ("Commit", "Skipped")], everything
    plan = jobs[0]
    assert [step.label for step in plan.steps] == ["plan"], "the plan is not published"
    assert plan.outputs["plan.ok"] == "false"
    assert json.loads(plan.outputs["plan.failed"]) == [f"images[{IMAGES.index('web') + 1}]"]  # ids count from 1
    # the plan still sets its matrix: the Copy job's condition (succeeded()) is what keeps it from running
    assert json.loads(plan.outputs["plan.azureMatrix"]), plan.outputs
    assert_production_untouched(release)
    _assert_no_password(jobs, dev, prod)


RUNNER_CHECK = """
jobs:
  - job: A
    steps:
      - bash: |
          echo '##vso[task.setvariable variable=legs;isOutput=true]{"x_1":{"n":"1"},"x_2":{"n":"2"}}'
          cp release.yaml plan.txt
        name: gen
      - task: PublishPipelineArtifact@1
        inputs: {targetPath: plan.txt, artifact: p}
  - job: B
    dependsOn: A
    strategy:
      matrix: $[ dependencies.A.outputs['gen.legs'] ]
    steps:
      - checkout: none
      - task: DownloadPipelineArtifact@2
        inputs: {artifactName: p, targetPath: $(Pipeline.Workspace)/in}
      - bash: test ! -e release.yaml && cat $(Pipeline.Workspace)/in/plan.txt && echo "leg $(n)" && test $(n) = 1
  - job: C
    dependsOn: B
    steps:
      - bash: echo never
"""


def test_the_runner_plays_jobs_matrices_and_artifacts_as_azure_does(tmp_path: Path) -> None:
    """What the example's test relies on, with plain scripts: the matrix from job A's output variable, one
    workspace per job (the checkout in A only, the file reaching B's legs only as an artifact), a failed leg
    failing B and so skipping C."""
    jobs = run_azure_jobs(yaml.safe_load(RUNNER_CHECK), node="node", tasks=tmp_path / "no-tasks",
                          root=tmp_path / "agent", variables={}, connections={},
                          sources={"release.yaml": b"the plan\n"})
    assert [(job.name, job.result) for job in jobs] == [
        ("A", "Succeeded"), ("B x_1", "Succeeded"), ("B x_2", "Failed"), ("C", "Skipped")], [j.log for j in jobs]
    assert jobs[1].steps[-1].log == "the plan\nleg 1\n" and jobs[2].steps[-1].log == "the plan\nleg 2\n"


def test_the_example_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    pipeline = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    scripts = [step["bash"] for job in pipeline["jobs"] for step in job["steps"] if "bash" in step]
    assert scripts
    for index, script in enumerate(scripts):
        path = tmp_path / f"script-{index}.sh"
        path.write_text(AZURE_MACRO.sub("value", script) + "\n", encoding="utf-8")
        result = subprocess.run([shellcheck, "--shell=bash", str(path)], check=False, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
