"""Run the real ``ci-oras`` command in a subprocess, the way a CI job does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


#: Set when the suite itself runs in a CI job: the CLI would emit to that job instead of the test's files.
_CI_PLATFORM_VARIABLES = frozenset({"GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITLAB_CI",
                                    "TF_BUILD", "AGENT_TEMPDIRECTORY"})


def clean_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment with a private HOME/DOCKER_CONFIG, so no real credentials leak into a test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CI_ORAS_", "DOCKER_", "REGISTRY_AUTH", "SOURCE_DATE_EPOCH"))
        and k not in _CI_PLATFORM_VARIABLES
    }
    env["HOME"] = str(home)
    env["DOCKER_CONFIG"] = str(home / ".docker")
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> CliResult:
    completed = subprocess.run(
        [sys.executable, "-m", "ci_oras", *args],
        env=dict(env),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)
