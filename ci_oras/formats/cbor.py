"""A small, bounded CBOR decoder (RFC 8949), enough to read a COSE_Sign1 envelope's headers, and the
matching encoder ``ci-oras sign`` uses to write one.

Why not a library: runtime code is stdlib only, and all we need is to look inside a Notary Project COSE
signature for its content type and certificate chain. The input comes from a user's file, so the decoder
is written to be safe on hostile bytes rather than complete:

- every declared length is checked against the bytes that remain *before* anything is allocated, so a
  header claiming 2**64 items costs nothing;
- nesting (arrays, maps and tags) is limited to ``max_depth`` levels, so recursion stays shallow;
- indefinite lengths, reserved additional-information values, unknown simple values, map keys that are
  not integers/strings/bytes, duplicate map keys and trailing bytes are refused.

Every failure is a ``ValueError`` (a short reason); callers turn it into a ``UsageError``.

The encoder writes the shortest (preferred) form of every head and keeps map entries in the order given:
what a signature covers is the exact bytes written once, never a re-encoding, so canonical ordering is not
needed for verification.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeAlias, Union

#: What :func:`decode` returns: the JSON-like data model plus bytes, tags and floats.
CborValue: TypeAlias = Union[
    int, bytes, str, bool, float, None, "Tag", list["CborValue"], dict["CborKey", "CborValue"]
]
#: Map keys we accept: hashable and meaningful in COSE (labels are ints or text).
CborKey: TypeAlias = int | str | bytes

DEFAULT_MAX_DEPTH = 32

_MAJOR_UINT = 0
_MAJOR_NEGINT = 1
_MAJOR_BYTES = 2
_MAJOR_TEXT = 3
_MAJOR_ARRAY = 4
_MAJOR_MAP = 5
_MAJOR_TAG = 6
_MAJOR_SIMPLE = 7

_SIMPLE_VALUES: dict[int, CborValue] = {20: False, 21: True, 22: None, 23: None}


@dataclass(frozen=True)
class Tag:
    """A tagged item (major type 6): COSE_Sign1 arrives as tag 18, signing times as tag 1."""

    number: int
    value: CborValue


class _Reader:
    """A cursor over the input that refuses to read past its end."""

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int) -> bytes:
        if count > self.remaining():
            raise ValueError(f"CBOR item needs {count} bytes at offset {self.pos}, only {self.remaining()} left")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def argument(self, info: int) -> int:
        """The integer that follows the initial byte: inline (<24) or in the next 1, 2, 4 or 8 bytes."""
        if info < 24:
            return info
        if info == 31:
            raise ValueError("indefinite-length CBOR items are not supported")
        if info > 27:
            raise ValueError(f"reserved CBOR additional information {info}")
        return int.from_bytes(self.take(1 << (info - 24)), "big")


def decode(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> CborValue:
    """Decode exactly one CBOR item that spans all of ``data``; raise ``ValueError`` on anything else."""
    reader = _Reader(data, max_depth)
    if reader.remaining() == 0:
        raise ValueError("empty CBOR input")
    value = _item(reader, 0)
    if reader.remaining():
        raise ValueError(f"{reader.remaining()} trailing bytes after the CBOR item")
    return value


def _item(reader: _Reader, depth: int) -> CborValue:
    initial = reader.take(1)[0]
    major, info = initial >> 5, initial & 0x1F
    if major == _MAJOR_SIMPLE:
        return _simple(reader, info)
    argument = reader.argument(info)
    if major == _MAJOR_UINT:
        return argument
    if major == _MAJOR_NEGINT:
        return -1 - argument
    if major == _MAJOR_BYTES:
        return reader.take(argument)
    if major == _MAJOR_TEXT:
        return reader.take(argument).decode("utf-8")  # UnicodeDecodeError is a ValueError
    if depth >= reader.max_depth:
        raise ValueError(f"CBOR nesting deeper than {reader.max_depth} levels")
    if major == _MAJOR_ARRAY:
        return _array(reader, argument, depth + 1)
    if major == _MAJOR_MAP:
        return _map(reader, argument, depth + 1)
    return Tag(argument, _item(reader, depth + 1))


def _array(reader: _Reader, count: int, depth: int) -> list[CborValue]:
    # Each item takes at least one byte: a longer claim is a lie, refused before looping.
    if count > reader.remaining():
        raise ValueError(f"CBOR array claims {count} items but only {reader.remaining()} bytes remain")
    return [_item(reader, depth) for _ in range(count)]


def _map(reader: _Reader, count: int, depth: int) -> dict[CborKey, CborValue]:
    if 2 * count > reader.remaining():
        raise ValueError(f"CBOR map claims {count} entries but only {reader.remaining()} bytes remain")
    result: dict[CborKey, CborValue] = {}
    for _ in range(count):
        key = _item(reader, depth)
        if isinstance(key, bool) or not isinstance(key, (int, str, bytes)):
            # ValueError, not TypeError: the contract is "any bad input is a ValueError".
            raise ValueError(f"unsupported CBOR map key of type {type(key).__name__}")  # noqa: TRY004
        if key in result:
            raise ValueError(f"duplicate CBOR map key {key!r}")
        result[key] = _item(reader, depth)
    return result


def _simple(reader: _Reader, info: int) -> CborValue:
    if info in _SIMPLE_VALUES:
        return _SIMPLE_VALUES[info]
    if info == 25:
        return float(struct.unpack(">e", reader.take(2))[0])
    if info == 26:
        return float(struct.unpack(">f", reader.take(4))[0])
    if info == 27:
        return float(struct.unpack(">d", reader.take(8))[0])
    if info == 31:
        raise ValueError("unexpected CBOR break outside an indefinite-length item")
    raise ValueError(f"unsupported CBOR simple value (additional information {info})")


def encode(value: CborValue) -> bytes:
    """Encode ``value`` (no floats: nothing we sign carries one) in definite-length preferred form."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _head(major: int, argument: int, out: bytearray) -> None:
    if argument < 0 or argument >= 1 << 64:
        raise ValueError(f"CBOR argument {argument} does not fit in 64 bits")
    if argument < 24:
        out.append(major << 5 | argument)
        return
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * width):
            out.append(major << 5 | info)
            out += argument.to_bytes(width, "big")
            return


def _encode(value: CborValue, out: bytearray) -> None:
    if isinstance(value, bool):
        out.append(0xF5 if value else 0xF4)
    elif value is None:
        out.append(0xF6)
    elif isinstance(value, int) and value >= 0:
        _head(_MAJOR_UINT, value, out)
    elif isinstance(value, int):
        _head(_MAJOR_NEGINT, -1 - value, out)
    elif isinstance(value, bytes):
        _head(_MAJOR_BYTES, len(value), out)
        out += value
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(_MAJOR_TEXT, len(raw), out)
        out += raw
    elif isinstance(value, list):
        _head(_MAJOR_ARRAY, len(value), out)
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        _head(_MAJOR_MAP, len(value), out)
        for key, item in value.items():
            _encode(key, out)
            _encode(item, out)
    elif isinstance(value, Tag):
        _head(_MAJOR_TAG, value.number, out)
        _encode(value.value, out)
    else:
        raise ValueError(f"cannot encode {type(value).__name__} as CBOR")
