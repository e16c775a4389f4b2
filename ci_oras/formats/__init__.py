"""Content detection for ``attach-sbom`` and ``attach-signature``.

A user hands ci-oras a file; these modules say what it is so the referrer manifest gets the artifact type,
layer media type and annotations that other tools (oras, notation, cosign, Trivy, …) look for, without the
user spelling them out. Detection is deliberately strict: a file we cannot positively identify is refused
with a ``UsageError`` (exit 2) naming what was found, because attaching a package.json as an "SBOM" would pass
a CI gate that should have failed. Users who know better skip detection with explicit flags (the CLI's job).

- :mod:`ci_oras.formats.sbom` — :func:`~ci_oras.formats.sbom.detect_sbom` (CycloneDX, SPDX)
- :mod:`ci_oras.formats.signature` — :func:`~ci_oras.formats.signature.detect_signature` (Notary Project
  JWS/COSE, Sigstore bundles)

Everything here is stdlib only and reads bounded amounts of the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ci_oras.errors import UsageError


@dataclass(frozen=True)
class Detected:
    """What a detector found, ready to become a referrer manifest with one layer (shared by both detectors)."""

    #: The referrer manifest's ``artifactType``.
    artifact_type: str
    #: The media type of the single layer holding the file's bytes.
    media_type: str
    #: Annotations to put on the referrer manifest (so they show in the referrers index).
    annotations: dict[str, str]
    #: A human name for messages, e.g. ``"CycloneDX 1.5 JSON"`` or ``"Notary Project JWS signature"``.
    format: str


def open_input(path: Path) -> BinaryIO:
    """Open a user's file for reading, turning OS errors into a one-line ``UsageError``."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory", hint="pass the path of a single file")
    try:
        return path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def file_size(handle: BinaryIO) -> int:
    """Size of an open file: ``fstat`` so a path swapped after opening cannot mislead the limit check."""
    return os.fstat(handle.fileno()).st_size


def read_bounded(handle: BinaryIO, path: Path, limit: int, hint: str, head: bytes = b"") -> bytes:
    """Return ``head`` (bytes already read) plus the rest of the file, refusing files over ``limit`` bytes.

    The size is checked up front so a huge file is refused before it is read, and at most ``limit + 1``
    bytes are read as well, so a file growing while we read (a pipe, process substitution) cannot slip past.
    Never seeks: the input may be a pipe.
    """
    too_big = UsageError(f"{path} is larger than {limit // (1024 * 1024)} MiB, too large to inspect", hint=hint)
    if file_size(handle) > limit or len(head) > limit:
        raise too_big
    data = head + handle.read(limit + 1 - len(head))
    if len(data) > limit:
        raise too_big
    return data


def describe_json(value: object) -> str:
    """Name a JSON value for a refusal message: its type, and an object's first keys."""
    if isinstance(value, dict):
        keys = list(value)[:5]
        if not keys:
            return "an empty JSON object"
        more = ", …" if len(value) > len(keys) else ""
        return "a JSON object with keys " + ", ".join(str(key) for key in keys) + more
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    if value is None:
        return "the JSON literal null"
    if isinstance(value, bool):
        return f"the JSON literal {'true' if value else 'false'}"
    return "a JSON number"


def looks_binary(head: bytes) -> bool:
    """True when the first bytes hold a NUL: no text format we accept contains one."""
    return b"\x00" in head


_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_JSON_WHITESPACE = b" \t\r\n"


def first_significant_byte(head: bytes) -> bytes:
    """The first byte after an optional UTF-8 BOM and whitespace (empty if none): tells JSON, XML, text apart."""
    return head.removeprefix(_UTF8_BOM).lstrip(_JSON_WHITESPACE)[:1]


def describe_binary(head: bytes) -> str:
    """Name bytes that are not UTF-8 text; UTF-16 gets its own words since PowerShell 5 writes it by default."""
    if head.startswith(_UTF16_BOMS):
        return "UTF-16 text (save it as UTF-8)"
    return "binary data"


def one_line(text: str, limit: int = 200) -> str:
    """Squash a parser's message onto one short line: refusals are one line by contract."""
    squashed = " ".join(text.split())
    return squashed if len(squashed) <= limit else squashed[: limit - 1] + "…"
