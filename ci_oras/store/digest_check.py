"""Check a content stream against its descriptor while it passes, hashing large blobs on a second thread.

Hashing inline makes a download cost receive + hash + write one after the other. sha256 releases the GIL, so
a helper thread can hash a batch while the caller receives and writes the next one; with two cores that
nearly doubles pull throughput for big blobs. Small blobs (manifests, configs) are hashed inline: a thread
would cost more than it saves.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable

from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import Verifier
from ci_oras.store.protocols import ByteStream

THREADED_ABOVE = 8 * 1024 * 1024
_BATCH_BYTES = 1024 * 1024
_QUEUE_BATCHES = 8


def verified(chunks: Iterable[bytes], desc: Descriptor, *, helper_thread: bool = True) -> ByteStream:
    """Yield ``chunks`` unchanged; raise IntegrityError at the end when digest or size differ.

    ``helper_thread=False`` hashes inline whatever the size: when other streams already keep the cores busy
    (parallel copies), the helper's hand-offs only cost CPU and a queue of batches per stream."""
    verifier = Verifier(desc.digest, desc.size)
    if desc.size <= THREADED_ABOVE or not helper_thread:
        for chunk in chunks:
            verifier.update(chunk)
            yield chunk
        verifier.verify()
        return
    batches: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=_QUEUE_BATCHES)
    failure: list[BaseException] = []

    def hash_batches() -> None:
        try:
            while (batch := batches.get()) is not None:
                for chunk in batch:
                    verifier.update(chunk)
        except BaseException as exc:  # surfaced to the caller below
            failure.append(exc)
            while batches.get() is not None:  # keep draining so the producer never blocks
                pass

    worker = threading.Thread(target=hash_batches, name="ci-oras-hash", daemon=True)
    worker.start()
    batch: list[bytes] = []
    filled = 0
    try:
        for chunk in chunks:
            batch.append(chunk)
            filled += len(chunk)
            if filled >= _BATCH_BYTES:
                batches.put(batch)
                batch, filled = [], 0
            yield chunk
            if failure:
                raise failure[0]
        if batch:
            batches.put(batch)
    finally:
        batches.put(None)
        worker.join()
    if failure:
        raise failure[0]
    verifier.verify()
