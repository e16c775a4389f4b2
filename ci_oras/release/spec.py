"""The release file: which images move together, where to, under which tags, gated by what.

A release is YAML (``ci_oras/schemas/release-file.json`` is its schema), read by ``yaml_subset`` with every
scalar as text: ``release: 1.10`` is the string ``"1.10"`` and ``tags: [no]`` the tag ``no``, never a float or
a boolean, so a version number means what it says. The file comes from a repository a pipeline
checked out, so it is checked like any data from outside before anything is opened: size, shape, each field's
type, every reference and requirement; anchors, aliases and tags are refused (they serve no release, and
aliases let a small file expand). Each problem is one ``UsageError`` (exit 2) naming the file, the field (``images[3].tags``) and
the fix.

Two kinds of entries:

- ``source: REF:TAG`` (or ``REF@DIGEST``) to ``destination: REPO``, under ``tags:`` or, without them, the
  source's tag (a source by digest without ``tags:`` is copied and tagged nothing);
- ``source-repository: REPO`` with ``tag-pattern: REGEX``: every tag of REPO the pattern matches in full is an
  image, tagged at the destination with the same name.

Requirements (the ``verify`` language) come from the release and from each entry, both applying;
``defaults:`` sets the copy filters (``platform``, ``artifact-types``, ``exclude-artifact-types``) that an
entry may override.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ci_oras.errors import UsageError
from ci_oras.oci.reference import Reference, parse_reference
from ci_oras.requirements import Requirement, merge, parse_requirements

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

#: A release file larger than this is refused before it is parsed.
MAX_FILE_BYTES = 1024 * 1024
#: Entries one release may hold (a tag pattern counts once here; what it matches is bounded in the plan).
MAX_ENTRIES = 10_000
_RELEASE_KEYS = frozenset({"release", "require", "defaults", "images"})
_DEFAULT_KEYS = frozenset({"platform", "artifact-types", "exclude-artifact-types"})
_IMAGE_KEYS = frozenset({"source", "source-repository", "tag-pattern", "destination", "tags", "require"}
                        ) | _DEFAULT_KEYS
_EXAMPLE = ("e.g. 'release: v1.4.0' and 'images:' listing "
            "'- {source: staging.example.com/shop/api:v1.4.0, destination: prod.example.com/shop/api}'")


@dataclass(frozen=True)
class CopyFilters:
    """What of each graph is copied: one platform of an index, and referrers by type (``promote``'s flags)."""

    platform: str | None = None
    artifact_types: tuple[str, ...] = ()
    exclude_artifact_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageEntry:
    """One source image (by tag or digest) and where it goes."""

    where: str
    source: Reference
    destination: Reference
    tags: tuple[str, ...]
    requirements: tuple[Requirement, ...]
    filters: CopyFilters


@dataclass(frozen=True)
class PatternEntry:
    """Every tag of ``repository`` that ``pattern`` matches in full, each tagged the same at the destination."""

    where: str
    repository: Reference
    pattern: re.Pattern[str]
    destination: Reference
    requirements: tuple[Requirement, ...]
    filters: CopyFilters


@dataclass(frozen=True)
class ReleaseFile:
    name: str
    entries: tuple[ImageEntry | PatternEntry, ...]


def read_release_file(path: Path) -> ReleaseFile:
    """Read and check ``path`` (module docstring); nothing is opened on any registry."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(f"{path}: {size} bytes is more than a release file may hold ({MAX_FILE_BYTES})",
                             hint="split the release, or list images with tag-pattern entries")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read release file {path}: {exc}", hint="pass a readable UTF-8 YAML file") from exc
    return parse_release(text, str(path))


def parse_release(text: str, name: str) -> ReleaseFile:
    document = _load_yaml(text, name)
    fields = _Fields(document, name, "the file")
    fields.only(_RELEASE_KEYS)
    release = fields.text("release")
    if release is None or not release.strip():
        raise UsageError(f"{name}: 'release' (the release's name) is missing", hint=_EXAMPLE)
    requirements = fields.requirements("require")
    defaults = fields.mapping("defaults")
    default_filters = CopyFilters()
    if defaults is not None:
        defaults.only(_DEFAULT_KEYS)
        default_filters = defaults.filters(CopyFilters())
    images = fields.items("images")
    if not images:
        raise UsageError(f"{name}: 'images' lists no image", hint=_EXAMPLE)
    if len(images) > MAX_ENTRIES:
        raise UsageError(f"{name}: {len(images)} entries under 'images' is more than {MAX_ENTRIES}",
                         hint="split the release, or list images with tag-pattern entries")
    entries = tuple(_entry(item, requirements, default_filters) for item in images)
    refuse_conflicts(((entry.where, entry.destination.repository_name, entry.tags) for entry in entries
                      if isinstance(entry, ImageEntry)), name)
    return ReleaseFile(release.strip(), entries)


def _load_yaml(text: str, name: str) -> object:
    from ci_oras.release.yaml_subset import YamlSubsetError, load

    try:
        return load(text)
    except YamlSubsetError as exc:
        raise UsageError(f"{name}: not accepted YAML: {exc}", hint=exc.hint) from None


class _Fields:
    """A mapping from the file, its fields read with their types checked; ``where`` names it in messages."""

    def __init__(self, value: object, name: str, where: str) -> None:
        if not isinstance(value, Mapping):
            raise UsageError(f"{name}: {where} must be a mapping of fields, not {_kind(value)}", hint=_EXAMPLE)
        self.values: Mapping[object, object] = value
        self.name = name
        self.where = where

    def _at(self, key: str) -> str:
        return f"{self.name}: {key}" if self.where == "the file" else f"{self.name}: {self.where}.{key}"

    def only(self, allowed: frozenset[str]) -> None:
        unknown = sorted(str(key) for key in self.values if key not in allowed)
        if unknown:
            raise UsageError(f"{self._at(unknown[0])}: unknown field",
                             hint=f"the fields here are {', '.join(sorted(allowed))}")

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise UsageError(f"{self._at(key)} must be a single value, not {_kind(value)}", hint=_EXAMPLE)
        return value

    def texts(self, key: str) -> tuple[str, ...] | None:
        """A list of values, or one value standing for a list of one."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise UsageError(f"{self._at(key)} must be a list of values", hint=f"e.g. {key}: [a, b]")
        return tuple(value)

    def mapping(self, key: str) -> _Fields | None:
        value = self.values.get(key)
        return None if value is None else _Fields(value, self.name, key if self.where == "the file"
                                                  else f"{self.where}.{key}")

    def items(self, key: str) -> list[_Fields]:
        value = self.values.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise UsageError(f"{self._at(key)} must be a list", hint=_EXAMPLE)
        return [_Fields(item, self.name, f"{key}[{number}]") for number, item in enumerate(value, start=1)]

    def reference(self, key: str) -> Reference | None:
        text = self.text(key)
        if text is None:
            return None
        try:
            return parse_reference(text.strip())
        except UsageError as exc:
            raise UsageError(f"{self._at(key)}: {exc.message}", hint=exc.hint) from None

    def requirements(self, key: str) -> tuple[Requirement, ...]:
        specs = self.texts(key)
        try:
            return tuple(parse_requirements(specs or ()))
        except UsageError as exc:
            raise UsageError(f"{self._at(key)}: {exc.message}", hint=exc.hint) from None

    def filters(self, base: CopyFilters) -> CopyFilters:
        platform = self.text("platform")
        kinds = self.texts("artifact-types")
        excluded = self.texts("exclude-artifact-types")
        return CopyFilters(
            platform=platform.strip() if platform is not None else base.platform,
            artifact_types=kinds if kinds is not None else base.artifact_types,
            exclude_artifact_types=excluded if excluded is not None else base.exclude_artifact_types,
        )


def _entry(item: _Fields, release_requirements: Sequence[Requirement],
           defaults: CopyFilters) -> ImageEntry | PatternEntry:
    item.only(_IMAGE_KEYS)
    requirements = tuple(merge(release_requirements, item.requirements("require")))
    filters = item.filters(defaults)
    destination = item.reference("destination")
    if destination is None:
        raise UsageError(f"{item._at('destination')} is missing", hint="name the repository to copy into")
    source = item.reference("source")
    repository = item.reference("source-repository")
    pattern_text = item.text("tag-pattern")
    if source is not None and (repository is not None or pattern_text is not None):
        raise UsageError(f"{item.name}: {item.where} has both 'source' and 'source-repository'/'tag-pattern'",
                         hint="one image per 'source', or every matching tag with 'source-repository' and "
                              "'tag-pattern'")
    if source is None and repository is None:
        raise UsageError(f"{item._at('source')} is missing",
                         hint="give 'source: REF:TAG', or 'source-repository' with 'tag-pattern'")
    tags = item.texts("tags")
    if destination.digest is not None:
        raise UsageError(f"{item._at('destination')}: a destination is a repository, not a digest",
                         hint="leave the @digest out; the image keeps its digest")
    if destination.tags and tags is not None:
        raise UsageError(f"{item._at('destination')} names tags and 'tags' does too",
                         hint="give the destination tags in one place")
    if source is None:
        assert repository is not None
        if pattern_text is None:
            raise UsageError(f"{item._at('tag-pattern')} is missing",
                             hint="give a regular expression the tags must match in full, e.g. 'v1\\.4\\.\\d+'")
        if repository.tags or repository.digest:
            raise UsageError(f"{item._at('source-repository')}: a repository without a tag or digest",
                             hint="the tags come from 'tag-pattern'")
        if tags is not None or destination.tags:
            raise UsageError(f"{item.name}: {item.where}: a tag-pattern entry keeps each tag's name",
                             hint="leave 'tags' out, or list the images one by one")
        return PatternEntry(item.where, repository, _pattern(pattern_text, item), destination, requirements,
                            filters)
    if not source.tags and source.digest is None:
        raise UsageError(f"{item._at('source')}: name the image by tag or digest",
                         hint="e.g. staging.example.com/shop/api:v1.4.0")
    if len(source.tags) > 1:
        raise UsageError(f"{item._at('source')}: one tag per source", hint="give the destination tags in 'tags'")
    chosen = tags if tags is not None else destination.tags or source.tags
    _check_tags(chosen, item)
    return ImageEntry(item.where, source, _repository(destination), tuple(chosen), requirements, filters)


def _pattern(text: str, item: _Fields) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise UsageError(f"{item._at('tag-pattern')}: not a regular expression ({exc})",
                         hint="e.g. 'v1\\.4\\.\\d+' (matched against the whole tag)") from None


def _check_tags(tags: Sequence[str], item: _Fields) -> None:
    from ci_oras.oci.reference import TAG_RE

    for tag in tags:
        if not TAG_RE.fullmatch(tag):
            raise UsageError(f"{item._at('tags')}: {tag!r} is not a valid tag",
                             hint="up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'")


def _repository(reference: Reference) -> Reference:
    return reference.with_tags(())


def refuse_conflicts(writes: Iterable[tuple[str, str, tuple[str, ...]]], name: str | None = None) -> None:
    """Two images may not write the same tag of the same repository: which image it ends on would depend on
    the order the copies finish. ``writes``: (where the image comes from, destination repository, its tags);
    ``name``: the release file, when the images are its entries."""
    written: dict[tuple[str, str], str] = {}
    for where, repository, tags in writes:
        for tag in tags:
            key = (repository, tag)
            if key in written:
                raise UsageError(f"{name + ': ' if name else ''}{written[key]} and {where} both tag {repository}:{tag}",
                                 hint="each destination tag belongs to one image")
            written[key] = where


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return "nothing" if value is None else "a value"
