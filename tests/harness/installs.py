"""ci-oras installed the ways users get it, for the tests that must run what users run, not the development venv.

The wheel is built once per test session, and each install way makes one venv per session: the first pytest-xdist
worker to need one builds it under a file lock in the session's shared temporary directory, and the other workers
find it done. The .vsix is the one package.sh built from the very same inputs, in this session or a recent one
(:func:`build_vsix`); the venvs are always new. Installs run in an environment like a fresh CI job's: a private
HOME, a PATH of the system's directories (with ``python3``) and no development venv nor any ``ci-oras`` on it,
and pip configured for the package index alone (this machine's pip configuration may add local wheel
directories a runner never has).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: A port nothing listens on: an index there refuses every connection.
CLOSED_INDEX = "http://127.0.0.1:9/simple/"
#: The Azure tasks whose step imports cryptography (azure-pipelines/package.sh: SIGNING_TASKS).
SIGNING_TASKS = ("CiOrasSignV0", "CiOrasVerifyV0", "CiOrasReleasePlanV0")
#: The Azure task whose step imports sigstore (package.sh: SIGSTORE_TASKS): only it carries sigstore's wheels.
SIGSTORE_TASKS = ("CiOrasVerifyV0",)
_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_PIP_SETTINGS = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX", "PIP_INDEX_URL")


def base_python() -> Path:
    """The interpreter the development venv was made from: a ``python3`` with no ci-oras of ours."""
    return Path(getattr(sys, "_base_executable", sys.executable) or sys.executable).resolve()


def path_without_ci_oras(bin_dir: Path) -> str:
    """A PATH with no ci-oras and no development venv on it, but with ``python3`` (``bin_dir`` holds a link to
    :func:`base_python`) to install one."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    python3 = bin_dir / "python3"
    if not python3.exists():
        python3.symlink_to(base_python())
    dirs = [str(bin_dir)] + [d for d in _SYSTEM_DIRS if Path(d).is_dir() and not (Path(d) / "ci-oras").exists()]
    return os.pathsep.join(dirs)


def user_env(home: Path, *, bin_dirs: tuple[Path, ...] = (), extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A fresh CI job's environment: private HOME and docker config, ``bin_dirs`` first on a PATH without the
    development venv, no Python or pip settings of this test run, pip reaching the package index only."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CI_ORAS_", "DOCKER_", "REGISTRY_AUTH", "GITHUB_", "RUNNER_", "INPUT_", "PYTHON",
                                  "VIRTUAL_ENV", "GITLAB_", "AGENT_", "TF_BUILD"))
           and key not in _PIP_SETTINGS}
    env.update({"HOME": str(home), "DOCKER_CONFIG": str(home / ".docker"), "PIP_CONFIG_FILE": os.devnull,
                "PATH": os.pathsep.join([*map(str, bin_dirs), path_without_ci_oras(home / "bin")])})
    env.update(extra or {})
    return env


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory both xdist workers of this session see (the session's own when not under xdist)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    directory = root / "installs"
    directory.mkdir(exist_ok=True)
    return directory


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once(directory: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """``build(directory)``'s result, built by the first caller of the session (any worker) and read back by the
    others: it must be JSON. A failed build is retried by the next caller."""
    with _locked(directory.with_name(directory.name + ".lock")):
        done = directory.with_name(directory.name + ".done.json")
        if done.is_file():
            return dict(json.loads(done.read_text(encoding="utf-8")))
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        result = build(directory)
        done.write_text(json.dumps(result), encoding="utf-8")
        return result


def run(command: list[str], *, env: Mapping[str, str], cwd: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``command``; a failure raises with its whole output, which is what a failed install needs to show."""
    done = subprocess.run(command, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@dataclass(frozen=True)
class Installed:
    """One install of ci-oras: its venv and the ``ci-oras`` to run."""

    how: str
    venv: Path

    @property
    def exe(self) -> Path:
        return self.venv / "bin" / "ci-oras"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"


def checkout_copy(dest: Path) -> Path:
    """The files git tracks in this checkout (as a runner's checkout holds them), copied to ``dest``: builds
    from there leave nothing in this checkout (setuptools builds in the source tree) and never race with the
    tests that build from it."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode("utf-8").split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def build_wheel(dest: Path) -> dict[str, Any]:
    """The ci-oras wheel of this checkout, built the way azure-pipelines/package.sh builds it."""
    source = checkout_copy(dest / "checkout")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--wheel-dir", str(dest), str(source)], env=os.environ)
    (wheel,) = dest.glob("ci_oras-*.whl")
    return {"wheel": str(wheel)}


def bare_venv(venv: Path, env: Mapping[str, str]) -> list[str]:
    """A fresh venv without pip of its own, and the pip command line that installs into it (this session's pip,
    ``--python``): the venv ends up holding exactly what that pip installs, as with its own pip, without
    ensurepip's three seconds of CPU per venv. The install ways that make their venv in product code
    (``actions/install.sh``, the GitLab templates, the Azure task handler run by tests/wrappers) keep doing so."""
    run([str(base_python()), "-m", "venv", "--without-pip", str(venv)], env=env)
    return [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "--disable-pip-version-check"]


def pip_install(wheel: Path, dest: Path) -> Installed:
    """``pip install ci-oras`` (here: the wheel) into a fresh venv, its dependencies from the package index."""
    env = user_env(dest / "home")
    venv = dest / "venv"
    run([*bare_venv(venv, env), "install", "--quiet", str(wheel)], env=env)
    return Installed("pip install", venv)


def action_install(dest: Path) -> Installed:
    """actions/install.sh as a step action runs it on a runner without ci-oras: the lock with --require-hashes,
    then the checkout (a copy of this one) with --no-deps, into a venv under ``$RUNNER_TEMP``
    (``dest/runner-temp``)."""
    checkout = checkout_copy(dest / "checkout")
    temp = dest / "runner-temp"
    temp.mkdir()
    outputs = dest / "github-output"
    env = user_env(dest / "home", extra={
        "RUNNER_TEMP": str(temp), "GITHUB_OUTPUT": str(outputs), "GITHUB_PATH": str(dest / "github-path"),
        "GITHUB_STEP_SUMMARY": str(dest / "summary.md"), "GITHUB_ACTIONS": "true"})
    done = run(["bash", str(checkout / "actions" / "install.sh")], env=env, cwd=dest)
    assert "Installing ci-oras" in done.stdout, done.stdout
    exe = Path(dict(line.split("=", 1) for line in outputs.read_text().splitlines())["path"])
    return Installed("actions/install.sh", exe.parent.parent)


def gitlab_install_lines(template: Path) -> str:
    """The install part of a GitLab template's job script: what runs when ``package`` is not empty."""
    import yaml

    job = list(yaml.safe_load_all(template.read_text(encoding="utf-8")))[1]
    ((body),) = job.values()
    script = "\n".join(body["script"])
    match = re.search(r'^if \[ -n "\$CI_ORAS_PACKAGE" \]; then\n(.*?)^else\n', script, re.MULTILINE | re.DOTALL)
    assert match, f"{template}: no install block"
    return match.group(1)


def gitlab_install(wheel: Path, dest: Path, step: str, bin_dirs: tuple[Path, ...] = ()) -> Installed:
    """The install lines of gitlab/``step``.yml (each template carries its step's lock), run by sh with
    ``package`` set to the wheel, as a job in the default python image runs them (``bin_dirs``: first on PATH,
    an image's other ``python3``)."""
    lines = gitlab_install_lines(REPO_ROOT / "gitlab" / f"{step}.yml")
    script = 'set -eu\nfail() { echo "$*" >&2; exit 2; }\n' + lines + 'printf "%s\\n" "$exe" > "$OUT"\n'
    out = dest / "exe"
    env = user_env(dest / "home", bin_dirs=bin_dirs, extra={
        "CI_ORAS_PACKAGE": str(wheel), "TMPDIR": str(dest), "CI_JOB_ID": "1", "OUT": str(out), "GITLAB_CI": "true"})
    run(["sh", "-c", script], env=env, cwd=dest)
    exe = Path(out.read_text().strip())
    return Installed(f"gitlab/{step}.yml", exe.parent.parent)


def wheels_cache() -> Path:
    """Where package.sh keeps the extension's wheels between test runs (``CI_ORAS_WHEELS_CACHE``): one download
    per lock, instead of about 27 MB fetched and 20 s of pip on every run; the tasks still install them
    hash-checked."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ci-oras-tests" / "vsix-wheels"


def vsix_cache() -> Path:
    """Where the tests keep the .vsix package.sh built, by the digest of everything it was built from
    (:func:`vsix_inputs`): about 23 s of CPU a build, mostly tfx deflating 81 MB, saved whenever a session
    builds from the same inputs as a recent one."""
    return wheels_cache().parent / "vsix"


#: How many .vsix builds (81 MB each) the cache keeps: the most recently used.
VSIX_CACHE_ENTRIES = 3
_VSIX_SOURCES = ("azure-pipelines", "requirements")
_NOT_VSIX_SOURCES = {"node_modules", "out", "__pycache__"}


def vsix_inputs(wheel: Path) -> str:
    """The digest of what package.sh builds a .vsix from: the ci-oras wheel's contents (file by file: its zip
    timestamps differ from build to build), every file of azure-pipelines/ and requirements/ (tracked or not,
    as stage.sh copies them), the npm tree installed there (npm's record of it), and the node and Python that
    run the build."""
    digest = hashlib.sha256()

    def add(name: str, data: bytes) -> None:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)

    with zipfile.ZipFile(wheel) as archive:
        for info in sorted(archive.infolist(), key=lambda info: info.filename):
            add(f"wheel/{info.filename}", archive.read(info))
    for top in _VSIX_SOURCES:
        for directory, subdirectories, files in os.walk(REPO_ROOT / top):  # top-down, in sorted order
            subdirectories[:] = sorted(name for name in subdirectories if name not in _NOT_VSIX_SOURCES)
            for name in sorted(files):
                path = Path(directory) / name
                add(str(path.relative_to(REPO_ROOT)), path.read_bytes())
    npm_tree = REPO_ROOT / "azure-pipelines" / "node_modules" / ".package-lock.json"
    add("npm-tree", npm_tree.read_bytes() if npm_tree.is_file() else b"")
    node = shutil.which("node")  # none: package.sh fails, and says so
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout if node else ""
    add("tools", f"node {version.strip()}; python {sys.version}; packaging {_version_of('packaging')}".encode())
    return digest.hexdigest()[:32]


def _version_of(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "none"


def _copy_checked(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target``; the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def _cached_vsix(entry: Path, out: Path) -> Path | None:
    """The .vsix of cache ``entry`` copied into ``out``, if the entry is whole and its file still has the digest
    recorded when it was stored; a damaged entry is removed (and the .vsix built again)."""
    try:
        recorded = json.loads((entry / "vsix.json").read_text(encoding="utf-8"))
        name = Path(str(recorded["name"])).name
        out.mkdir(parents=True, exist_ok=True)
        if _copy_checked(entry / name, out / name) == recorded["sha256"]:
            os.utime(entry)  # recently used: pruned last
            return out / name
    except (OSError, ValueError, KeyError, TypeError):
        pass
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(entry, ignore_errors=True)
    return None


def _store_vsix(vsix: Path, entry: Path) -> None:
    """Keep ``vsix`` as cache ``entry`` (written aside and renamed whole; a concurrent session's equal build
    may win), then drop all but the most recently used entries."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=entry.parent))
    try:
        sha256 = _copy_checked(vsix, partial / vsix.name)
        (partial / "vsix.json").write_text(json.dumps({"name": vsix.name, "sha256": sha256}), encoding="utf-8")
        os.rename(partial, entry)
    except OSError:
        pass
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    entries = sorted((path for path in entry.parent.iterdir() if not path.name.startswith(".")),
                     key=lambda path: path.stat().st_mtime, reverse=True)
    for stale in entries[VSIX_CACHE_ENTRIES:]:
        shutil.rmtree(stale, ignore_errors=True)


def build_vsix(wheel: Path, dest: Path) -> dict[str, Any]:
    """azure-pipelines/package.sh with the session's wheel, or the .vsix it built from the very same inputs
    (:func:`vsix_inputs`) in a recent session; the .vsix and its tasks unpacked beside it."""
    out = dest / "out"
    entry = vsix_cache() / vsix_inputs(wheel)
    vsix = _cached_vsix(entry, out) if entry.is_dir() else None
    if vsix is None:
        run(["bash", str(REPO_ROOT / "azure-pipelines" / "package.sh"), str(out)],
            env={**os.environ, "HOME": str(dest), "PYTHON": sys.executable, "CI_ORAS_WHEEL": str(wheel),
                 "CI_ORAS_WHEELS_CACHE": str(wheels_cache())})
        (vsix,) = out.glob("*.vsix")
        _store_vsix(vsix, entry)
    with zipfile.ZipFile(vsix) as archive:
        archive.extractall(dest / "unpacked")
    return {"vsix": str(vsix), "tasks": str(dest / "unpacked" / "tasks")}


def offline_task_install(task: Path, dest: Path) -> Installed:
    """What a task of the .vsix does on first use (azure-pipelines/ci-oras-task.js): a venv holding the task's
    bundled wheels, installed with --no-index and --require-hashes against its lock, then the ci-oras wheel with
    --no-deps; no package index is reachable (none configured, and the one pip would try refuses)."""
    env = user_env(dest / "home", extra={"PIP_INDEX_URL": CLOSED_INDEX})
    venv = dest / "venv"
    pip = [*bare_venv(venv, env), "install", "--quiet", "--no-compile", "--no-index", "--find-links",
           str(task / "wheels")]
    run([*pip, "--require-hashes", "-r", str(task / "runtime.lock")], env=env)
    (wheel,) = task.glob("ci_oras-*.whl")
    run([*pip, "--no-deps", str(wheel)], env=env)
    return Installed(f"{task.name} of the .vsix", venv)


class Installs:
    """The session's installs, each made once for both workers (see the module docstring)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.root = shared_dir(tmp_path_factory)

    def _venv(self, name: str, install: Callable[[Path], Installed]) -> Installed:
        def make(dest: Path) -> dict[str, Any]:
            installed = install(dest)
            return {"how": installed.how, "venv": str(installed.venv)}

        made = once(self.root / name, make)
        return Installed(made["how"], Path(made["venv"]))

    def wheel(self) -> Path:
        return Path(once(self.root / "wheel", build_wheel)["wheel"])

    def by_pip(self) -> Installed:
        return self._venv("pip", lambda dest: pip_install(self.wheel(), dest))

    def by_action(self) -> Installed:
        return self._venv("action", action_install)

    def by_gitlab(self, step: str) -> Installed:
        """The install of gitlab/``step``.yml: ``push`` installs runtime-core.lock, ``verify`` runtime.lock."""
        return self._venv(f"gitlab-{step}", lambda dest: gitlab_install(self.wheel(), dest, step))

    def vsix(self) -> dict[str, Any]:
        return once(self.root / "vsix", lambda dest: build_vsix(self.wheel(), dest))

    def from_vsix(self, task: str) -> Installed:
        """The install of the .vsix task ``task`` (``CiOrasPushV0``)."""
        return self._venv(f"vsix-{task}", lambda dest: offline_task_install(Path(self.vsix()["tasks"]) / task, dest))
