"""A ``Target`` held in memory: for tests, and for library users who build or inspect a graph before (or
instead of) writing it anywhere.

It keeps the rules the other stores keep, so code that works on it works on them: every blob and manifest
pushed is checked against its digest and size (``IntegrityError``, nothing stored), what is missing is a
``NotFoundError``, a tag that cannot be one is a ``UsageError``, and a manifest's bytes are kept exactly as
given. Referrers are listed from the ``subject`` of the manifests stored here, in the order they were
stored, as a registry with the referrers API lists them; so there is no client-side referrers index to keep
consistent on delete. Thread-safe: one lock guards the maps, and a push is verified before it takes it.

Only the standard library, ``oci`` and the store protocols are imported: no HTTP client is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from ci_oras.errors import NotFoundError, UsageError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import is_digest
from ci_oras.oci.manifest import Manifest, parse_manifest
from ci_oras.oci.referrers import filter_by_type
from ci_oras.store.digest_check import verified
from ci_oras.store.protocols import MAX_MANIFEST_BYTES, ByteStream

if TYPE_CHECKING:
    from ci_oras.store.protocols import Target


class MemoryStore:
    """Blobs by digest, the manifests stored through ``push_manifest`` (the listed ones) and tags."""

    def __init__(self, name: str = "memory") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}
        #: digest → manifest, in the order they were first stored: what ``referrers`` lists from
        self._manifests: dict[str, Manifest] = {}
        self._tags: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self._name

    def close(self) -> None:
        """Nothing to release; the content stays readable."""

    # -- blobs -------------------------------------------------------------------------------------------------

    def exists(self, desc: Descriptor) -> bool:
        """A blob or manifest counts only with the right size, as in the layout store."""
        with self._lock:
            data = self._blobs.get(desc.digest)
        return data is not None and len(data) == desc.size

    def push_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        """Read ``chunks`` whole, check digest and size, then store: a mismatch stores nothing."""
        data = b"".join(verified(chunks, desc))
        with self._lock:
            self._blobs.setdefault(desc.digest, data)

    def fetch(self, desc: Descriptor) -> ByteStream:
        """NotFoundError now; IntegrityError at the end when ``desc`` does not describe the stored bytes."""
        with self._lock:
            data = self._blobs.get(desc.digest)
        if data is None:
            raise NotFoundError(f"blob {desc.digest} not found in {self.name}")
        return verified([data], desc, helper_thread=False)  # one chunk: nothing to overlap with

    # -- manifests and names -----------------------------------------------------------------------------------

    def push_manifest(self, manifest: Manifest, tag: str | None = None) -> None:
        """Store the exact bytes (checked against ``manifest.digest``) and list the manifest, tagged or not."""
        if tag is not None:
            _check_tag(tag)
        self.push_blob(_descriptor(manifest), [manifest.raw])
        with self._lock:
            self._manifests.setdefault(manifest.digest, manifest)
            if tag is not None:
                self._tags[tag] = manifest.digest

    def tag(self, manifest: Manifest, tag: str) -> None:
        """Point ``tag`` at ``manifest``, storing it too when it is not yet (as the layout store does)."""
        self.push_manifest(manifest, tag)

    def resolve(self, reference: str) -> Descriptor:
        """A tag, or a digest: a listed manifest, else a manifest pushed as a plain blob."""
        if not is_digest(reference):
            with self._lock:
                digest = self._tags.get(reference)
                manifest = self._manifests.get(digest) if digest is not None else None
            if manifest is None:
                raise NotFoundError(f"tag {reference!r} not found in {self.name}")
            return _descriptor(manifest)
        return _descriptor(self._manifest(reference))

    def fetch_manifest(self, reference: str) -> Manifest:
        return self._manifest(self.resolve(reference).digest)

    def tags(self) -> list[str]:
        with self._lock:
            return sorted(self._tags)

    def _manifest(self, digest: str) -> Manifest:
        with self._lock:
            manifest = self._manifests.get(digest)
            raw = self._blobs.get(digest) if manifest is None else None
        if manifest is not None:
            return manifest
        if raw is None:
            raise NotFoundError(f"manifest {digest} not found in {self.name}")
        if len(raw) > MAX_MANIFEST_BYTES:
            raise UsageError(f"{digest} in {self.name} is {len(raw)} bytes, too large to be a manifest")
        return parse_manifest(raw, digest=digest, source=self.name)

    # -- referrers: listed from the stored manifests' ``subject`` ----------------------------------------------

    def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
        with self._lock:
            stored = list(self._manifests.values())
        listed = [m.descriptor for m in stored if m.subject is not None and m.subject.digest == subject.digest]
        return filter_by_type(listed, artifact_type)

    def push_referrer(self, manifest: Manifest) -> None:
        """Stored is listed: the listing is computed from what is stored."""
        self.push_manifest(manifest)

    def push_referrers(self, subject: Descriptor, manifests: list[Manifest],
                       stored: Collection[str] = ()) -> None:
        for manifest in manifests:
            if manifest.digest not in stored:
                self.push_manifest(manifest)

    # -- delete ------------------------------------------------------------------------------------------------

    def delete(self, desc: Descriptor) -> None:
        """Forget a manifest, its bytes and every tag on it; the blobs it names stay (as in the other stores)."""
        with self._lock:
            listed = self._manifests.pop(desc.digest, None)
            raw = self._blobs.pop(desc.digest, None)
            self._tags = {tag: digest for tag, digest in self._tags.items() if digest != desc.digest}
        if listed is None and raw is None:
            raise NotFoundError(f"manifest {desc.digest} not found in {self.name}")

    # The store lists referrers itself (like a registry with the referrers API): no client-side index to keep.

    def referrers_index(self, subject: Descriptor) -> Descriptor | None:
        return None

    def forget_referrer(self, subject: Descriptor, referrer_digest: str) -> bool:
        return False

    def drop_referrers_index(self, subject: Descriptor) -> bool:
        return False


def _descriptor(manifest: Manifest) -> Descriptor:
    return Descriptor(media_type=manifest.media_type, digest=manifest.digest, size=len(manifest.raw),
                      artifact_type=manifest.artifact_type)


def _check_tag(tag: str) -> None:
    if not tag or any(ch.isspace() for ch in tag):
        raise UsageError(f"invalid tag {tag!r}", hint="a tag is letters, digits, '_', '.' and '-'")


if TYPE_CHECKING:

    def _is_a_target(store: MemoryStore) -> Target:
        """Where mypy checks that the store offers every capability of ``Target``."""
        return store
