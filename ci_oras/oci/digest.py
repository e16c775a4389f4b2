"""Content digests: parse, compute (also incrementally, while streaming) and verify."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ci_oras.errors import IntegrityError, UsageError

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(?P<alg>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True)
class Digest:
    """A validated ``algorithm:hex`` digest. Only sha256 and sha512 are accepted, as registries do."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        parts = _split(text)
        if isinstance(parts, UsageError):
            raise parts
        return cls(*parts)


def _split(text: str) -> tuple[str, str] | UsageError:
    """(algorithm, hex) of a valid digest, else the error naming what is wrong, returned, not raised:
    ``is_digest`` asks this of every tag on the request path, where raising and catching would cost."""
    match = _DIGEST_RE.match(text)
    if not match:
        return UsageError(f"invalid digest {text!r}", hint="expected sha256:<64 hex characters>")
    algorithm, hex_part = match.group("alg"), match.group("hex")
    expected = _HEX_LENGTH.get(algorithm)
    if expected is None:
        return UsageError(f"unsupported digest algorithm in {text!r}", hint="use sha256 or sha512")
    if len(hex_part) != expected or not re.fullmatch(r"[0-9a-f]+", hex_part):
        return UsageError(f"invalid digest {text!r}", hint=f"{algorithm} needs {expected} lowercase hex characters")
    return algorithm, hex_part


def is_digest(text: str) -> bool:
    """What ``Digest.parse`` accepts, without raising."""
    return not isinstance(_split(text), UsageError)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def mismatch(data: bytes, expected: str) -> str | None:
    """The digest of ``data`` in ``expected``'s algorithm when it differs from ``expected``, else None.

    A reference or header may use sha512 as well as sha256; checking only sha256 would let any content
    through under a sha512 name. An expected value that is not a valid digest never matches.
    """
    try:
        parsed = Digest.parse(expected)
    except UsageError:
        return digest_bytes(data)
    actual = digest_bytes(data, parsed.algorithm)
    return None if actual == str(parsed) else actual


class Verifier:
    """Hashes content as it streams past and checks it against the expected digest and size at the end.

    Streaming verification lets a multi-gigabyte blob be checked without holding it in memory.
    """

    def __init__(self, expected_digest: str, expected_size: int | None = None) -> None:
        parsed = Digest.parse(expected_digest)
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self._hash = hashlib.new(parsed.algorithm)
        self._algorithm = parsed.algorithm
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise IntegrityError(
                f"content for {self.expected_digest} is larger than the expected {self.expected_size} bytes",
                hint="the source is corrupt or the descriptor is wrong",
            )

    @property
    def digest(self) -> str:
        return f"{self._algorithm}:{self._hash.hexdigest()}"

    def verify(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise IntegrityError(
                f"size mismatch for {self.expected_digest}: expected {self.expected_size} bytes, got {self.size}",
                hint="the source is corrupt or the descriptor is wrong",
            )
        actual = self.digest
        if actual != self.expected_digest:
            raise IntegrityError(
                f"digest mismatch: expected {self.expected_digest}, got {actual}",
                hint="the content was corrupted or tampered with; do not use it",
            )


def verify_bytes(data: bytes, expected_digest: str, expected_size: int | None = None) -> None:
    verifier = Verifier(expected_digest, expected_size)
    verifier.update(data)
    verifier.verify()
