"""Short human results on stderr (stdout stays free for data: manifests, tags, JSON)."""

from __future__ import annotations

import sys
from typing import TextIO


def say(message: str, stream: TextIO | None = None) -> None:
    print(message, file=stream or sys.stderr)


def warn(message: str, stream: TextIO | None = None) -> None:
    """Also a warning annotation on the CI platform, when ``--emit`` made one active."""
    print(f"WARNING: {message}", file=stream or sys.stderr)
    if "ci_oras.emit.channel" in sys.modules:
        from ci_oras.emit.channel import report_warning

        report_warning(message)


def error(message: str, stream: TextIO | None = None) -> None:
    print(f"Error: {message}", file=stream or sys.stderr)
