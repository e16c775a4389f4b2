"""Nothing in ``ci_oras`` changes another package: no assignment to an imported module's or class's attributes,
no ``setattr`` on one, no ``sys.modules`` entry written. A program that imports ``ci_oras`` as a library must not
inherit process-wide changes to httpx, httpcore, rich or anything else; gains are taken through public
extension points (docs/architecture.md, "The HTTP stack and its seam").

Read with ``ast`` over every module: an assignment target (or ``setattr``'s first argument) whose root name is
bound by an ``import`` of another package is a patch. Attributes of objects made at run time (a response's
``stream``, a request's ``extensions``) are values the program owns, not the package's.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ci_oras"
_MUTATORS = frozenset({"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"})


def _foreign_names(tree: ast.Module) -> set[str]:
    """Names bound by importing something that is not ci_oras (modules, classes, functions alike)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names
                         if not alias.name.startswith("ci_oras"))
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module != "__future__" \
                and not (node.module or "").startswith("ci_oras"):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _is_sys_modules(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "modules" and _root(node) == "sys"


def patches_in(source: str, where: str) -> list[str]:
    tree = ast.parse(source)
    foreign = _foreign_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("setattr", "delattr") and node.args \
                    and (_root(node.args[0]) in foreign or _is_sys_modules(node.args[0])):
                found.append(f"{where}:{node.lineno} {func.id} on {ast.unparse(node.args[0])}")
            if isinstance(func, ast.Attribute) and func.attr in _MUTATORS and _is_sys_modules(func.value):
                found.append(f"{where}:{node.lineno} sys.modules.{func.attr}")
        for target in targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                root = _root(target)
                if _is_sys_modules(target.value if isinstance(target, ast.Subscript) else target) or (
                        root in foreign and root != "self"):
                    found.append(f"{where}:{node.lineno} assigns {ast.unparse(target)}")
    return sorted(found, key=lambda line: int(line.split(" ", 1)[0].rsplit(":", 1)[1]))


def test_the_check_sees_the_patches_it_is_for() -> None:
    source = """
import sys
import httpx
from httpcore._sync import http11
from rich import console as rc

sys.modules["httpx._main"] = None
sys.modules.setdefault("httpx._main", None)
http11.HTTP11Connection.READ_NUM_BYTES = 1
setattr(httpx, "Client", object)
rc.Console.width = 3
del httpx.URL

def fine(response: httpx.Response) -> None:
    response.stream = None
    local = {}
    local["x"] = 1
"""
    assert [line.split(" ", 1)[1] for line in patches_in(source, "x")] == [
        "assigns sys.modules['httpx._main']",
        "sys.modules.setdefault",
        "assigns http11.HTTP11Connection.READ_NUM_BYTES",
        "setattr on httpx",
        "assigns rc.Console.width",
        "assigns httpx.URL",
    ]


def test_ci_oras_patches_no_other_package() -> None:
    found = [patch for path in sorted(PACKAGE.rglob("*.py"))
             for patch in patches_in(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))]
    assert found == []
