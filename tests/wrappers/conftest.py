"""Fixtures of the wrapper tests; the helpers live in :mod:`wrapper_tools`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# ``import wrapper_tools`` whatever pytest's import mode (as tests/conftest.py does for ``harness``)
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from wrapper_tools import ActRunner, make_act_runner


@pytest.fixture
def act(tmp_path: Path) -> ActRunner:
    """``act(workflow, env={...}, path=None)`` runs ``tests/wrappers/gha/<workflow>`` with act in host mode.

    The runner gets a private HOME (act keeps its work tree there), ``OUT`` (a directory the workflow records
    outputs in) plus ``env`` through ``--env``, and the PATH of this test run with this interpreter's scripts
    first, so the actions find this checkout's ci-oras and skip installing it; pass ``path`` to change that.
    """
    return make_act_runner(tmp_path)
