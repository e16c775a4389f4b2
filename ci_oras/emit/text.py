"""Short human results on stderr (stdout stays free for data: manifests, tags, JSON)."""

from __future__ import annotations

import sys
from typing import TextIO


def say(message: str, stream: TextIO | None = None) -> None:
    print(message, file=stream or sys.stderr)


def warn(message: str, stream: TextIO | None = None) -> None:
    print(f"WARNING: {message}", file=stream or sys.stderr)


def error(message: str, stream: TextIO | None = None) -> None:
    print(f"Error: {message}", file=stream or sys.stderr)
