"""Pure helpers for OCI 1.1 referrers, shared by every store."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from ci_oras.errors import MalformedError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import Digest
from ci_oras.oci.manifest import MalformedEntry
from ci_oras.oci.mediatypes import same_type


class Unchanged(Enum):
    """A registry's answer to a conditional listing: still the listing the validator names (HTTP 304)."""

    listing = "unchanged"


#: What ``referrers_if_changed`` returns for a listing that did not change.
UNCHANGED = Unchanged.listing


def fallback_tag(subject_digest: str) -> str:
    """The tag schema's tag for a subject: ``<alg>-<hex>`` (distribution-spec "Referrers Tag Schema")."""
    parsed = Digest.parse(subject_digest)
    return f"{parsed.algorithm}-{parsed.hex}"


def filter_by_type(descriptors: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    """Client-side ``artifactType`` filtering; types compare case-insensitively (a registry's own filter does
    not, so listings are never filtered on the server)."""
    if not artifact_type:
        return list(descriptors)
    return [d for d in descriptors if same_type(d.artifact_type, artifact_type)]


class MalformedListing(MalformedError):
    """A referrers listing with entries that are not descriptors. ``listed`` holds the well-formed entries and
    ``entries`` the others, so ``verify`` can report each malformed one as a rejected referrer and check the
    rest; every other caller lets it end the command (exit 6) instead of acting on part of a listing."""

    def __init__(self, message: str, *, problem: str, listed: list[Descriptor],
                 entries: tuple[MalformedEntry, ...]) -> None:
        super().__init__(message, problem=problem,
                         hint="the referrers listing is not valid; fix or delete the listing (or the index behind it)")
        self.listed = listed
        self.entries = entries


def complete_listing(subject_digest: str, where: str, listed: Sequence[Descriptor],
                     malformed: Sequence[MalformedEntry]) -> list[Descriptor]:
    """The entries of a listing, or ``MalformedListing`` naming the subject, ``where`` it was read and the
    first malformed entry (with the count of the others)."""
    if not malformed:
        return list(listed)
    more = len(malformed) - 1
    problem = malformed[0].problem + (f" (and {more} more malformed entr{'y' if more == 1 else 'ies'})"
                                      if more else "")
    raise MalformedListing(f"referrers listing of {subject_digest} in {where}: {problem}", problem=problem,
                           listed=list(listed), entries=tuple(malformed))
