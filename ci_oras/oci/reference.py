"""References: ``REGISTRY/REPO[:TAG][@DIGEST]`` for registries and ``oci:PATH[:TAG|@DIGEST]`` for OCI layouts.

Registry references are normalised the way ``docker`` does (``alpine`` → ``docker.io/library/alpine``) so the
same text means the same thing in ci-oras as in the tools users already know. Several tags may be given as
``REF:a,b,c`` for commands that write tags (push, promote).
"""

from __future__ import annotations

import re
from dataclasses import Field, dataclass, replace
from typing import Any, ClassVar, TypeVar

from ci_oras.errors import UsageError
from ci_oras.oci.digest import Digest

DOCKER_HUB = "docker.io"
#: The host docker.io's API actually answers on.
DOCKER_HUB_API = "registry-1.docker.io"
LAYOUT_PREFIX = "oci:"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$"
)
_REFERENCE_HINT = "expected REGISTRY/REPOSITORY[:TAG][@DIGEST], e.g. ghcr.io/acme/app:v1, or oci:PATH[:TAG]"


_Narrowed = TypeVar("_Narrowed", bound="_Narrowing")


class _Narrowing:
    """What both kinds of reference share: a repository narrowed to tags and/or a digest.

    Subclasses are frozen dataclasses with ``tags`` and ``digest`` fields and a ``repository_name``.
    """

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    tags: tuple[str, ...]
    digest: str | None

    @property
    def repository_name(self) -> str:
        raise NotImplementedError

    @property
    def tag(self) -> str | None:
        return self.tags[0] if self.tags else None

    @property
    def reference(self) -> str | None:
        """What goes after ``/manifests/``: the digest when known (exact), else the tag."""
        return self.digest or self.tag

    def with_digest(self: _Narrowed, digest: str) -> _Narrowed:
        return replace(self, tags=(), digest=digest)

    def with_tags(self: _Narrowed, tags: tuple[str, ...]) -> _Narrowed:
        return replace(self, tags=tags, digest=None)

    def __str__(self) -> str:
        text = self.repository_name
        if self.tags:
            text += ":" + ",".join(self.tags)
        if self.digest:
            text += "@" + self.digest
        return text


@dataclass(frozen=True)
class RegistryReference(_Narrowing):
    """A repository on a registry, optionally narrowed to tags and/or a digest."""

    registry: str
    repository: str
    tags: tuple[str, ...] = ()
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host to connect to (docker.io is served from another name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def is_loopback(self) -> bool:
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry
        return host in ("localhost", "127.0.0.1", "[::1]")

    @property
    def repository_name(self) -> str:
        return f"{self.registry}/{self.repository}"



@dataclass(frozen=True)
class LayoutReference(_Narrowing):
    """A manifest in an OCI image layout directory on disk."""

    path: str
    tags: tuple[str, ...] = ()
    digest: str | None = None

    @property
    def repository_name(self) -> str:
        return f"{LAYOUT_PREFIX}{self.path}"


Reference = RegistryReference | LayoutReference


def _parse_tags(text: str, whole: str) -> tuple[str, ...]:
    tags = tuple(text.split(","))
    for tag in tags:
        if not TAG_RE.match(tag):
            raise UsageError(
                f"invalid tag {tag!r} in reference {whole!r}",
                hint="a tag is 1-128 characters of letters, digits, '_', '.', '-', not starting with '.' or '-'",
            )
    return tags


def _split_digest(text: str, whole: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    rest, digest = text.rsplit("@", 1)
    try:
        Digest.parse(digest)
    except UsageError as exc:
        raise UsageError(f"invalid digest in reference {whole!r}", hint=exc.hint) from exc
    return rest, digest


def parse_layout_reference(text: str) -> LayoutReference:
    body = text[len(LAYOUT_PREFIX):]
    rest, digest = _split_digest(body, text)
    tags: tuple[str, ...] = ()
    if digest is None and ":" in rest:
        path, candidate = rest.rsplit(":", 1)
        if "/" not in candidate:
            tags = _parse_tags(candidate, text)
            rest = path
    if not rest:
        raise UsageError(f"missing path in layout reference {text!r}", hint="expected oci:PATH[:TAG|@DIGEST]")
    return LayoutReference(path=rest, tags=tags, digest=digest)


def parse_registry_reference(text: str, *, allow_bare_repository: bool = True) -> RegistryReference:
    """Parse a registry reference; without a tag or digest it names the repository only."""
    if not text or any(ch.isspace() for ch in text):
        raise UsageError(f"invalid reference {text!r}", hint=_REFERENCE_HINT)
    if "://" in text:
        raise UsageError(f"invalid reference {text!r}: leave out the scheme", hint=_REFERENCE_HINT)
    rest, digest = _split_digest(text, text)
    tags: tuple[str, ...] = ()
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        tags = _parse_tags(rest[colon + 1:], text)
        rest = rest[:colon]
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, repository = first, remainder
        if not _HOST_RE.match(registry):
            raise UsageError(f"invalid registry host {registry!r} in {text!r}", hint=_REFERENCE_HINT)
    else:
        registry, repository = DOCKER_HUB, rest
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY_RE.match(repository):
        raise UsageError(
            f"invalid repository name {repository!r} in {text!r}",
            hint="repository names are lowercase letters, digits and separators ('.', '_', '-', '/')",
        )
    if not allow_bare_repository and not tags and digest is None:
        raise UsageError(f"reference {text!r} names no tag or digest", hint="add :TAG or @sha256:...")
    return RegistryReference(registry=registry, repository=repository, tags=tags, digest=digest)


def parse_reference(text: str) -> Reference:
    """Parse any reference ci-oras accepts."""
    if text.startswith(LAYOUT_PREFIX):
        return parse_layout_reference(text)
    return parse_registry_reference(text)
