"""``--output json``: exactly one JSON document on stdout, and nothing else there.

A step that fails prints an error document instead of its result (``error_document``), so a pipeline that
parses stdout always gets JSON, and learns the failure's exit code and kind from it.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ci_oras.errors import CiOrasError

def write_document(document: dict[str, Any], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(document, indent=2, sort_keys=False))
    out.write("\n")
    out.flush()


def error_document(step: str | None, error: CiOrasError) -> dict[str, Any]:
    """The ``ci-oras/error/v1`` document (``ci_oras/schemas/error.json``) of a step that failed."""
    return {
        "schema": "ci-oras/error/v1",
        "step": step,
        "ok": False,
        "error": {"exitCode": error.exit_code, "kind": error.kind, "message": error.message, "hint": error.hint},
    }
