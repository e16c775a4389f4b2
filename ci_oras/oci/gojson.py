"""JSON bytes laid out the way Go's ``encoding/json`` writes them.

ORAS and most registry tooling are written in Go. Producing the same bytes (compact, map keys sorted, ``<``,
``>`` and ``&`` escaped as ``\\u003c`` …) means a manifest built by ci-oras from the same inputs has the same
digest as one built by ``oras``, which is what users compare when they switch tools.
"""

from __future__ import annotations

import json
from typing import Any

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _sort_maps(value: Any, *, keep_order: bool) -> Any:
    """Go sorts map keys but keeps struct field order; callers pass structs as dicts in field order."""
    if isinstance(value, dict):
        items = value.items() if keep_order else sorted(value.items())
        return {key: _sort_maps(item, keep_order=False) for key, item in items}
    if isinstance(value, list):
        return [_sort_maps(item, keep_order=True) for item in value]
    return value


def dumps(struct: dict[str, Any], *, map_fields: frozenset[str] = frozenset({"annotations"})) -> bytes:
    """Encode ``struct`` (field order preserved) with every field named in ``map_fields`` sorted like a Go map."""
    text = json.dumps(_prepare(struct, map_fields), ensure_ascii=False, separators=(",", ":"))
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text.encode("utf-8")


def _prepare(value: Any, map_fields: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            key: (_sort_maps(item, keep_order=False) if key in map_fields else _prepare(item, map_fields))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_prepare(item, map_fields) for item in value]
    return value
