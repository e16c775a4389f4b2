"""GitHub Actions: outputs to ``$GITHUB_OUTPUT``, the summary to ``$GITHUB_STEP_SUMMARY``, workflow commands.

Outputs are ``name=value`` lines, and ``name<<DELIMITER`` … ``DELIMITER`` for a value with a line break, with a
random delimiter checked not to occur in the value (as ``@actions/core`` writes them). Workflow commands
(``::add-mask::``, ``::error title=…::``, ``::warning title=…::``) go to stderr, escaped as the runner
unescapes them; see ``ci_oras.emit.channel`` for why stderr.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from ci_oras.emit.base import Emitter, append_text


class GitHubEmitter(Emitter):
    platform = "github"

    def mask(self, secret: str) -> None:
        # Each line too: the runner masks a multi-line secret only line by line.
        for part in dict.fromkeys([secret, *secret.splitlines()]):
            if part:
                self.command(f"::add-mask::{escape_data(part)}")

    def annotate(self, level: str, message: str) -> None:
        self.command(f"::{level} title={escape_property(f'ci-oras {self.step}')}::{escape_data(message)}")

    def write_outputs(self, outputs: Mapping[str, str]) -> None:
        path = self.env.get("GITHUB_OUTPUT")
        if not path:
            self.notice("--emit github: GITHUB_OUTPUT is not set, so no step outputs were written")
            return
        append_text(Path(path), format_outputs(outputs), "step outputs")

    def write_summary(self, markdown: str) -> None:
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if not path:
            self.notice("--emit github: GITHUB_STEP_SUMMARY is not set, so no job summary was written")
            return
        append_text(Path(path), markdown, "job summary")


def format_outputs(outputs: Mapping[str, str], new_delimiter: Callable[[], str] | None = None) -> str:
    """The text to append to ``$GITHUB_OUTPUT``."""
    make = new_delimiter or (lambda: f"ghadelimiter_{uuid.uuid4()}")
    lines: list[str] = []
    for name, value in outputs.items():
        if "\n" not in value and "\r" not in value:
            lines.append(f"{name}={value}")
            continue
        delimiter = make()
        while delimiter in value or delimiter in name:
            delimiter = make()
        lines += [f"{name}<<{delimiter}", value, delimiter]
    return "".join(line + "\n" for line in lines)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
