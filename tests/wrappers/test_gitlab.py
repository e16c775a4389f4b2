"""The GitLab CI templates in ``gitlab/``: validated with GitLab's schema, and run for real with gitlab-ci-local.

Validation: each template is two YAML documents (``spec:`` then the job); check-jsonschema's built-in
``vendor.gitlab-ci`` schema checks both merged into one document (its open issue #561).

Runs: gitlab-ci-local 4.73.0 (``package.json``: ``npm ci``; it needs ``rsync``) runs the pipelines in
``tests/wrappers/gitlab/`` with ``--force-shell-executor`` against the session's plain-HTTP ``docker-registry``.
gitlab-ci-local only sees files tracked by git, so each run happens in a fresh git repository holding a copy of
``gitlab/`` and the pipeline; the registry address, the repository and an ``OUT`` directory (where the check
jobs record the dotenv variables that reached them) come in with ``--variable``. One job installs ci-oras from
the wheel the session built from this checkout (``package: $PACKAGE``, a path, as :mod:`harness.installs` installs
it); the others use ``package: ""`` and the ci-oras on PATH: the one
the session installed with actions/install.sh (``wrapper_tools.installed``), never the development venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from harness.cli import clean_env
from harness.installs import Installs
from harness.registry import RunningRegistry
from samples.make_samples import cyclonedx_json
from wrapper_tools import REPO_ROOT, Guarded, assert_only_own_credentials, installed_path, require_tool

from ci_oras import __version__, catalog

TEMPLATES = sorted(REPO_ROOT.glob("gitlab/*.yml"))
PIPELINES = Path(__file__).resolve().parent / "gitlab"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CYCLONEDX = "application/vnd.cyclonedx+json"

integration = pytest.mark.integration

# --- validation --------------------------------------------------------------------------------------------


def test_there_is_a_template_per_step() -> None:
    assert {path.stem for path in TEMPLATES} == {step.name for step in catalog.STEPS}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.stem)
def test_template_inputs_match_the_catalog(template: Path) -> None:
    spec, job = list(yaml.safe_load_all(template.read_text(encoding="utf-8")))
    step = catalog.step(template.stem)
    inputs = spec["spec"]["inputs"]
    assert list(inputs) == ["job-name", "stage", "image", "package", *(i.name for i in step.inputs)]
    assert inputs["job-name"]["default"] == f"ci-oras-{step.name}"
    assert inputs["stage"]["default"] == "test"
    assert re.fullmatch(r"python:3[\w.-]*@sha256:[0-9a-f]{64}", inputs["image"]["default"]), "pinned by digest"
    assert inputs["package"]["default"] == f"ci-oras=={__version__}"
    for item in step.inputs:
        entry = inputs[item.name]
        assert ("default" not in entry) == item.required, item.name
        if item.type is catalog.InputType.CHOICE:
            assert entry["options"] == list(item.options)
    if any(i.name == "referrers" for i in step.inputs):
        assert inputs["referrers"] == {**inputs["referrers"], "options": ["auto", "api", "tag"], "default": "auto"}
    ((name, body),) = job.items()
    assert name == "$[[ inputs.job-name ]]"
    assert body["artifacts"]["reports"]["dotenv"] == "ci-oras.env"
    script = "\n".join(body["script"])
    assert f"set -- {' '.join(step.command)} --emit gitlab" in script
    # free text reaches the script only through variables: every $[[ ]] in it is a validated word
    for match in re.finditer(r"\$\[\[ inputs\.([a-z-]+) \]\]", script):
        item = step.input(match.group(1))
        assert item.type in (catalog.InputType.BOOLEAN, catalog.InputType.CHOICE), item.name


def test_verify_has_fail_on_missing_defaulting_to_true() -> None:
    spec = next(yaml.safe_load_all((REPO_ROOT / "gitlab/verify.yml").read_text(encoding="utf-8")))
    assert spec["spec"]["inputs"]["fail-on-missing"] == {
        **spec["spec"]["inputs"]["fail-on-missing"], "type": "boolean", "default": True}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.stem)
def test_template_scripts_pass_shellcheck_as_posix_sh(template: Path, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    job = list(yaml.safe_load_all(template.read_text(encoding="utf-8")))[1]
    ((body),) = job.values()
    script = tmp_path / "script.sh"
    script.write_text("\n".join(body["script"]) + "\n", encoding="utf-8")
    result = subprocess.run([shellcheck, "--shell=sh", str(script)], check=False, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_templates_match_the_gitlab_ci_schema(tmp_path: Path) -> None:
    tool = require_tool("check-jsonschema")
    merged = []
    for template in TEMPLATES:
        documents = list(yaml.safe_load_all(template.read_text(encoding="utf-8")))
        assert len(documents) == 2 and "spec" in documents[0], template
        path = tmp_path / template.name
        path.write_text(yaml.safe_dump({**documents[0], **documents[1]}, sort_keys=False), encoding="utf-8")
        merged.append(str(path))
    result = subprocess.run([tool, "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci",
                             *merged], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_pipelines_match_the_gitlab_ci_schema() -> None:
    tool = require_tool("check-jsonschema")
    result = subprocess.run([tool, "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci",
                             *map(str, sorted(PIPELINES.glob("*.yml"))),
                             str(REPO_ROOT / "examples" / "gitlab" / ".gitlab-ci.yml")],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


FAKE_CI_ORAS = """#!/bin/sh
if [ "${1:-}" = --version ]; then echo "ci-oras fake"; exit 0; fi
printf '%s\\n' "$@" > "$FAKE_OUT/argv"
cat > "$FAKE_OUT/stdin"
env | grep -E '^CI_ORAS_(REGISTRY|USERNAME|PASSWORD|INPUT_PASSWORD)=' | sort > "$FAKE_OUT/env"
"""


def _run_job_script(step: str, tmp_path: Path, inputs: dict[str, str], variables: dict[str, str]) -> dict[str, str]:
    """The job script of gitlab/<step>.yml under sh, as GitLab would run it (inputs interpolated, job variables
    set), against a stand-in ci-oras on PATH: what it was given (``argv``, ``stdin``, credential ``env``)."""
    spec, job = list(yaml.safe_load_all((REPO_ROOT / "gitlab" / f"{step}.yml").read_text(encoding="utf-8")))
    ((body),) = job.values()
    values = {name: entry.get("default", "") for name, entry in spec["spec"]["inputs"].items()}
    values.update(inputs, package="")
    script = re.sub(r"\$\[\[ inputs\.([a-z-]+) \]\]",
                    lambda m: str(values[m.group(1)]).lower() if isinstance(values[m.group(1)], bool)
                    else str(values[m.group(1)]), "\n".join(body["script"]))
    env_vars = {name: re.sub(r"\$\[\[ inputs\.([a-z-]+) \]\]", lambda m: str(values[m.group(1)]), str(value))
                for name, value in body["variables"].items()}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ci-oras").write_text(FAKE_CI_ORAS)
    (bin_dir / "ci-oras").chmod(0o755)
    out = tmp_path / "fake-out"
    out.mkdir(exist_ok=True)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_OUT": str(out),
           **env_vars, **variables}
    run = subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    recorded = {name: (out / name).read_text(encoding="utf-8") for name in ("argv", "stdin", "env")}
    recorded["log"] = run.stdout + run.stderr
    return recorded


JOB_TOKEN = {"CI_REGISTRY": "gitlab.example:5050", "CI_REGISTRY_USER": "gitlab-ci-token",
             "CI_REGISTRY_PASSWORD": "job-Token-123"}


def test_job_token_is_scoped_to_ci_registry_and_inputs_go_to_the_destination(tmp_path: Path) -> None:
    ran = _run_job_script("promote", tmp_path, {
        "source": "gitlab.example:5050/g/p/app:v1", "destination": "prod.example/app:v1",
        "username": "prod-user", "password": "prod-Secret-456"}, JOB_TOKEN)
    argv = ran["argv"].splitlines()
    assert argv[argv.index("--username") + 1] == "prod-user" and "--password-stdin" in argv
    assert argv[-2:] == ["gitlab.example:5050/g/p/app:v1", "prod.example/app:v1"]
    assert ran["stdin"] == "prod-Secret-456\n"
    # the job token only as CI_ORAS_* scoped to $CI_REGISTRY; the input password never in the environment
    assert ran["env"].splitlines() == ["CI_ORAS_PASSWORD=job-Token-123", "CI_ORAS_REGISTRY=gitlab.example:5050",
                                       "CI_ORAS_USERNAME=gitlab-ci-token"]
    assert "job-Token-123" not in ran["log"] and "prod-Secret-456" not in ran["log"]


def test_own_ci_oras_variables_are_kept_and_nothing_is_scoped_without_ci_registry(tmp_path: Path) -> None:
    own = {"CI_ORAS_REGISTRY": "mine.example", "CI_ORAS_USERNAME": "me", "CI_ORAS_PASSWORD": "my-Secret-789"}
    kept = _run_job_script("push", tmp_path, {"reference": "mine.example/app:v1", "files": "a.txt"},
                           {**JOB_TOKEN, **own})
    assert kept["env"].splitlines() == [f"{k}={v}" for k, v in sorted(own.items())]
    assert "--username" not in kept["argv"].splitlines() and kept["stdin"] == ""
    alone = _run_job_script("push", tmp_path, {"reference": "elsewhere.example/app:v1", "files": "a.txt"},
                            {"CI_REGISTRY": "gitlab.example:5050"})
    assert alone["env"] == ""


# --- runs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    returncode: int
    log: str
    out: Path

    def recorded(self, name: str) -> str:
        path = self.out / name
        assert path.is_file(), f"the pipeline did not write {name}\n{self.log}"
        return path.read_text(encoding="utf-8").strip()


def _gitlab_ci_local(tmp_path: Path, pipeline: str, variables: dict[str, str], *, timeout: float = 300) -> Run:
    binary = require_tool("gitlab-ci-local")
    require_tool("rsync")
    git = require_tool("git")
    work = tmp_path / f"repo-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    shutil.copytree(REPO_ROOT / "gitlab", work / "gitlab")
    shutil.copy(PIPELINES / pipeline, work / ".gitlab-ci.yml")
    (work / "hello.txt").write_text("hello from gitlab-ci-local\n", encoding="utf-8")
    out = tmp_path / f"out-{work.name}"
    out.mkdir()
    env = clean_env(tmp_path / "home")
    env["HOME"] = os.environ.get("HOME", str(tmp_path / "home"))  # gitlab-ci-local and pip caches
    env = {k: v for k, v in env.items() if not k.startswith(("GITLAB_", "CI_"))}
    env["PATH"] = installed_path(tmp_path / "bin")  # the jobs' ci-oras: the installed one, no development venv
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "pipeline"]):
        subprocess.run([git, *command], cwd=work, env=env, check=True, capture_output=True, timeout=60)
    command = [binary, "--file", ".gitlab-ci.yml", "--force-shell-executor", "--shell-isolation",
               "--no-artifacts-to-source", "--no-color", "--variable", f"OUT={out}"]
    for key, value in variables.items():
        command += ["--variable", f"{key}={value}"]
    completed = subprocess.run(command, cwd=work, env=env, check=False, capture_output=True, text=True,
                               timeout=timeout)
    return Run(completed.returncode, completed.stdout + completed.stderr, out)


@integration
def test_push_outputs_reach_needs_jobs(registry_plain: RunningRegistry, installs: Installs, tmp_path: Path) -> None:
    repo = f"gitlab/{uuid.uuid4().hex[:8]}"
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_bytes(cyclonedx_json())
    run = _gitlab_ci_local(tmp_path, "push-needs.yml", {
        "REGISTRY": registry_plain.host, "REPO": repo, "SBOM": str(sbom), "PACKAGE": str(installs.wheel())})
    assert run.returncode == 0, run.log
    digest = run.recorded("push-digest")
    assert DIGEST.match(digest), run.log
    assert run.recorded("push-reference") == f"{registry_plain.host}/{repo}:v1"
    assert run.recorded("push-artifact-type") == "application/vnd.example.hello"
    result = json.loads(run.recorded("push-result.json"))
    assert result["digest"] == digest
    # the attach-sbom job took its subject from the push job's CI_ORAS_DIGEST
    assert run.recorded("sbom-subject") == digest
    assert DIGEST.match(run.recorded("sbom-digest")) and run.recorded("sbom-digest") != digest
    assert run.recorded("sbom-artifact-type") == CYCLONEDX
    # fail-on-missing: false -> the job passes, ok=false and the missing requirement reach the next job
    assert run.recorded("verify-ok") == "false"
    assert json.loads(run.recorded("verify-missing.json")) == ["signature"], run.log
    # the annotation with $, quotes arrived literally (no shell or GitLab expansion of free text)
    manifest = subprocess.run([sys.executable, "-m", "ci_oras", "manifest", "fetch", "--emit", "none",
                               f"{registry_plain.host}/{repo}:v1"], capture_output=True, text=True,
                              check=True, env=clean_env(tmp_path / "home2"))
    annotations = json.loads(manifest.stdout)["annotations"]
    assert annotations["org.example.note"] == "costs $5 'quoted' \"twice\""


@integration
def test_verify_fails_the_pipeline_when_a_requirement_is_missing(registry_plain: RunningRegistry,
                                                                  tmp_path: Path) -> None:
    repo = f"gitlab/{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "ci_oras", "push", "--emit", "none", f"{registry_plain.host}/{repo}:v1",
                    "hello.txt"], cwd=_hello(tmp_path), capture_output=True, text=True, check=True,
                   env=clean_env(tmp_path / "home"))
    run = _gitlab_ci_local(tmp_path, "verify-fail.yml", {"REGISTRY": registry_plain.host, "REPO": repo})
    assert run.returncode != 0, run.log
    assert "ci-oras-verify" in run.log
    assert "signature" in run.log


def _hello(tmp_path: Path) -> Path:
    directory = tmp_path / "hello"
    directory.mkdir(exist_ok=True)
    (directory / "hello.txt").write_text("hello\n", encoding="utf-8")
    return directory


@integration
def test_a_bad_input_value_is_rejected(tmp_path: Path) -> None:
    run = _gitlab_ci_local(tmp_path, "bad-input.yml", {"REGISTRY": "127.0.0.1:1", "REPO": "never/used"})
    assert run.returncode != 0, run.log
    assert "bogus" in run.log and "referrers" in run.log, run.log
    assert "ci-oras discover" not in run.log  # rejected before any job ran


@integration
def test_ci_registry_credentials_are_the_default(registry_htpasswd: RunningRegistry, tmp_path: Path) -> None:
    repo = f"gitlab/{uuid.uuid4().hex[:8]}"
    assert registry_htpasswd.username and registry_htpasswd.password
    run = _gitlab_ci_local(tmp_path, "credentials.yml", {
        "CI_REGISTRY": registry_htpasswd.host, "CI_REGISTRY_USER": registry_htpasswd.username,
        "CI_REGISTRY_PASSWORD": registry_htpasswd.password, "REPO": repo})
    assert run.returncode == 0, run.log
    assert DIGEST.match(run.recorded("digest")), run.log
    assert registry_htpasswd.password not in run.log


@integration
def test_each_credential_reaches_only_its_registry(guarded_pair: tuple[Guarded, Guarded], tmp_path: Path) -> None:
    """Promote $CI_REGISTRY -> elsewhere: the job token reads the source, the inputs write the destination; a
    job naming the other registry without inputs does not send it the job token."""
    ci_registry, elsewhere = guarded_pair
    repo = f"gitlab/{uuid.uuid4().hex[:8]}"
    pushed = subprocess.run(
        [sys.executable, "-m", "ci_oras", "push", "--emit", "none", "--output", "json", "-u", ci_registry.username,
         "--password-stdin", f"{ci_registry.registry.host}/{repo}:v1", "hello.txt"],
        cwd=_hello(tmp_path), input=ci_registry.password + "\n", capture_output=True, text=True, check=True,
        env=clean_env(tmp_path / "home"))
    digest = json.loads(pushed.stdout)["digest"]
    run = _gitlab_ci_local(tmp_path, "promote-credentials.yml", {
        "CI_REGISTRY": ci_registry.host, "CI_REGISTRY_USER": ci_registry.username,
        "CI_REGISTRY_PASSWORD": ci_registry.password, "DEST": elsewhere.host, "DEST_USER": elsewhere.username,
        "DEST_PASSWORD": elsewhere.password, "REPO": repo})
    assert run.recorded("promoted-digest") == digest, run.log
    assert_only_own_credentials(ci_registry, elsewhere)
    # the job without inputs reached the other registry and was refused there, holding nothing for it
    assert any(r.path == f"/v2/{repo}/manifests/elsewhere" or f"/v2/{repo}/blobs/" in r.path
               for r in elsewhere.proxy.requests if r.status == 401), run.log
    assert "push-elsewhere" in run.log and f"{elsewhere.host}/{repo}:elsewhere" in run.log
    for secret in (ci_registry.password, elsewhere.password):
        assert secret not in run.log
