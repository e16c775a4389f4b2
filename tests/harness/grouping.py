"""Which tests share a pytest-xdist worker (``--dist loadgroup``), decided from the test's file alone.

pytest-xdist 3.8 tells its controller a test's ``xdist_group`` by appending ``@group`` to the node id on the
worker, through a field pytest 9.2 no longer builds node ids from: under that pair the suffix never arrives,
and every grouped test is spread on its own, silently (pytest-xdist issue 1386). The groups here depend only
on the file, which the controller reads from the node id itself, so the scheduler :func:`make_scheduler` makes
(the root conftest's ``pytest_xdist_make_scheduler``) groups whatever the marks did. The marks stay, for
reading a test report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]
INTEGRATION_DIR = TESTS_DIR / "integration"

#: Tests that run tools in or next to the checkout itself (gitlab-ci-local, act, the demo, npm's trees) or
#: replay shared cassettes: under pytest-xdist (``--dist loadgroup``) they all run on one worker, one after
#: another, as they did before the suite ran in parallel. Everything else keeps its state in tmp_path and its
#: registries on ports of its own, so it can share the machine.
SERIAL_GROUP = "checkout"
_SERIAL_PATHS = (TESTS_DIR / "wrappers", INTEGRATION_DIR / "test_demo.py",
                 INTEGRATION_DIR / "test_request_counts.py")
#: Under tests/wrappers/ but touching nothing of the checkout (mermaid-cli renders into temporary directories):
#: free to run beside the serial group, which is the longest chain of the suite.
_NOT_SERIAL = (TESTS_DIR / "wrappers" / "test_mermaid.py",)
#: Modules whose module-scoped fixtures are costly (the auth matrix seeds several registries, the dependency
#: floor installs a venv, the others build their graphs with CLI runs or hundreds of pushes): kept on one
#: worker, so that happens once rather than once per worker.
_WHOLE_MODULES = tuple(INTEGRATION_DIR / name for name in (
    "test_auth_matrix.py", "test_dependency_floor.py", "test_promote.py", "test_referrers_registry.py",
    "test_verify.py", "test_discover_walk.py"))


def group_of(path: Path) -> str | None:
    """The group of the tests in the file ``path`` (absolute), or None for a test free to go anywhere."""
    if path not in _NOT_SERIAL and any(path == serial or serial in path.parents for serial in _SERIAL_PATHS):
        return SERIAL_GROUP
    if path in _WHOLE_MODULES or path in _NOT_SERIAL:
        return path.stem
    return None


def make_scheduler(config: Any, log: Any) -> Any:
    """pytest-xdist's load-group scheduling, with each node id's group taken from its file (:func:`group_of`).

    As with pytest-xdist's own, a group is one unit of work for one worker, and the units with the most tests
    go out first (``--loadscope-reorder``, the default): the long serial group starts at once, not last.
    """
    from xdist.scheduler import LoadGroupScheduling

    root = Path(str(config.rootpath))

    class FileGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            group = group_of((root / nodeid.split("::", 1)[0]).resolve())
            return f"group:{group}" if group else str(super()._split_scope(nodeid))

    return FileGroupScheduling(config, log)
