"""The copy matrix of a plan in the shapes the CI platforms read: GitLab's child-pipeline shard file.

GitHub reads the plan's ``matrix`` output as it is (``strategy.matrix: ${{ fromJSON(...) }}``) and Azure its
``azure-matrix`` output (``strategy.matrix: $[ dependencies.plan.outputs['plan.azureMatrix'] ]``); both are
functions of the plan document (:mod:`ci_oras.emit.outputs`). GitLab has no matrix from a variable: a child
pipeline is generated instead. The file written here holds only the shard list and where the plan comes from;
the job itself (install, credentials, ``release copy``) is the ``release-copy`` template included before it
in the same ``trigger:include``, whose job GitLab merges with this one by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ci_oras.errors import UsageError

#: GitLab refuses a ``parallel:matrix`` of more jobs than this.
GITLAB_MATRIX_LIMIT = 200
#: The variable each copy job of the GitLab matrix gets its shard number in (``release copy`` reads it).
SHARD_VARIABLE = "CI_ORAS_RELEASE_SHARD"


def check_gitlab_shards(shards: int) -> None:
    """Refuse, before anything is planned, a shard count GitLab could not run as one matrix."""
    if shards > GITLAB_MATRIX_LIMIT:
        raise UsageError(f"--shards {shards} is more than GitLab runs in one parallel:matrix "
                         f"({GITLAB_MATRIX_LIMIT})", hint=f"use --shards {GITLAB_MATRIX_LIMIT} or fewer")


def gitlab_shard_file(release: str, shards: Sequence[int], copy_job: str, env: Mapping[str, str]) -> str:
    """The shard file for ``copy_job``: one job per shard with work, and ``needs:`` on this job's artifacts
    (``$CI_JOB_NAME`` of pipeline ``$CI_PIPELINE_ID``, the parent) when those variables are set."""
    if not copy_job.strip():
        raise UsageError("--copy-job is empty", hint="name the release-copy job, e.g. ci-oras-release-copy")
    if not shards:
        raise UsageError("the plan has no shard to copy", hint="list at least one image in the release file")
    check_gitlab_shards(len(shards))
    lines = [
        f"# The copy jobs of release {json.dumps(release)}, written by `ci-oras release plan --emit gitlab`.",
        "# Include it after the release-copy template in the child pipeline's trigger:include: GitLab merges",
        "# this job with the template's job of the same name, which then runs once per shard.",
        f"{json.dumps(copy_job)}:",
        "  parallel:",
        "    matrix:",
        f"      - {SHARD_VARIABLE}: [{', '.join(json.dumps(str(shard)) for shard in shards)}]",
    ]
    pipeline, job = env.get("CI_PIPELINE_ID", ""), env.get("CI_JOB_NAME", "")
    if pipeline and job:
        lines += [
            "  needs:",
            f"    - pipeline: {json.dumps(pipeline)}",
            f"      job: {json.dumps(job)}",
        ]
    return "".join(line + "\n" for line in lines)
