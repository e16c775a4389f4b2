"""A crash is not a verdict: an unexpected exception exits 70, ^C 130, a closed stdout 141, never 0 or 1.

The crash is injected into the real CLI process by ``tests/harness/crash`` (a ``sitecustomize`` that replaces
one step function with one that raises), so these runs go through the same entry point users run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from harness.cli import CliResult, clean_env, expect, invoke_cli_many, run_cli

from ci_oras.schemas import load_schema

CRASH_DIR = Path(__file__).resolve().parents[1] / "harness" / "crash"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """``oci:DIR:v1`` holding one pushed file, and the environment the CLI runs with."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "f.txt").write_text("hello\n")
    env = clean_env(tmp_path)
    reference = f"oci:{tmp_path / 'layout'}:v1"
    expect(run_cli("push", reference, "f.txt", env=env, cwd=work))
    return reference, env


def crashing(env: dict[str, str], target: str, exception: str = "AttributeError", **extra: str) -> dict[str, str]:
    return {**env, "PYTHONPATH": str(CRASH_DIR), "CI_ORAS_TEST_CRASH": f"{target}:{exception}", **extra}


def one_line_error(result: CliResult) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(("command", "target"), [
    (("discover",), "ci_oras.steps.discover:discover_graph"),
    (("verify", "--require", "sbom"), "ci_oras.steps.verify:verify"),
])
def test_a_crash_exits_70_with_one_line_naming_the_bug(layout: tuple[str, dict[str, str]], command: tuple[str, ...],
                                                       target: str) -> None:
    reference, env = layout
    result = expect(run_cli(command[0], reference, *command[1:], env=crashing(env, target)), 70)
    line = one_line_error(result)
    assert "internal error in ci-oras" in line and command[0] in line and "a bug, not a verdict" in line, line
    assert "AttributeError" in line and "CI_ORAS_DEBUG=1" in line, line


def test_ci_oras_debug_shows_the_traceback(layout: tuple[str, dict[str, str]]) -> None:
    reference, env = layout
    result = expect(run_cli("discover", reference,
                            env=crashing(env, "ci_oras.steps.discover:discover_graph", CI_ORAS_DEBUG="1")), 70)
    assert "Traceback (most recent call last)" in result.stderr and "sitecustomize.py" in result.stderr


def test_output_json_prints_an_error_document_on_a_crash(layout: tuple[str, dict[str, str]]) -> None:
    reference, env = layout
    result = expect(run_cli("verify", reference, "--require", "sbom", "--output", "json",
                            env=crashing(env, "ci_oras.steps.verify:verify")), 70)
    document = result.json()
    jsonschema.validate(document, load_schema("error"))
    assert document["step"] == "verify" and document["error"]["exitCode"] == 70
    assert document["error"]["kind"] == "internal" and "AttributeError" in document["error"]["message"]


def test_output_json_prints_an_error_document_for_every_error(tmp_path: Path) -> None:
    result = expect(run_cli("discover", f"oci:{tmp_path / 'absent'}:v1", "--output", "json",
                            env=clean_env(tmp_path)), 3)
    document = result.json()
    jsonschema.validate(document, load_schema("error"))
    assert document["error"]["kind"] == "not-found" and document["error"]["hint"]


def test_each_run_in_one_process_prints_its_own_error_document(layout: tuple[str, dict[str, str]],
                                                                tmp_path: Path) -> None:
    """Whether a result is already on stdout belongs to one run, not to the process: a library user or the
    in-process harness runs many commands in one interpreter, some at once."""
    reference, env = layout
    absent = f"oci:{tmp_path / 'absent'}:v1"
    runs = [("discover", reference, "-O", "json"), ("discover", absent, "-O", "json")] * 3
    for args, result in zip(runs, invoke_cli_many(runs, env=env)):
        document = result.json()
        expected = ("ci-oras/discover/v1", 0) if args[1] == reference else ("ci-oras/error/v1", 3)
        assert (document["schema"], result.returncode) == expected, (args, result)


def test_a_failed_gate_prints_its_own_document_only(layout: tuple[str, dict[str, str]]) -> None:
    """Exit 1 is the verdict, with verify's own result: stdout still holds exactly one JSON document."""
    reference, env = layout
    result = expect(run_cli("verify", reference, "--require", "sbom", "--output", "json", env=env), 1)
    document = result.json()  # one document: json.loads refuses a second one after it
    assert document["schema"] == "ci-oras/verify/v1" and document["ok"] is False


def test_a_crash_reaches_the_platform_as_an_error(layout: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    reference, env = layout
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    platform = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)}
    result = expect(run_cli("verify", reference, "--require", "sbom", "--emit", "github",
                            env=crashing(env, "ci_oras.steps.verify:verify", **platform)), 70)
    assert "::error" in result.stderr and "internal error" in result.stderr
    assert "internal error" in summary.read_text(encoding="utf-8")


def test_an_interrupt_exits_130(layout: tuple[str, dict[str, str]]) -> None:
    reference, env = layout
    result = expect(run_cli("verify", reference, "--require", "sbom",
                            env=crashing(env, "ci_oras.steps.verify:verify", "KeyboardInterrupt")), 130)
    assert one_line_error(result) == "Error: interrupted"


def test_a_closed_stdout_exits_141_not_0(layout: tuple[str, dict[str, str]]) -> None:
    """The reader of stdout went away before the document was written: not a pass (nor a failed gate)."""
    reference, env = layout
    process = subprocess.Popen([sys.executable, "-m", "ci_oras", "verify", reference, "--require", "sbom",
                                "--output", "json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
