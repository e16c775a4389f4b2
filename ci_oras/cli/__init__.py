"""The ``ci-oras`` command line: parse flags, open targets, call one step, report the result.

``app`` (shared options, ``runtime()``, ``report()``) and ``commands`` (one module per step) are described in
docs/architecture.md. Errors are mapped to exit codes in one place, :func:`main`.
"""

from __future__ import annotations

import sys

from ci_oras.cli import commands as _commands  # noqa: F401  (registers every command on the app)
from ci_oras.cli.app import app as _app
from ci_oras.errors import CiOrasError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: one handler maps every ci-oras error to its exit code and a one-line message.

    The command-line parser itself reports usage errors (exit 2) in its standalone mode.
    """
    from ci_oras.emit.text import error

    try:
        _app(args=argv)
    except CiOrasError as exc:
        error(str(exc))
        if "ci_oras.emit.channel" in sys.modules:  # a platform emitter may be active (--emit)
            from ci_oras.emit.channel import report_error

            report_error(str(exc))
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
