"""The layer rules of docs/architecture.md, checked over the import graph of ``ci_oras/``.

Every ``import`` and ``from … import`` is read with ``ast``, including those inside functions (the CLI imports
lazily, so most of its dependencies are there) and under ``TYPE_CHECKING``. The layer rules hold for all of
them. The cycle check counts every import that runs, at load time or later inside a function: a lazy import
hides a cycle from the interpreter but not from a reader (two modules that need each other are one module).
Imports for type annotations only (under ``TYPE_CHECKING``) are left out of it.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ci_oras"


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a ci_oras module, or the top-level name of anything else (``httpx``, ``os``)
    line: int
    at_load: bool  # module level and outside ``if TYPE_CHECKING:``
    typing_only: bool = False  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str:
    """``ci_oras.x.y`` as a module when it is one, else the module that defines ``y``; others by top name."""
    if not name.startswith("ci_oras"):
        return name.split(".")[0]
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports_of(module: str, path: Path) -> list[Import]:
    found: list[Import] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST, at_load: bool, typing_only: bool = False) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(module, _resolve(alias.name), node.lineno, at_load, typing_only)
                         for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.append(Import(module, _resolve(f"{base}.{alias.name}"), node.lineno, at_load, typing_only))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.iter_child_nodes(node):
                visit(child, False, typing_only)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False, True)
            for child in node.orelse:
                visit(child, at_load, typing_only)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child, at_load, typing_only)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)
    return [i for i in found if i.target != module]


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports_of(module, path)]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _in(module: str, *layers: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def _violations(importers: tuple[str, ...], allowed: object) -> list[str]:
    assert callable(allowed)
    return [str(i) for i in IMPORTS if _in(i.importer, *importers) and not allowed(i)]


def test_the_graph_is_read() -> None:
    """Guards the checks below against passing over an empty or misread graph."""
    assert {"ci_oras.cli.app", "ci_oras.oci.platform", "ci_oras.graph.copy", "ci_oras.steps.attach"} <= set(MODULES)
    targets = {(i.importer, i.target, i.at_load) for i in IMPORTS}
    assert ("ci_oras.cli.commands.push", "ci_oras.cli.app", True) in targets
    assert ("ci_oras.cli.commands.push", "ci_oras.steps.push", False) in targets  # inside the command
    assert ("ci_oras.store.registry", "httpx", False) in targets  # lazily, inside the methods that send


def test_oci_is_pure_data() -> None:
    """``oci/`` is the standard library, other ``oci`` modules and the error tree: no I/O, no other layer."""
    assert _violations(("ci_oras.oci",), lambda i: i.target in STDLIB or _in(i.target, "ci_oras.oci", "ci_oras.errors")) == []


def test_graph_speaks_only_to_store_protocols() -> None:
    """Graph algorithms run on any store: no httpx, no concrete store, no registry client."""
    concrete = ("httpx", "ci_oras.registry", "ci_oras.store.registry", "ci_oras.store.layout", "ci_oras.store.memory",
                "ci_oras.runtime", "ci_oras.cli", "ci_oras.emit", "ci_oras.steps")
    assert _violations(("ci_oras.graph",), lambda i: not _in(i.target, *concrete)) == []


def test_only_the_registry_layer_imports_httpx() -> None:
    """``runtime`` names the transport a caller may hand in, for annotations only."""
    assert [str(i) for i in IMPORTS if i.target in ("httpx", "httpcore")
            and not _in(i.importer, "ci_oras.registry", "ci_oras.store.registry")
            and not (i.importer == "ci_oras.runtime" and i.typing_only)] == []


def test_steps_import_neither_the_command_line_nor_each_other() -> None:
    """Steps return results; printing them is ``emit``'s and ``cli``'s. Shared step code lives in
    ``steps.common``, so no step depends on another step's module."""

    def allowed(i: Import) -> bool:
        if _in(i.target, "ci_oras.cli", "ci_oras.emit"):
            return False
        if _in(i.target, "ci_oras.steps"):
            return i.target in ("ci_oras.steps", "ci_oras.steps.common") or i.importer == "ci_oras.steps.common"
        return True

    assert _violations(("ci_oras.steps",), allowed) == []


def test_commands_import_only_the_app_their_step_and_lower_layers() -> None:
    """A command module never imports another command (shared flags and helpers are in ``cli.app``)."""
    assert [str(i) for i in IMPORTS if _in(i.importer, "ci_oras.cli.commands") and i.importer != "ci_oras.cli.commands"
            and _in(i.target, "ci_oras.cli.commands")] == []


@pytest.mark.parametrize("lower", ["ci_oras.oci", "ci_oras.graph", "ci_oras.store", "ci_oras.registry",
                                   "ci_oras.steps", "ci_oras.emit"])
def test_lower_layers_never_import_the_command_line(lower: str) -> None:
    assert _violations((lower,), lambda i: not _in(i.target, "ci_oras.cli")) == []


def test_no_import_cycles() -> None:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for i in IMPORTS:
        if not i.typing_only and i.target in MODULES:
            edges[i.importer].add(i.target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            walk(module)
    assert cycles == []


def test_help_and_version_start_without_the_heavy_layers() -> None:
    """``--help`` lists every command, yet loads no step, store, registry client or httpx (start-up time)."""
    import subprocess

    probe = ("import sys\nfrom ci_oras.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    shown: dict[str, str] = {}
    for flag in ("--help", "--version"):
        done = subprocess.run([sys.executable, "-c", probe, flag], capture_output=True, text=True, timeout=60)
        loaded = set(done.stderr.split())
        if flag == "--help":  # --version alone is answered before the parser is built
            assert "ci_oras.cli.commands.verify" in loaded and "typer" in loaded
        heavy = sorted(m for m in loaded if m == "httpx" or _in(m, "ci_oras.steps", "ci_oras.store",
                                                                "ci_oras.registry", "ci_oras.graph"))
        assert heavy == [], flag
        shown[flag] = done.stdout
    commands = ["push", "attach", "attach-sbom", "attach-signature", "discover", "pull", "manifest", "tags",
                "delete", "login", "logout", "promote", "verify"]
    assert [c for c in commands if f" {c} " not in shown["--help"]] == []
    assert shown["--version"].startswith("ci-oras ")
