"""A crash fails the job on every platform, even with the soft gate on (``fail-on-missing: false``).

The soft gate turns exit 1 ("a required referrer is missing") into a passing step; a crash must never pass
for that verdict. ``tests/harness/crash`` makes the real ci-oras raise inside its verify step (the command
then exits 70), and each platform's wrapper runs it as a pipeline would: the GitHub action under act, the
GitLab template under gitlab-ci-local, the Azure task's handler and the Azure YAML template's script, each
with the ci-oras the wrapper tests install (never the development venv). No registry is needed: the step raises before it sends anything.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from test_azure import AZURE, _result, _run_task, _substitute
from test_gitlab import _gitlab_ci_local
from wrapper_tools import ActRunner, failed_summary, installed_path

CRASH_DIR = Path(__file__).resolve().parents[1] / "harness" / "crash"
#: Where the injected crash is, for every process started with CRASH_DIR on its PYTHONPATH.
CRASH = {"PYTHONPATH": str(CRASH_DIR), "CI_ORAS_TEST_CRASH": "ci_oras.steps.verify:verify:AttributeError"}
#: Never contacted: the verify step raises before its first request.
SUBJECT = "127.0.0.1:9/crash/app:v1"


def test_github_action_fails_the_job_on_a_crash(act: ActRunner) -> None:
    run = act("verify-crash.yml", {"SUBJECT": SUBJECT, **CRASH})
    assert run.returncode != 0, run.log
    assert run.recorded("verify-crash-outcome.txt") == "failure"
    assert not (run.out / "after-gate").exists(), "the job went on after ci-oras crashed"
    assert "internal error" in failed_summary(run, "gate")


def test_gitlab_template_fails_the_job_on_a_crash(tmp_path: Path) -> None:
    run = _gitlab_ci_local(tmp_path, "verify-crash.yml", {"SUBJECT": SUBJECT, **CRASH})
    assert run.returncode != 0, run.log
    assert "internal error" in run.log and "a bug, not a verdict" in run.log, run.log
    assert "fail-on-missing: false" not in run.log, "the crash was taken for a missing referrer"


def test_azure_task_fails_on_a_crash(node: str, staged: Path, tmp_path: Path) -> None:
    run = _run_task(node, staged, "verify", {"REFERENCE": SUBJECT, "REQUIRE": "sbom", "PLAINHTTP": "true",
                                             "FAILONMISSING": "false"}, tmp_path, extra_env=CRASH)
    text = run.stdout + run.stderr
    assert _result(run) == "Failed" and run.returncode != 0, text
    assert "internal error" in text and "70" in text, text


def test_azure_template_fails_on_a_crash(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash
    script, env = _substitute(AZURE / "templates" / "verify.yml",
                              {"reference": SUBJECT, "require": "sbom", "failOnMissing": False, "plainHttp": "true"})
    base: dict[str, Any] = {"PATH": installed_path(tmp_path / "bin"), "HOME": str(tmp_path),
                            "AGENT_TEMPDIRECTORY": str(tmp_path)}
    run = subprocess.run([bash, "-c", script], cwd=tmp_path, env={**base, **env, **CRASH}, capture_output=True,
                         text=True, check=False, timeout=120)
    assert run.returncode == 70, run.stdout + run.stderr
    assert "task.logissue type=error" in run.stdout + run.stderr and "internal error" in run.stdout + run.stderr

