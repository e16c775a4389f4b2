"""The bash inside the generated actions, run directly with bash (no runner), against a stand-in ci-oras that
records its argument list and stdin: how inputs become arguments, what is refused, how exit codes come out.

Inputs are set the way a runner sets them: every variable of the step's ``env:`` present, an input left out
carrying its ``default:`` from action.yml (or the empty string).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_oras import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]

FAKE_CI_ORAS = """#!/usr/bin/env bash
if [ "${1:-}" = --version ]; then echo "ci-oras ${FAKE_VERSION:-0}"; exit 0; fi
printf '%s\\0' "$@" > "$FAKE_ARGS"
cat > "$FAKE_STDIN"
exit "${FAKE_EXIT:-0}"
"""


@dataclass(frozen=True)
class ScriptRun:
    returncode: int
    stdout: str
    stderr: str
    argv: list[str] | None  # None: ci-oras was never run
    stdin: str


def _action(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "actions" / name / "action.yml").read_text())
    return loaded


def _step(action: dict[str, Any], step_id: str) -> dict[str, Any]:
    for step in action["runs"]["steps"]:
        if step.get("id") == step_id:
            found: dict[str, Any] = step
            return found
    raise AssertionError(f"no step {step_id}")


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "ci-oras"
    path.parent.mkdir()
    path.write_text(FAKE_CI_ORAS)
    path.chmod(0o755)
    return path


def run_step(name: str, tmp_path: Path, fake: Path, inputs: dict[str, str], *,
             exit_code: int = 0) -> ScriptRun:
    """Run the ``run`` step of actions/<name> with ``inputs`` (kebab-case names) and the fake ci-oras."""
    action = _action(name)
    step = _step(action, "run")
    script = tmp_path / f"{name}.sh"
    script.write_text(step["run"])
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CI_ORAS_EXE": str(fake),
           "FAKE_ARGS": str(tmp_path / "args"), "FAKE_STDIN": str(tmp_path / "stdin"),
           "FAKE_EXIT": str(exit_code)}
    unknown = set(inputs) - set(action["inputs"])
    assert not unknown, f"actions/{name} has no inputs {unknown}"
    for input_name, spec in action["inputs"].items():
        variable = "INPUT_" + input_name.upper().replace("-", "_")
        assert variable in step["env"], f"{input_name} is not passed to the script"
        env[variable] = inputs.get(input_name, str(spec.get("default", "")))
    for stale in ("args", "stdin"):
        (tmp_path / stale).unlink(missing_ok=True)
    # the runner's own invocation for `shell: bash`
    completed = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], env=env,
                               check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    args_file = tmp_path / "args"
    argv = args_file.read_text().split("\0")[:-1] if args_file.exists() else None
    stdin_file = tmp_path / "stdin"
    return ScriptRun(completed.returncode, completed.stdout, completed.stderr, argv,
                     stdin_file.read_text() if stdin_file.exists() else "")


def test_push_maps_each_line_to_one_argument(tmp_path: Path, fake: Path) -> None:
    run = run_step("push", tmp_path, fake, {
        "reference": "127.0.0.1:5000/acme/app:v1,stable",
        "files": "readme.md:text/markdown\n\n   details  \r\n-odd name.txt\n",
        "artifact-type": "application/vnd.acme.readme.v1",
        "annotations": "com.example.note=two words\n\norg.opencontainers.image.source=https://x/y?a=1&b=2\n",
        "plain-http": "true",
    })
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.argv == [
        "push", "--emit", "github",
        "--artifact-type", "application/vnd.acme.readme.v1",
        "--annotation", "com.example.note=two words",
        "--annotation", "org.opencontainers.image.source=https://x/y?a=1&b=2",
        "--plain-http",
        "--",
        "127.0.0.1:5000/acme/app:v1,stable", "readme.md:text/markdown", "details", "-odd name.txt",
    ]
    assert run.stdin == ""


def test_values_are_never_evaluated(tmp_path: Path, fake: Path) -> None:
    hostile = ['$(touch pwned-1)', '`touch pwned-2`', '"; touch pwned-3; "', "x' ; touch pwned-4 ; '"]
    run = run_step("push", tmp_path, fake, {
        "reference": hostile[0], "files": "\n".join(hostile[1:]), "annotations": "k=${HOME}",
    })
    assert run.returncode == 0, run.stderr
    assert run.argv is not None
    assert run.argv[-4:] == hostile
    assert "k=${HOME}" in run.argv
    assert not list(tmp_path.glob("pwned-*"))


def test_password_is_masked_and_sent_on_stdin_only(tmp_path: Path, fake: Path) -> None:
    run = run_step("discover", tmp_path, fake, {
        "reference": "registry.example/acme/app:v1", "username": "robot", "password": "s3cr3t value",
    })
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "::add-mask::s3cr3t value"
    assert run.argv is not None
    assert "--password-stdin" in run.argv and ["--username", "robot"] == run.argv[3:5]
    assert not any("s3cr3t" in arg for arg in run.argv)
    assert run.stdin == "s3cr3t value\n"
    assert "s3cr3t" not in run.stdout.replace("::add-mask::s3cr3t value", "") + run.stderr


def test_a_multi_line_secret_is_masked_line_by_line(tmp_path: Path, fake: Path) -> None:
    run = run_step("verify", tmp_path, fake, {"reference": "r/x:v1", "require": "sbom",
                                              "password": "first\nsecond"})
    assert run.stdout.splitlines()[:2] == ["::add-mask::first", "::add-mask::second"]


def test_booleans_and_choices(tmp_path: Path, fake: Path) -> None:
    run = run_step("delete", tmp_path, fake, {"reference": "r/x@sha256:" + "0" * 64, "graph": "True",
                                              "plain-http": "false", "insecure": "TRUE", "referrers": "tag"})
    assert run.returncode == 0, run.stderr
    assert run.argv == ["delete", "--emit", "github", "--graph", "--insecure",
                        "--referrers", "tag", "--", "r/x@sha256:" + "0" * 64]

    defaults = run_step("delete", tmp_path, fake, {"reference": "r/x:v1"})
    assert defaults.argv == ["delete", "--emit", "github", "--referrers", "auto", "--", "r/x:v1"]


def test_discover_repeats_artifact_type_and_passes_depth(tmp_path: Path, fake: Path) -> None:
    run = run_step("discover", tmp_path, fake, {
        "reference": "r/x:v1", "artifact-type": "application/vnd.cyclonedx+json\n  application/spdx+json\n",
        "depth": "2",
    })
    assert run.argv == ["discover", "--emit", "github", "--artifact-type", "application/vnd.cyclonedx+json",
                        "--artifact-type", "application/spdx+json", "--depth", "2", "--referrers", "auto",
                        "--", "r/x:v1"]


def test_promote_maps_every_input(tmp_path: Path, fake: Path) -> None:
    run = run_step("promote", tmp_path, fake, {
        "source": "a/b:v1", "destination": "c/d:v1,stable", "artifact-type": "sbom-type\n",
        "exclude-artifact-type": "x/one\nx/two", "concurrency": "8", "ca-file": "/etc/ca.pem",
    })
    assert run.argv == ["promote", "--emit", "github", "--artifact-type", "sbom-type",
                        "--exclude-artifact-type", "x/one", "--exclude-artifact-type", "x/two",
                        "--concurrency", "8", "--ca-file", "/etc/ca.pem", "--referrers", "auto",
                        "--", "a/b:v1", "c/d:v1,stable"]


def test_attach_steps_map_their_files(tmp_path: Path, fake: Path) -> None:
    sbom = run_step("attach-sbom", tmp_path, fake, {"subject": "r/x:v1", "sbom": "sbom.cdx.json"})
    assert sbom.argv == ["attach-sbom", "--emit", "github", "--referrers", "auto",
                         "--", "r/x:v1", "sbom.cdx.json"]
    signature = run_step("attach-signature", tmp_path, fake, {
        "subject": "r/x@sha256:1", "signature": "sig.bin", "artifact-type": "application/vnd.acme.sig",
        "media-type": "application/octet-stream"})
    assert signature.argv == ["attach-signature", "--emit", "github",
                              "--artifact-type", "application/vnd.acme.sig",
                              "--media-type", "application/octet-stream", "--referrers", "auto",
                              "--", "r/x@sha256:1", "sig.bin"]
    attach = run_step("attach", tmp_path, fake, {"subject": "r/x:v1", "artifact-type": "doc/example",
                                                 "files": "a.md\nb.md"})
    assert attach.argv == ["attach", "--emit", "github", "--artifact-type", "doc/example",
                           "--referrers", "auto", "--", "r/x:v1", "a.md", "b.md"]


@pytest.mark.parametrize(("name", "inputs", "message"), [
    ("push", {"reference": "r/x:v1", "plain-http": "yes"},
     "input 'plain-http' must be true or false, not yes"),
    ("push", {"reference": ""}, "input 'reference' is required"),
    ("attach", {"subject": "r/x:v1"}, "input 'artifact-type' is required"),
    ("verify", {"reference": "r/x:v1", "require": "\n  \n"}, "input 'require' needs at least one line"),
    ("verify", {"reference": "r/x:v1", "require": "sbom", "fail-on-missing": "no"},
     "input 'fail-on-missing' must be true or false"),
    ("discover", {"reference": "r/x:v1", "depth": "two"}, "input 'depth' must be a whole number, not two"),
    ("discover", {"reference": "r/x:v1", "referrers": "both"},
     "input 'referrers' must be one of auto, api, tag"),
    ("promote", {"source": "a/b:v1", "destination": "c/d", "concurrency": "-1"}, "must be a whole number"),
    ("delete", {"reference": "r/x:v1", "graph": "maybe\n::warning::injected"}, r"not $'maybe\n::warning::"),
], ids=lambda value: value if isinstance(value, str) and "/" not in value and " " not in value else "")
def test_bad_input_fails_the_step_before_ci_oras_runs(tmp_path: Path, fake: Path, name: str,
                                                       inputs: dict[str, str], message: str) -> None:
    run = run_step(name, tmp_path, fake, inputs)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.argv is None
    errors = [line for line in run.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and message in errors[0], run.stdout
    assert "::warning::injected" not in run.stdout.splitlines()


@pytest.mark.parametrize(("fail_on_missing", "ci_oras_exit", "step_exit"), [
    ("true", 1, 1),
    ("", 1, 1),
    ("false", 1, 0),
    ("false", 0, 0),
    ("false", 4, 4),  # only a missing requirement is forgiven, never an error
    ("true", 5, 5),
])
def test_verify_fails_the_step_on_a_missing_requirement_unless_told_not_to(
        tmp_path: Path, fake: Path, fail_on_missing: str, ci_oras_exit: int, step_exit: int) -> None:
    run = run_step("verify", tmp_path, fake, {"reference": "r/x:v1", "require": "sbom\nsbom>signature",
                                              "fail-on-missing": fail_on_missing}, exit_code=ci_oras_exit)
    assert run.argv == ["verify", "--emit", "github", "--require", "sbom", "--require", "sbom>signature",
                        "--referrers", "auto", "--", "r/x:v1"]
    assert run.returncode == step_exit
    forgiven = fail_on_missing == "false" and ci_oras_exit == 1
    assert ("::warning title=ci-oras verify::" in run.stdout) == forgiven


@pytest.mark.parametrize("code", [2, 3, 4, 5, 6])
def test_errors_fail_the_step_with_ci_oras_exit_code(tmp_path: Path, fake: Path, code: int) -> None:
    run = run_step("push", tmp_path, fake, {"reference": "r/x:v1"}, exit_code=code)
    assert run.returncode == code


def test_install_step_uses_the_same_version_on_path(tmp_path: Path, fake: Path) -> None:
    """The install step reuses a ci-oras that says it is this checkout's version (else: pip install)."""
    step = _step(_action("push"), "install")
    script = tmp_path / "install.sh"
    script.write_text(step["run"])
    output = tmp_path / "github_output"
    env = {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "GITHUB_ACTION_PATH": str(REPO_ROOT / "actions" / "push"), "GITHUB_OUTPUT": str(output),
           "RUNNER_TEMP": str(tmp_path / "runner-temp"), "FAKE_VERSION": __version__}
    completed = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], env=env,
                               check=False, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"Using ci-oras {__version__}: {fake}" in completed.stdout
    assert output.read_text() == f"version={__version__}\npath={fake}\n"
    assert not (tmp_path / "runner-temp").exists()
