"""The layer table of docs/architecture.md ("Layers"), read from the page and checked over the import graph of
``ci_oras/``.

Each row of the table is an allow-list: a module may import what the row it belongs to names, and nothing
else. The rows are read from the page itself, so the page and the check cannot drift apart: changing what a
layer may import is changing the table. Every ``import`` and ``from … import`` is read with ``ast``,
including those inside functions (the CLI imports lazily, so most of its dependencies are there) and under
``TYPE_CHECKING``; a row can restrict a name to imports inside functions or to annotations only.

The cycle check counts every import that runs, at load time or later inside a function: a lazy import hides
a cycle from the interpreter but not from a reader (two modules that need each other are one module).
Imports for type annotations only (under ``TYPE_CHECKING``) are left out of it.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ci_oras"
DOC = PACKAGE.parent / "docs" / "architecture.md"


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
#: ``_typeshed`` is the standard library's typing-only stub package (never imported at run time).
STDLIB = set(sys.stdlib_module_names) | {"__future__", "_typeshed"}


def _in(module: str, *layers: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


# -- the table ---------------------------------------------------------------------------------------------------

#: What a name in the "May import" column allows: any import, one inside a function or under
#: ``TYPE_CHECKING`` (never at load), or one under ``TYPE_CHECKING`` only.
ANYWHERE, INSIDE_FUNCTIONS, ANNOTATIONS_ONLY = "anywhere", "inside functions", "annotations only"


@dataclass(frozen=True)
class Rule:
    """One row of the table: the modules it covers and what they may import."""

    layer: str  # the "Layer" cell as written
    covers: tuple[str, ...]  # ci_oras modules or packages
    internal: dict[str, str]  # ci_oras module or package → where it may be imported
    external: dict[str, str]  # top-level name of another distribution (or STDLIB) → where
    line: int

    def allows(self, imp: Import) -> bool:
        if imp.target.startswith("ci_oras"):
            where = [w for name, w in self.internal.items()
                     if imp.target == name or (name != "ci_oras" and imp.target.startswith(name + "."))]
        else:
            where = [w for name, w in self.external.items()
                     if imp.target == name or (name == "the standard library" and imp.target in STDLIB)]
        return any(_allowed_at(w, imp) for w in where)

    def allows_name(self, target: str) -> bool:
        """Whether ``target`` may be imported at all (anywhere, lazily or for annotations)."""
        return self.allows(Import(self.layer, target, 0, at_load=False, typing_only=True))

    def specificity(self, module: str) -> int:
        """How closely this row names ``module`` (the length of the matching name), -1 when it does not."""
        return max((len(c) for c in self.covers if module == c or (_is_package(c) and module.startswith(c + "."))),
                   default=-1)


def _allowed_at(where: str, imp: Import) -> bool:
    return where == ANYWHERE or (where == INSIDE_FUNCTIONS and not imp.at_load) or (
        where == ANNOTATIONS_ONLY and imp.typing_only)


def _is_package(module: str) -> bool:
    return any(other.startswith(module + ".") for other in MODULES)


def _layer_module(path: str) -> str:
    """``store/registry.py`` → ``ci_oras.store.registry``, ``oci/`` → ``ci_oras.oci``, ``__init__.py`` → ``ci_oras``."""
    parts = [part for part in path.removesuffix(".py").strip("/").split("/") if part != "__init__"]
    return ".".join(["ci_oras", *parts])


def _may_import(cell: str, line: int) -> tuple[dict[str, str], dict[str, str]]:
    """The "May import" cell: groups separated by ``;``, each optionally led by ``inside functions:`` or
    ``annotations only:``, of comma-separated names (see the paragraph above the table)."""
    internal: dict[str, str] = {}
    external: dict[str, str] = {}
    for group in cell.split(";"):
        where, _, names = group.strip().rpartition(":")
        where = where.strip() or ANYWHERE
        assert where in (ANYWHERE, INSIDE_FUNCTIONS, ANNOTATIONS_ONLY), f"docs line {line}: unknown {where!r}"
        for name in (part.strip() for part in names.split(",")):
            quoted = re.fullmatch(r"`([a-z_][a-z0-9_.]*)`", name)
            if quoted:
                module = "ci_oras" if quoted[1] == "ci_oras" else f"ci_oras.{quoted[1]}"
                assert module in MODULES or _is_package(module), f"docs line {line}: no module {name}"
                internal.setdefault(module, where)
            elif name == "the standard library":
                external.setdefault(name, where)
            else:
                assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), f"docs line {line}: cannot read {name!r}"
                assert importlib.util.find_spec(name) is not None, f"docs line {line}: {name} is not installed"
                external.setdefault(name, where)
    return internal, external


def _read_table() -> list[Rule]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    section = lines.index("## Layers")
    header = next(n for n in range(section, len(lines)) if lines[n].startswith("| Layer | May import |"))
    rules = []
    for number in range(header + 2, len(lines)):
        row = lines[number]
        if not row.startswith("|"):
            break
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert len(cells) == 3, f"docs line {number + 1}: a row is | Layer | May import | Why |"
        covers = tuple(_layer_module(path) for path in re.findall(r"`([^`]+)`", cells[0]))
        assert covers and all(c in MODULES or _is_package(c) for c in covers), f"docs line {number + 1}: {cells[0]}"
        internal, external = _may_import(cells[1], number + 1)
        rules.append(Rule(cells[0], covers, internal, external, number + 1))
    return rules


RULES = _read_table()


@functools.cache  # a module's row never changes, and each row's check asks it of every import
def _rule_of(module: str) -> Rule | None:
    candidates = [(rule.specificity(module), rule) for rule in RULES]
    best = max(candidates, key=lambda candidate: candidate[0])
    return best[1] if best[0] >= 0 else None


def _rule(layer: str) -> Rule:
    return next(rule for rule in RULES if rule.layer == layer)


# -- the checks --------------------------------------------------------------------------------------------------


def test_the_graph_is_read() -> None:
    """Guards the checks below against passing over an empty or misread graph."""
    assert {"ci_oras.cli.app", "ci_oras.oci.platform", "ci_oras.graph.copy", "ci_oras.steps.attach",
            "ci_oras.store.memory"} <= set(MODULES)
    targets = {(i.importer, i.target, i.at_load, i.typing_only) for i in IMPORTS}
    assert ("ci_oras.cli.commands.push", "ci_oras.cli.app", True, False) in targets
    assert ("ci_oras.cli.commands.push", "ci_oras.steps.push", False, False) in targets  # inside the command
    assert ("ci_oras.graph.signatures", "ci_oras.signing.policy", False, False) in targets  # inside a function
    assert ("ci_oras.graph.match", "ci_oras.signing.policy", False, True) in targets  # under TYPE_CHECKING


def test_the_table_is_read() -> None:
    """Guards the checks below against a misread table: the rows, and what a few of them say."""
    assert {"`oci/`", "`store/`", "`graph/`", "`steps/`", "`emit/`", "`cli/`", "`cli/commands/`"} <= {
        rule.layer for rule in RULES}
    registry = _rule("`registry/`, `store/registry.py`")
    assert registry.covers == ("ci_oras.registry", "ci_oras.store.registry")
    assert {"httpx", "httpcore", "the standard library"} <= set(registry.external)
    graph = _rule("`graph/`")
    assert graph.internal["ci_oras.signing"] == INSIDE_FUNCTIONS and graph.internal["ci_oras.graph"] == ANYWHERE
    assert _rule("`emit/`").internal["ci_oras.steps"] == ANNOTATIONS_ONLY
    assert _rule_of("ci_oras.store.registry") is registry and _rule_of("ci_oras.store.memory") is _rule("`store/`")
    assert _rule_of("ci_oras.steps.login") is _rule("`steps/login.py`")
    assert _rule_of("ci_oras") is _rule_of("ci_oras.__main__") is _rule("`__init__.py`, `__main__.py`")


def test_every_module_belongs_to_a_row() -> None:
    assert [module for module in MODULES if _rule_of(module) is None] == []


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.layer.replace("`", ""))
def test_each_layer_imports_only_what_its_row_allows(rule: Rule) -> None:
    """The allow-list: every import of a module the row covers is one the row names (where it names it)."""
    refused = [f"{imp} ({'for annotations' if imp.typing_only else 'at load' if imp.at_load else 'in a function'})"
               for imp in IMPORTS if _rule_of(imp.importer) is rule and not rule.allows(imp)]
    assert not refused, f"not allowed by the row of {rule.layer} (docs/architecture.md line {rule.line}):\n  " + \
        "\n  ".join(refused)


def test_the_table_keeps_the_design_rules() -> None:
    """What the table must never allow, whatever is added to it: only the registry layer speaks HTTP (runtime
    names an httpx transport in annotations only), graph
    speaks only to the store protocols, only the CLI imports the CLI (and typer), steps never import the
    emitters or each other, commands never import another command, ``oci`` stays pure data and the stores
    beside the registry's load no HTTP client."""
    def runs(rule: Rule, name: str) -> bool:  # imported to run, at load or inside a function
        return rule.allows(Import(rule.layer, name, 0, at_load=False))

    http = [rule.layer for rule in RULES if runs(rule, "httpx") or runs(rule, "httpcore")]
    assert http == ["`registry/`, `store/registry.py`"]
    # Naming the type of a transport a caller hands in is not speaking HTTP.
    assert [rule.layer for rule in RULES if rule.allows_name("httpx")] == ["`registry/`, `store/registry.py`",
                                                                        "`runtime.py`"]
    graph = _rule("`graph/`")
    concrete = ["ci_oras.registry", "ci_oras.runtime", "ci_oras.store.layout", "ci_oras.store.registry",
                "ci_oras.store.memory", "ci_oras.steps", "ci_oras.emit", "ci_oras.cli"]
    assert [target for target in concrete if graph.allows_name(target)] == []
    for rule in RULES:
        if rule.layer not in ("`cli/`", "`cli/commands/`", "`__init__.py`, `__main__.py`"):
            assert not rule.allows_name("ci_oras.cli"), rule.layer
            assert not rule.allows_name("typer"), rule.layer
    for step in ("`steps/`", "`steps/login.py`"):
        assert not _rule(step).allows_name("ci_oras.emit") and not _rule(step).allows_name("ci_oras.steps.push")
    assert not _rule("`cli/commands/`").allows_name("ci_oras.cli.commands.push")
    oci = _rule("`oci/`")
    assert set(oci.internal) == {"ci_oras.oci", "ci_oras.errors"} and set(oci.external) == {"the standard library"}
    store = _rule("`store/`")
    assert not store.allows_name("ci_oras.registry") and not store.allows_name("ci_oras.store.registry")


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
