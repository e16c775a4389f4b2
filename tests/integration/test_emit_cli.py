"""``--emit`` through the real CLI against a real registry: GitHub, GitLab and Azure side channels.

Each test builds its environment from ``clean_env`` minus whatever CI platform the test suite itself runs on,
then sets the platform variables it means to test. Secrets are proven absent by scanning every file written.

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``): a subprocess would add only its
start-up, some 0.2 s of CPU a run; the process boundary is tested elsewhere.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from harness.cli import CliResult, clean_env, expect, invoke_cli
from harness.registry import RunningRegistry
from harness.runner_files import parse_github_outputs

_PLATFORM_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITLAB_CI", "TF_BUILD",
                       "AGENT_TEMPDIRECTORY")
GITLAB_LINE = re.compile(r"^(.*?)=(.*)$")
MASK_PREFIXES = ("::add-mask::", "##vso[task.setsecret]")


def _env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in clean_env(home).items() if k not in _PLATFORM_VARIABLES}
    env.update(extra or {})
    return env


def github_env(tmp_path: Path) -> dict[str, str]:
    return _env(tmp_path, {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "github_output"),
                           "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary")})


def github_outputs(path: Path) -> dict[str, str]:
    return parse_github_outputs(path.read_text())


def dotenv(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert all(GITLAB_LINE.match(line) for line in lines), lines  # GitLab rejects anything else
    return dict(line.split("=", 1) for line in lines)


def _repo(registry: RunningRegistry) -> str:
    return f"{registry.host}/emit/{uuid.uuid4().hex[:8]}"


def _push(repo: str, tmp_path: Path, env: Mapping[str, str], *extra: str) -> CliResult:
    (tmp_path / "a.txt").write_text("hello")
    return expect(invoke_cli("push", f"{repo}:v1", "a.txt", "--artifact-type", "application/vnd.acme.test", *extra,
                       env=env, cwd=tmp_path))


def test_github_outputs_summary_and_json_stdout(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    env = github_env(tmp_path)
    repo = _repo(registry_plain)
    pushed = _push(repo, tmp_path, env, "-O", "json").json()  # stdout: exactly one JSON document
    outputs = github_outputs(tmp_path / "github_output")
    assert outputs["digest"] == pushed["digest"]
    assert outputs["reference"] == f"{repo}:v1"
    assert outputs["artifact-type"] == "application/vnd.acme.test"
    assert json.loads(outputs["result"]) == pushed

    (tmp_path / "report.txt").write_text("report")
    attached = expect(invoke_cli("attach", f"{repo}:v1", "report.txt", "--artifact-type", "application/x.report",
                           "-O", "json", env=env, cwd=tmp_path)).json()
    outputs = github_outputs(tmp_path / "github_output")
    assert outputs["digest"] == attached["digest"] and outputs["subject"] == pushed["digest"]

    found = expect(invoke_cli("discover", f"{repo}:v1", env=env))  # text mode: the tree on stdout, nothing else
    assert found.stdout.startswith(f"{repo}@{pushed['digest']}\n") and "::" not in found.stdout
    outputs = github_outputs(tmp_path / "github_output")
    assert outputs["count"] == "1" and outputs["digest"] == pushed["digest"]
    assert json.loads(outputs["graph"])["referrers"][0]["digest"] == attached["digest"]

    summary = (tmp_path / "step_summary").read_text()
    assert f"### ci-oras push `{repo}:v1`" in summary
    assert f"### ci-oras attach `{repo}@{attached['digest']}`" in summary
    assert summary.count("```mermaid") == 2  # attach (subject -> referrer) and discover
    assert f"| `digest` | `{pushed['digest']}` |" in summary


def test_failing_verify_writes_ok_false(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    env = github_env(tmp_path)
    repo = _repo(registry_plain)
    _push(repo, tmp_path, env)
    failed = expect(invoke_cli("verify", f"{repo}:v1", "--require", "sbom", "--require", "signature", env=env), 1)
    outputs = github_outputs(tmp_path / "github_output")
    assert outputs["ok"] == "false" and json.loads(outputs["missing"]) == ["sbom", "signature"]
    assert json.loads(outputs["result"])["ok"] is False
    assert "::error title=ci-oras verify::verification failed: missing sbom, signature" in failed.stderr.splitlines()
    assert failed.stdout == ""
    summary = (tmp_path / "step_summary").read_text()
    assert "**Failed**: missing `sbom`, `signature`." in summary and "ci-oras verify: failed" not in summary

    as_json = expect(invoke_cli("verify", f"{repo}:v1", "--require", "sbom", "-O", "json", env=env), 1)
    assert as_json.json()["ok"] is False  # stdout is still exactly the document
    assert github_outputs(tmp_path / "github_output")["missing"] == '["sbom"]'
    assert "::error title=ci-oras verify::" in as_json.stderr


def test_errors_annotate_and_summarise(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    env = github_env(tmp_path)
    missing = expect(invoke_cli("pull", f"{_repo(registry_plain)}:nope", "-o", str(tmp_path / "o"), "-O", "json",
                          env=env), 3)
    assert missing.json()["error"]["kind"] == "not-found"  # -O json: the error document, and nothing else
    assert any(line.startswith("::error title=ci-oras pull::") for line in missing.stderr.splitlines())
    assert (tmp_path / "step_summary").read_text().startswith("### ci-oras pull: failed\n")
    assert not (tmp_path / "github_output").exists()


def test_gitlab_dotenv_merges_steps(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    env = _env(tmp_path, {"GITLAB_CI": "true"})
    (tmp_path / "ci-oras.env").write_text("BUILD_ID=42\n")
    repo = _repo(registry_plain)
    pushed = _push(repo, tmp_path, env, "-O", "json").json()
    promoted = expect(invoke_cli("promote", f"{repo}:v1", f"{repo}-prod:v1", "-O", "json", env=env, cwd=tmp_path)).json()
    values = dotenv(tmp_path / "ci-oras.env")
    assert values["BUILD_ID"] == "42"
    assert values["CI_ORAS_DIGEST"] == pushed["digest"] == promoted["digest"]
    assert values["CI_ORAS_REFERENCE"] == f"{repo}-prod:v1"
    assert values["CI_ORAS_ARTIFACT_TYPE"] == "application/vnd.acme.test"  # push's, kept
    copied, skipped = promoted["copied"], promoted["skipped"]
    assert values["CI_ORAS_COPIED"] == str(copied["manifests"] + copied["blobs"]) == "1"  # the manifest
    assert values["CI_ORAS_MOUNTED"] == str(promoted["mounted"]) == "2"  # same registry: layer and config mounted
    assert values["CI_ORAS_SKIPPED"] == str(skipped["manifests"] + skipped["blobs"]) == "0"
    assert json.loads(values["CI_ORAS_RESULT"]) == promoted
    summary = (tmp_path / "ci-oras-summary.md").read_text()
    assert "### ci-oras push" in summary and "### ci-oras promote" in summary and "graph LR" in summary

    other = tmp_path / "out" / "deploy.env"
    expect(invoke_cli("delete", f"{repo}-prod:v1", "--emit-file", str(other), env={**env, "CI_ORAS_DOTENV_PREFIX": "APP_"},
                cwd=tmp_path))
    assert json.loads(dotenv(other)["APP_DELETED"]) == [pushed["digest"]]
    assert (tmp_path / "out" / "ci-oras-summary.md").exists()


def test_azure_logging_commands(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    agent_temp = tmp_path / "agent-temp"
    agent_temp.mkdir()
    env = _env(tmp_path, {"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(agent_temp)})
    repo = _repo(registry_plain)
    result = _push(repo, tmp_path, env, "-O", "json")
    pushed = result.json()  # the ##vso lines are on stderr: stdout is the document only
    lines = result.stderr.splitlines()
    assert f"##vso[task.setvariable variable=digest;isOutput=true]{pushed['digest']}" in lines
    assert f"##vso[task.setvariable variable=reference;isOutput=true]{repo}:v1" in lines
    assert "##vso[task.setvariable variable=artifactType;isOutput=true]application/vnd.acme.test" in lines
    upload = [line for line in lines if line.startswith("##vso[task.uploadsummary]")]
    assert len(upload) == 1
    summary = Path(upload[0].removeprefix("##vso[task.uploadsummary]"))
    assert summary.parent == agent_temp and f"### ci-oras push `{repo}:v1`" in summary.read_text()

    failed = expect(invoke_cli("verify", f"{repo}:v1", "--require", "sbom", env=env), 1)
    assert "##vso[task.setvariable variable=ok;isOutput=true]false" in failed.stderr.splitlines()
    assert "##vso[task.logissue type=error]verification failed: missing sbom" in failed.stderr


def test_emit_none_and_auto_detection(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    repo = _repo(registry_plain)
    github = github_env(tmp_path)
    _push(repo, tmp_path, github, "--emit", "none")
    assert not (tmp_path / "github_output").exists() and not (tmp_path / "step_summary").exists()

    plain = _env(tmp_path)  # no CI platform: auto emits nothing
    quiet = _push(repo, tmp_path, plain)
    assert not (tmp_path / "ci-oras.env").exists() and "##vso" not in quiet.stderr and "::" not in quiet.stderr

    _push(repo, tmp_path, plain, "--emit", "gitlab")  # explicit, outside GitLab
    assert "CI_ORAS_DIGEST" in dotenv(tmp_path / "ci-oras.env")

    _push(repo, tmp_path, github)  # auto -> github
    assert "digest" in github_outputs(tmp_path / "github_output")

    azure = _push(repo, tmp_path, {**plain, "TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(tmp_path)})
    assert "##vso[task.setvariable variable=digest;isOutput=true]" in azure.stderr


def test_data_on_stdout_is_never_mixed_with_commands(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    env = {**github_env(tmp_path), "CI_ORAS_PASSWORD": "not-needed-here", "CI_ORAS_USERNAME": "nobody"}
    repo = _repo(registry_plain)
    _push(repo, tmp_path, env)
    tags = expect(invoke_cli("tags", repo, env=env))
    assert tags.stdout == "v1\n"
    assert "::add-mask::not-needed-here" in tags.stderr.splitlines()
    manifest = expect(invoke_cli("manifest", "fetch", f"{repo}:v1", env=env))
    assert json.loads(manifest.stdout)["artifactType"] == "application/vnd.acme.test"
    outputs = github_outputs(tmp_path / "github_output")
    assert outputs["artifact-type"] == "application/vnd.acme.test" and "digest" in outputs
    assert "ci-oras tags" not in (tmp_path / "step_summary").read_text()  # helpers set outputs only


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and ".docker" not in path.parts]


@pytest.mark.parametrize("platform", ["github", "gitlab", "azure"])
@pytest.mark.parametrize("how", ["stdin", "env", "wrong"])
def test_secrets_never_reach_outputs_or_summaries(registry_htpasswd: RunningRegistry, tmp_path: Path,
                                                   platform: str, how: str) -> None:
    assert registry_htpasswd.username and registry_htpasswd.password
    password = registry_htpasswd.password if how != "wrong" else f"wrong-{uuid.uuid4().hex}"
    work = tmp_path / "work"
    work.mkdir()
    extra: dict[str, Any] = {
        "github": {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(work / "out"),
                   "GITHUB_STEP_SUMMARY": str(work / "summary")},
        "gitlab": {"GITLAB_CI": "true"},
        "azure": {"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(work)},
    }[platform]
    args: list[str] = []
    stdin = None
    if how == "env":
        extra.update(CI_ORAS_USERNAME=registry_htpasswd.username, CI_ORAS_PASSWORD=password,
                     CI_ORAS_REGISTRY=registry_htpasswd.host)
    else:
        args, stdin = ["-u", registry_htpasswd.username, "--password-stdin"], password
    env = _env(tmp_path, extra)
    repo = f"{registry_htpasswd.host}/emit/{uuid.uuid4().hex[:8]}"
    (work / "a.txt").write_text("hello")
    pushed = invoke_cli("push", f"{repo}:v1", "a.txt", *args, env=env, cwd=work, stdin=stdin)
    verified = invoke_cli("verify", f"{repo}:v1", "--require", "sbom", *args, "-O", "json", env=env, cwd=work,
                       stdin=stdin)
    if how == "wrong":
        assert (pushed.returncode, verified.returncode) == (4, 4)
    else:
        assert (pushed.returncode, verified.returncode) == (0, 1), pushed.stderr + verified.stderr
    written = _files(work)
    assert len(written) >= 2  # the pushed file plus at least an outputs or summary file
    for path in written:
        assert password not in path.read_text(errors="replace"), path
    for result in (pushed, verified):
        assert password not in result.stdout
        leaks = [line for line in result.stderr.splitlines() if password in line]
        assert all(line.startswith(MASK_PREFIXES) for line in leaks), leaks
        if platform != "gitlab":
            assert leaks, "the password is masked on the platform before anything else is printed"
            assert result.stderr.splitlines()[0].startswith(MASK_PREFIXES)
