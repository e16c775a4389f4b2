"""Fixtures of the wrapper tests; the helpers live in :mod:`wrapper_tools`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# ``import wrapper_tools`` whatever pytest's import mode (as tests/conftest.py does for ``harness``)
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from harness.installs import Installs
from harness.proxy import RegistryProxy
from harness.registry import RunningRegistry
from wrapper_tools import REPO_ROOT, ActRunner, Guarded, make_act_runner, missing, use_installed

AZURE = REPO_ROOT / "azure-pipelines"


@pytest.fixture(scope="session")
def installs(tmp_path_factory: pytest.TempPathFactory) -> Installs:
    """The session's installs of ci-oras (:mod:`harness.installs`), each made once and shared by both workers."""
    return Installs(tmp_path_factory)


@pytest.fixture(scope="session", autouse=True)
def installed_ci_oras(installs: Installs) -> None:
    """Every wrapper run uses the ci-oras actions/install.sh installed (``wrapper_tools.installed``), never the
    development venv: what a pipeline runs is what the lock and the package install, nothing more."""
    use_installed(installs.by_action())


@pytest.fixture(scope="module")
def node() -> str:
    """Node 20 with the Azure task library and tfx (``npm ci --prefix azure-pipelines``), for the Azure tasks."""
    path = shutil.which("node")
    if path is None:
        missing("node was not found (install Node 20: apt-get install -y nodejs)")
    if not (AZURE / "node_modules/azure-pipelines-task-lib").is_dir() or not (
            AZURE / "node_modules/tfx-cli").is_dir():
        missing("azure-pipelines/node_modules is missing (run: npm ci --prefix azure-pipelines)")
    return path


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tasks as stage.sh stages them for the .vsix (each with the shared handler): where they run from."""
    dest = tmp_path_factory.mktemp("azure-stage")
    subprocess.run(["bash", str(AZURE / "stage.sh"), str(dest)], check=True, capture_output=True, timeout=60)
    return dest / "tasks"


@pytest.fixture
def act(tmp_path: Path) -> ActRunner:
    """``act(workflow, env={...}, path=None)`` runs ``tests/wrappers/gha/<workflow>`` with act in host mode.

    See :func:`wrapper_tools.make_act_runner`: no development venv on its PATH, and the session's install of
    ci-oras first on it, which the actions reuse.
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
