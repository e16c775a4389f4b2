"""One-method capabilities every store offers, composed into roles, and the roles into ``Target``.

Steps and graph algorithms speak only to these protocols, never to a concrete store, so the same code copies
registry→layout, layout→registry and registry→registry. Each function takes the smallest role it uses (as
oras-go's ``Copy`` takes a ``ReadOnlyTarget`` source): what only reads (discover, verify, pull, a copy's
source) takes ``ReadOnlyTarget``, so a store that can only be read works there and a reader is seen not to
write. Optional abilities (cross-repository mount, a native referrers API) are separate protocols detected at
run time, each with a generic fallback.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Generator, Iterable
from typing import Protocol, runtime_checkable

from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.oci.referrers import Unchanged

#: Manifests are small by design (distribution refuses over 4 MiB); anything larger is not a manifest.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

#: A verified stream of content; a generator so callers can ``close()`` it early and release the connection.
ByteStream = Generator[bytes, None, None]


class Fetcher(Protocol):
    def fetch(self, desc: Descriptor) -> ByteStream:
        """Stream the content of ``desc``; the digest and size are verified, raising IntegrityError at the end.

        The caller must exhaust or ``close()`` the iterator (``contextlib.closing``) to release the connection.
        """


class ManifestFetcher(Protocol):
    def fetch_manifest(self, reference: str) -> Manifest:
        """Fetch and parse the manifest at a tag or digest; by digest the bytes are verified."""


class Pusher(Protocol):
    def push_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        """Store a blob whose bytes are ``chunks``; the store verifies digest and size."""

    def push_manifest(self, manifest: Manifest, tag: str | None = None) -> None:
        """Store the exact manifest bytes, under ``tag`` when given (one write), else by digest only."""


class Exists(Protocol):
    def exists(self, desc: Descriptor) -> bool:
        """True when the store already has this blob or manifest."""


class Resolver(Protocol):
    def resolve(self, reference: str) -> Descriptor:
        """The descriptor (media type, digest, size) a tag or digest points at; NotFoundError otherwise."""


class Tagger(Protocol):
    def tag(self, manifest: Manifest, tag: str) -> None:
        """Point ``tag`` at ``manifest`` (already stored)."""


class TagLister(Protocol):
    def tags(self) -> list[str]:
        """Every tag in the repository or layout, sorted."""


class Deleter(Protocol):
    def delete(self, desc: Descriptor) -> None:
        """Delete a manifest (and whatever tags point at it); NotFoundError when absent."""


class ReferrerLister(Protocol):
    def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``subject`` (of ``artifact_type`` when given), as listed descriptors."""


class ReferrerPusher(Protocol):
    def push_referrer(self, manifest: Manifest) -> None:
        """Store a manifest that has a ``subject`` and make it discoverable from that subject.

        Raises RegistryError when the store kept it but cannot list it: a referrer nobody can discover must
        not be reported as attached.
        """

    def push_referrers(self, subject: Descriptor, manifests: list[Manifest],
                       stored: Collection[str] = ()) -> None:
        """Store every referrer of ``subject`` not in ``stored`` (digests the store already has) and make them
        all discoverable with as few list updates as the store allows (one index write per subject)."""


@runtime_checkable
class RevalidatingLister(Protocol):
    """A store that can ask whether a listing it read changed (a registry: ``If-None-Match`` with the ETag of
    the earlier answer, and a 304 without the body), so a check repeated by ``verify --wait`` does not read
    an unchanged listing again."""

    def listing_validator(self, subject: Descriptor) -> str | None:
        """What names the last listing of ``subject`` this store read; None when it cannot be revalidated."""

    def referrers_if_changed(self, subject: Descriptor, validator: str) -> list[Descriptor] | Unchanged:
        """The referrers of ``subject`` as ``referrers`` lists them, or UNCHANGED when the listing
        ``validator`` names still holds."""


@runtime_checkable
class ReferrersApiVerdict(Protocol):
    """A store that learns, once per repository, whether its registry serves the referrers API (a probe)."""

    def referrers_api(self) -> bool | None:
        """What was learned; None before the first listing."""

    def assume_referrers_api(self, supported: bool) -> None:
        """Take ``supported`` as this repository's answer without probing (a caller that learned it from another
        repository of the same registry, where a wrong answer can only make it refuse, never accept)."""


@runtime_checkable
class ListedSubjects(Protocol):
    """A store that keeps each subject's referrers listing under a name it can enumerate (the tag schema's
    ``sha256-<hex>`` tags, all shown by one tag list): asked once by a walk with many nodes still to list, so
    a node without a listing is not asked for one (``graph/walk.py``). A store that lists referrers itself (a
    registry with the referrers API, a layout, memory) has nothing to skip."""

    def listed_subjects(self, max_requests: int) -> Container[str] | None:
        """The digests of the subjects that have a referrers listing now, read in at most ``max_requests``
        requests; None when the store cannot tell that way (it serves the referrers API, or the names could
        not be read whole within the budget): then every node is listed. A snapshot, never updated: a listing
        made after it was read is not in it."""


@runtime_checkable
class Mounter(Protocol):
    def mount(self, desc: Descriptor, from_repository: str) -> bool:
        """Try a cross-repository blob mount; False when the registry refused (then upload instead)."""


class ReferrersIndexKeeper(Protocol):
    """Keeps the referrers lists a store maintains on the client side (the tag schema's ``sha256-<hex>`` index)
    consistent when manifests are deleted. Where the store lists referrers itself (a registry with the
    referrers API, a layout's untagged index.json entries) there is nothing to keep and the methods do nothing.
    """

    def referrers_index(self, subject: Descriptor) -> Descriptor | None:
        """The client-maintained referrers index of ``subject``, if there is a real one (read only)."""

    def forget_referrer(self, subject: Descriptor, referrer_digest: str) -> bool:
        """Remove a deleted referrer's entry from ``subject``'s referrers index; an index left empty is deleted
        rather than rewritten. True when something changed."""

    def drop_referrers_index(self, subject: Descriptor) -> bool:
        """Delete ``subject``'s referrers index (the subject is being deleted); True when one was deleted.

        A tag that resolves to the subject itself (a known registry bug) is not an index and is left alone.
        """


class ReadOnlyTarget(Fetcher, ManifestFetcher, Resolver, ReferrerLister, Protocol):
    """What reading a graph needs: names resolved, manifests and blobs fetched, referrers listed (oras-go's
    ``ReadOnlyGraphTarget``, whose predecessors are our referrers). ``discover``, ``verify``, ``pull`` and a
    copy's source take this role. No reader asks ``exists`` or lists tags, so it has neither."""


class Storage(Exists, Pusher, Protocol):
    """What storing content needs: ask whether the store has it, then push what it lacks (``push``)."""


class GraphStorage(Storage, ReferrerPusher, Protocol):
    """What storing a referrers graph needs: content, and the referrers made discoverable from their
    subjects. A copy's destination (tags are written by the caller, last) and ``attach``/``sign`` take it."""


class GraphEraser(Deleter, ReferrersIndexKeeper, Protocol):
    """What deleting needs besides reading: manifests deleted, and the referrers lists kept consistent."""


class Target(ReadOnlyTarget, GraphStorage, GraphEraser, Tagger, TagLister, Protocol):
    """Every capability: what a store opened for a command offers. ``name`` is shown to users."""

    @property
    def name(self) -> str: ...

    def close(self) -> None:
        """Release connections and locks."""
