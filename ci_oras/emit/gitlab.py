"""GitLab CI: a dotenv file for ``artifacts:reports:dotenv`` and a markdown summary file next to it.

The dotenv file (``--emit-file``, else ``$CI_ORAS_DOTENV``, else ``ci-oras.env`` in the working directory)
holds ``CI_ORAS_<OUTPUT>`` variables (upper case, ``-`` -> ``_``; the prefix comes from
``$CI_ORAS_DOTENV_PREFIX``). It is written for GitLab's own dotenv parser, not for a shell:

- every line is ``KEY=VALUE``: GitLab rejects blank lines, comments and multi-line values, and strips the
  blanks around keys and values (line breaks in a value become spaces; JSON values never have any);
- ``$`` is written ``$$``: GitLab expands ``$VAR`` in dotenv values, ``$$`` is its literal dollar;
- a later ci-oras step in the same job replaces its own keys and keeps every other line, in place;
- the file stays below GitLab's 5 KiB report limit: ``result``, then ``graph``, are left out (with a
  warning, and an older value of that key removed) when they would not fit.

The summary is appended to ``ci-oras-summary.md`` in the dotenv file's directory (publish it with
``artifacts:paths``; GitLab has no job summary of its own). GitLab has no log commands: errors are the
``Error:`` line on stderr and the exit code.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from ci_oras.emit.base import Emitter, append_text
from ci_oras.errors import UsageError

DEFAULT_DOTENV = "ci-oras.env"
SUMMARY_FILE = "ci-oras-summary.md"
DEFAULT_PREFIX = "CI_ORAS_"
#: GitLab's default ``dotenv_size`` instance limit; a report must be smaller than this many bytes.
SIZE_LIMIT = 5120
#: Outputs that may be left out, in this order, to stay below the limit.
DROPPABLE = ("result", "graph")
_PREFIX = re.compile(r"[A-Za-z0-9_]*")


class GitLabEmitter(Emitter):
    platform = "gitlab"

    def __init__(self, step: str, env: Mapping[str, str], *, emit_file: str | None = None,
                 stream: TextIO | None = None) -> None:
        super().__init__(step, env, emit_file=emit_file, stream=stream)
        self.prefix = env.get("CI_ORAS_DOTENV_PREFIX", DEFAULT_PREFIX)
        if not _PREFIX.fullmatch(self.prefix):
            raise UsageError(f"CI_ORAS_DOTENV_PREFIX={self.prefix!r} is not a valid variable name prefix",
                             hint="use letters, digits and underscores, e.g. CI_ORAS_ or BUILD_")
        self.dotenv = Path(emit_file or env.get("CI_ORAS_DOTENV") or DEFAULT_DOTENV)

    def key(self, output: str) -> str:
        return self.prefix + output.upper().replace("-", "_")

    def write_outputs(self, outputs: Mapping[str, str]) -> None:
        variables = {self.key(name): dotenv_value(value) for name, value in outputs.items()}
        droppable = [self.key(name) for name in DROPPABLE if name in outputs]
        try:
            dropped = merge_dotenv(self.dotenv, variables, droppable)
        except OSError as exc:
            raise UsageError(f"cannot write the dotenv file {self.dotenv}: {exc.strerror or exc}",
                             hint="check --emit-file / CI_ORAS_DOTENV and the directory's permissions") from exc
        if dropped:
            self.notice(f"{', '.join(dropped)} left out of {self.dotenv}: GitLab rejects dotenv reports of "
                        f"{SIZE_LIMIT} bytes or more (use --output json > file and artifacts:paths for the "
                        f"whole document)")

    def write_summary(self, markdown: str) -> None:
        append_text(self.dotenv.parent / SUMMARY_FILE, markdown, "job summary")

    def write_file(self, name: str, text: str) -> Path:
        """A file for the job's ``artifacts:paths`` (a generated child pipeline), beside the dotenv file,
        replaced whole."""
        path = self.dotenv.parent / name
        try:
            _replace(path, text)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}",
                             hint="check --emit-file / CI_ORAS_DOTENV and the directory's permissions") from exc
        return path


def dotenv_value(value: str) -> str:
    """One line, literal for GitLab: line breaks become spaces, ``$`` becomes ``$$``."""
    return " ".join(value.splitlines()).replace("$", "$$").strip()


def merge_dotenv(path: Path, variables: Mapping[str, str], droppable: Sequence[str] = (),
                 limit: int = SIZE_LIMIT) -> list[str]:
    """Set ``variables`` in the dotenv file at ``path``, keeping its other lines; return the keys left out.

    Blank lines are dropped (GitLab rejects them), a key of ours that appears twice is written once, where it
    first was. Keys in ``droppable`` are left out, in order, while the file would reach ``limit`` bytes.
    """
    try:
        existing = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    lines = [line.rstrip("\r") for line in existing.split("\n")]
    lines = [line for line in lines if line.strip()]
    wanted = dict(variables)
    dropped: list[str] = []
    text = _render(lines, wanted, dropped)
    for key in droppable:
        if len(text.encode("utf-8")) < limit:
            break
        if key in wanted:
            del wanted[key]
            dropped.append(key)
            text = _render(lines, wanted, dropped)
    _replace(path, text)
    return dropped


def _render(lines: Sequence[str], wanted: Mapping[str, str], removed: Sequence[str]) -> str:
    out: list[str] = []
    written: set[str] = set()
    for line in lines:
        key = line.split("=", 1)[0].strip() if "=" in line else None
        if key is not None and key in wanted:
            if key not in written:
                out.append(f"{key}={wanted[key]}")
                written.add(key)
        elif key is None or key not in removed:
            out.append(line)
    out += [f"{key}={value}" for key, value in wanted.items() if key not in written]
    return "".join(line + "\n" for line in out)


def _replace(path: Path, text: str) -> None:
    """Write atomically: a job killed mid-write leaves the old file, never half of one."""
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644  # what a plain open() would give under the usual umask; mkstemp's is 0600
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
