"""A small Azure Pipelines agent for the example tests: there is no local runner for Azure YAML.

:func:`run_azure_steps` runs one job's steps in order, as an agent does: ``$(...)`` macros, output variables,
``CiOras*`` tasks by their staged ``index.js`` (``INPUT_*``, a service connection as
``ENDPOINT_AUTH_PARAMETER_*``), ``bash`` steps, and the built-in tasks the examples use played by the runner
(``DownloadSecureFile@1``, ``PublishPipelineArtifact@1``, ``DownloadPipelineArtifact@2``).

:func:`run_azure_jobs` runs a pipeline's ``jobs:`` in dependency order, each job (and each leg of a matrix) in
its own workspace, as separate agents do, so files pass between jobs only as pipeline artifacts. It honours
``dependsOn``, the job condition ``succeeded()`` (the default) and ``strategy: matrix:``, given as a mapping
or as the runtime expression ``$[ dependencies.<job>.outputs['<step>.<variable>'] ]``, which it evaluates
from the output variable that job set: the JSON object ``{leg: {variable: value}}``, one job per leg.
Anything else a pipeline could say is refused (an assertion), so a test never runs a pipeline the runner
only half understands.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cli import clean_env
from wrapper_tools import REPO_ROOT, Guarded, installed_path

AZURE = REPO_ROOT / "azure-pipelines"
AZURE_OUTPUT = re.compile(r"^##vso\[task\.setvariable variable=([^;\]]+);isOutput=true\](.*)$", re.M)
AZURE_MACRO = re.compile(r"\$\(([\w.]+)\)")
#: ``$[ dependencies.<job>.outputs['<step>.<variable>'] ]``, the one runtime expression the runner evaluates.
OUTPUT_EXPRESSION = re.compile(r"^\$\[\s*dependencies\.(\w+)\.outputs\['(\w+)\.(\w+)'\]\s*\]$")
#: What Azure accepts as a matrix leg's name (it names the job: ``Copy shard_1``).
LEG_NAME = re.compile(r"^[A-Za-z0-9_]+$")
SUCCEEDED = ("Succeeded", "SucceededWithIssues")


@dataclass(frozen=True)
class AzureStep:
    label: str
    ok: bool
    log: str


@dataclass
class AzureJob:
    """One job run: ``name`` as Azure shows it (``Copy shard_1`` for a matrix leg), its result (``Succeeded``,
    ``Failed`` or ``Skipped``), its steps, its output variables (``step.variable``) and its matrix variables."""

    job: str
    name: str
    result: str
    steps: list[AzureStep] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    matrix: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> str:
        return "\n".join(f"--- {self.name} / {step.label}\n{step.log}" for step in self.steps)


def unescape(text: str) -> str:
    """A logging command's value as the agent reads it (the escapes of azure-pipelines-task-lib)."""
    for escaped, plain in (("%0D", "\r"), ("%0A", "\n"), ("%3B", ";"), ("%5D", "]"), ("%AZP25", "%")):
        text = text.replace(escaped, plain)
    return text


def assert_masked(secret: str, steps: list[AzureStep]) -> None:
    """``secret`` shows only in the ``##vso[task.setsecret]`` commands that make the agent mask it."""
    lines = [line for step in steps for line in step.log.splitlines() if secret in line]
    assert lines and all(line == f"##vso[task.setsecret]{secret}" for line in lines), lines


def pipeline_variables(pipeline: dict[str, Any], groups: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """A ``variables:`` block (a mapping, or a list of ``name``/``value`` and ``group`` items) as name -> value;
    a variable group's values come from ``groups``, as the library holds them."""
    block = pipeline.get("variables") or {}
    if isinstance(block, dict):
        return {name: str(value) for name, value in block.items()}
    values: dict[str, str] = {}
    for item in block:
        if "group" in item:
            assert groups is not None and item["group"] in groups, f"no variable group {item['group']}"
            values.update(groups[item["group"]])
        else:
            assert item.keys() == {"name", "value"}, item
            values[item["name"]] = str(item["value"])
    return values


def run_azure_steps(pipeline: dict[str, Any], *, node: str, tasks: Path, work: Path, variables: dict[str, str],
                    connections: dict[str, Guarded], secure_files: dict[str, Path] | None = None,
                    artifacts: Path | None = None) -> tuple[list[AzureStep], dict[str, str]]:
    """Runs ``pipeline``'s steps in order in ``work`` as the agent would: ``$(...)`` macros expanded from the
    pipeline's variables, ``variables`` (predefined and secret ones) and earlier steps' output variables
    (``$(step.name)``); ``CiOras*`` tasks by their staged ``index.js`` (``INPUT_*``, the service connection as
    ``ENDPOINT_AUTH_PARAMETER_*`` for the task naming it, debug logging on); ``bash`` steps with bash;
    ``DownloadSecureFile@1`` sets ``$(name.secureFilePath)`` to the file in ``secure_files``;
    ``PublishPipelineArtifact@1`` and ``DownloadPipelineArtifact@2`` keep and fetch artifacts in ``artifacts``
    (one directory per artifact). Stops at the first failed step, as a pipeline does. Returns the steps run
    and the variables at the end."""
    values = {**pipeline_variables(pipeline), **variables}
    agent_temp = work.parent / "agent-temp"
    agent_temp.mkdir(exist_ok=True)
    base = {k: v for k, v in clean_env(work.parent / "home").items()
            if not k.startswith(("INPUT_", "ENDPOINT_", "TF_BUILD", "SYSTEM_"))}
    base.update({"AGENT_TEMPDIRECTORY": str(agent_temp), "SYSTEM_DEBUG": "true",
                 "NODE_PATH": str(AZURE / "node_modules"),
                 "PATH": installed_path(work.parent / "bin")})

    def expand(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            assert match.group(1) in values, f"no variable {match.group(1)} at this step"
            return values[match.group(1)]
        return AZURE_MACRO.sub(one, text)

    ran: list[AzureStep] = []
    for step in pipeline["steps"]:
        assert not {"condition", "continueOnError", "enabled"} & step.keys(), step  # not modelled here
        label = step.get("name") or step.get("displayName") or step.get("task") or "Bash"
        env = dict(base)
        if "bash" in step:
            env.update({k: expand(v) for k, v in step.get("env", {}).items()})
            command = ["bash", "-c", expand(step["bash"])]
        else:
            task, _, version = step["task"].partition("@")
            inputs = {name: expand(str(value)) for name, value in step.get("inputs", {}).items()}
            if task == "DownloadSecureFile":
                assert secure_files is not None
                values[f"{step['name']}.secureFilePath"] = str(secure_files[inputs["secureFile"]])
                ran.append(AzureStep(label, True, ""))
                continue
            if task in ("PublishPipelineArtifact", "DownloadPipelineArtifact"):
                assert artifacts is not None, "artifacts pass between jobs: run_azure_jobs"
                handle = _publish if task == "PublishPipelineArtifact" else _download
                ok, log = handle(version, inputs, work=work, workspace=Path(values["Pipeline.Workspace"]),
                                 artifacts=artifacts)
                ran.append(AzureStep(label, ok, log))
                if not ok:
                    break
                continue
            assert task.startswith("CiOras"), task
            for name, value in inputs.items():
                env["INPUT_" + name.upper()] = value
            connection = inputs.get("dockerRegistryServiceConnection")
            if connection:
                registry = connections[connection]
                prefix = f"ENDPOINT_AUTH_PARAMETER_{connection.upper()}"
                env.update({f"{prefix}_USERNAME": registry.username, f"{prefix}_PASSWORD": registry.password,
                            f"{prefix}_REGISTRY": f"http://{registry.host}/"})
            command = [node, str(tasks / f"{task}V{version}" / "index.js")]
        completed = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False,
                                   timeout=180)
        log = completed.stdout + completed.stderr
        if "bash" in step:
            ok = completed.returncode == 0
        else:
            results = re.findall(r"##vso\[task\.complete result=(\w+);", log)
            ok = bool(results) and results[-1] in SUCCEEDED
        if step.get("name"):
            for name, value in AZURE_OUTPUT.findall(log):
                values[f"{step['name']}.{unescape(name)}"] = unescape(value)
        ran.append(AzureStep(label, ok, log))
        if not ok:
            break
    return ran, values


def _inputs(inputs: dict[str, str], known: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """``inputs`` by their canonical names (a task's aliases mapped), refusing any input the runner ignores."""
    names = {alias: key for key, aliases in known.items() for alias in (key, *aliases)}
    unknown = set(inputs) - set(names)
    assert not unknown, f"inputs not modelled here: {sorted(unknown)}"
    return {names[name]: value for name, value in inputs.items()}


def _publish(version: str, inputs: dict[str, str], *, work: Path, workspace: Path,
             artifacts: Path) -> tuple[bool, str]:
    """``PublishPipelineArtifact@1``: ``targetPath`` (a file or a directory, relative to the default working
    directory) kept as artifact ``artifact``; a name already published fails the step, as it does on Azure."""
    assert version == "1"
    given = _inputs(inputs, {"targetPath": ("path",), "artifact": ("artifactName",),
                             "publishLocation": ("artifactType",)})
    assert given.get("publishLocation", "pipeline") == "pipeline", given
    name = given.get("artifact")
    assert name, "name the artifact: the jobs that download it name it too"
    source = work / given.get("targetPath", str(workspace))
    target = artifacts / name
    if target.exists():
        return False, f"##[error]Artifact {name} already exists for this run"
    if not source.exists():
        return False, f"##[error]Path does not exist: {source}"
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.mkdir(parents=True)
        shutil.copy2(source, target / source.name)
    return True, f"Uploading pipeline artifact from {source} for build as {name}"


def _download(version: str, inputs: dict[str, str], *, work: Path, workspace: Path,
              artifacts: Path) -> tuple[bool, str]:
    """``DownloadPipelineArtifact@2`` from the current run: artifact ``artifactName``'s files into
    ``targetPath`` (default the pipeline workspace), or every artifact into ``targetPath/<name>`` when none is
    named."""
    assert version == "2"
    given = _inputs(inputs, {"buildType": ("source",), "artifactName": ("artifact",),
                             "targetPath": ("path", "downloadPath")})
    assert given.get("buildType", "current") == "current", given
    target = work / given.get("targetPath", str(workspace))
    name = given.get("artifactName")
    if name:
        if not (artifacts / name).is_dir():
            return False, f"##[error]Artifact {name} was not found for build"
        shutil.copytree(artifacts / name, target, dirs_exist_ok=True)
    else:
        for each in sorted(artifacts.iterdir()) if artifacts.is_dir() else []:
            shutil.copytree(each, target / each.name, dirs_exist_ok=True)
    return True, f"Downloading artifact {name or '(all)'} to {target}"


def _matrix(job: dict[str, Any], ran: dict[str, list[AzureJob]]) -> dict[str, dict[str, str]] | None:
    """The job's matrix legs, or None: a mapping as written, or the output variable a dependency set."""
    strategy = job.get("strategy")
    if strategy is None:
        return None
    assert strategy.keys() <= {"matrix", "maxParallel"}, strategy
    matrix = strategy["matrix"]
    if isinstance(matrix, str):
        expression = OUTPUT_EXPRESSION.match(matrix.strip())
        assert expression, f"unsupported matrix expression {matrix!r}"
        source, step, variable = expression.groups()
        assert source in _depends_on(job), f"{job['job']} reads {source}'s outputs without dependsOn: {source}"
        (producer,) = ran[source]
        assert not producer.matrix, "a matrix job's outputs are named by leg"
        value = producer.outputs.get(f"{step}.{variable}")
        assert value is not None, f"{source} set no output variable {step}.{variable}"
        matrix = json.loads(value)
    assert isinstance(matrix, dict) and matrix, f"a matrix is a non-empty object of legs: {matrix!r}"
    for leg, leg_variables in matrix.items():
        assert LEG_NAME.match(leg), f"matrix leg name {leg!r}: letters, digits and _ only"
        assert isinstance(leg_variables, dict), leg_variables
    return {leg: {name: str(value) for name, value in leg_variables.items()}
            for leg, leg_variables in matrix.items()}


def _depends_on(job: dict[str, Any]) -> list[str]:
    depends = job.get("dependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


def run_azure_jobs(pipeline: dict[str, Any], *, node: str, tasks: Path, root: Path, variables: dict[str, str],
                   connections: dict[str, Guarded], sources: dict[str, bytes],
                   groups: dict[str, dict[str, str]] | None = None,
                   secure_files: dict[str, Path] | None = None) -> list[AzureJob]:
    """Runs ``pipeline``'s jobs as Azure Pipelines would, one after another in an order their ``dependsOn``
    allows. Each job, and each leg of a matrix, runs in its own workspace ``root/<job>[_<leg>]`` (sources in
    ``s/``, ``a/`` for staging artifacts) with :func:`run_azure_steps`; ``sources`` is the repository its
    checkout lays out (none after ``checkout: none``). A job runs when its condition (only ``succeeded()``,
    the default, is modelled) holds: every dependency Succeeded; else it is Skipped. The matrix legs' variables
    come with the leg's own job. Returns every job run or skipped, in order."""
    known = pipeline_variables(pipeline, groups)
    artifacts = root / "_artifacts"
    artifacts.mkdir(parents=True)
    ran: dict[str, list[AzureJob]] = {}
    results: list[AzureJob] = []
    for job in pipeline["jobs"]:
        assert job.keys() <= {"job", "displayName", "dependsOn", "condition", "strategy", "steps", "pool",
                              "variables", "timeoutInMinutes"}, job
        name = job["job"]
        depends = _depends_on(job)
        assert all(dependency in ran for dependency in depends), f"{name} depends on a later job"
        assert job.get("condition", "succeeded()").replace(" ", "") == "succeeded()", job.get("condition")
        if not all(each.result in SUCCEEDED for dependency in depends for each in ran[dependency]):
            ran[name] = [AzureJob(name, name, "Skipped")]
            results += ran[name]
            continue
        legs = _matrix(job, ran)
        runs = []
        for position, (leg, leg_variables) in enumerate((legs or {None: {}}).items(), start=1):
            instance = name if leg is None else f"{name} {leg}"
            workspace = root / (name if leg is None else f"{name}_{leg}")
            work = workspace / "s"
            (workspace / "a").mkdir(parents=True)
            work.mkdir()
            steps = list(job["steps"])
            checkouts = [step for step in steps if "checkout" in step]
            assert all(step == {"checkout": "none"} or step.get("checkout") == "self" for step in checkouts)
            if not any(step.get("checkout") == "none" for step in checkouts):
                for path, content in sources.items():
                    (work / path).parent.mkdir(parents=True, exist_ok=True)
                    (work / path).write_bytes(content)
            predefined = {
                "Pipeline.Workspace": str(workspace), "Build.SourcesDirectory": str(work),
                "System.DefaultWorkingDirectory": str(work), "Build.ArtifactStagingDirectory": str(workspace / "a"),
                "Agent.TempDirectory": str(workspace / "agent-temp"), "Agent.JobName": instance,
                "System.JobPositionInPhase": str(position), "System.TotalJobsInPhase": str(len(legs or [None])),
            }
            job_variables = {**known, **pipeline_variables(job, groups), **predefined, **variables,
                             **leg_variables}
            steps_ran, values = run_azure_steps(
                {"steps": [step for step in steps if "checkout" not in step]}, node=node, tasks=tasks, work=work,
                variables=job_variables, connections=connections, secure_files=secure_files, artifacts=artifacts)
            ok = len(steps_ran) == len(steps) - len(checkouts) and all(step.ok for step in steps_ran)
            outputs = {key: value for key, value in values.items()
                       if key not in job_variables and not key.endswith(".secureFilePath")}
            runs.append(AzureJob(name, instance, "Succeeded" if ok else "Failed", steps_ran, outputs,
                                 leg_variables))
        ran[name] = runs
        results += runs
    return results
