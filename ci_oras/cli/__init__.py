"""The ``ci-oras`` command line: parse flags, open targets, call one step, report the result.

``app`` (shared options, ``runtime()``, ``report()``) and ``commands`` (one module per step) are described in
docs/architecture.md. Errors are mapped to exit codes in one place, :func:`main`. Nothing is imported here at
load time: every CI step is a short process, and ``main`` imports only what the command line asks for
(docs/architecture.md, "Start-up").
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: every ci-oras error becomes its exit code and a one-line message (``exit_with``).

    Commands with ``--emit`` handle their errors themselves, with their emitter; this catches the rest. The
    command-line parser itself reports usage errors (exit 2) in its standalone mode. Any other exception is a
    bug and exits 70 (``InternalError``); ^C exits 130 and a closed stdout 141. Only a finished step exits 0,
    and only a failed gate 1.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    from ci_oras.errors import CiOrasError

    try:
        if args == ["--version"]:  # what the eager --version option prints, without building the parser
            from ci_oras import __version__

            print(f"ci-oras {__version__}")
            return
        from ci_oras.cli.commands import load

        app = load(args[0] if args and not args[0].startswith("-") else None)
        app(args=args)
    except CiOrasError as exc:
        from ci_oras.cli.app import exit_with

        exit_with(exc, None)
    except BrokenPipeError:
        from ci_oras.cli.app import reader_gone

        reader_gone()
    except KeyboardInterrupt:
        from ci_oras.cli.app import interrupted

        interrupted(None)
    except Exception as exc:  # noqa: BLE001 - a crash outside a command body (the parser, a command's import)
        from ci_oras.cli.app import crashed, exit_with

        exit_with(crashed(exc, None), None)
