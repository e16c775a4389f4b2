"""Platforms as users write them (``OS/ARCH[/VARIANT]``) and the rule that picks an index child by one.

Pure data like the rest of ``oci/``: ``pull``, ``attach``, ``promote`` and ``verify`` all pick children this one
way, so ``--platform linux/arm64`` means the same thing to every command.
"""

from __future__ import annotations

from collections.abc import Iterable

from ci_oras.errors import NotFoundError, UsageError
from ci_oras.oci.descriptor import Descriptor, Platform
from ci_oras.oci.manifest import Manifest


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"invalid platform {text!r}", hint="use OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64")
    return Platform(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None)


def matches(wanted: Platform, got: Platform | None) -> bool:
    """OS and architecture must agree; a variant left out of ``wanted`` matches any variant."""
    return bool(got and got.os == wanted.os and got.architecture == wanted.architecture and (
        wanted.variant is None or got.variant == wanted.variant))


def pick_child(children: Iterable[Descriptor], platform: str, shown: str) -> Descriptor:
    """The first of ``children`` for ``platform``; not found names the platforms there are."""
    wanted = parse_platform(platform)
    listed = list(children)
    for child in listed:
        if matches(wanted, child.platform):
            return child
    available = ", ".join(str(c.platform) for c in listed if c.platform) or "none"
    raise NotFoundError(f"{shown} has no manifest for platform {platform}", hint=f"available: {available}")


def platform_child(index: Manifest, shown: str, platform: str, purpose: str) -> Descriptor:
    """The child of ``index`` for ``platform``; ``purpose`` (e.g. "pull") words the hint for a non-index."""
    parse_platform(platform)  # a malformed platform is a usage error before anything about the manifest
    if not index.is_index:
        raise UsageError(f"{shown} is not an image index, so --platform cannot pick a child",
                         hint=f"leave out --platform to {purpose} the manifest itself")
    return pick_child(index.manifests, platform, shown)
