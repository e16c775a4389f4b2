"""The GitHub composite actions in ``actions/``: validated, linted, and run for real.

Validation: check-jsonschema's built-in ``vendor.github-actions`` schema and jactionlint (which flags
``${{ inputs.x }}`` inside ``run:``), once without and once with shellcheck on the bash of every step.

Runs: act in host mode runs the workflows in ``tests/wrappers/gha/`` (each starts with
``actions/checkout@v4``, which act serves from this checkout) against the session's plain-HTTP
``docker-registry``. The registry address, the repository and the files come in with ``--env``; each workflow
writes its steps' outputs (``toJSON(steps.<id>.outputs)``) into ``$OUT``, and act's ``--json`` log carries
what each step wrote to ``$GITHUB_STEP_SUMMARY``. Every step action needs ``ci-oras <step> --emit github``.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
import wrapper_tools
from harness.cli import clean_env, run_cli
from harness.registry import RunningRegistry
from samples.make_samples import cyclonedx_json, make_chain, notary_jws
from wrapper_tools import (GHA_DIR, REPO_ROOT, ActRun, ActRunner, Guarded, assert_only_own_credentials, failed_summary,
                           installed, path_without_ci_oras, require_tool)

from ci_oras import __version__, catalog

ACTIONS = sorted(REPO_ROOT.glob("actions/*/action.yml"))
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CYCLONEDX = "application/vnd.cyclonedx+json"
NOTARY = "application/vnd.cncf.notary.signature"

integration = pytest.mark.integration


def _ids(path: Path) -> str:
    return path.parent.name


# --- validation --------------------------------------------------------------------------------------------


def test_there_is_an_action_per_step_and_setup() -> None:
    assert {path.parent.name for path in ACTIONS} == {step.name for step in catalog.STEPS} | {"setup"}


def test_actions_match_the_github_actions_schema() -> None:
    tool = require_tool("check-jsonschema")
    result = subprocess.run([tool, "--builtin-schema", "vendor.github-actions", *map(str, ACTIONS)],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_workflows_match_the_github_workflows_schema() -> None:
    tool = require_tool("check-jsonschema")
    examples = REPO_ROOT / "examples" / "github"
    released = REPO_ROOT / ".github" / "workflows"
    workflows = sorted(map(str, [*GHA_DIR.glob("*.yml"), *examples.glob("*.yml"), *released.glob("*.yml")]))
    assert any(path.endswith("release.yml") and ".github" in path for path in workflows)
    result = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", *workflows],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _jactionlint(*args: str, files: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    tool = require_tool("jactionlint")
    command = [tool, "--no-online", "--no-color", "--strict-exit", *args, *map(str, files or ACTIONS)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


def test_actions_pass_jactionlint() -> None:
    result = _jactionlint("--shellcheck=")
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_scripts_pass_shellcheck() -> None:
    shellcheck = require_tool("shellcheck")
    result = _jactionlint(f"--shellcheck={shellcheck}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_project_workflows_pass_jactionlint_and_shellcheck() -> None:
    """release.yml and ci.yml, including jactionlint's check that every third-party action is pinned to a full
    commit SHA."""
    shellcheck = require_tool("shellcheck")
    workflows = [REPO_ROOT / ".github/workflows/release.yml", REPO_ROOT / ".github/workflows/ci.yml"]
    result = _jactionlint(f"--shellcheck={shellcheck}", files=workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_jactionlint_would_catch_an_input_expanded_inside_run(tmp_path: Path) -> None:
    """The lint above is worth something: the pattern the actions avoid is flagged."""
    bad = tmp_path / "bad" / "action.yml"
    bad.parent.mkdir()
    bad.write_text(
        "name: bad\ndescription: bad\ninputs:\n  reference:\n    description: r\n"
        "runs:\n  using: composite\n  steps:\n    - shell: bash\n"
        "      run: ci-oras discover ${{ inputs.reference }}\n"
    )
    result = _jactionlint("--shellcheck=", files=[bad])
    assert result.returncode == 1 and "inputs.reference" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("action", ACTIONS, ids=_ids)
def test_no_input_is_expanded_inside_a_script(action: Path) -> None:
    steps = yaml.safe_load(action.read_text())["runs"]["steps"]
    scripts = [step["run"] for step in steps if "run" in step]
    assert scripts
    for script in scripts:
        assert "${{" not in script, f"{action}: a workflow expression inside run:"


def test_every_action_installs_with_the_one_script_of_its_checkout() -> None:
    """No action carries its own copy of the install script: each runs actions/install.sh."""
    for action in ACTIONS:
        install = yaml.safe_load(action.read_text())["runs"]["steps"][0]
        assert install["run"].startswith('bash "$GITHUB_ACTION_PATH/../install.sh"'), action


def test_checkout_scripts_pass_shellcheck() -> None:
    shellcheck = require_tool("shellcheck")
    scripts = [REPO_ROOT / "actions/install.sh", *sorted((REPO_ROOT / "azure-pipelines").glob("*.sh"))]
    result = subprocess.run([shellcheck, "--shell=bash", *map(str, scripts)], check=False, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_tool_skips_with_the_hint_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrapper_tools, "find_tool", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y shellcheck"):
        require_tool("shellcheck")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"act was not found \(install: pip install"):
        require_tool("act")


# --- act runs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Graph:
    """SUBJECT <- SBOM (CycloneDX) <- Notary signature, attached with the CLI."""

    subject: str  # REGISTRY/REPO:v1
    digest: str
    sbom: str
    signature: str


@pytest.fixture(scope="module")
def graph(registry_plain: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    work = tmp_path_factory.mktemp("wrapper-graph")
    env = clean_env(work / "home")
    subject = f"{registry_plain.host}/wrappers/{uuid.uuid4().hex[:8]}:v1"
    (work / "app.txt").write_text("the application\n")
    (work / "sbom.cdx.json").write_bytes(cyclonedx_json())

    def cli(*args: str) -> dict[str, Any]:
        result = run_cli(*args, "--output", "json", "--plain-http", env=env, cwd=work)
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = result.json()
        return document

    pushed = cli("push", subject, "app.txt", "--artifact-type", "application/vnd.acme.app.v1")
    sbom = cli("attach-sbom", subject, "sbom.cdx.json")
    (work / "sbom.jws").write_bytes(notary_jws(make_chain(), target=sbom))
    repository = subject.rsplit(":", 1)[0]
    signature = cli("attach-signature", f"{repository}@{sbom['digest']}", "sbom.jws")
    yield Graph(subject, pushed["digest"], sbom["digest"], signature["digest"])


def _cli_json(*args: str, home: Path) -> dict[str, Any]:
    result = run_cli(*args, "--output", "json", "--plain-http", env=clean_env(home))
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = result.json()
    return document


def _check(run: ActRun, ok: bool = True) -> None:
    assert (run.returncode == 0) == ok, f"act exited {run.returncode}\n{run.log}"


def _summary(run: ActRun, step_id: str, step: str) -> str:
    """What the step wrote to $GITHUB_STEP_SUMMARY: written, and about this step."""
    written = "".join(run.summaries(step_id))
    assert written.strip(), f"step {step_id} wrote no job summary\n{run.log}"
    assert f"ci-oras {step}" in written, written
    return written


def _outputs(run: ActRun, name: str, step: str) -> dict[str, str]:
    """Outputs recorded by the workflow; every declared output set, ``result`` being the step's document."""
    outputs: dict[str, str] = run.recorded(name)
    declared = [output.name for output in catalog.step(step).outputs]
    assert set(outputs) == set(declared), f"{name}: {sorted(outputs)} != {sorted(declared)}"
    assert json.loads(outputs["result"])["schema"] == f"ci-oras/{step}/v1"
    return outputs


@integration
def test_push_then_attach_sbom(act: ActRunner, registry_plain: RunningRegistry, tmp_path: Path) -> None:
    repo = f"wrappers/{uuid.uuid4().hex[:8]}"
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_bytes(cyclonedx_json())
    run = act("push-attach.yml", {"REGISTRY": registry_plain.host, "REPO": repo, "SBOM": str(sbom)})
    _check(run)
    # the actions ran the ci-oras the session's install.sh installed, not the development venv
    assert f"Using ci-oras {__version__}: {installed().exe}" in run.log, run.log

    push = _outputs(run, "push.json", "push")
    assert DIGEST.match(push["digest"])
    assert push["reference"].startswith(f"{registry_plain.host}/{repo}")
    assert push["artifact-type"] == "application/vnd.acme.readme.v1"
    manifest = _cli_json("manifest", "fetch", f"{registry_plain.host}/{repo}:v1", home=tmp_path / "home")
    assert manifest["digest"] == push["digest"]
    pushed = json.loads(push["result"])
    assert sorted(layer["annotations"]["org.opencontainers.image.title"] for layer in pushed["layers"]) == [
        "details", "readme.md"]
    _summary(run, "push", "push")

    # a value that is not a boolean is refused before anything runs, and fails the step
    assert run.recorded("bad-outcome.txt") == "failure"
    assert "input 'plain-http' must be true or false" in failed_summary(run, "bad")

    attached = _outputs(run, "attach-sbom.json", "attach-sbom")
    assert attached["subject"] == push["digest"]
    assert attached["artifact-type"] == CYCLONEDX
    assert DIGEST.match(attached["digest"])
    _summary(run, "sbom", "attach-sbom")
    found = _cli_json("discover", f"{registry_plain.host}/{repo}:v1", home=tmp_path / "home")
    assert [r["digest"] for r in found["referrers"]] == [attached["digest"]]


@integration
def test_discover(act: ActRunner, graph: Graph) -> None:
    run = act("discover.yml", {"SUBJECT": graph.subject})
    _check(run)

    everything = _outputs(run, "discover-all.json", "discover")
    assert everything["digest"] == graph.digest
    assert everything["count"] == "2"
    tree = json.loads(everything["graph"])
    assert [(r["artifactType"], r["digest"]) for r in tree["referrers"]] == [(CYCLONEDX, graph.sbom)]
    assert [r["digest"] for r in tree["referrers"][0]["referrers"]] == [graph.signature]
    summary = _summary(run, "all", "discover")
    assert "```mermaid" in summary

    sbom_only = _outputs(run, "discover-sbom.json", "discover")
    assert sbom_only["count"] == "1"
    assert [r["digest"] for r in json.loads(sbom_only["graph"])["referrers"]] == [graph.sbom]


@integration
def test_verify_passes_and_reports_ok_false_without_failing(act: ActRunner, graph: Graph) -> None:
    run = act("verify.yml", {"SUBJECT": graph.subject})
    _check(run)

    passed = _outputs(run, "verify-pass.json", "verify")
    assert passed["ok"] == "true"
    assert json.loads(passed["missing"]) == []
    assert json.loads(passed["result"])["ok"] is True
    _summary(run, "pass", "verify")

    soft = _outputs(run, "verify-soft.json", "verify")
    assert soft["ok"] == "false"
    assert json.loads(soft["missing"]) == ["vuln-report"]
    _summary(run, "soft", "verify")


@integration
def test_verify_fails_the_job_when_a_requirement_is_missing(act: ActRunner, graph: Graph) -> None:
    run = act("verify-fail.yml", {"SUBJECT": graph.subject})
    _check(run, ok=False)

    assert run.recorded("verify-fail-outcome.txt") == "failure"
    assert not (run.out / "after-gate").exists(), "the job went on after the gate failed"
    gate = _outputs(run, "verify-fail.json", "verify")
    assert gate["ok"] == "false"
    assert json.loads(gate["missing"]) == ["vuln-report"]
    _summary(run, "gate", "verify")


@integration
def test_promote_then_discover_and_delete_the_copy(act: ActRunner, graph: Graph,
                                                  registry_plain: RunningRegistry, tmp_path: Path) -> None:
    destination = f"{registry_plain.host}/wrappers/{uuid.uuid4().hex[:8]}-prod:v1"
    run = act("promote.yml", {"SUBJECT": graph.subject, "DESTINATION": destination})
    _check(run)

    promoted = _outputs(run, "promote.json", "promote")
    assert promoted["digest"] == graph.digest
    assert promoted["reference"].startswith(destination.rsplit(":", 1)[0])
    assert int(promoted["copied"]) > 0
    assert int(promoted["mounted"]) >= 0
    _summary(run, "promote", "promote")

    again = _outputs(run, "promote-again.json", "promote")
    assert again["copied"] == "0" and int(again["skipped"]) > 0

    copy = _outputs(run, "promote-discover.json", "discover")
    assert copy["digest"] == graph.digest and copy["count"] == "2"

    deleted = _outputs(run, "delete.json", "delete")
    assert sorted(json.loads(deleted["deleted"])) == sorted([graph.digest, graph.sbom, graph.signature])
    _summary(run, "delete", "delete")
    gone = run_cli("manifest", "fetch", destination, "--plain-http", env=clean_env(tmp_path / "home"))
    assert gone.returncode == 3, gone.stderr


@integration
def test_setup_installs_from_the_checkout_and_puts_ci_oras_on_path(act: ActRunner, tmp_path: Path) -> None:
    """No ci-oras on the runner: actions/setup installs this checkout's under $RUNNER_TEMP, then reuses it."""
    run = act("setup.yml", {"VERSION": __version__}, path=path_without_ci_oras(tmp_path / "bin"), timeout=600)
    _check(run)

    first = run.recorded("setup.json")
    assert first["version"] == __version__
    assert f"/ci-oras-{__version__}/bin/ci-oras" in first["path"]
    assert run.recorded("setup-again.json") == first
    assert run.recorded("version.txt") == f"ci-oras {__version__}"
    assert run.recorded("which.txt") == first["path"]
    assert "Installing ci-oras" in run.messages("setup")
    assert "Installing ci-oras" not in run.messages("again")
    assert run.recorded("bad-outcome.txt") == "failure"
    assert "input 'version' must be a version" in failed_summary(run, "bad")


@integration
def test_a_step_installs_ci_oras_on_first_use_and_the_next_step_reuses_it(
        act: ActRunner, registry_plain: RunningRegistry, tmp_path: Path) -> None:
    repo = f"wrappers/{uuid.uuid4().hex[:8]}"
    run = act("first-use.yml", {"REGISTRY": registry_plain.host, "REPO": repo},
              path=path_without_ci_oras(tmp_path / "bin"), timeout=600)
    _check(run)

    assert f"Installing ci-oras {__version__}" in run.messages("push")
    assert f"ci-oras-{__version__}/bin/ci-oras" in run.messages("discover")
    assert "Installing ci-oras" not in run.messages("discover")
    pushed = _outputs(run, "push.json", "push")
    found = _outputs(run, "discover.json", "discover")
    assert found["digest"] == pushed["digest"] and found["count"] == "0"



@integration
def test_credentials_are_masked_and_sent_on_stdin(act: ActRunner, registry_factory: Any) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    registry: RunningRegistry = registry_factory("htpasswd", password=password)
    repo = f"wrappers/{uuid.uuid4().hex[:8]}"
    run = act("credentials.yml", {"REGISTRY": registry.host, "REPO": repo,
                                  "REGISTRY_USERNAME": str(registry.username), "REGISTRY_PASSWORD": password})
    _check(run)

    pushed = _outputs(run, "push.json", "push")
    assert DIGEST.match(pushed["digest"])
    assert "--password-stdin" in run.messages("push")
    # masked first (act's JSON event of ::add-mask:: carries it; the log lines never do)
    assert any(e.get("command") == "add-mask" and e.get("arg") == password for e in run.events)
    assert password not in run.log, "the password reached the log"
    assert password not in json.dumps(pushed)
    # the registry does require the credentials: the same step without them fails
    assert run.recorded("anonymous-outcome.txt") == "failure"
    assert "exit status 4" in run.messages("anonymous")


@integration
def test_each_credential_reaches_only_its_registry(act: ActRunner, guarded_pair: tuple[Guarded, Guarded],
                                                   tmp_path: Path) -> None:
    """promote: env credentials (CI_ORAS_REGISTRY) read the source, the inputs write the destination; a step
    naming the destination without inputs is refused there, without the env credentials ever going there."""
    source, destination = guarded_pair
    repo = f"wrappers/{uuid.uuid4().hex[:8]}"
    (tmp_path / "a.txt").write_text("promote me\n")
    pushed = run_cli("push", "--output", "json", "-u", source.username, "--password-stdin",
                     f"{source.registry.host}/{repo}:v1", "a.txt", env=clean_env(tmp_path / "home"), cwd=tmp_path,
                     stdin=source.password + "\n")
    assert pushed.returncode == 0, pushed.stderr
    run = act("promote-credentials.yml", {
        "CI_ORAS_REGISTRY": source.host, "CI_ORAS_USERNAME": source.username, "CI_ORAS_PASSWORD": source.password,
        "DEST": destination.host, "DEST_USER": destination.username, "DEST_PASSWORD": destination.password,
        "REPO": repo})
    _check(run)
    promoted = _outputs(run, "promote.json", "promote")
    assert promoted["digest"] == json.loads(pushed.stdout)["digest"]
    assert run.recorded("elsewhere-outcome.txt") == "failure"
    assert "exit status 4" in run.messages("elsewhere")
    assert_only_own_credentials(source, destination)
    for secret in (source.password, destination.password):
        assert secret not in run.log
