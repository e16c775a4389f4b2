"""Fixtures of the wrapper tests; the helpers live in :mod:`wrapper_tools`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# ``import wrapper_tools`` whatever pytest's import mode (as tests/conftest.py does for ``harness``)
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from harness.proxy import RegistryProxy
from harness.registry import RunningRegistry
from wrapper_tools import ActRunner, Guarded, make_act_runner


@pytest.fixture
def act(tmp_path: Path) -> ActRunner:
    """``act(workflow, env={...}, path=None)`` runs ``tests/wrappers/gha/<workflow>`` with act in host mode.

    The runner gets a private HOME (act keeps its work tree there), ``OUT`` (a directory the workflow records
    outputs in) plus ``env`` through ``--env``, and the PATH of this test run with this interpreter's scripts
    first, so the actions find this checkout's ci-oras and skip installing it; pass ``path`` to change that.
    """
    return make_act_runner(tmp_path)


@pytest.fixture
def guarded_pair(registry_htpasswd: RunningRegistry,
                 registry_factory: Callable[..., RunningRegistry]) -> Iterator[tuple[Guarded, Guarded]]:
    """Two Basic-auth registries with different accounts, each behind its own recording proxy (two hosts).

    The first is the session's shared one; the second is started for the test with another account.
    """
    other = registry_factory("htpasswd", username="second-user", password="second-Pa55-only-for-b")
    with RegistryProxy(registry_htpasswd) as first_proxy, RegistryProxy(other) as second_proxy:
        yield Guarded(registry_htpasswd, first_proxy), Guarded(other, second_proxy)
