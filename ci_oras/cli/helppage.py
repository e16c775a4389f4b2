"""How a ``--help`` page is laid out: click's plain layout, as typer prints it with ``rich_markup_mode=None``.

Three things differ from click's own formatter, so that the pages read as sentences at any width (at most 78
columns, as click has it): a word is never broken at its hyphens (``--min-rate-window`` stays whole); a
paragraph that is a list keeps one line per item (``app.help_text`` keeps a line break only after a line ending
with ``:`` or ``;``), each item wrapped under its own hanging indent; and the list of commands shows each
command's whole first paragraph. The base is the formatter a typer context makes (``Context.formatter_class``,
click's documented way to change a layout), reached through typer's public ``Context``: from 0.26 typer carries
its own click, whose module is not a public name.
Why the pages are not typer's rich panels: docs/architecture.md, "Start-up".
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

#: How far a list's items are indented under the line introducing them, and their wrapped lines under them.
ITEM_INDENT, HANGING_INDENT = 2, 4


def wrap(text: str, width: int, indent: str = "", hanging: str | None = None) -> list[str]:
    """``text`` as lines of at most ``width`` columns, breaking only at spaces (an over-long word stays whole)."""
    lines = textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent if hanging is None else hanging,
                          break_on_hyphens=False, break_long_words=False)
    return lines or [indent]


if TYPE_CHECKING:  # the same class, named for the type checker
    from typer._click.formatting import HelpFormatter as _ClickHelpFormatter
else:
    _ClickHelpFormatter = typer.Context.formatter_class


class HelpFormatter(_ClickHelpFormatter):
    def write_text(self, text: str) -> None:
        """The paragraphs of ``text``, each wrapped; a list's items each on a line of their own."""
        indent = " " * self.current_indent
        item, hanging = indent + " " * ITEM_INDENT, indent + " " * HANGING_INDENT
        paragraphs = []
        for paragraph in text.split("\n\n"):
            first, *items = paragraph.split("\n")
            lines = wrap(first, self.width, indent)
            for each in items:
                lines += wrap(each, self.width, item, hanging)
            paragraphs.append("\n".join(lines))
        self.write("\n\n".join(paragraphs) + "\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        """click's two columns (options, commands), the second wrapped as ``write_text`` wraps."""
        rows = list(rows)
        first_column = min(max((len(first) for first, _ in rows), default=0), col_max) + col_spacing
        pad = " " * (self.current_indent + first_column)
        for first, second in rows:
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if len(first) <= first_column - col_spacing:
                self.write(" " * (first_column - len(first)))
            else:  # a long option name: its help starts on the next line
                self.write("\n" + pad)
            lines = wrap(second, max(self.width - first_column - 2, 10))
            self.write("".join(f"{pad if number else ''}{line}\n" for number, line in enumerate(lines)))


class HelpContext(typer.Context):
    formatter_class = HelpFormatter


class HelpCommand(TyperCommand):
    """A command whose help page is laid out by ``HelpFormatter``."""

    context_class = HelpContext

    def get_short_help_str(self, limit: int = 45) -> str:
        """The help's first paragraph, whole, for the list of commands (click would cut it at ``limit``)."""
        if self.short_help or not self.help:
            return super().get_short_help_str(limit)
        return inspect.cleandoc(self.help).split("\n\n")[0]


class HelpGroup(TyperGroup):
    """A group (``ci-oras``, ``ci-oras manifest``) whose help page is laid out by ``HelpFormatter``."""

    context_class = HelpContext
