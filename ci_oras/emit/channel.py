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
- A result is emitted by the command that has it (``verify`` emits ``ok=false`` before it exits 1); a command
  that fails adds the platform's error annotation, and a short failure summary when no result was emitted.
- The emitter is an object the command holds (``Options.emitter``) and passes on; nothing finds it through a
  module-level global.

Only the platform that is chosen is imported (``github``, ``gitlab``, ``azure``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

from ci_oras.errors import UsageError

if TYPE_CHECKING:
    from ci_oras.emit.base import Emitter

PLATFORMS = ("github", "gitlab", "azure")


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
    """The emitter for ``--emit choice`` (``auto``, ``none`` or a platform); None when there is none."""
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
    return emitter
