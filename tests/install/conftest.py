"""Fixtures of the install tier: ci-oras installed the ways users get it (:mod:`harness.installs`)."""

from __future__ import annotations

import pytest
from harness.installs import Installs


@pytest.fixture(scope="session")
def installs(tmp_path_factory: pytest.TempPathFactory) -> Installs:
    """The session's installs, each made once and shared by both workers."""
    return Installs(tmp_path_factory)
