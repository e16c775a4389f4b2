"""The emitter interface every CI platform implements (``--emit``), and what all of them share.

``channel`` picks and opens one; ``github``, ``gitlab`` and ``azure`` subclass :class:`Emitter` here, so the
platform modules and the chooser never import each other. Why log commands go to stderr, and how secrets are
masked and redacted, is in ``ci_oras.emit.channel``'s docstring.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from ci_oras.errors import UsageError

#: Shorter secrets are masked but not redacted: they would match ordinary text (digests, references).
MIN_REDACTED_LENGTH = 4
REDACTED = "***"


class Documented(Protocol):
    """A step result: what it emits is derived from its ``--output json`` document."""

    def document(self) -> dict[str, Any]: ...


class Emitter:
    """What every platform shares; subclasses write outputs, summaries, annotations and masks their way."""

    platform = ""

    def __init__(self, step: str, env: Mapping[str, str], *, emit_file: str | None = None,
                 stream: TextIO | None = None) -> None:
        #: The command as typed after ``ci-oras`` (``push``, ``manifest fetch``), for titles and summaries.
        self.step = step
        self.env = env
        self.emit_file = emit_file
        self._stream = stream
        self.secrets: list[str] = []
        #: Set once a result went out: a failure after it (verify's exit 1) adds no failure summary.
        self.emitted = False

    # -- shared behaviour ------------------------------------------------------------------------------------

    @property
    def stream(self) -> TextIO:
        """Where log commands go: stderr (resolved late, so a replaced ``sys.stderr`` is honoured)."""
        return self._stream or sys.stderr

    def protect(self, *secrets: str | None) -> None:
        """Mask these secrets on the platform now, and redact them from everything emitted later."""
        for secret in secrets:
            if secret and secret not in self.secrets:
                self.secrets.append(secret)
                self.mask(secret)

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            for part in [secret, *secret.splitlines()]:
                if len(part) >= MIN_REDACTED_LENGTH:
                    text = text.replace(part, REDACTED)
        return text

    def result(self, result: Documented) -> None:
        """A step's result: its outputs, and for the main steps a job summary."""
        from ci_oras.emit.outputs import SUMMARY_STEPS, outputs_for, step_of

        document = result.document()
        outputs = {name: self.redact(value) for name, value in outputs_for(document).items()}
        self.emitted = True
        self.write_outputs(outputs)
        if step_of(document) in SUMMARY_STEPS:
            from ci_oras.emit.summary import result_summary

            self.write_summary(self.redact(result_summary(document, outputs, result)))

    def error(self, message: str) -> None:
        """Never raises: it runs while ci-oras is already failing."""
        from ci_oras.emit.outputs import SUMMARY_STEPS

        message = self.redact(message)
        self.annotate("error", message)
        if not self.emitted and self.step in SUMMARY_STEPS:
            from ci_oras.emit.summary import error_summary

            try:
                self.write_summary(self.redact(error_summary(self.step, message)))
            except (OSError, UsageError):
                pass

    def warning(self, message: str) -> None:
        self.annotate("warning", self.redact(message))

    def command(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def notice(self, message: str) -> None:
        """Something about the channel itself (a file not set): plain text on stderr, no annotation."""
        print(f"WARNING: {message}", file=sys.stderr)

    # -- per platform ----------------------------------------------------------------------------------------

    def mask(self, secret: str) -> None:
        """Ask the platform to hide ``secret`` in its logs (nothing where the platform has no such command)."""

    def annotate(self, level: str, message: str) -> None:
        """``level`` is ``error`` or ``warning``."""

    def write_outputs(self, outputs: Mapping[str, str]) -> None:
        raise NotImplementedError

    def write_summary(self, markdown: str) -> None:
        raise NotImplementedError


def append_text(path: Path, text: str, what: str) -> None:
    """Append UTF-8 text with ``\\n`` line ends (no newline translation on Windows)."""
    try:
        with open(path, "a", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write the {what} to {path}: {exc.strerror or exc}",
                         hint="check the path and its permissions") from exc
