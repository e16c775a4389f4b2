"""The GitLab shard file (``ci_oras.release.matrix``): the job ``release plan --emit gitlab`` writes for the
child pipeline, which GitLab merges with the release-copy template's job of the same name."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML

from ci_oras.errors import UsageError
from ci_oras.release.matrix import GITLAB_MATRIX_LIMIT, SHARD_VARIABLE, check_gitlab_shards, gitlab_shard_file

PARENT = {"CI_PIPELINE_ID": "4242", "CI_JOB_NAME": "plan"}


def _parsed(text: str) -> dict[str, Any]:
    """The shard file as GitLab reads it; YAML 1.1 (PyYAML) and 1.2 (ruamel) must agree."""
    old = yaml.safe_load(text)
    new = YAML(typ="safe", pure=True).load(text)
    assert old == new
    assert isinstance(old, dict)
    return old


def test_the_shard_file_is_the_copy_job_with_its_matrix_and_the_plan_jobs_artifacts() -> None:
    parsed = _parsed(gitlab_shard_file("v1.4.0", [1, 2], "ci-oras-release-copy", PARENT))
    assert parsed == {"ci-oras-release-copy": {
        "parallel": {"matrix": [{SHARD_VARIABLE: ["1", "2"]}]},
        "needs": [{"pipeline": "4242", "job": "plan"}],
    }}


def test_only_the_shards_with_work_are_listed_as_strings() -> None:
    (job,) = _parsed(gitlab_shard_file("r", [1, 3, 10], "copy", PARENT)).values()
    (entry,) = job["parallel"]["matrix"]
    assert entry == {SHARD_VARIABLE: ["1", "3", "10"]}  # matrix values must be strings


@pytest.mark.parametrize("env", [{}, {"CI_PIPELINE_ID": "4242"}, {"CI_JOB_NAME": "plan"},
                                 {"CI_PIPELINE_ID": "", "CI_JOB_NAME": "plan"}])
def test_no_needs_outside_a_gitlab_job(env: dict[str, str]) -> None:
    (job,) = _parsed(gitlab_shard_file("r", [1], "copy", env)).values()
    assert "needs" not in job and job["parallel"]["matrix"] == [{SHARD_VARIABLE: ["1"]}]


def test_more_shards_than_one_gitlab_matrix_runs_are_refused() -> None:
    check_gitlab_shards(GITLAB_MATRIX_LIMIT)
    _parsed(gitlab_shard_file("r", list(range(1, GITLAB_MATRIX_LIMIT + 1)), "copy", PARENT))
    with pytest.raises(UsageError, match="200"):
        check_gitlab_shards(GITLAB_MATRIX_LIMIT + 1)
    with pytest.raises(UsageError):
        gitlab_shard_file("r", list(range(1, GITLAB_MATRIX_LIMIT + 2)), "copy", PARENT)


@pytest.mark.parametrize("name", [
    'copy "shard"', "copy's job", "copy\njob: injected", "copy: job", "copy # not a comment", "- copy",
    "kopie-ä-✓", "copy\\", "$[[ inputs.job-name ]]", "copy\u2028line",
])
def test_a_job_name_stays_one_yaml_key(name: str) -> None:
    parsed = _parsed(gitlab_shard_file("r", [1, 2], name, {"CI_PIPELINE_ID": "7", "CI_JOB_NAME": name}))
    assert list(parsed) == [name]
    assert parsed[name]["needs"] == [{"pipeline": "7", "job": name}]


@pytest.mark.parametrize("release", ['v1 "quoted"', "v1\nfake: key", "v1 # x"])
def test_the_release_name_stays_in_the_comment(release: str) -> None:
    text = gitlab_shard_file(release, [1], "copy", PARENT)
    assert list(_parsed(text)) == ["copy"]


@pytest.mark.parametrize(("shards", "job"), [([], "copy"), ([1], " "), ([1], "")])
def test_an_empty_matrix_or_job_name_is_refused(shards: list[int], job: str) -> None:
    with pytest.raises(UsageError):
        gitlab_shard_file("r", shards, job, PARENT)
