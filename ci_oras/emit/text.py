"""Short human results on stderr (stdout stays free for data: manifests, tags, JSON)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ci_oras.emit.base import Emitter


def say(message: str, stream: TextIO | None = None) -> None:
    print(message, file=stream or sys.stderr)


def warn(message: str, stream: TextIO | None = None, *, emitter: Emitter | None = None) -> None:
    """Also a warning annotation on the CI platform, when the command has an emitter (``--emit``)."""
    print(f"WARNING: {message}", file=stream or sys.stderr)
    if emitter is not None:
        emitter.warning(message)


def error(message: str, stream: TextIO | None = None) -> None:
    print(f"Error: {message}", file=stream or sys.stderr)
