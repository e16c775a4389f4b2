"""Blob downloads verified while they pass: a hashing helper thread only for a download running alone."""

from __future__ import annotations

import os
import threading

import httpx
from harness.oci import push_blob
from harness.registry import RunningRegistry

from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.reference import parse_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.store.digest_check import THREADED_ABOVE
from ci_oras.store.registry import RegistryRepository


def _helpers() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "ci-oras-hash")


def test_parallel_downloads_hash_inline_and_still_verify(registry_plain: RunningRegistry, unique_repo: str) -> None:
    blobs = [os.urandom(THREADED_ABOVE + 1024) for _ in range(2)]
    with httpx.Client(timeout=60) as client:
        digests = [push_blob(client, registry_plain.url, unique_repo, blob) for blob in blobs]
    run = Runtime(TransportOptions(), LoginFlags(), {})
    try:
        reference = parse_reference(f"{registry_plain.host}/{unique_repo}")
        repo = RegistryRepository(reference, run.session.client_for(reference))
        descs = [Descriptor("application/octet-stream", d, len(b)) for d, b in zip(digests, blobs)]
        first, second = (iter(repo.fetch(desc)) for desc in descs)
        received = [[next(first)], [next(second)]]  # both downloads running
        assert _helpers() == 1, "only the download that started alone gets a hashing thread"
        received[0].extend(first)
        received[1].extend(second)
        assert [b"".join(parts) for parts in received] == blobs
        assert _helpers() == 0
        third = iter(repo.fetch(descs[1]))  # alone again: hashed on the helper
        alone = [next(third)]
        assert _helpers() == 1
        assert b"".join(alone + list(third)) == blobs[1]
    finally:
        run.close()
