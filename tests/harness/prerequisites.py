"""What a test needs from the machine and cannot bring itself (docker-registry, act, node, shellcheck ...).

One rule for all of them: a missing prerequisite fails the test when ``CI`` is set and skips it elsewhere,
with a message that says how to install it. On a laptop a missing tool is the developer's choice; in CI it
is a broken set-up, and CI must never go green by silently skipping what it was meant to run.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: Values of ``CI`` that mean "not in CI" (CI services set ``CI=true``; an empty or falsy value is a laptop).
_NOT_CI = ("", "0", "false", "no")


def in_ci() -> bool:
    """Whether this run is CI's: ``CI`` is set to anything but an empty or falsy value."""
    return os.environ.get("CI", "").strip().lower() not in _NOT_CI


def missing(message: str) -> NoReturn:
    """Something a test needs is not installed: fail with ``CI`` set, skip elsewhere (``message`` says how)."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
