"""The outputs each step hands to a CI platform: one table, the same names on GitHub, GitLab and Azure.

Every output is a function of the step's ``--output json`` document (never of flags or the environment), so
what a pipeline reads is exactly what ``--output json`` would have printed. Values are strings: numbers in
decimal, booleans ``true``/``false``, lists and objects as compact single-line JSON (ASCII only, so no value
ever contains a line break). Every step also sets ``result``, the whole document as compact JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Document = Mapping[str, Any]


@dataclass(frozen=True)
class Output:
    name: str
    description: str
    value: Callable[[Document], Any]


def _field(key: str) -> Callable[[Document], Any]:
    return lambda document: document.get(key)


def _sum(key: str) -> Callable[[Document], Any]:
    return lambda document: sum(int(count) for count in document[key].values())


_DIGEST = Output("digest", "Digest of the manifest", _field("digest"))
_REFERENCE = Output("reference", "Where the manifest is: REPO@DIGEST or REPO:TAG", _field("reference"))
_ARTIFACT_TYPE = Output("artifact-type", "The artifact type", _field("artifactType"))
_ATTACH = (
    Output("digest", "Digest of the referrer manifest", _field("digest")),
    Output("reference", "The referrer: REPO@DIGEST", _field("reference")),
    _ARTIFACT_TYPE,
    Output("subject", "Digest of the manifest it refers to", lambda document: document["subject"]["digest"]),
)
RESULT = Output("result", "The whole --output json document, as compact JSON", lambda document: dict(document))

#: Step (the ``<step>`` of ``"schema": "ci-oras/<step>/v1"``) -> its outputs, ``result`` excepted (every step has it).
OUTPUTS: dict[str, tuple[Output, ...]] = {
    "push": (_DIGEST, _REFERENCE, _ARTIFACT_TYPE),
    "attach": _ATTACH,
    "attach-sbom": _ATTACH,
    "attach-signature": _ATTACH,
    "sign": _ATTACH,
    "discover": (
        Output("digest", "Digest of the subject", _field("digest")),
        Output("count", "Referrers found at any depth", _field("count")),
        Output("graph", "The referrers graph as compact JSON (ORAS's nested shape)",
               lambda document: {k: v for k, v in document.items() if k not in ("schema", "count")}),
    ),
    "verify": (
        Output("ok", "true when every requirement holds, else false", _field("ok")),
        Output("missing", "Requirements not met, as a compact JSON list", _field("missing")),
    ),
    "promote": (
        Output("digest", "Digest of the promoted manifest", _field("digest")),
        Output("reference", "The destination", _field("reference")),
        Output("copied", "Manifests and blobs copied", _sum("copied")),
        Output("mounted", "Blobs mounted from the source repository", _field("mounted")),
        Output("skipped", "Manifests and blobs the destination already had", _sum("skipped")),
    ),
    "delete": (
        Output("deleted", "Digests deleted, as a compact JSON list",
               lambda document: [entry["digest"] for entry in document["deleted"]]),
    ),
    "pull": (_DIGEST, _REFERENCE),
    "manifest": (_DIGEST, _REFERENCE, _ARTIFACT_TYPE),
    "tags": (Output("tags", "The tags, as a compact JSON list", _field("tags")),),
    "login": (Output("registry", "The registry host", _field("registry")),),
    "logout": (Output("registry", "The registry host", _field("registry")),),
}

#: Steps whose results also go to the job summary; helpers (manifest, tags, login) only set outputs.
SUMMARY_STEPS = frozenset({"push", "pull", "attach", "attach-sbom", "attach-signature", "sign", "discover",
                           "verify", "promote", "delete"})


def output_names(step: str) -> tuple[str, ...]:
    """The names ``step`` sets, in order, ``result`` last (for the wrapper catalog and the docs)."""
    return tuple(output.name for output in OUTPUTS.get(step, ())) + (RESULT.name,)


def step_of(document: Document) -> str:
    """``push`` from ``"schema": "ci-oras/push/v1"``."""
    schema = str(document.get("schema", ""))
    parts = schema.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "ci-oras" else ""


def outputs_for(document: Document) -> dict[str, str]:
    """Name -> value, in table order, ``result`` last."""
    outputs = OUTPUTS.get(step_of(document), ()) + (RESULT,)
    return {output.name: format_value(output.value(document)) for output in outputs}


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return compact_json(value)


def compact_json(value: Any) -> str:
    """One line, ASCII only (``\\u2028`` and friends escaped too), keys in document order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)
