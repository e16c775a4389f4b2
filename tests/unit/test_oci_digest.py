from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_oras.errors import EXIT_INTEGRITY, IntegrityError, UsageError
from ci_oras.oci.digest import Digest, Verifier, digest_bytes, is_digest, mismatch, verify_bytes


def test_parse_and_compute() -> None:
    data = b"hello"
    digest = digest_bytes(data)
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert Digest.parse(digest).algorithm == "sha256"
    assert is_digest(digest) and not is_digest("sha256:abc")
    assert digest_bytes(data, "sha512").startswith("sha512:")


@pytest.mark.parametrize("text", ["sha256", "sha256:", "sha256:" + "A" * 64, "sha1:" + "a" * 40, "sha256:" + "a" * 63])
def test_invalid_digests(text: str) -> None:
    with pytest.raises(UsageError):
        Digest.parse(text)


def test_streaming_verifier_accepts_exact_content() -> None:
    verifier = Verifier(digest_bytes(b"abcdef"), 6)
    for chunk in (b"ab", b"cd", b"ef"):
        verifier.update(chunk)
    verifier.verify()


@pytest.mark.parametrize(("content", "size"), [(b"abcdeX", 6), (b"abcde", 6), (b"abcdefg", 6)])
def test_streaming_verifier_rejects(content: bytes, size: int) -> None:
    with pytest.raises(IntegrityError) as info:
        verify_bytes(content, digest_bytes(b"abcdef"), size)
    assert info.value.exit_code == EXIT_INTEGRITY


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_mismatch_checks_in_the_expected_algorithm(algorithm: str) -> None:
    data = b'{"schemaVersion":2}'
    expected = digest_bytes(data, algorithm)
    assert mismatch(data, expected) is None
    altered = data.replace(b"2", b"3")
    assert mismatch(altered, expected) == digest_bytes(altered, algorithm)
    assert mismatch(data, "md5:" + "0" * 32) == digest_bytes(data)  # not a digest we accept: never a match


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.one_of(
    st.text(max_size=140),
    st.builds(lambda alg, hex_part: f"{alg}:{hex_part}", st.sampled_from(["sha256", "sha512", "md5", "SHA256"]),
              st.text(alphabet="0123456789abcdefABCDEF=_-", min_size=60, max_size=130)),
    st.builds(lambda alg, size, hex_part: f"{alg}:{hex_part[:size]}", st.sampled_from(["sha256", "sha512"]),
              st.sampled_from([63, 64, 65, 127, 128]), st.text(alphabet="0123456789abcdef", min_size=128,
                                                                max_size=128)),
))
def test_is_digest_says_exactly_what_parse_accepts(text: str) -> None:
    try:
        Digest.parse(text)
    except UsageError:
        accepted = False
    else:
        accepted = True
    assert is_digest(text) is accepted
