"""Platform side channels (``--emit``): step outputs, a job summary, error and warning annotations, masks.

Independent of ``--output``: stdout keeps carrying only data (the JSON document, manifest bytes, tags, a graph),
whatever the platform. Decisions shared by every platform:

- Platform log commands (GitHub ``::error::``/``::add-mask::``, Azure ``##vso[…]``) go to **stderr**, next to
  the human text, under ``--output text`` and ``--output json`` alike. Both runners read them from either
  stream (actions/runner gives stdout and stderr each their own command parser; the Azure agent feeds both
  into one; act, host mode, merges them), and stdout never holds anything but data: ``ci-oras manifest fetch
  REF > m.json`` or ``-O json | jq`` stay intact inside a pipeline.
- A password given by ``--password``/``--password-stdin`` or ``CI_ORAS_PASSWORD`` is masked (GitHub
  ``::add-mask::``, Azure ``task.setsecret``) before the command does anything else, and redacted (``***``)
  from every output, summary and annotation, as a second line of defence: documents never contain it.
- A result is emitted by the command that has it (``verify`` emits ``ok=false`` before it exits 1); the error
  handler in ``cli.main`` adds the platform's error annotation, and a short failure summary when no result
  was emitted.

Only the platform that is chosen is imported (``github``, ``gitlab``, ``azure``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from ci_oras.errors import UsageError

PLATFORMS = ("github", "gitlab", "azure")
#: Shorter secrets are masked but not redacted: they would match ordinary text (digests, references).
MIN_REDACTED_LENGTH = 4
REDACTED = "***"

_active: Emitter | None = None


def detect_platform(env: Mapping[str, str]) -> str | None:
    """``auto``: GitHub Actions, then GitLab CI, then Azure Pipelines, from the variables each one sets."""
    if env.get("GITHUB_ACTIONS", "").lower() == "true":
        return "github"
    if env.get("GITLAB_CI", "").lower() == "true":
        return "gitlab"
    if env.get("TF_BUILD", "").lower() == "true":
        return "azure"
    return None


def open_emitter(choice: str, *, step: str, emit_file: str | None = None,
                 env: Mapping[str, str] | None = None, stream: TextIO | None = None) -> Emitter | None:
    """The emitter for ``--emit choice`` (``auto``, ``none`` or a platform), made the active one."""
    environ = os.environ if env is None else env
    platform = detect_platform(environ) if choice == "auto" else None if choice == "none" else choice
    emitter: Emitter | None = None
    if platform == "github":
        from ci_oras.emit.github import GitHubEmitter

        emitter = GitHubEmitter(step, environ, emit_file=emit_file, stream=stream)
    elif platform == "gitlab":
        from ci_oras.emit.gitlab import GitLabEmitter

        emitter = GitLabEmitter(step, environ, emit_file=emit_file, stream=stream)
    elif platform == "azure":
        from ci_oras.emit.azure import AzureEmitter

        emitter = AzureEmitter(step, environ, emit_file=emit_file, stream=stream)
    elif platform is not None:
        raise UsageError(f"unknown --emit {choice!r}", hint="use auto, github, gitlab, azure or none")
    activate(emitter)
    return emitter


def activate(emitter: Emitter | None) -> None:
    global _active
    _active = emitter


def active() -> Emitter | None:
    return _active


def report_error(message: str) -> None:
    """For the CLI's one error handler: the active platform's error annotation (and failure summary)."""
    if _active is not None:
        _active.error(message)


def report_warning(message: str) -> None:
    if _active is not None:
        _active.warning(message)


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

    def result(self, result: Any) -> None:
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
