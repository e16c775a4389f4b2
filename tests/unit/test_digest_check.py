"""Streams verified while they pass: inline or on the helper thread, the same bytes and the same verdicts."""

from __future__ import annotations

import hashlib
import threading

import pytest

from ci_oras.errors import IntegrityError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.store.digest_check import THREADED_ABOVE, verified

CHUNK = 256 * 1024
SIZE = THREADED_ABOVE + 3 * CHUNK  # large enough for the helper thread


def _chunks(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


@pytest.fixture(scope="module")
def data() -> bytes:
    return bytes(range(256)) * (SIZE // 256)


@pytest.mark.parametrize("helper_thread", [True, False])
def test_good_content_passes_unchanged(data: bytes, helper_thread: bool) -> None:
    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    assert b"".join(verified(_chunks(data), desc, helper_thread=helper_thread)) == data


@pytest.mark.parametrize("helper_thread", [True, False])
def test_altered_content_is_an_integrity_error(data: bytes, helper_thread: bool) -> None:
    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    altered = _chunks(data)
    altered[-1] = bytes([altered[-1][0] ^ 1]) + altered[-1][1:]
    with pytest.raises(IntegrityError):
        b"".join(verified(altered, desc, helper_thread=helper_thread))


def test_without_the_helper_no_thread_is_started(data: bytes) -> None:
    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    seen: set[str] = set()
    for _chunk in verified(_chunks(data), desc, helper_thread=False):
        seen.update(t.name for t in threading.enumerate())
    assert "ci-oras-hash" not in seen
    seen.clear()
    for _chunk in verified(_chunks(data), desc, helper_thread=True):
        seen.update(t.name for t in threading.enumerate())
    assert "ci-oras-hash" in seen
