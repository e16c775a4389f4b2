"""What users install, run the way they get it: never the development venv.

ci-oras is installed four ways, each once per session into a clean venv (:mod:`harness.installs`): ``pip install``
of the wheel (dependencies from the package index), ``actions/install.sh`` on a runner-like machine, the install
lines of the GitLab templates, and a .vsix task's bundled wheels offline. Each install then runs a release's
supply-chain steps from a PATH holding no other ci-oras: push, attach-sbom, sign, verify ``--signed-by``, verify
of a Sigstore bundle (sigstore-python and pydantic from the install), promote into a real docker-registry and
discover there. A dependency missing from an install (as cryptography was from
every one of them) fails here, whatever the development venv holds.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from harness.installs import (REPO_ROOT, SIGNING_TASKS, SIGSTORE_TASKS, Installed, Installs, base_python,
                             gitlab_install, user_env)
from harness.notary_pki import make_pki
from harness.registry import RunningRegistry
from harness.sigstore_instance import SigstoreInstance
from samples.make_samples import cyclonedx_json

from ci_oras import catalog
from ci_oras.cli.commands import COMMANDS
from ci_oras.wrappers import generate

NOTARY = "application/vnd.cncf.notary.signature"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PROVENANCE = "https://slsa.dev/provenance/v1"
CYCLONEDX = "application/vnd.cyclonedx+json"

#: Install way -> (the install running the non-signing steps, the install running sign and verify).
WAYS: dict[str, Callable[[Installs], tuple[Installed, Installed]]] = {
    "pip": lambda installs: (installs.by_pip(),) * 2,
    "github-action": lambda installs: (installs.by_action(),) * 2,
    # each GitLab template carries its step's lock: push's leaves out cryptography and sigstore
    "gitlab-template": lambda installs: (installs.by_gitlab("push"), installs.by_gitlab("verify")),
    # each Azure task carries its own wheels: only sign and verify carry cryptography's
    "azure-vsix": lambda installs: (installs.from_vsix("CiOrasPushV0"), installs.from_vsix(SIGSTORE_TASKS[0])),
}


def _ci_oras(installed: Installed, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = user_env(home, bin_dirs=(installed.bin_dir,))
    return subprocess.run([str(installed.exe), *args, "--emit", "none"], cwd=home, env=env, capture_output=True,
                          text=True, timeout=180, check=False)


def _ok(done: subprocess.CompletedProcess[str], code: int = 0) -> dict[str, Any]:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return dict(json.loads(done.stdout)) if done.stdout.strip().startswith("{") else {}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_the_release_steps_run_as_installed(way: str, installs: Installs, registry_plain: RunningRegistry,
                                            sigstore_instances: tuple[SigstoreInstance, SigstoreInstance],
                                            tmp_path: Path) -> None:
    steps, signing = WAYS[way](installs)
    home = tmp_path
    (home / "app.txt").write_text("release candidate\n")
    (home / "sbom.cdx.json").write_bytes(cyclonedx_json())
    pki = make_pki("ec256")
    (home / "key.pem").write_bytes(pki.key_pem())
    (home / "chain.pem").write_bytes(pki.chain_pem)
    (home / "root.pem").write_bytes(pki.root_pem)
    layout = f"oci:{home / 'layout'}:v1"

    for installed, modules in ((steps, "httpx, typer"),
                               (signing, "cryptography, cffi, httpx, typer, sigstore, pydantic_core")):
        # the packages are the venv's own, not a system copy (the GitLab template's venv sees the system's)
        probe = f"import {modules}; print(*(m.__file__ for m in ({modules},)))"
        where = subprocess.run([str(installed.python), "-I", "-c", probe], capture_output=True, text=True,
                               check=True, env=user_env(home))
        assert all(path.startswith(str(installed.venv)) for path in where.stdout.split()), where.stdout

    pushed = _ok(_ci_oras(steps, home, "push", layout, "app.txt", "--output", "json"))
    sbom = _ok(_ci_oras(steps, home, "attach-sbom", layout, "sbom.cdx.json", "--output", "json"))
    signed = _ok(_ci_oras(signing, home, "sign", layout, "--key", "key.pem", "--cert", "chain.pem",
                          "--output", "json"))
    assert signed["subject"]["digest"] == pushed["digest"], signed
    verified = _ok(_ci_oras(signing, home, "verify", layout, "-r", "sbom", "-r", "signature", "--signed-by",
                            "root.pem", "--output", "json"))
    assert verified["ok"] is True, verified
    # a keyless provenance attestation, verified offline by the installed sigstore-python
    local = sigstore_instances[0]
    (home / "provenance.sigstore.json").write_bytes(
        local.dsse_bundle(local.statement(pushed["digest"], PROVENANCE)))
    _ok(_ci_oras(signing, home, "attach", layout, f"provenance.sigstore.json:{SIGSTORE_BUNDLE}", "--artifact-type",
                 SIGSTORE_BUNDLE, "-a", f"dev.sigstore.bundle.predicateType={PROVENANCE}", "--output", "json"))
    attested = _ok(_ci_oras(signing, home, "verify", layout, "-r", f"attestation:{PROVENANCE}", "--github-repo",
                            "acme/shop", "--trusted-root", str(local.trusted_root), "--output", "json"))
    assert attested["ok"] is True and attested["signatures"][0]["result"] == "verified", attested

    destination = f"{registry_plain.host}/install/{way}-{uuid.uuid4().hex[:8]}:v1"
    _ok(_ci_oras(steps, home, "promote", layout, destination, "--output", "json"))
    found = _ok(_ci_oras(steps, home, "discover", destination, "--output", "json"))
    assert found["digest"] == pushed["digest"]
    kinds = {referrer["artifactType"]: referrer["digest"] for referrer in found["referrers"]}
    assert kinds.get(CYCLONEDX) == sbom["digest"] and kinds.get(NOTARY) == signed["digest"], found

    # A release of what was promoted: the release file's YAML reader and the plan come from the installed wheels.
    target = f"{registry_plain.host}/install/{way}-{uuid.uuid4().hex[:8]}-prod"
    (home / "release.yaml").write_text(f"release: 1.10\nrequire: [sbom, signature]\nimages:\n"
                                       f"  - {{source: '{destination}', destination: '{target}', tags: [v1, stable]}}\n")
    planned = _ok(_ci_oras(steps, home, "release", "plan", "release.yaml", "-o", "plan.json", "--output", "json"))
    assert planned["release"] == "1.10" and planned["ok"] is True, planned
    _ok(_ci_oras(steps, home, "release", "copy", "plan.json", "--shard", "1", "--output", "json"))
    committed = _ok(_ci_oras(steps, home, "release", "commit", "plan.json", "--output", "json"))
    assert committed["tagsWritten"] == 2, committed


def test_the_template_install_gives_the_venv_a_pip_only_where_the_image_has_none(installs: Installs,
                                                                               tmp_path: Path) -> None:
    """The GitLab and Azure YAML templates install with the image's pip (``--python``) into a venv without one;
    an image whose Python has no pip gets one from ensurepip, and the install still works."""
    with_pip = installs.by_gitlab("push")
    assert not (with_pip.venv / "bin" / "pip").exists()
    image = tmp_path / "image"
    subprocess.run([str(base_python()), "-m", "venv", "--without-pip", str(image)], check=True)
    assert subprocess.run([str(image / "bin" / "python3"), "-m", "pip", "--version"], capture_output=True,
                          check=False).returncode != 0
    installed = gitlab_install(installs.wheel(), tmp_path / "job", "push", bin_dirs=(image / "bin",))
    assert (installed.venv / "bin" / "pip").exists()
    version = subprocess.run([str(installed.exe), "--version"], capture_output=True, text=True, check=True,
                             env=user_env(tmp_path))
    assert version.stdout.startswith("ci-oras ")


def test_every_module_imports_in_a_venv_holding_only_the_locks_packages(installs: Installs,
                                                                        tmp_path: Path) -> None:
    """The venv of actions/install.sh holds requirements/runtime.lock's packages and ci-oras (--no-deps), nothing
    else: every ci_oras module imports there, so none needs a package the lock lacks."""
    installed = installs.by_action()
    env = user_env(tmp_path)
    frozen = subprocess.run([sys.executable, "-m", "pip", "--python", str(installed.python), "freeze", "--all",
                             "--exclude", "pip", "--exclude", "setuptools"], capture_output=True, text=True,
                            check=True, env=env)
    names = {line.split("==")[0].split(" @ ")[0].lower().replace("_", "-") for line in frozen.stdout.split()}
    assert "cryptography" in names and "ci-oras" in names, frozen.stdout
    assert not names & {"jinja2", "pytest", "hypothesis", "mypy"}, names
    script = (
        "import importlib, pkgutil, ci_oras\n"
        "failed = []\n"
        "for module in pkgutil.walk_packages(ci_oras.__path__, 'ci_oras.'):\n"
        "    if module.name.endswith('.__main__'):\n"
        "        continue  # runs the CLI\n"
        "    try:\n"
        "        importlib.import_module(module.name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{module.name}: {exc!r}')\n"
        "print(len(list(pkgutil.walk_packages(ci_oras.__path__, 'ci_oras.'))))\n"
        "raise SystemExit('\\n'.join(failed) if failed else 0)\n"
    )
    # -I: no PYTHONPATH, no current directory on sys.path, no user site: the venv alone
    done = subprocess.run([str(installed.python), "-I", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert int(done.stdout.strip()) > 50, done.stdout


def test_the_vsix_tasks_without_cryptography_are_exactly_those_whose_step_never_imports_it(
        installs: Installs) -> None:
    """Only the signing tasks carry cryptography's and sigstore's wheels, and the other tasks' locks leave out
    only what cryptography and sigstore alone need."""
    tasks = Path(installs.vsix()["tasks"])
    for task in sorted(tasks.iterdir()):
        wheels = {wheel.name.split("-")[0].lower() for wheel in (task / "wheels").glob("*.whl")}
        lock = (task / "runtime.lock").read_text()
        signing_only = {"cryptography", "cffi", "pycparser"}
        sigstore_only = {"sigstore", "pydantic_core", "rfc3161_client", "tuf", "email_validator"}
        if task.name in SIGSTORE_TASKS:
            assert signing_only | sigstore_only <= wheels and "sigstore==" in lock, task.name
        else:
            assert not wheels & sigstore_only and "sigstore==" not in lock, (task.name, wheels)
        if task.name in SIGNING_TASKS:
            assert signing_only <= wheels and "cryptography==" in lock, task.name
        else:
            assert not wheels & signing_only and "cryptography==" not in lock, (task.name, wheels)
        assert "httpx==" in lock and "typer==" in lock and "rich==" in lock, task.name


def _module_file(name: str) -> Path | None:
    path = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _third_party_reached(start: list[str], lock: ModuleType, trees: dict[str, ast.Module] | None = None) -> set[str]:
    """The top-level third-party modules the ``ci_oras`` modules ``start`` can import, directly or not;
    ``trees`` replaces the parsed source of some modules (a command module without its other commands)."""
    seen: set[str] = set()
    third: set[str] = set()
    pending = list(start)
    while pending:
        name = pending.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        tree = (trees or {}).get(name) or ast.parse(path.read_text(encoding="utf-8"))
        for imported in lock.imported_modules(tree):
            parts = imported.split(".")
            if parts[0] == "ci_oras":
                pending += [".".join(parts[:end]) for end in range(2, len(parts) + 1)]
            elif parts[0] not in sys.stdlib_module_names:
                third.add(parts[0])
    return third


def _one_command(module: str, function: str) -> ast.Module:
    """``module``'s source without the other ``@command`` functions it holds (a group's module, ``release``,
    registers plan, copy and commit): what running ``function``'s command can import."""
    path = _module_file(module)
    assert path is not None
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def another_command(node: ast.stmt) -> bool:
        return isinstance(node, ast.FunctionDef) and node.name != function and any(
            isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "command"
            for d in node.decorator_list)

    tree.body = [node for node in tree.body if not another_command(node)]
    return tree


def test_only_the_vsix_tasks_carrying_cryptography_can_import_it(lock: ModuleType) -> None:
    """package.sh gives cryptography's and sigstore's wheels to SIGNING_TASKS only: every other task's command,
    with the CLI around it, reaches no import of either (lazy ones included), and those tasks' commands reach
    cryptography. Each step's ``lock`` (what its GitLab and Azure YAML templates install) is the smallest
    variant that leaves out nothing its command reaches."""
    script = (REPO_ROOT / "azure-pipelines" / "package.sh").read_text(encoding="utf-8")
    listed = re.search(r"^SIGNING_TASKS=\(([^)]*)\)", script, re.MULTILINE)
    assert listed and tuple(listed.group(1).split()) == SIGNING_TASKS
    listed = re.search(r"^SIGSTORE_TASKS=\(([^)]*)\)", script, re.MULTILINE)
    assert listed and tuple(listed.group(1).split()) == SIGSTORE_TASKS
    for step in catalog.STEPS:
        module = f"ci_oras.cli.commands.{COMMANDS[step.command[0]]}"
        trees = {module: _one_command(module, "_".join(step.command))} if len(step.command) > 1 else {}
        reached = _third_party_reached(["ci_oras.cli", "ci_oras.cli.commands", module], lock, trees)
        task = f"{generate.azure_task_name(step)}V0"
        assert ("cryptography" in reached) == (task in SIGNING_TASKS), (step.name, sorted(reached))
        assert ("sigstore" in reached) == (task in SIGSTORE_TASKS), (step.name, sorted(reached))
        # the GitLab and Azure YAML templates install the step's lock: the smallest covering what it reaches
        fitting = [name for name, left_out in lock.VARIANTS.items() if not reached & set(left_out)]
        expected = max(fitting, key=lambda name: len(lock.VARIANTS[name]), default="runtime.lock")
        assert step.lock == expected, (step.name, step.lock, sorted(reached))
