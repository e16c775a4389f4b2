"""JSON Schemas of the documents ``--output json`` prints, one per step, shipped with the package."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

STEPS = ("push", "pull", "manifest", "tags", "delete", "login", "logout", "attach", "attach-sbom",
         "attach-signature", "sign", "discover", "verify", "promote", "release-plan", "release-copy",
         "release-commit")
#: Schemas of files the user writes (not step documents).
INPUTS = ("release-file",)


def load_schema(step: str) -> dict[str, Any]:
    text = resources.files(__name__).joinpath(f"{step}.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
