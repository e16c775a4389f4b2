"""Shared pytest fixtures: real registries from ``tests/harness``.

Only wiring lives here; the logic is in :mod:`harness` so it can be read and
tested on its own.
"""

from __future__ import annotations

import functools
import sys
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Make ``import harness`` work whatever pytest's import mode (prepend adds this
# directory already; importlib does not) and whether or not tests/ is a package.
_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

from harness import RegistryBinaryNotFoundError, RegistryFactory, RunningRegistry, start_registry
from harness.cli import CliResult, clean_env, compile_sources, invoke_cli
from harness.grouping import group_of, make_scheduler
from harness.prerequisites import missing
from harness.registry import INSTALL_HINT
from harness.shapes import summary as shapes_summary

if TYPE_CHECKING:
    import httpx

_INTEGRATION_DIR = _TESTS_DIR / "integration"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs a real docker-registry process (tests/integration/)"
    )
    if not hasattr(config, "workerinput"):  # once per session: the controller, before any xdist worker starts
        compile_sources(_TESTS_DIR.parent)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    """Collect with bytecode writing on: pytest keeps each test module, its asserts rewritten, in
    ``__pycache__`` and reads it back even where writing is off (``PYTHONDONTWRITEBYTECODE``), which otherwise
    costs every session about 5 s of CPU per xdist worker to rewrite the same modules again."""
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = saved


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    shapes_summary(terminalreporter)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration/ so ``-m 'not integration'`` works; mark each test's group
    (:func:`harness.grouping.group_of`)."""
    for item in items:
        path = Path(str(item.path)).resolve()
        if _INTEGRATION_DIR in path.parents:
            item.add_marker(pytest.mark.integration)
        group = group_of(path)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` by :mod:`harness.grouping`, which sees the groups pytest-xdist's marks may not."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return make_scheduler(config, log)


def _start(workdir: Path, mode: str, **opts: Any) -> RunningRegistry:
    """Start a registry; a missing binary fails in CI and skips elsewhere.

    CI must never go green by silently skipping the integration suite.
    """
    try:
        return start_registry(workdir, mode, **opts)
    except RegistryBinaryNotFoundError as exc:
        message = str(exc)  # already carries the install hint
        if INSTALL_HINT not in message:
            message += f" (install: {INSTALL_HINT})"
        missing(message)


def _session_registry(tmp_path_factory: pytest.TempPathFactory, mode: str) -> Iterator[RunningRegistry]:
    registry = _start(tmp_path_factory.mktemp(f"registry-{mode}"), mode)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry_plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """Plain-HTTP registry without auth, shared by the whole session."""
    yield from _session_registry(tmp_path_factory, "plain")


@pytest.fixture(scope="session")
def registry_htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """HTTP registry with Basic auth (``username``/``password`` on the handle)."""
    yield from _session_registry(tmp_path_factory, "htpasswd")


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """HTTP registry with token auth; ``.issuer`` records token requests.

    Shared: call ``registry_token.issuer.clear_requests()`` before asserting
    on recorded requests.
    """
    yield from _session_registry(tmp_path_factory, "token")


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """HTTPS registry signed by a private CA (``.ca_file``), no auth."""
    yield from _session_registry(tmp_path_factory, "tls")


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """``factory(mode, **opts)`` starts a private registry stopped after the test.

    For tests that need a non-default set-up (anonymous pull, an authorizer,
    ``extra_config``) or that would disturb the shared ones.
    """
    started: list[RunningRegistry] = []

    def factory(mode: str, **opts: Any) -> RunningRegistry:
        registry = _start(tmp_path_factory.mktemp(f"registry-{mode}"), mode, **opts)
        started.append(registry)
        return registry

    try:
        yield factory
    finally:
        for registry in reversed(started):
            registry.stop()


@pytest.fixture
def unique_repo() -> str:
    """A fresh repository name so tests never collide on shared registries."""
    return f"test/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., CliResult]:
    """``cli(*args)`` runs the real command's ``main()`` in this process, in ``tmp_path`` with a private HOME
    there (so no credentials of the machine take part): the modules using it test what the command does with
    what a registry or layout answers, where a subprocess adds only its start-up (some 0.2 s of CPU a run,
    three quarters of those modules' CPU). What the process boundary itself does (exit codes of a crash, start-up,
    signals, stdin, environment) is tested with ``harness.cli.run_cli`` in a real subprocess."""
    return functools.partial(invoke_cli, env=clean_env(tmp_path), cwd=tmp_path)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A plain HTTP client, to seed and inspect registries by raw HTTP (not through the code under test)."""
    import httpx

    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture
def open_target(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``open_target(reference, retries=None)`` opens a registry ``Target`` through ci-oras's runtime, with a
    private HOME in ``tmp_path`` (``retries``: the transport's, instead of the default); closed after the
    test."""
    from ci_oras.oci.reference import parse_reference
    from ci_oras.registry.transport import TransportOptions
    from ci_oras.runtime import LoginFlags, Runtime

    runtimes: list[Runtime] = []

    def opened(reference: str, retries: int | None = None) -> Any:
        options = TransportOptions() if retries is None else TransportOptions(retries=retries)
        runtimes.append(Runtime(options, LoginFlags(), clean_env(tmp_path)))
        return runtimes[-1].open(parse_reference(reference))

    try:
        yield opened
    finally:
        for runtime in runtimes:
            runtime.close()


@pytest.fixture
def fake_registry() -> Iterator[Any]:
    """``fake_registry(**switches)`` starts an in-process spec-faithful OCI registry (with the referrers API),
    stopped after the test. Switches: see :class:`harness.fake_registry.FakeRegistry`."""
    from harness.fake_registry import FakeRegistry

    started: list[FakeRegistry] = []

    def factory(**switches: Any) -> FakeRegistry:
        started.append(FakeRegistry(**switches))
        return started[-1]

    try:
        yield factory
    finally:
        for registry in reversed(started):
            registry.stop()


@pytest.fixture(scope="session")
def sigstore_instances(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """A local Sigstore instance (``harness.sigstore_instance``) whose trusted root the tests trust, and a
    second, untrusted one: well-formed bundles under keys the first root does not name. Minted once per worker,
    as a real deployment serves many bundles."""
    from harness.sigstore_instance import mint_instance

    root = tmp_path_factory.mktemp("sigstore")
    return mint_instance(root / "local"), mint_instance(root / "other", "other")
