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


def _attach(what: str) -> tuple[Output, ...]:
    return (
        Output("digest", f"Digest of the {what} manifest", _field("digest")),
        Output("reference", f"The {what}: REPO@DIGEST", _field("reference")),
        Output("artifact-type", f"Artifact type of the {what}", _field("artifactType")),
        Output("subject", "Digest of the manifest it refers to", lambda document: document["subject"]["digest"]),
    )


_DIGEST = Output("digest", "Digest of the manifest", _field("digest"))
_REFERENCE = Output("reference", "Where the manifest is: REPO@DIGEST or REPO:TAG", _field("reference"))
_ARTIFACT_TYPE = Output("artifact-type", "Artifact type of the manifest", _field("artifactType"))
RESULT = Output("result", "The whole --output json document of the step, as compact JSON",
                lambda document: dict(document))

#: Step (the ``<step>`` of ``"schema": "ci-oras/<step>/v1"``) -> its outputs, ``result`` excepted (every step has
#: it). The wrapper catalog (:mod:`ci_oras.catalog`) reads its names and descriptions from here too, so what a
#: wrapper declares and what the emitters set cannot drift apart.
OUTPUTS: dict[str, tuple[Output, ...]] = {
    "push": (
        Output("digest", "Digest of the pushed manifest", _field("digest")),
        Output("reference", "Where the manifest is: REPO:TAG, or REPO@DIGEST when pushed without a tag",
               _field("reference")),
        Output("artifact-type", "Artifact type of the pushed manifest", _field("artifactType")),
    ),
    "attach": _attach("referrer"),
    "attach-sbom": _attach("SBOM"),
    "attach-signature": _attach("signature"),
    "sign": _attach("signature"),
    "discover": (
        Output("digest", "Digest of the subject", _field("digest")),
        Output("count", "Referrers found at any depth", _field("count")),
        Output("graph", "The referrers graph as compact JSON (ORAS's nested shape)",
               lambda document: {k: v for k, v in document.items() if k not in ("schema", "count")}),
    ),
    "verify": (
        Output("ok", "true when every requirement holds, else false", _field("ok")),
        Output("missing", "The requirements not met, as a compact JSON list", _field("missing")),
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
    "release-plan": (
        Output("ok", "true when every image's gate holds, else false", _field("ok")),
        Output("matrix", "The shards to run as a matrix: {\"shard\": [1, 2, ...]}, compact JSON", _field("matrix")),
        Output("azure-matrix", "The same shards as an Azure Pipelines matrix: {\"shard_1\": {\"shard\": \"1\"}, "
               "...}, compact JSON", lambda document: {f"shard_{shard}": {"shard": str(shard)}
                                                       for shard in document["matrix"]["shard"]}),
        Output("shards", "How many shards received images", lambda document: len(document["shards"])),
        Output("failed", "The images whose gate failed, as a compact JSON list", _field("failed")),
    ),
    "release-copy": (
        Output("bytes", "Bytes copied by this shard", _field("bytes")),
        Output("images", "The images of this shard, as a compact JSON list of ids",
               lambda document: [image["id"] for image in document["images"]]),
    ),
    "release-commit": (
        Output("ok", "true when every graph was complete and the tags moved", _field("ok")),
        Output("incomplete", "The images whose graph was incomplete, as a compact JSON list", _field("incomplete")),
        Output("tags-written", "How many tags moved", _field("tagsWritten")),
    ),
    "login": (Output("registry", "The registry host", _field("registry")),),
    "logout": (Output("registry", "The registry host", _field("registry")),),
}

#: Steps whose results also go to the job summary; helpers (manifest, tags, login) only set outputs.
SUMMARY_STEPS = frozenset({"push", "pull", "attach", "attach-sbom", "attach-signature", "sign", "discover",
                           "verify", "promote", "delete", "release-plan", "release-copy",
                           "release-commit"})


def camel_case(name: str) -> str:
    """``artifactType`` for ``artifact-type``: Azure variable names allow only letters, digits, ``.`` and ``_``,
    and its task inputs are camelCase; every wrapper and emitter takes that spelling from here."""
    head, *rest = name.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


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
