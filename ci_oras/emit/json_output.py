"""``--output json``: exactly one JSON document on stdout, and nothing else there."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO


def write_document(document: dict[str, Any], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(document, indent=2, sort_keys=False))
    out.write("\n")
    out.flush()
