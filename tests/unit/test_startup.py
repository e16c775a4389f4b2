"""What a ``ci-oras`` process imports, read from ``python -X importtime`` in a real subprocess.

Every CI step is a short process, so start-up is mostly imports (docs/architecture.md, "Start-up"). These
tests pin what each kind of start may load, never how long it takes: a loaded machine cannot make them fail;
and that no start gets there by changing the import system (no ``sys.modules`` entry set, marked absent or
replaced, no import hook), which a program using ci_oras as a library would inherit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.registry import RunningRegistry

from ci_oras import __version__
from ci_oras.cli import commands

#: What no ci-oras start needs: typer's rich help panels (the pages are click's plain ones) and everything they
#: or httpx's own command-line client (``httpx._main``) would bring. ``import httpx`` loads that client when
#: click is installed (as here, beside the test tools), so a network command is held to "nothing of these
#: beyond what ``import httpx`` itself loads".
RENDERERS = ("typer.rich_utils", "rich", "markdown_it", "pygments", "attr", "pydantic", "click")
#: What no help page or --version needs: the network, TLS and every layer below the command line.
NETWORK = ("httpx", "httpcore", "ssl", "certifi", "ci_oras.steps", "ci_oras.graph", "ci_oras.store",
           "ci_oras.registry", "ci_oras.runtime")
#: What only judging a signature or a Sigstore bundle needs (signing and sigstore-python, with pydantic and tuf).
SIGNING = ("ci_oras.signing", "cryptography", "sigstore", "sigstore_models", "pydantic", "tuf", "rfc3161_client")


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[set[str], str, int]:
    """The modules a ``python -m ci_oras ARGS`` process imported, its stdout and its exit code."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ci_oras", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, "COLUMNS": "100", **(env or {})})
    modules = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:") and "cumulative" not in line}
    return modules, done.stdout, done.returncode


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def _command_modules(modules: set[str]) -> list[str]:
    return sorted(m.rpartition(".")[2] for m in modules if m.startswith("ci_oras.cli.commands."))


def test_version_is_answered_before_the_parser_is_built() -> None:
    modules, stdout, code = _run("--version")
    assert (code, stdout) == (0, f"ci-oras {__version__}\n")
    assert _loaded(modules, ("typer", "rich", "ci_oras.cli.app", "ci_oras.cli.commands") + NETWORK + SIGNING) == []


def test_command_help_loads_its_own_command_only() -> None:
    modules, stdout, code = _run("discover", "--help")
    assert code == 0 and "--include-children" in stdout
    assert _command_modules(modules) == ["discover"]
    assert _loaded(modules, RENDERERS + NETWORK + SIGNING) == []


def test_top_level_help_lists_every_command_without_unused_renderers() -> None:
    modules, stdout, code = _run("--help")
    assert code == 0
    assert _command_modules(modules) == sorted(commands.MODULES)
    assert [name for name in commands.COMMANDS if f" {name} " not in stdout] == []
    assert _loaded(modules, RENDERERS + NETWORK + SIGNING) == []


def test_a_usage_error_loads_no_renderer() -> None:
    modules, _, code = _run("discover", "--no-such-flag")
    assert code == 2
    assert _loaded(modules, RENDERERS + NETWORK + SIGNING) == []


#: Runs ``main(ARGS)`` as a library user would call it, and reports every moment ``sys.modules`` held what the
#: import system did not put there: a ``None`` (an import made to fail) or a module under another name (a
#: stand-in); and whether ``sys.meta_path``, ``sys.path_hooks`` or an already loaded module was replaced.
_PROBE = """
import json, sys, types
ALIASES = {"__main__", "os.path", "importlib._bootstrap", "importlib._bootstrap_external", "typing.io", "typing.re"}
seen = set()
def scan():
    for name, module in list(sys.modules.items()):
        if name in ALIASES:
            continue
        if not isinstance(module, types.ModuleType) or getattr(module.__spec__, "name", None) != name:
            seen.add(name)
def hook(event, args):
    if event == "import":
        scan()
hooks = (list(sys.meta_path), list(sys.path_hooks))
import ci_oras.cli
loaded = dict(sys.modules)
sys.addaudithook(hook)
code = 0
try:
    ci_oras.cli.main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code or 0
scan()
print(json.dumps({"code": code, "odd": sorted(seen),
                  "hooks": hooks == (list(sys.meta_path), list(sys.path_hooks)),
                  "replaced": sorted(n for n, m in loaded.items() if sys.modules.get(n) is not m)}))
"""


@pytest.mark.parametrize(("args", "code"), [
    (["--version"], 0), (["--help"], 0), (["discover", "--help"], 0), (["manifest"], 2), (["verify", "-h"], 0),
    (["discover", "--no-such-flag"], 2), (["discover", "REGISTRY/startup/none:v1", "-O", "json", "--emit", "none"], 3),
])
def test_main_leaves_the_import_system_as_it_found_it(args: list[str], code: int, request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    """A program importing ci_oras as a library keeps its own ``sys.modules``: no entry is made ``None`` or
    replaced by a stand-in, at any point of the run (checked at every import), whatever the command."""
    if "REGISTRY/startup/none:v1" in args:  # the whole run of a network command, to a registry and back
        registry: RunningRegistry = request.getfixturevalue("registry_plain")
        args = [arg.replace("REGISTRY", registry.host) for arg in args]
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"code": code, "odd": [], "hooks": True, "replaced": []}


def test_every_command_name_maps_to_the_module_that_registers_it() -> None:
    app = commands.load(None)
    registered = {(info.name or info.callback.__name__).replace("_", "-"): info.callback.__module__
                  for info in app.registered_commands if info.callback is not None}
    registered.update({group.name: f"ci_oras.cli.commands.{group.name}" for group in app.registered_groups
                       if group.name})
    assert {name: f"ci_oras.cli.commands.{module}" for name, module in commands.COMMANDS.items()} == registered


def test_commands_keep_the_help_order_whatever_was_loaded_first() -> None:
    """In one process (tests run commands in-process) a command loaded early must not move up the list."""
    probe = ("from ci_oras.cli import commands\n"
             "commands.load('verify')\ncommands.load('attach')\n"
             "infos = commands.load(None).registered_commands\n"
             "print(' '.join(i.callback.__module__.rpartition('.')[2] for i in infos))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    order = done.stdout.split()
    assert order == sorted(order, key=commands.MODULES.index)
    assert set(order) == set(commands.MODULES) - {"manifest", "release"}  # each registers on its own group


def test_a_network_command_loads_neither_renderers_nor_other_commands(registry_plain: RunningRegistry,
                                                                      tmp_path: Path) -> None:
    """``discover -O json`` on a real registry, for a tag that is not there: the whole run, error path too."""
    modules, _, code = _run("discover", f"{registry_plain.host}/startup/none:v1", "-O", "json", "--emit", "none",
                            env={"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}, cwd=tmp_path)
    assert code == 3  # not found: the command ran to the registry and back
    assert {"httpx", "ci_oras.steps.discover", "ci_oras.registry.transport"} <= modules
    assert _command_modules(modules) == ["discover"]
    assert _loaded(modules, ("ci_oras.emit.graph", "ci_oras.archive")) == []
    assert _loaded(modules - _imported_by("httpx"), RENDERERS) == []


def _imported_by(module: str) -> set[str]:
    """The modules ``import MODULE`` loads in this environment, in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, timeout=60, check=True)
    return {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and "cumulative" not in line}


def test_a_network_command_that_judges_no_bundle_loads_no_signing(tmp_path: Path) -> None:
    """A gate without a trust policy or a Sigstore identity, and discover, never load the signing layer,
    cryptography or sigstore-python: their start-up is what it was before bundles could be verified."""
    layout = tmp_path / "layout"
    (tmp_path / "a.txt").write_text("a\n")
    _, _, code = _run("push", f"oci:{layout}:v1", "a.txt", cwd=tmp_path)
    assert code == 0
    for args in (("verify", f"oci:{layout}:v1", "-r", "signature", "--emit", "none"),
                 ("discover", f"oci:{layout}:v1", "--emit", "none")):
        modules, _, _ = _run(*args, cwd=tmp_path)
        assert _loaded(modules, SIGNING) == [], args
