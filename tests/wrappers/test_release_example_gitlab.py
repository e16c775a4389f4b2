"""The GitLab release example (``examples/gitlab/release-images.gitlab-ci.yml``), run end to end with
gitlab-ci-local against two guarded registries: staging (``dev``, the job token of ``$CI_REGISTRY``) and
production (``prod``, another account, from the ``PROD_REGISTRY_*`` variables).

The example's pipeline is plan -> copy (a trigger job: a child pipeline runs release-copy once per shard) ->
commit. gitlab-ci-local runs it the way GitLab would, one stage after the other:

1. the parent pipeline's ``plan`` job (``gitlab-ci-local plan``);
2. the child pipeline the ``copy`` trigger job starts: a second gitlab-ci-local pipeline, in its own repository,
   whose ``include`` is the trigger job's ``trigger:include``, with ``ci-oras-release-copy.yml`` as the plan job
   wrote it (taken from gitlab-ci-local's artifacts directory, not generated again);
3. the parent pipeline's ``commit`` job (``gitlab-ci-local commit``: it imports the plan job's artifacts from
   step 1, as ``dependencies: [plan]`` downloads them on GitLab). It runs only if every copy job passed, as
   ``strategy: depend`` and the stage order make GitLab do.

What the test swaps, and why (everything else runs as a user's copy has it):

- ``include: project:`` (the ci-oras templates from a GitLab project) -> ``include: local:`` of this checkout's
  templates, with ``package: ""`` so the jobs use the session's install of ci-oras (no GitLab instance, no
  index here): in the parent and in the child's include alike.
- The ``copy`` trigger job is left out of the parent run and played by step 2. gitlab-ci-local 4.73 runs
  ``trigger:include`` only experimentally, and not as GitLab does: it skips ``project:`` items ("currently not
  implemented"), passes no ``inputs`` to included files, and merges the included files shallowly, so the
  shard file's job would replace the template's job instead of being merged into it.
- In the child, ``artifact: ci-oras-release-copy.yml, job: plan`` -> ``local: ci-oras-release-copy.yml``, the
  plan job's file committed into the child's repository.
- ``needs: [{pipeline: <parent id>, job: plan}]``, which the shard file carries: gitlab-ci-local ignores it
  ("pipeline key not supported") and fetches nothing from another pipeline. The plan job's artifacts
  (``release-plan.json`` among them) are committed into the child's repository instead, where the copy jobs
  find them as they find the downloaded artifacts on GitLab.
- Project CI/CD variables (the job token, ``PROD_REGISTRY_*``) and ``CI_COMMIT_TAG`` (the example runs for
  tags) come in with ``--variable`` to each run, as GitLab gives them to parent and child pipelines alike.

Verified on gitlab-ci-local 4.73.0 by these runs: ``parallel: matrix`` runs one job per value
(``ci-oras-release-copy: [1]``, ``[2]``, each with its ``CI_ORAS_RELEASE_SHARD``), and the jobs of the same
name from two include files are merged key by key (the template's script with the shard file's matrix).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitlab_runner import (artifact, failed, job_output, local_templates, make_repository, passed,
                           run_gitlab_ci_local, started)
from release_examples import (TAG, Staged, assert_production_untouched, assert_released, release_file,
                              stage_release)
from wrapper_tools import REPO_ROOT, Guarded, assert_only_own_credentials, require_tool

EXAMPLE = REPO_ROOT / "examples" / "gitlab" / "release-images.gitlab-ci.yml"
SHARD_FILE = "ci-oras-release-copy.yml"
COPY_JOB = "ci-oras-release-copy"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def parent_test_variant(example: dict[str, Any]) -> dict[str, Any]:
    """The parent pipeline as gitlab-ci-local runs it: its includes local, the ``copy`` trigger job left out
    (the child runs on its own, :func:`child_test_variant`). ``commit`` keeps ``dependencies: [plan]`` and
    follows copy by stage order alone, so leaving copy out changes nothing else."""
    variant = {key: value for key, value in example.items() if key != "copy"}
    assert "trigger" in example["copy"] and "needs" not in variant["commit"]
    variant["include"] = local_templates(example["include"])
    return variant


def child_test_variant(example: dict[str, Any]) -> dict[str, Any]:
    """The child pipeline GitLab builds from the ``copy`` job's ``trigger:include``, in the same order: the
    release-copy template local, the plan job's shard file as a committed file (``local:``)."""
    trigger = example["copy"]["trigger"]
    assert trigger["strategy"] == "depend"
    # nothing else reaches the child: no global or trigger variables to forward
    assert "variables" not in example and "variables" not in example["copy"]
    include = []
    for item in trigger["include"]:
        if "artifact" in item:
            assert item == {"artifact": SHARD_FILE, "job": "plan"}, item
            include.append({"local": SHARD_FILE})
        else:
            include += local_templates([item])
    return {"include": include}


def _variables(staged: Staged) -> dict[str, str]:
    """What GitLab gives the jobs of a tag pipeline of the project: the job token for $CI_REGISTRY (staging)
    and the production account from the project's CI/CD variables."""
    dev, prod = staged.dev, staged.prod
    return {"CI_COMMIT_TAG": TAG, "CI_REGISTRY": dev.host, "CI_REGISTRY_IMAGE": f"{dev.host}/{staged.base}",
            "CI_REGISTRY_USER": dev.username, "CI_REGISTRY_PASSWORD": dev.password,
            "PROD_REGISTRY_USER": prod.username, "PROD_REGISTRY_PASSWORD": prod.password}


def _log(run: subprocess.CompletedProcess[str]) -> str:
    return run.stdout + run.stderr


def _stage(guarded_pair: tuple[Guarded, Guarded], tmp_path: Path, unsigned: str | None = None) -> Staged:
    require_tool("gitlab-ci-local")  # before seeding anything
    dev, prod = guarded_pair
    return stage_release(dev, prod, tmp_path / "seed", unsigned=unsigned)


SHARD_COPIED = re.compile(rf"^{COPY_JOB}: \[(\d+)\] +> Release {re.escape(TAG)}, shard (\d+): (\d+) images copied",
                          re.M)


def test_gitlab_release_example_moves_every_image_with_its_graph(
        example: dict[str, Any], guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    staged = _stage(guarded_pair, tmp_path)
    variables = _variables(staged)
    parent = make_repository(tmp_path / "parent", parent_test_variant(example),
                             {"release.yaml": release_file(staged).encode()}, scratch=tmp_path)

    # 1. the plan stage
    plan = run_gitlab_ci_local(parent, variables, "plan", scratch=tmp_path)
    assert plan.returncode == 0 and passed(_log(plan)) == ["plan"], _log(plan)
    shard_file = artifact(parent, "plan", SHARD_FILE)
    assert shard_file.is_file(), _log(plan)
    ((name, job),) = yaml.safe_load(shard_file.read_text(encoding="utf-8")).items()
    assert name == COPY_JOB and job["parallel"]["matrix"] == [{"CI_ORAS_RELEASE_SHARD": ["1", "2"]}], job
    (need,) = job["needs"]
    assert need["job"] == "plan" and need["pipeline"].isdigit(), need  # the plan job of this very pipeline

    # 2. the copy stage: the child pipeline, with the plan job's artifacts as needs:pipeline:job fetches them
    fetched = {str(path.relative_to(shard_file.parent)): path.read_bytes()
               for path in shard_file.parent.rglob("*") if path.is_file()}
    assert {"release-plan.json", SHARD_FILE} <= fetched.keys(), fetched.keys()
    child_repo = make_repository(tmp_path / "child", child_test_variant(example), fetched, scratch=tmp_path)
    child = run_gitlab_ci_local(child_repo, variables, scratch=tmp_path)
    child_log = _log(child)
    assert child.returncode == 0, child_log
    assert "pipeline key not supported" in child_log  # the swap above: gitlab-ci-local drops that need
    assert sorted(passed(child_log)) == [f"{COPY_JOB}: [1]", f"{COPY_JOB}: [2]"], child_log
    # each matrix job copied its own shard, once, and the two shards hold the three images
    copied = SHARD_COPIED.findall(child_log)
    assert sorted((job, shard) for job, shard, _ in copied) == [("1", "1"), ("2", "2")], child_log
    assert sum(int(images) for _, _, images in copied) == 3, child_log

    # 3. the commit stage
    commit = run_gitlab_ci_local(parent, variables, "commit", scratch=tmp_path)
    assert commit.returncode == 0 and passed(_log(commit)) == ["commit"], _log(commit)
    assert f"Release {TAG}: 3 graphs complete; tags moved" in job_output(_log(commit), "commit"), _log(commit)

    assert_released(staged, tmp_path / "check")
    assert_only_own_credentials(staged.dev, staged.prod)
    for log in (_log(plan), child_log, _log(commit)):
        assert staged.dev.password not in log and staged.prod.password not in log


def test_gitlab_release_example_stops_at_a_failing_gate(
        example: dict[str, Any], guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    """The whole parent pipeline in one run: the gate fails the plan job, so the commit stage never starts,
    and there is no shard file for a child pipeline either (GitLab would not start the trigger job)."""
    staged = _stage(guarded_pair, tmp_path, unsigned="web")
    parent = make_repository(tmp_path / "parent", parent_test_variant(example),
                             {"release.yaml": release_file(staged).encode()}, scratch=tmp_path)
    run = run_gitlab_ci_local(parent, _variables(staged), scratch=tmp_path)
    log = _log(run)
    assert run.returncode != 0, log
    assert failed(log) == ["plan"] and passed(log) == [] and started(log) == ["plan"], log
    assert re.search(r"^plan +> +images\[2\]: \S+/web@.*gate FAILED: missing signature", log, re.M), log
    assert artifact(parent, "plan", "release-plan.json").is_file(), "the plan, with why, is kept"
    assert not artifact(parent, "plan", SHARD_FILE).exists(), "no child pipeline to start"
    assert_production_untouched(staged)
    assert staged.dev.password not in log and staged.prod.password not in log


# --- what a user copies -----------------------------------------------------------------------------------------


def test_gitlab_release_example_matches_the_gitlab_ci_schema() -> None:
    """GitLab's schema knows every key the example uses, the trigger job's ``include`` items with ``inputs``
    and ``strategy`` included."""
    tool = require_tool("check-jsonschema")
    result = subprocess.run([tool, "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci",
                             str(EXAMPLE)], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_release_example_runs_only_the_templates(example: dict[str, Any]) -> None:
    """No shell and no image of the example's own: every job is a ci-oras template (whose scripts pass
    shellcheck, test_gitlab.py; whose image is pinned by digest) or the trigger job."""
    jobs = {name: body for name, body in example.items()
            if name not in ("stages", "workflow", "include", "variables")}
    assert jobs == {"copy": {**jobs["copy"], "stage": "copy"}, "commit": {"dependencies": ["plan"]}}
    assert jobs["copy"].keys() == {"stage", "trigger"}
    templates = [item for item in (*example["include"], *example["copy"]["trigger"]["include"])
                 if "project" in item]
    assert [item["file"] for item in templates] == [
        "/gitlab/release-plan.yml", "/gitlab/release-commit.yml", "/gitlab/release-copy.yml"]
    assert {item["inputs"]["package"] for item in templates} == {"ci-oras==0.1.0"}
    # the plan's matrix file names the copy job by the name the release-copy template gives it
    assert not {"copy-job"} & example["include"][0]["inputs"].keys()
    assert not {"job-name"} & templates[2]["inputs"].keys()
