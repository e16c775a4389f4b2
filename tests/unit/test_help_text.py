"""``--help`` shows each paragraph as sentences the terminal wraps, not as the source's hard-wrapped lines."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest

from ci_oras.cli.app import help_text
from ci_oras.cli.commands import COMMANDS, load


def test_hard_wrapped_lines_join_and_lists_keep_their_breaks() -> None:
    doc = """First line.

    A sentence wrapped
    at the source's width.

    Aliases:
    a = one;
    b = two."""
    assert help_text(doc) == "First line.\n\nA sentence wrapped at the source's width.\n\nAliases:\na = one;\nb = two."


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"manifest"}) + ["manifest fetch"])
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
    """At 80 columns no sentence is broken where the docstring's source line ended."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb", "NO_COLOR": "1"}
    shown = subprocess.run([sys.executable, "-m", "ci_oras", "verify", "--help"], capture_output=True, text=True,
                           env=env, check=True, timeout=60).stdout
    text = shown.split("╭")[0]
    lines = [line.strip() for line in text.splitlines()]
    for line, after in zip(lines, lines[1:]):
        if line and after and not line.endswith((":", ";", ".")):
            # a line the renderer wrapped is (nearly) full: it broke because the next word did not fit
            assert len(line) + 1 + len(after.split()[0]) > 78, (line, after)
