"""The ``ci-oras`` command line: parse flags, open targets, call one step, report the result.

``app`` (shared options, ``runtime()``, ``report()``) and ``commands`` (one module per step) are described in
docs/architecture.md. Errors are mapped to exit codes in one place, :func:`main`. Nothing is imported here at
load time: every CI step is a short process, and ``main`` imports only what the command line asks for
(docs/architecture.md, "Start-up").
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: every ci-oras error becomes its exit code and a one-line message (``exit_with``).

    Commands with ``--emit`` handle their errors themselves, with their emitter; this catches the rest. The
    command-line parser itself reports usage errors (exit 2) in its standalone mode. Any other exception is a
    bug and exits 70 (``InternalError``); ^C exits 130 and a closed stdout 141. Only a finished step exits 0,
    and only a failed gate 1.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    # httpx imports its own command-line client whenever click, rich and pygments import (typer brings the
    # last two; click comes with many tools): 30-40 ms of a network command's start-up. This process never
    # runs it; marked absent, httpx falls back to its stub. A process that imported httpx already keeps it.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from ci_oras.errors import CiOrasError

    try:
        if args == ["--version"]:  # what the eager --version option prints, without building the parser
            from ci_oras import __version__

            print(f"ci-oras {__version__}")
            return
        from ci_oras.cli.commands import load

        app = load(args[0] if args and not args[0].startswith("-") else None)
        if _renders_help(args):
            _load_help_renderer()
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


#: typer's help renderer imports these for features this CLI leaves off: markdown help (``rich_markup_mode``
#: is "rich") and rich tracebacks (``pretty_exceptions_enable=False``). Together they are about 50 ms of
#: imports (markdown-it, pygments, attrs), a third of ``--help``.
_UNUSED_BY_HELP = (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback"))


def _renders_help(args: list[str]) -> bool:
    """Whether typer will print a help page: ``-h``/``--help`` before any ``--``, or a group named alone."""
    options = args[:args.index("--")] if "--" in args else args
    return not args or args == ["manifest"] or "--help" in options or "-h" in options


def _load_help_renderer() -> None:
    """Import ``typer.rich_utils`` with stand-ins for the modules in ``_UNUSED_BY_HELP``.

    A stand-in holds only the one name typer takes from it (``_deferred``), so a path that does use it still
    works. The stand-ins leave ``sys.modules`` as soon as typer has its names, so any later import gets the
    real modules; a module imported already is used as it is. The output is the same either way
    (tests/unit/test_startup.py compares them).
    """
    if "typer.rich_utils" in sys.modules:
        return
    import types

    stand_ins = {}
    for name, attribute in _UNUSED_BY_HELP:
        if name not in sys.modules:
            stand_in = types.ModuleType(name, "Imported when first used.")
            setattr(stand_in, attribute, _deferred(name, attribute))
            stand_ins[name] = stand_in
    sys.modules.update(stand_ins)
    try:
        import typer.rich_utils  # noqa: F401
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def _deferred(module: str, attribute: str) -> type:
    """A class standing in for ``module.attribute``: making one makes the real one (typer also uses the name
    in annotations, evaluated when its module loads, so the stand-in must be a class)."""

    class Deferred:
        def __new__(cls, *args: object, **kwargs: object) -> Any:
            import importlib

            return getattr(importlib.import_module(module), attribute)(*args, **kwargs)

    Deferred.__name__ = Deferred.__qualname__ = attribute
    return Deferred
