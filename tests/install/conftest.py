"""Fixtures of the install tier: ci-oras installed the ways users get it (:mod:`harness.installs`)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from harness.installs import REPO_ROOT, Installs


@pytest.fixture(scope="session")
def installs(tmp_path_factory: pytest.TempPathFactory) -> Installs:
    """The session's installs, each made once and shared by both workers."""
    return Installs(tmp_path_factory)


@pytest.fixture(scope="session")
def lock() -> ModuleType:
    """requirements/lock.py, which is a script, not a package module."""
    spec = importlib.util.spec_from_file_location("lock", REPO_ROOT / "requirements" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lock"] = module
    spec.loader.exec_module(module)
    return module
