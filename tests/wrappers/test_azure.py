"""Azure Pipelines: the extension's tasks and the YAML step templates under ``azure-pipelines/``, run for real.

* every task.json passes tfx-cli's own validator, and declares the catalog's inputs and output variables;
* ``node --test tests/wrappers/azure/`` (MockTestRunner: arguments built, the secret never on the command line);
* each task's ``index.js`` runs as the agent runs it (``INPUT_*`` variables, ``AGENT_TEMPDIRECTORY``, debug
  logging on: ``SYSTEM_DEBUG=true``) against a live docker-registry, with this checkout's ci-oras found in a
  pre-made venv or on PATH, and the ``##vso[task.setvariable …]`` lines it prints are asserted, as is that a
  password shows up only in the ``##vso[task.setsecret]`` commands that mask it;
* the YAML templates pass check-jsonschema's Azure Pipelines schema (extended with our tasks), and their script
  steps run with the parameters substituted;
* ``tfx extension create`` builds the ``.vsix``.

Node and the npm packages (``npm ci --prefix azure-pipelines``) are needed: missing, a test fails with ``CI``
set and is skipped elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml
from harness.installs import CLOSED_INDEX, SIGNING_TASKS, SIGSTORE_TASKS, Installs
from wrapper_tools import (REPO_ROOT, Guarded, assert_only_own_credentials, installed, installed_path,
                           require_tool)

from samples.make_samples import cyclonedx_json

from ci_oras import __version__, catalog
from ci_oras.emit.outputs import camel_case
from ci_oras.wrappers import generate

AZURE = REPO_ROOT / "azure-pipelines"
TASKS = AZURE / "tasks"
NODE_TESTS = Path(__file__).resolve().parent / "azure"
SETVARIABLE = re.compile(r"^##vso\[task\.setvariable variable=([^;\]]+);isOutput=true\](.*)$", re.M)
PASSWORD = "s3cret-Azure-pa55"


def _task_dir(step: catalog.Step) -> Path:
    """A task's folder in the committed tree (task.json and index.js; the handler is added when staged)."""
    return TASKS / f"{generate.azure_task_name(step)}V0"


def _variables(text: str) -> dict[str, str]:
    def unescape(value: str) -> str:
        return value.replace("%0D", "\r").replace("%0A", "\n").replace("%AZP25", "%")

    return {name: unescape(value) for name, value in SETVARIABLE.findall(text)}


# --- generated files and their validation --------------------------------------------------------------------


def test_azure_files_are_generated_for_every_step() -> None:
    files = generate.render_azure()
    for step in catalog.STEPS:
        base = f"azure-pipelines/tasks/{generate.azure_task_name(step)}V0"
        assert {f"{base}/task.json", f"{base}/index.js",
                f"azure-pipelines/templates/{step.name}.yml"} <= set(files)
        assert f"{base}/ci-oras-task.js" not in files  # one handler, copied in when the tasks are staged
    assert "azure-pipelines/ci-oras-task.js" in files
    assert not [p for p in generate.stale(REPO_ROOT) if "azure-pipelines/" in p]


def test_stage_copies_the_one_handler_into_every_task(staged: Path) -> None:
    handler = (AZURE / "ci-oras-task.js").read_bytes()
    for step in catalog.STEPS:
        task = staged / f"{generate.azure_task_name(step)}V0"
        assert (task / "ci-oras-task.js").read_bytes() == handler
        assert (task / "index.js").read_bytes() == (_task_dir(step) / "index.js").read_bytes()
    assert not list(TASKS.glob("*/ci-oras-task.js")), "the committed tree holds the handler once"


def test_output_variable_names_are_azure_safe() -> None:
    assert camel_case("artifact-type") == "artifactType"
    assert camel_case("digest") == "digest"
    for step in catalog.STEPS:
        task = json.loads((_task_dir(step) / "task.json").read_text())
        names = [v["name"] for v in task["outputVariables"]]
        assert names == [camel_case(o.name) for o in step.outputs]
        assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) for name in names)
        assert [i["name"] for i in task["inputs"]] == [
            *(i.camel_name for i in step.inputs), "dockerRegistryServiceConnection", "package"]
        assert task["execution"] == {"Node20_1": {"target": "index.js", "argumentFormat": ""}}


def test_task_json_passes_tfx_validator(node: str) -> None:
    script = (
        'const v = require("tfx-cli/_build/lib/jsonvalidate");'
        "let bad = 0;"
        "for (const p of process.argv.slice(1)) {"
        "  try { v.validate(p, p + ' is missing'); } catch (e) { bad++; console.log(e.message); }"
        "}"
        "process.exit(bad ? 1 : 0);"
    )
    paths = [str(_task_dir(step) / "task.json") for step in catalog.STEPS]
    run = subprocess.run([node, "-e", script, *paths], cwd=AZURE, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_node_tests_with_mock_test_runner(node: str, staged: Path, tmp_path: Path) -> None:
    tests = sorted(str(p) for p in NODE_TESTS.glob("*.test.js"))
    assert tests
    env = {**os.environ, "NODE_PATH": str(AZURE / "node_modules"),  # tests/ resolves azure-pipelines' packages
           "AGENT_TEMPDIRECTORY": str(tmp_path),  # where the task library keeps its vault key (not the checkout)
           "MOCK_TASKS": str(staged)}
    run = subprocess.run([node, "--test", *tests], cwd=AZURE, capture_output=True, text=True, check=False,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr


def test_vsix_builds_and_its_task_runs_from_the_package(node: str, installs: Installs, tmp_path: Path) -> None:
    """package.sh (run on the session's wheel, or on the very same inputs by a recent session:
    :func:`harness.installs.build_vsix`) bundles ci-oras's wheel, a lock with every wheel it pins for the hosted
    agents' platforms, and task-lib into every task; SIGSTORE_TASKS carry the whole lock, the other
    SIGNING_TASKS leave out sigstore and what only it needs, the others cryptography too. The unpacked task installs ci-oras into a fresh venv (one per lock)
    with no package index reachable, and runs."""
    vsix = Path(installs.vsix()["vsix"])
    assert vsix.name == f"ci-oras.ci-oras-{__version__}.vsix"
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
    unpacked = Path(installs.vsix()["tasks"]).parent
    lock = (REPO_ROOT / "requirements/runtime.lock").read_text()
    pinned = set(re.findall(r"^([a-z0-9-]+)==([^ ;]+)", lock, flags=re.M))
    # every pin, those of other Python versions too (exceptiongroup is 3.10's); none of Linux on ARM only
    signing_only = {(name, version) for name, version in pinned if name in ("cryptography", "cffi", "pycparser")}
    for step in catalog.STEPS:
        base = f"tasks/{generate.azure_task_name(step)}V0"
        assert {f"{base}/task.json", f"{base}/index.js", f"{base}/ci-oras-task.js", f"{base}/runtime.lock",
                f"{base}/ci_oras-{__version__}-py3-none-any.whl",
                f"{base}/node_modules/azure-pipelines-task-lib/task.js"} <= names
        wheels = {name.rsplit("/", 1)[1] for name in names
                  if name.startswith(f"{base}/wheels/") and name.endswith(".whl")}
        found = {(w.split("-")[0].lower().replace("_", "-"), w.split("-")[1]) for w in wheels}
        # each task's wheels are exactly the pins of the lock it carries; the verify task carries the whole
        # lock, the other signing tasks all but sigstore's, the rest neither cryptography's nor sigstore's
        task_name = f"{generate.azure_task_name(step)}V0"
        own = set(re.findall(r"^([a-z0-9-]+)==([^ ;]+)", (unpacked / base / "runtime.lock").read_text(),
                             flags=re.M))
        assert found == own, step.name
        assert (own == pinned) == (task_name in SIGSTORE_TASKS), step.name
        assert bool(own & signing_only) == (task_name in SIGNING_TASKS), step.name
        assert any(name == "sigstore" for name, _ in own) == (task_name in SIGSTORE_TASKS), step.name
        assert not any("aarch64" in wheel for wheel in wheels), "no agent runs Linux on ARM"
        if step.name == "sign":
            assert {w for w in wheels if w.startswith("cryptography-")} and any("win_amd64" in w for w in wheels)

    (tmp_path / "f.txt").write_text("packaged\n")
    (tmp_path / "agent-temp").mkdir()  # the agent's, which it always creates
    task = unpacked / "tasks/CiOrasPushV0/index.js"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "CI_ORAS_", "NODE_PATH", "PIP_"))}
    env.update({"AGENT_TEMPDIRECTORY": str(tmp_path / "agent-temp"), "PATH": "/usr/bin:/bin",
                "INPUT_REFERENCE": f"oci:{tmp_path / 'layout'}:v1", "INPUT_FILES": "f.txt",
                # no package index: none configured, and the one pip would try refuses connections
                "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": CLOSED_INDEX})
    pushed = subprocess.run([node, str(task)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            check=False, timeout=300)
    text = pushed.stdout + pushed.stderr
    assert _result(pushed) == "Succeeded", text
    assert "--no-index" in text and "--require-hashes" in text
    assert _variables(text)["digest"].startswith("sha256:")
    (venv,) = (tmp_path / "agent-temp").glob(f"ci-oras-{__version__}-*")  # named after its lock's digest
    version = subprocess.run([str(venv / "bin/ci-oras"), "--version"], capture_output=True, text=True,
                             check=True, env=env)
    assert version.stdout.strip() == f"ci-oras {__version__}"
    # the agent's pip installed into the venv, which has none of its own (ensurepip only where that pip is old)
    assert not (venv / "bin" / "pip").exists()
    frozen = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "freeze"],
                            capture_output=True, text=True, check=True, env=env).stdout
    assert "typer==" + dict(pinned)["typer"] in frozen.splitlines(), frozen
    assert not any(line.startswith("cryptography==") for line in frozen.splitlines()), frozen


# --- real runs of the handlers ------------------------------------------------------------------------------


def _ci_oras_bin() -> Path:
    """The ci-oras the task runs use: the session's install (``wrapper_tools.installed``), not the development
    venv."""
    return installed().exe


def _run_task(node: str, staged: Path, step: str, inputs: dict[str, str], tmp_path: Path, *,
              path: str | None = None, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    agent_temp = tmp_path / "agent-temp"
    agent_temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "ENDPOINT_", "CI_ORAS_"))}
    env.update({
        "AGENT_TEMPDIRECTORY": str(agent_temp),
        "PATH": path if path is not None else installed_path(tmp_path / "bin"),
        "HOME": str(tmp_path),  # no docker config
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "SYSTEM_DEBUG": "true",  # the task library's debug log is where an unmasked input would show
        "NODE_PATH": str(AZURE / "node_modules"),  # the staged task resolves the task library from the checkout
    })
    env.pop("TF_BUILD", None)
    for name, value in inputs.items():
        env["INPUT_" + name.upper()] = value
    env.update(extra_env or {})
    task = staged / f"{generate.azure_task_name(catalog.step(step))}V0"
    return subprocess.run([node, str(task / "index.js")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=False, timeout=120)


def _assert_masked(secret: str, run: subprocess.CompletedProcess[str]) -> None:
    """``secret`` appears only in ``##vso[task.setsecret]`` commands, and before any other line holding it.

    The agent consumes those commands and masks the value in every later line of the log, debug lines
    included; any other line with the secret would be logged in clear when it is a plain variable.
    """
    lines = [line for line in (run.stdout + run.stderr).splitlines() if secret in line]
    assert lines, "the secret was never masked"
    assert all(line == f"##vso[task.setsecret]{secret}" for line in lines), lines


def _result(run: subprocess.CompletedProcess[str]) -> str:
    results = re.findall(r"##vso\[task\.complete result=(\w+);", run.stdout + run.stderr)
    return results[-1] if results else "none"


def test_task_runs_push_attach_sbom_discover_verify_delete(node: str, staged: Path, registry_htpasswd: Any,
                                                             tmp_path: Path) -> None:
    registry = registry_htpasswd
    (tmp_path / "app.txt").write_text("hello azure\n")
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_bytes(cyclonedx_json())
    creds = {"USERNAME": registry.username, "PASSWORD": registry.password}
    ref = f"{registry.host}/azure/app:v1"

    push = _run_task(node, staged, "push", {"REFERENCE": ref, "FILES": "app.txt:text/plain\n\n",
                                    "ARTIFACTTYPE": "application/vnd.example.app", "PLAINHTTP": "true",
                                    "ANNOTATIONS": "org.example.team=ci\n", **creds}, tmp_path)
    text = push.stdout + push.stderr
    assert _result(push) == "Succeeded", text
    _assert_masked(registry.password, push)
    out = _variables(text)
    assert out["digest"].startswith("sha256:")
    assert out["artifactType"] == "application/vnd.example.app"
    assert "artifact-type" not in out
    assert json.loads(out["result"])["digest"] == out["digest"]

    attach = _run_task(node, staged, "attach-sbom", {"SUBJECT": ref, "SBOM": str(sbom), "PLAINHTTP": "true",
                                             **creds}, tmp_path)
    text = attach.stdout + attach.stderr
    assert _result(attach) == "Succeeded", text
    sbom_out = _variables(text)
    assert sbom_out["subject"] == out["digest"]
    assert set(sbom_out) == {"digest", "reference", "artifactType", "subject", "result"}

    discover = _run_task(node, staged, "discover", {"REFERENCE": ref, "PLAINHTTP": "true", **creds}, tmp_path)
    assert _result(discover) == "Succeeded", discover.stdout + discover.stderr
    assert _variables(discover.stdout + discover.stderr)["count"] == "1"

    verify = _run_task(node, staged, "verify", {"REFERENCE": ref, "REQUIRE": "sbom\nsignature", "PLAINHTTP": "true",
                                        "FAILONMISSING": "false", **creds}, tmp_path)
    text = verify.stdout + verify.stderr
    assert _result(verify) == "SucceededWithIssues", text
    assert _variables(text)["ok"] == "false"
    assert "signature" in _variables(text)["missing"]

    strict = _run_task(node, staged, "verify", {"REFERENCE": ref, "REQUIRE": "signature", "PLAINHTTP": "true",
                                        **creds}, tmp_path)
    assert strict.returncode != 0 and _result(strict) == "Failed", strict.stdout + strict.stderr

    delete = _run_task(node, staged, "delete", {"REFERENCE": ref, "GRAPH": "true", "PLAINHTTP": "true", **creds},
                       tmp_path)
    assert _result(delete) == "Succeeded", delete.stdout + delete.stderr
    assert len(json.loads(_variables(delete.stdout + delete.stderr)["deleted"])) == 2


def test_task_uses_service_connection_and_premade_venv(node: str, staged: Path, registry_htpasswd: Any,
                                                        tmp_path: Path) -> None:
    """Credentials from a docker-registry service connection; ci-oras from a venv under Agent.TempDirectory."""
    registry = registry_htpasswd
    (tmp_path / "a.txt").write_text("a\n")
    inputs = {
        "REFERENCE": f"{registry.host}/azure/conn:v1", "FILES": "a.txt", "PLAINHTTP": "true",
        "DOCKERREGISTRYSERVICECONNECTION": "reg", "PACKAGE": "ci-oras==" + __version__,
    }
    # the venv of a `package` requirement is named after its hash: pre-make it, so nothing is installed
    digest = hashlib.sha256(inputs["PACKAGE"].encode()).hexdigest()[:12]
    venv_bin = tmp_path / "agent-temp" / f"ci-oras-pkg-{digest}" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "ci-oras").symlink_to(_ci_oras_bin())
    endpoint = {
        "ENDPOINT_AUTH_PARAMETER_REG_USERNAME": registry.username,
        "ENDPOINT_AUTH_PARAMETER_REG_PASSWORD": registry.password,
        "ENDPOINT_AUTH_PARAMETER_REG_REGISTRY": f"http://{registry.host}/",
    }
    run = _run_task(node, staged, "push", inputs, tmp_path, path="/usr/bin:/bin", extra_env=endpoint)
    text = run.stdout + run.stderr
    assert _result(run) == "Succeeded", text
    assert _variables(text)["digest"].startswith("sha256:")
    _assert_masked(registry.password, run)

    anonymous = _run_task(node, staged, "push", {**inputs, "DOCKERREGISTRYSERVICECONNECTION": ""}, tmp_path,
                          path="/usr/bin:/bin")
    assert _result(anonymous) == "Failed", anonymous.stdout + anonymous.stderr


def test_a_plain_password_input_never_reaches_the_debug_log(node: str, staged: Path, registry_factory: Any,
                                                             tmp_path: Path) -> None:
    """system.debug=true logs every input the task library reads: the password is masked before, and not read
    through it at all (a plain variable is not a secret the agent would mask by itself)."""
    password = f"plain-{os.urandom(6).hex()}-pw"
    registry = registry_factory("htpasswd", password=password)
    (tmp_path / "d.txt").write_text("debug\n")
    ref = f"{registry.host}/azure/debug:v1"
    run = _run_task(node, staged, "push", {"REFERENCE": ref, "FILES": "d.txt", "PLAINHTTP": "true",
                                   "USERNAME": registry.username, "PASSWORD": password}, tmp_path)
    assert _result(run) == "Succeeded", run.stdout + run.stderr
    assert f"##vso[task.debug]reference={ref}" in run.stdout, "debug logging of inputs is on"
    _assert_masked(password, run)


def test_each_credential_reaches_only_its_registry(node: str, staged: Path, guarded_pair: tuple[Guarded, Guarded],
                                                   tmp_path: Path) -> None:
    """promote: the service connection's credential reads the source (its registry), the username/password
    inputs write the destination; a push naming the destination with only the connection is refused there."""
    source, destination = guarded_pair
    (tmp_path / "s.txt").write_text("source\n")
    repo = f"azure/{os.urandom(4).hex()}"
    pushed = _run_task(node, staged, "push", {"REFERENCE": f"{source.registry.host}/{repo}:v1", "FILES": "s.txt",
                                      "USERNAME": source.username, "PASSWORD": source.password}, tmp_path)
    assert _result(pushed) == "Succeeded", pushed.stdout + pushed.stderr
    connection = {
        "ENDPOINT_AUTH_PARAMETER_SRC_USERNAME": source.username,
        "ENDPOINT_AUTH_PARAMETER_SRC_PASSWORD": source.password,
        "ENDPOINT_AUTH_PARAMETER_SRC_REGISTRY": f"http://{source.host}",
    }
    promote = _run_task(node, staged, "promote", {
        "SOURCE": f"{source.host}/{repo}:v1", "DESTINATION": f"{destination.host}/{repo}:v1",
        "DOCKERREGISTRYSERVICECONNECTION": "src", "USERNAME": destination.username,
        "PASSWORD": destination.password}, tmp_path, extra_env=connection)
    assert _result(promote) == "Succeeded", promote.stdout + promote.stderr
    assert _variables(promote.stdout)["digest"] == _variables(pushed.stdout)["digest"]
    elsewhere = _run_task(node, staged, "push", {"REFERENCE": f"{destination.host}/{repo}:elsewhere", "FILES": "s.txt",
                                         "DOCKERREGISTRYSERVICECONNECTION": "src"}, tmp_path, extra_env=connection)
    assert _result(elsewhere) == "Failed", elsewhere.stdout + elsewhere.stderr
    assert "failed with exit code 4" in elsewhere.stdout
    assert_only_own_credentials(source, destination)
    for secret in (source.password, destination.password):
        _assert_masked(secret, promote)
    _assert_masked(source.password, elsewhere)


# --- YAML step templates -------------------------------------------------------------------------------------


def _schema_with_our_tasks(tmp_path: Path) -> Path:
    """check-jsonschema's vendored Azure Pipelines schema, extended with the CiOras* tasks (from task.json)."""
    python = Path(require_tool("check-jsonschema")).parent / "python"  # the tool's own venv
    where = subprocess.run([str(python), "-c", "import check_jsonschema.builtin_schemas as b; print(b.__file__)"],
                           capture_output=True, text=True, check=True)
    source = Path(where.stdout.strip()).parent / "vendor" / "azure-pipelines.json"
    schema = json.loads(source.read_text(encoding="utf-8"))
    task_def = schema["definitions"]["task"]
    for step in catalog.STEPS:
        task = json.loads((_task_dir(step) / "task.json").read_text(encoding="utf-8"))
        ref = f"{task['name']}@{task['version']['Major']}"
        task_def["properties"]["task"]["anyOf"].append({"description": task["description"], "enum": [ref]})
        inputs: dict[str, Any] = {}
        for item in task["inputs"]:
            if item["type"] == "boolean":
                inputs[item["name"]] = {"type": "boolean"}  # YAML true/false stays a boolean after the transform
            elif item["type"] == "pickList":
                inputs[item["name"]] = {"enum": list(item["options"])}
            else:
                inputs[item["name"]] = {"type": "string"}
        task_def["anyOf"].append({
            "properties": {
                "task": {"pattern": f"^{re.escape(ref)}$"},
                "inputs": {
                    "properties": inputs, "additionalProperties": False,
                    "required": [i["name"] for i in task["inputs"] if i.get("required")],
                },
            },
            "required": ["task"],
        })
    # a step template's `name: ${{ parameters.name }}`: the vendored schema only knows literal step names
    text = json.dumps(schema)
    for pattern in ("^[_A-Za-z0-9]*$", "^[-_A-Za-z0-9]*$"):
        text = text.replace(json.dumps(pattern), json.dumps("^(" + pattern[1:-1] + r"|\$\{\{[^}]*\}\})$"))
    out = tmp_path / "azure-pipelines.schema.json"
    out.write_text(text, encoding="utf-8")
    return out


def test_templates_pass_the_azure_pipelines_schema(tmp_path: Path) -> None:
    tool = require_tool("check-jsonschema")
    templates = sorted(str(p) for p in (AZURE / "templates").glob("*.yml"))
    schema = _schema_with_our_tasks(tmp_path)
    run = subprocess.run(
        [tool, "--schemafile", str(schema), "--data-transform", "azure-pipelines",
         "--regex-variant", "python", *templates],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_pipeline_using_the_tasks_passes_an_extended_schema(tmp_path: Path) -> None:
    tool = require_tool("check-jsonschema")
    schema = _schema_with_our_tasks(tmp_path)
    pipeline = REPO_ROOT / "tests/wrappers/azure/pipeline.yml"
    examples = [REPO_ROOT / "examples/azure" / name for name in ("azure-pipelines.yml", "release-images.yml")]
    run = subprocess.run(
        [tool, "--schemafile", str(schema), "--data-transform", "azure-pipelines", "--regex-variant", "python",
         str(pipeline), *map(str, examples)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _substitute(template: Path, parameters: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The template's bash script and env, with ``${{ parameters.x }}`` replaced as Azure would."""
    document = yaml.safe_load(template.read_text(encoding="utf-8"))
    values = {p["name"]: p.get("default") for p in document["parameters"]}
    unknown = set(parameters) - set(values)
    assert not unknown, unknown
    values.update(parameters)
    (step,) = document["steps"]

    def expand(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            value = values[match.group(1)]
            return ("True" if value else "False") if isinstance(value, bool) else str(value)
        return re.sub(r"\$\{\{\s*parameters\.(\w+)\s*\}\}", one, text)

    assert "${{" not in step["bash"], "parameters must reach the script through env only"
    return step["bash"], {name: expand(str(value)) for name, value in step["env"].items()}


def test_template_scripts_run_with_parameters(registry_plain: Any, tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash
    ref = f"{registry_plain.host}/azure/template:v1"
    (tmp_path / "t.txt").write_text("template\n")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "CI_ORAS_"))}
    base_env.update({"AGENT_TEMPDIRECTORY": str(tmp_path), "HOME": str(tmp_path),
                     "PATH": installed_path(tmp_path / "bin")})

    def run(step: str, parameters: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        script, env = _substitute(AZURE / "templates" / f"{step}.yml", parameters)
        return subprocess.run([bash, "-c", script], cwd=tmp_path, env={**base_env, **env},
                              capture_output=True, text=True, check=False, timeout=120)

    push = run("push", {"reference": ref, "files": "t.txt\n", "artifactType": "application/vnd.example.t",
                        "plainHttp": "true"})
    assert push.returncode == 0, push.stdout + push.stderr
    out = _variables(push.stdout)
    assert out["artifactType"] == "application/vnd.example.t"
    assert out["digest"].startswith("sha256:")

    soft = run("verify", {"reference": ref, "require": "sbom", "failOnMissing": False, "plainHttp": "true"})
    assert soft.returncode == 0, soft.stdout + soft.stderr
    assert _variables(soft.stdout)["ok"] == "false"
    strict = run("verify", {"reference": ref, "require": "sbom", "plainHttp": "true"})
    assert strict.returncode == 1, strict.stdout + strict.stderr

    bad = run("discover", {"reference": ref, "depth": "two"})
    assert bad.returncode == 2 and "whole number" in bad.stdout
