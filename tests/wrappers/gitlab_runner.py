"""gitlab-ci-local runs of the example pipelines in ``examples/gitlab/`` (see :mod:`test_examples` and
:mod:`test_release_example_gitlab`).

gitlab-ci-local (4.73.0) only sees files tracked by git, so each pipeline runs in a fresh git repository holding
this checkout's ``gitlab/`` templates, the pipeline and its files. Jobs run on the host
(``--force-shell-executor``, even when they name an image), each in its own copy of the repository
(``--shell-isolation``); artifacts stay in the state directory (``--no-artifacts-to-source``), from where jobs
of later runs in the same repository import them, as the jobs that need them would on GitLab.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from harness.cli import clean_env
from wrapper_tools import REPO_ROOT, installed_path, require_tool

#: Where gitlab-ci-local keeps a job's artifacts, under the repository it ran in.
STATE_DIR = ".gitlab-ci-local"


def local_templates(includes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``include: project:`` items of the ci-oras templates as the tests run them: ``include: local:`` (this
    checkout's templates) with ``package: ""`` (the ci-oras on PATH: the session's install). Each item must be
    such a project include with the ``package`` input pinned to a release, as a user's copy has it."""
    local = []
    for item in copy.deepcopy(includes):
        assert item.keys() == {"project", "ref", "file", "inputs"}, item
        item["local"] = item.pop("file")
        del item["project"], item["ref"]
        assert item["inputs"]["package"].startswith("ci-oras=="), item  # pinned in the example
        item["inputs"]["package"] = ""
        local.append(item)
    return local


def _environment(scratch: Path) -> dict[str, str]:
    """The environment of a run: no CI variables of the machine, a PATH with the session's ci-oras and the
    system's tools (not the development venv)."""
    env = {k: v for k, v in clean_env(scratch / "home").items() if not k.startswith(("GITLAB_", "CI_"))}
    env["HOME"] = os.environ.get("HOME", str(scratch / "home"))  # gitlab-ci-local keeps its state there
    env["PATH"] = installed_path(scratch / "bin")
    return env


def make_repository(work: Path, pipeline: dict[str, Any], files: dict[str, bytes], *, scratch: Path) -> Path:
    """A git repository at ``work`` with this checkout's ``gitlab/`` templates, ``pipeline`` as
    ``.gitlab-ci.yml`` and ``files`` (path -> content), all committed. Returns ``work``."""
    git = require_tool("git")
    work.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "gitlab", work / "gitlab")
    (work / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    for name, content in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(content)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "pipeline"]):
        subprocess.run([git, *command], cwd=work, env=_environment(scratch), check=True, capture_output=True,
                       timeout=60)
    return work


def run_gitlab_ci_local(work: Path, variables: dict[str, str], *jobs: str,
                        scratch: Path) -> subprocess.CompletedProcess[str]:
    """gitlab-ci-local in the repository ``work``: the whole pipeline, or only ``jobs`` (their artifacts from
    earlier runs there are imported); ``variables`` come in with ``--variable``. The PATH holds the session's
    ci-oras and the system's tools, not the development venv; ``scratch`` holds what the run needs besides."""
    binary = require_tool("gitlab-ci-local")
    require_tool("rsync")
    command = [binary, "--file", ".gitlab-ci.yml", "--force-shell-executor", "--shell-isolation",
               "--no-artifacts-to-source", "--no-color"]
    for key, value in variables.items():
        command += ["--variable", f"{key}={value}"]
    return subprocess.run([*command, *jobs], cwd=work, env=_environment(scratch), check=False,
                          capture_output=True, text=True, timeout=600)


def gitlab_ci_local(tmp_path: Path, pipeline: dict[str, Any], variables: dict[str, str],
                    files: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    """Runs ``pipeline`` with gitlab-ci-local in a fresh repository (:func:`make_repository` at
    ``tmp_path/repo``); ``variables`` come in with ``--variable``."""
    work = make_repository(tmp_path / "repo", pipeline, files, scratch=tmp_path)
    return run_gitlab_ci_local(work, variables, scratch=tmp_path)


def artifact(work: Path, job: str, path: str) -> Path:
    """The file ``path`` among the artifacts job ``job`` left in the repository ``work``."""
    return work / STATE_DIR / "artifacts" / job / path


def passed(log: str) -> list[str]:
    """The jobs gitlab-ci-local reports as passed, in its order (``PASS  name``)."""
    return re.findall(r"^ PASS  (.+?)\s*$", log, re.M)


def failed(log: str) -> list[str]:
    """The jobs gitlab-ci-local reports as failed (``FAIL  name``)."""
    return re.findall(r"^ FAIL  (.+?)\s*$", log, re.M)


def started(log: str) -> list[str]:
    """The jobs gitlab-ci-local started (``name starting shell (stage)``)."""
    return re.findall(r"^(\S.*?) +starting shell ", log, re.M)


def job_output(log: str, job: str) -> str:
    """What job ``job`` printed (its ``name > line`` lines)."""
    return "\n".join(re.findall(rf"^{re.escape(job)} +> (.*)$", log, re.M))
