"""Makes a ci-oras step raise, to test what a crash does: put this directory on ``PYTHONPATH``.

``CI_ORAS_TEST_CRASH=MODULE:FUNCTION:EXCEPTION`` (e.g. ``ci_oras.steps.verify:verify:AttributeError``) replaces
that function with one raising that builtin exception, in any Python process started with this directory on
its path: the development venv, a wheel installed by a wrapper, a job run by act or gitlab-ci-local. The
commands import their step functions when they run, so the replacement is the one they call. Without the
variable this module does nothing.
"""

from __future__ import annotations

import builtins
import importlib
import os

_SPEC = os.environ.get("CI_ORAS_TEST_CRASH", "")
if _SPEC:
    _module_name, _function, _exception = _SPEC.split(":")
    _raised = getattr(builtins, _exception)

    def _crash(*args: object, **kwargs: object) -> None:
        raise _raised("'list' object has no attribute 'get' (injected by tests/harness/crash)")

    setattr(importlib.import_module(_module_name), _function, _crash)
