"""``graph/fanout.SharedSource``: a blob read once for every copy, only verified bytes kept, a broken stream
read again, never a spool file half-written."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from ci_oras.errors import IntegrityError
from ci_oras.graph.fanout import SharedSource
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.manifest import Manifest
from ci_oras.store.layout import OCILayout
from ci_oras.store.protocols import ByteStream

BLOB = bytes(range(256)) * 20_000  # 5 MB: several chunks


class CountingLayout(OCILayout):
    """A layout that counts blob reads, and can be told to serve the next one corrupted."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, create=True)
        self.reads: Counter[str] = Counter()
        self.corrupt_next = False
        self._counting = threading.Lock()

    def fetch(self, desc: Descriptor) -> ByteStream:
        with self._counting:
            self.reads[desc.digest] += 1
            corrupt, self.corrupt_next = self.corrupt_next, False
        if not corrupt:
            return super().fetch(desc)
        return _corrupted(super().fetch(desc), desc)


def _corrupted(stream: ByteStream, desc: Descriptor) -> ByteStream:
    for chunk in stream:
        yield chunk[:-1] + b"!"  # every chunk altered: the digest check at the end must refuse it
    raise IntegrityError(f"{desc.digest}: content does not match its digest")


@pytest.fixture
def source(tmp_path: Path) -> tuple[CountingLayout, Descriptor]:
    layout = CountingLayout(tmp_path / "source")
    desc = Descriptor(mediatypes.OCI_LAYER_TAR, digest_bytes(BLOB), len(BLOB))
    layout.push_blob(desc, [BLOB])
    return layout, desc


def test_many_readers_at_once_read_the_source_once_and_all_get_the_blob(
        source: tuple[CountingLayout, Descriptor], tmp_path: Path) -> None:
    layout, desc = source
    shared = SharedSource(layout, tmp_path / "spool")
    (tmp_path / "spool").mkdir()
    results: list[bytes] = []
    start = threading.Barrier(6)

    def read() -> None:
        start.wait()
        results.append(b"".join(shared.fetch(desc)))

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [BLOB] * 6
    assert layout.reads[desc.digest] == 1 and shared.blobs_read == 1 and shared.bytes_read == len(BLOB)


def test_a_stream_broken_off_or_refused_keeps_nothing_and_the_next_reader_reads_again(
        source: tuple[CountingLayout, Descriptor], tmp_path: Path) -> None:
    layout, desc = source
    spool = tmp_path / "spool"
    spool.mkdir()
    shared = SharedSource(layout, spool)

    stream = shared.fetch(desc)
    next(stream)  # an upload that failed after its first chunk
    stream.close()
    assert list(spool.iterdir()) == [], "no partial file kept"

    layout.corrupt_next = True
    with pytest.raises(IntegrityError):
        b"".join(shared.fetch(desc))
    assert list(spool.iterdir()) == [], "bytes that failed their digest are never replayed"

    assert b"".join(shared.fetch(desc)) == BLOB
    assert b"".join(shared.fetch(desc)) == BLOB
    assert layout.reads[desc.digest] == 3 and shared.blobs_read == 1


def test_manifests_and_listings_are_read_once_tags_every_time(tmp_path: Path) -> None:
    from ci_oras.oci.manifest import build_image_manifest
    from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, EMPTY_JSON

    layout = OCILayout(tmp_path / "source", create=True)
    layout.push_blob(EMPTY_DESCRIPTOR, [EMPTY_JSON])
    manifest = build_image_manifest(artifact_type="application/vnd.example", config=EMPTY_DESCRIPTOR, layers=[])
    layout.push_manifest(manifest, "v1")
    calls: Counter[str] = Counter()

    class Counting:
        """Forwards to the layout, counting what the shared source asks (not the layout's own inner calls)."""

        def resolve(self, reference: str) -> Descriptor:
            return layout.resolve(reference)

        def fetch(self, desc: Descriptor) -> ByteStream:
            return layout.fetch(desc)

        def fetch_manifest(self, reference: str) -> Manifest:
            calls[f"manifest {reference}"] += 1
            return layout.fetch_manifest(reference)

        def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
            calls["referrers"] += 1
            return layout.referrers(subject, artifact_type)

    shared = SharedSource(Counting(), tmp_path)
    for _ in range(3):
        assert shared.fetch_manifest(manifest.digest).digest == manifest.digest
        assert shared.referrers(manifest.descriptor) == []
    assert calls == {f"manifest {manifest.digest}": 1, "referrers": 1}
    for _ in range(3):
        assert shared.fetch_manifest("v1").digest == manifest.digest
    assert calls["manifest v1"] == 3, "a tag may move: asked each time"
