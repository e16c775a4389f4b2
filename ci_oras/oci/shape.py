"""Reading JSON we did not write: decode it, then check every field's shape before anything uses it.

Manifests, listings, token answers, docker configs and trust policies come from registries, other tools and
users. A field of the wrong type must end in the documented error naming the field, never in an
``AttributeError`` deep in a step (``"layers": 5``) or, worse, in a silently empty result (``"manifests": 5``
read as "no referrers"). So outside JSON is decoded by :func:`load_json` only, which turns every decoding
failure (bad UTF-8, not JSON, nesting deep enough to exhaust the parser's recursion) into the caller's
error, and read through :class:`Fields`, whose accessors return typed values or raise that error with the
field's path (``"layers[2].size" must be an integer, not a string``). Each boundary says which error: the
``fail`` function it passes turns the problem into an integrity, usage or registry error with its own
context (a manifest's digest and repository, a file's path, a registry host).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ci_oras.errors import CiOrasError

#: Turns a problem ("\"layers\" must be a list, not a number") into the boundary's error.
Fail = Callable[[str], CiOrasError]

#: Deeper documents are refused: no OCI document, config or policy nests anywhere near this, and code that
#: walks parsed documents recursively (re-encoding an index.json, a policy) must never meet a RecursionError.
MAX_DEPTH = 128


def kind(value: object) -> str:
    """How a JSON value is named in an error: "a number", "a list"…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def load_json(data: bytes | str, fail: Fail, *, encoding: str | None = None, secret: bool = False) -> object:
    """Decode outside JSON; any failure is ``fail("invalid JSON (…)")`` or ``fail("JSON nested too deeply…")``.

    ``encoding`` None lets bytes be detected as the JSON RFC allows (UTF-8, -16, -32), as ``json.loads``
    does; "utf-8-sig" accepts a byte order mark, as files saved by some editors carry. ``secret``: the
    document holds credentials, so the decoding error (whose ``doc`` attribute is the whole text) is not
    chained to the error raised.
    """
    try:
        text = data.decode(encoding) if isinstance(data, bytes) and encoding else data
        document: object = json.loads(text)
    except RecursionError as exc:
        raise fail(f"JSON nested too deeply (over {MAX_DEPTH} levels)") from (None if secret else exc)
    except (ValueError, UnicodeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise fail(f"invalid JSON ({_short(exc)})") from (None if secret else exc)
    if _depth_exceeds(document, MAX_DEPTH):
        raise fail(f"JSON nested too deeply (over {MAX_DEPTH} levels)")
    return document


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _depth_exceeds(document: object, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (iterative: the check itself must not recurse)."""
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterator[object] = iter(value.values())
        elif isinstance(value, list):
            children = iter(value)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _quoted(path: str) -> str:
    return f'"{path}"'


@dataclass(frozen=True)
class Fields:
    """A JSON object read field by field; every accessor checks the type and names the field when wrong.

    ``path`` is where the object sits in its document ("layers[2]"), so nested problems name the full path.
    Optional accessors treat an absent field and ``null`` alike (as Go's encoding/json does).
    """

    doc: Mapping[str, object]
    fail: Fail
    path: str = ""

    @classmethod
    def of(cls, value: object, fail: Fail, path: str = "", what: str = "the document") -> Fields:
        """``value`` as an object, or ``fail`` naming what it is instead."""
        if not isinstance(value, dict):
            name = _quoted(path) if path else what
            raise fail(f"{name} must be a JSON object, not {kind(value)}")
        return cls(value, fail, path)

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _wrong(self, key: str, wanted: str, value: object) -> CiOrasError:
        return self.fail(f"{_quoted(self.name(key))} must be {wanted}, not {kind(value)}")

    def has(self, key: str) -> bool:
        return self.doc.get(key) is not None

    def raw(self, key: str) -> object:
        return self.doc.get(key)

    def optional_string(self, key: str) -> str | None:
        value = self.doc.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self._wrong(key, "a string", value)

    def string(self, key: str) -> str:
        value = self.doc.get(key)
        if isinstance(value, str):
            return value
        if value is None:
            raise self.fail(f"{_quoted(self.name(key))} is missing")
        raise self._wrong(key, "a string", value)

    def optional_integer(self, key: str) -> int | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self._wrong(key, "an integer", value)

    def integer(self, key: str) -> int:
        value = self.optional_integer(key)
        if value is None:
            raise self.fail(f"{_quoted(self.name(key))} is missing")
        return value

    def optional_child(self, key: str) -> Fields | None:
        value = self.doc.get(key)
        if value is None:
            return None
        return Fields.of(value, self.fail, self.name(key))

    def array(self, key: str) -> list[object]:
        """A list field; absent or null is an empty list."""
        value = self.doc.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        raise self._wrong(key, "a list", value)

    def children(self, key: str) -> list[Fields]:
        """A list of objects; absent or null is an empty list."""
        return [Fields.of(item, self.fail, f"{self.name(key)}[{position}]")
                for position, item in enumerate(self.array(key))]

    def strings(self, key: str) -> list[str]:
        """A list of strings; absent or null is an empty list."""
        items = self.array(key)
        for position, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(f"{_quoted(f'{self.name(key)}[{position}]')} must be a string, not {kind(item)}")
        return [item for item in items if isinstance(item, str)]

    def string_map(self, key: str) -> dict[str, str]:
        """An object of strings (annotations, headers); absent or null is empty."""
        value = self.doc.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        for name, item in value.items():
            if not isinstance(item, str):
                raise self.fail(f"{_quoted(f'{self.name(key)}.{name}')} must be a string, not {kind(item)}")
        return {str(name): str(item) for name, item in value.items()}
