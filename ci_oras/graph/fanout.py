"""One source read once for several copies: ``promote SRC DST1 DST2 …`` reads each blob of SRC one time.

The copies to the destinations run side by side, each its own walk and its own uploads (``copy_graph``); they
share one :class:`SharedSource`, which answers the same question once:

- a blob is streamed from the source to the first copy that needs it and, as it passes, written to a spool
  file; the file is kept only once the source's stream ended with its digest verified, so every other copy
  reads exactly the bytes that were checked. A copy asking while the first one still streams waits for it
  (one lock per digest), then reads the file. A stream that breaks off leaves no file: the next copy to ask
  reads the source again.
- a manifest by digest, a referrers listing and the tag schema's listed subjects are read once and kept
  (manifests are immutable by digest; one listing for all copies also means every destination gets the same
  graph, not one that changed between two reads).

The spool lives in a temporary directory (``$TMPDIR``) for the length of the promote: it needs free space for
the blobs of the graph that at least one destination lacks. Blobs a destination mounts (same registry) or
already has are never fetched, so never spooled.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Container
from pathlib import Path
from typing import TypeVar

from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import is_digest
from ci_oras.oci.manifest import Manifest
from ci_oras.store.protocols import ByteStream, ListedSubjects, ReadOnlyTarget

#: Bytes read from a spool file at a time (what a copy's upload takes per chunk anyway).
SPOOL_READ_BYTES = 1024 * 1024

_T = TypeVar("_T")


class _Once:
    """Each key's value computed once, by whichever thread asks first; the others wait for it. A failure is
    not kept: the next caller tries again (a transient error must not fail every destination)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[object, threading.Lock] = {}
        self._values: dict[object, object] = {}

    def lock(self, key: object) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: object, compute: Callable[[], _T]) -> _T:
        with self.lock(key):
            if key in self._values:
                return self._values[key]  # type: ignore[return-value]  # stored by this same call below
            value = compute()
            self._values[key] = value
            return value


class SharedSource:
    """A ``ReadOnlyTarget`` over ``source`` for several concurrent copies (module docstring); ``spool`` is an
    empty directory this object may fill."""

    def __init__(self, source: ReadOnlyTarget, spool: Path) -> None:
        self._source = source
        self._spool = spool
        self._once = _Once()
        self._counter = threading.Lock()
        #: Blobs streamed from the source, and their bytes: each at most once unless a stream broke off.
        self.blobs_read = 0
        self.bytes_read = 0

    def resolve(self, reference: str) -> Descriptor:
        return self._source.resolve(reference)

    def fetch_manifest(self, reference: str) -> Manifest:
        if not is_digest(reference):
            return self._source.fetch_manifest(reference)  # a tag may move: asked each time
        return self._once.get(("manifest", reference), lambda: self._source.fetch_manifest(reference))

    def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
        listed = self._once.get(("referrers", subject.digest, artifact_type),
                                lambda: tuple(self._source.referrers(subject, artifact_type)))
        return list(listed)

    def listed_subjects(self, max_requests: int) -> Container[str] | None:
        """The source's snapshot, read once for every copy; None when the source cannot tell that way."""
        source = self._source
        if not isinstance(source, ListedSubjects):
            return None
        return self._once.get(("listed-subjects",), lambda: source.listed_subjects(max_requests))

    def fetch(self, desc: Descriptor) -> ByteStream:
        if desc.is_manifest:
            return self._source.fetch(desc)
        return self._spooled(desc)

    def _spooled(self, desc: Descriptor) -> ByteStream:
        path = self._spool / desc.digest.replace(":", "-")
        with self._once.lock(("blob", desc.digest)):
            if not path.exists():
                yield from self._read_through(desc, path)
                return
        yield from _read_file(path)

    def _read_through(self, desc: Descriptor, path: Path) -> ByteStream:
        """Stream from the source, writing the spool file on the way; keep it once the stream ended verified."""
        partial = path.with_name(path.name + ".part")
        stream = self._source.fetch(desc)
        try:
            with open(partial, "wb") as out:
                for chunk in stream:
                    out.write(chunk)
                    yield chunk
            os.replace(partial, path)
        finally:
            stream.close()
            partial.unlink(missing_ok=True)
        with self._counter:
            self.blobs_read += 1
            self.bytes_read += desc.size


def _read_file(path: Path) -> ByteStream:
    with open(path, "rb") as spooled:
        while chunk := spooled.read(SPOOL_READ_BYTES):
            yield chunk
