"""``--help`` shows each paragraph as sentences the terminal wraps, not as the source's hard-wrapped lines."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import pytest
import typer.main

from ci_oras.cli.app import help_text
from ci_oras.cli.commands import COMMANDS, load
from ci_oras.cli.helppage import HelpCommand, HelpFormatter, HelpGroup


def test_hard_wrapped_lines_join_and_lists_keep_their_breaks() -> None:
    doc = """First line.

    A sentence wrapped
    at the source's width.

    Aliases:
    a = one;
    b = two."""
    assert help_text(doc) == "First line.\n\nA sentence wrapped at the source's width.\n\nAliases:\na = one;\nb = two."


GROUPED = ["manifest fetch", "release plan", "release copy", "release commit"]


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"manifest", "release"}) + GROUPED)
def test_every_command_help_breaks_lines_only_after_a_list_marker(name: str) -> None:
    app = load(name.split()[0])
    infos = app.registered_commands + [c for g in app.registered_groups for c in g.typer_instance.registered_commands
                                       if g.typer_instance is not None]
    callback = next(i for i in infos if (i.name or i.callback.__name__.replace("_", "-")) == name.split()[-1])
    given = callback.help or inspect.cleandoc(callback.callback.__doc__ or "")
    for paragraph in given.split("\n\n")[1:]:
        lines = paragraph.splitlines()
        assert all(line.endswith((":", ";")) for line in lines[:-1]), (name, paragraph)


def test_verify_help_wraps_at_the_terminal_width() -> None:
    """At 80 columns no sentence is broken where the docstring's source line ended, and the page fits."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb", "NO_COLOR": "1"}
    shown = subprocess.run([sys.executable, "-m", "ci_oras", "verify", "--help"], capture_output=True, text=True,
                           env=env, check=True, timeout=60).stdout
    assert max(len(line) for line in shown.splitlines()) <= 78  # click's width: the terminal's less 2
    text = shown.split("\nArguments:\n")[0]  # the command's own help, before the options
    lines = [line.rstrip() for line in text.splitlines()]
    for line, after in zip(lines, lines[1:]):
        if line and after and not line.endswith((":", ";", ".")):
            # a line the renderer wrapped is (nearly) full: it broke because the next word did not fit
            assert len(line) + 1 + len(after.split()[0]) > 78, (line, after)
    # a list (verify's aliases) keeps one item a line, each under the line that introduces it
    assert "or an alias:\n    sbom = CycloneDX or SPDX," in text
    assert "\n    signature = Notary, cosign," in text


def _pages(width: int) -> dict[str, str]:
    """Every help page, rendered in this process ``width`` columns wide (the formatter's width; a terminal's
    is 2 more, and click caps the formatter's at 78)."""
    root = typer.main.get_command(load(None))
    assert isinstance(root, HelpGroup)
    pages = {}
    with root.make_context("ci-oras", [], terminal_width=width, resilient_parsing=True) as top:
        pages[""] = top.get_help()
        for name in COMMANDS:
            command = root.get_command(top, name)
            assert isinstance(command, (HelpCommand, HelpGroup)), name  # laid out by cli/helppage.py
            with command.make_context(name, [], parent=top, terminal_width=width, resilient_parsing=True) as ctx:
                pages[name] = ctx.get_help()
            if isinstance(command, HelpGroup):
                for sub in command.list_commands(ctx):
                    each = command.get_command(ctx, sub)
                    assert isinstance(each, HelpCommand), sub
                    with each.make_context(sub, [], parent=ctx, terminal_width=width,
                                           resilient_parsing=True) as inner:
                        pages[f"{name} {sub}"] = inner.get_help()
    return pages


@pytest.mark.parametrize("width", [50, 64, 78])
def test_every_page_is_laid_out_alike_and_breaks_no_word_at_a_hyphen(width: int) -> None:
    """An option name split at a line end (``--min-`` / ``rate-window``) would be copied wrong."""
    pages = _pages(width)
    assert set(pages) == {"", *COMMANDS, *GROUPED}
    for name, page in pages.items():
        assert page.startswith(f"Usage: ci-oras {name}".rstrip()), name
        # only a word longer than its column (a path, an option name) may stick out: it is never cut
        assert [line for line in page.splitlines() if len(line) > width and len(line.split()) > 1] == [], name
        broken = [line for line in page.splitlines() if re.search(r"\w-$", line)]
        assert broken == [], (name, broken)


def test_the_list_of_commands_shows_each_whole_first_paragraph() -> None:
    listing = _pages(80)[""].split("\nCommands:\n")[1]
    assert "..." not in listing
    assert " ".join(listing.split()).count("Remove stored credentials for a registry from the docker config.") == 1


def test_list_items_wrap_under_a_hanging_indent() -> None:
    formatter = HelpFormatter(width=40)
    formatter.write_text("Aliases:\na = one two three four five six seven eight;\nb = two.\n\nAfter.")
    assert formatter.getvalue() == ("Aliases:\n  a = one two three four five six seven\n    eight;\n  b = two.\n"
                                    "\nAfter.\n")
