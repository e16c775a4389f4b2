"""The ``ci-oras`` command line: parse flags, open targets, call one step, report the result.

``app`` (shared options, ``runtime()``, ``report()``) and ``commands`` (one module per step) are described in
docs/architecture.md. Errors are mapped to exit codes in one place, :func:`main`.
"""

from __future__ import annotations

import sys

from ci_oras.cli import commands as _commands  # noqa: F401  (registers every command on the app)
from ci_oras.cli.app import app as _app
from ci_oras.cli.app import exit_with
from ci_oras.errors import CiOrasError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: every ci-oras error becomes its exit code and a one-line message (``exit_with``).

    Commands with ``--emit`` handle their errors themselves, with their emitter; this catches the rest. The
    command-line parser itself reports usage errors (exit 2) in its standalone mode.
    """
    try:
        _app(args=argv)
    except CiOrasError as exc:
        exit_with(exc, None)
    except BrokenPipeError:
        sys.exit(0)
