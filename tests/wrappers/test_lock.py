"""requirements/runtime.lock: the hash-pinned runtime dependencies every wrapper installs from.

Checked the way ``make check-lock`` checks it (requirements/lock.py, against the package index the tests
install from): it pins pyproject.toml's runtime dependencies within their ranges and is complete for every
supported Python version; a lock missing a dependency, or pinning one outside its range, is reported.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from wrapper_tools import REPO_ROOT


@pytest.fixture(scope="module")
def lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock", REPO_ROOT / "requirements" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lock"] = module
    spec.loader.exec_module(module)
    return module


def test_the_lock_matches_pyproject_and_is_complete(lock: ModuleType) -> None:
    assert lock.check() == []


def test_the_lock_pins_only_pure_python_wheels_and_no_generator_dependency(lock: ModuleType) -> None:
    names = {entry.name for entry, _ in lock.entries(lock.LOCK.read_text())}
    assert {"typer", "httpx"} <= names
    assert not names & {"jinja2", "markupsafe", "pydantic", "pydantic-core"}, names


def test_a_missing_pin_and_a_wrong_hash_are_reported(lock: ModuleType, tmp_path: Path) -> None:
    lines = lock.LOCK.read_text().replace("\\\n", "").splitlines()
    broken = tmp_path / "runtime.lock"
    broken.write_text("\n".join(line for line in lines if not line.startswith(("h11==", "typer=="))) + "\n")
    problems = lock.check(broken)
    assert any("httpcore needs h11" in problem and "lacks" in problem for problem in problems), problems
    assert any("pyproject.toml needs typer" in problem for problem in problems), problems

    digest = next(line for line in lines if line.startswith("httpx==")).split("sha256:")[1]
    broken.write_text("\n".join(lines).replace(digest, "0" * 64) + "\n")
    assert any("pip refuses" in problem and "httpx" in problem for problem in lock.check(broken))
