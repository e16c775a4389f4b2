"""Tell which SBOM a file holds, so ``attach-sbom`` types the referrer the way scanners look for it.

Recognised formats, with the referrer's ``artifactType`` and the layer media type (always the same value):

=====================  ===================================  =========================================
format                 how it is recognised                 artifactType = layer media type
=====================  ===================================  =========================================
CycloneDX JSON         object, ``"bomFormat": "CycloneDX"``  ``application/vnd.cyclonedx+json``
                       and a ``"specVersion"``
CycloneDX XML          root ``{http://cyclonedx.org/schema/  ``application/vnd.cyclonedx+xml``
                       bom/1.N}bom``
SPDX 2.x JSON          object, ``"spdxVersion": "SPDX-2.N"``  ``application/spdx+json``
                       and ``"SPDXID": "SPDXRef-DOCUMENT"``
SPDX 2.x tag-value     ``SPDXVersion: SPDX-2.N`` and          ``text/spdx``
                       ``SPDXID: SPDXRef-DOCUMENT`` within
                       the first 200 lines
=====================  ===================================  =========================================

Annotations put on the referrer manifest (a key is left out when the document does not say):

``dev.ci-oras.sbom.format``
    ``cyclonedx`` or ``spdx``: lets ``discover``/``verify`` filter without fetching the blob.
``dev.ci-oras.sbom.spec-version``
    the specification version as the document writes it: ``1.5`` (CycloneDX), ``SPDX-2.3`` (SPDX).
``org.opencontainers.image.created``
    CycloneDX ``metadata.timestamp`` / SPDX ``creationInfo.created`` (``Created:``), only when it is an
    RFC 3339 date-time: the SBOM's own creation time, not the time of the upload.
``dev.ci-oras.sbom.tool``
    the generating tools as ``name@version`` (``name`` alone without a version), comma-separated, in
    document order, at most 16. CycloneDX ``metadata.tools`` is a list (≤1.4) or an object with
    ``components`` and ``services`` (1.5+); SPDX ``Tool: name-version`` creators are split at the last
    ``-`` that starts a version.

Anything else (package.json, SPDX 3 JSON-LD, SPDX RDF, an SPDX document without its ``SPDXRef-DOCUMENT``,
empty, binary, non-UTF-8 files) is refused with a ``UsageError`` naming what was found; ``--artifact-type``
skips detection. Reading is bounded: JSON is parsed whole up to 256 MiB, XML is streamed only as far as
``metadata``, tag-value only through its first 200 lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

from ci_oras.errors import UsageError
from ci_oras.formats import (
    Detected,
    describe_binary,
    describe_json,
    first_significant_byte,
    looks_binary,
    one_line,
    open_input,
    read_bounded,
)
from ci_oras.oci.shape import load_json

CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
CYCLONEDX_XML = "application/vnd.cyclonedx+xml"
SPDX_JSON = "application/spdx+json"
SPDX_TAG_VALUE = "text/spdx"

ANNOTATION_FORMAT = "dev.ci-oras.sbom.format"
ANNOTATION_SPEC_VERSION = "dev.ci-oras.sbom.spec-version"
ANNOTATION_TOOL = "dev.ci-oras.sbom.tool"
ANNOTATION_CREATED = "org.opencontainers.image.created"

#: JSON is parsed whole; past this size that costs too much memory for a CI runner.
JSON_LIMIT = 256 * 1024 * 1024
#: Tag-value documents put their creation info first; 200 lines is plenty and keeps the read bounded.
TAG_VALUE_LINES = 200
TAG_VALUE_HEAD = 1024 * 1024
#: An annotation listing hundreds of tools would bloat every referrers index that lists the SBOM.
MAX_TOOLS = 16

_SNIFF = 64 * 1024
_XML_CHUNK = 64 * 1024
_REFUSE_HINT = "pass --artifact-type to attach it anyway"
_TOO_BIG_HINT = "pass --artifact-type and --media-type to attach it without inspecting it"

_CYCLONEDX_NS = re.compile(r"^\{http://cyclonedx\.org/schema/bom/(\d+\.\d+)\}(.*)$")
_CYCLONEDX_VERSION = re.compile(r"^\d+\.\d+$")
_SPDX2_VERSION = re.compile(r"^SPDX-(2\.\d+)$")
_SPDX_DOCUMENT_ID = "SPDXRef-DOCUMENT"
_SPDX_TOOL = re.compile(r"^(?P<name>.+?)-(?P<version>v?\d[\w.+~-]*)$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def detect_sbom(path: Path) -> Detected:
    """Identify the SBOM in ``path`` or raise ``UsageError`` (exit 2) saying what the file is instead."""
    with open_input(path) as handle:
        head = handle.read(_SNIFF)
        if not head:
            raise _refuse(path, "an empty file")
        if looks_binary(head):
            raise _refuse(path, describe_binary(head))
        first = first_significant_byte(head)
        if not first:
            raise _refuse(path, "only whitespace")
        if first in (b"{", b"["):
            return _detect_json(path, read_bounded(handle, path, JSON_LIMIT, _TOO_BIG_HINT, head))
        if first == b"<":
            return _detect_xml(path, handle, head)
        return _detect_tag_value(path, handle, head)


def _refuse(path: Path, found: str) -> UsageError:
    return UsageError(f"{path} is not a CycloneDX or SPDX SBOM: found {found}", hint=_REFUSE_HINT)


# --- JSON -------------------------------------------------------------------------------------------------


def _detect_json(path: Path, data: bytes) -> Detected:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _refuse(path, "a file that is not valid UTF-8") from None
    document = load_json(text, lambda problem: _refuse(path, one_line(problem)))
    if not isinstance(document, dict):
        raise _refuse(path, describe_json(document))
    if "bomFormat" in document:
        return _cyclonedx_json(path, document)
    if "spdxVersion" in document:
        return _spdx_json(path, document)
    raise _refuse(path, describe_json(document))


def _cyclonedx_json(path: Path, document: dict[str, object]) -> Detected:
    bom_format = document.get("bomFormat")
    if bom_format != "CycloneDX":
        raise _refuse(path, f"a JSON object whose bomFormat is {one_line(repr(bom_format))}, not 'CycloneDX'")
    version = document.get("specVersion")
    if not isinstance(version, str) or not _CYCLONEDX_VERSION.match(version):
        raise _refuse(path, f"a CycloneDX document without a valid specVersion ({one_line(repr(version))})")
    metadata = _object(document.get("metadata"))
    tools = _cyclonedx_json_tools(metadata.get("tools"))
    return Detected(
        artifact_type=CYCLONEDX_JSON,
        media_type=CYCLONEDX_JSON,
        annotations=_annotations("cyclonedx", version, metadata.get("timestamp"), tools),
        format=f"CycloneDX {version} JSON",
    )


def _cyclonedx_json_tools(tools: object) -> list[str]:
    """``name@version`` of each tool, whichever of the two shapes CycloneDX has used for ``metadata.tools``."""
    if isinstance(tools, list):  # 1.2–1.4 (deprecated, still valid, in 1.5+): [{vendor, name, version}]
        entries: list[object] = tools
    elif isinstance(tools, dict):  # 1.5+: {components: [...], services: [...]}
        entries = _list(tools.get("components")) + _list(tools.get("services"))
    else:
        return []
    return [
        _tool_label(entry.get("name"), entry.get("version")) for entry in entries if isinstance(entry, dict)
    ]


def _spdx_json(path: Path, document: dict[str, object]) -> Detected:
    spdx_version = document.get("spdxVersion")
    version = _spdx2_version(path, spdx_version)
    if document.get("SPDXID") != _SPDX_DOCUMENT_ID:
        raise _refuse(path, f"an SPDX {version} JSON document without \"SPDXID\": \"{_SPDX_DOCUMENT_ID}\"")
    creation = _object(document.get("creationInfo"))
    creators = [creator for creator in _list(creation.get("creators")) if isinstance(creator, str)]
    return Detected(
        artifact_type=SPDX_JSON,
        media_type=SPDX_JSON,
        annotations=_annotations("spdx", f"SPDX-{version}", creation.get("created"), _spdx_tools(creators)),
        format=f"SPDX {version} JSON",
    )


def _spdx2_version(path: Path, spdx_version: object) -> str:
    """The ``2.N`` of ``SPDX-2.N``; SPDX 3 (JSON-LD) is a different model and is refused by name."""
    match = _SPDX2_VERSION.match(spdx_version) if isinstance(spdx_version, str) else None
    if match is None:
        raise _refuse(path, f"an SPDX version ci-oras does not read ({one_line(repr(spdx_version))})")
    return match.group(1)


# --- XML --------------------------------------------------------------------------------------------------


class _StopParsing(Exception):
    """Raised from the parser target once we have what we need: the rest of a large BOM is never read."""


class _NotCycloneDX(Exception):
    """The root element, or a DTD, says this is not a CycloneDX BOM."""

    def __init__(self, found: str) -> None:
        super().__init__(found)
        self.found = found


class _CycloneDXHead:
    """ElementTree parser target reading the root element and ``metadata`` of a CycloneDX XML BOM.

    A target instead of a tree: nothing is kept but the few values we want, the parse stops as soon as
    ``metadata`` ends (it is the first child by the schema), and a DOCTYPE is refused outright, so entity
    tricks never get a chance; CycloneDX documents never carry one.
    """

    def __init__(self) -> None:
        self.version: str | None = None
        self.timestamp: str | None = None
        self.tools: list[str] = []
        self._path: list[str] = []  # local names below the root, e.g. ["metadata", "tools", "tool"]
        self._text: list[str] = []
        self._tool: dict[str, str] = {}
        self._namespace = ""  # "{http://cyclonedx.org/schema/bom/1.N}", known once the root is seen

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _NotCycloneDX(f"an XML document with a DOCTYPE declaration ({name})")

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if self.version is None:
            self._root(tag)
            return
        local = self._local(tag)
        if not self._path and local != "metadata":
            raise _StopParsing  # metadata comes first or not at all
        self._path.append(local)
        self._text = []
        if self._is_tool_entry():
            self._tool = {}

    def end(self, tag: str) -> None:
        if not self._path:
            return  # the root itself closed
        text = "".join(self._text).strip()
        path = self._path
        if path == ["metadata", "timestamp"]:
            self.timestamp = text
        elif len(path) >= 2 and self._is_tool_entry(path[:-1]) and path[-1] in ("name", "version"):
            self._tool[path[-1]] = text
        elif self._is_tool_entry():
            self.tools.append(_tool_label(self._tool.get("name"), self._tool.get("version")))
        path.pop()
        self._text = []
        if not path:
            raise _StopParsing  # metadata ended

    def data(self, text: str) -> None:
        self._text.append(text)

    def close(self) -> None:
        return None

    def _root(self, tag: str) -> None:
        match = _CYCLONEDX_NS.match(tag)
        if match is None or match.group(2) != "bom":
            raise _NotCycloneDX(f"an XML document with root element <{tag}>")
        self.version = match.group(1)
        self._namespace = tag[: tag.index("}") + 1]

    def _local(self, tag: str) -> str:
        """Local name of an element in the BOM's namespace; foreign elements get a name that matches nothing."""
        return tag[len(self._namespace):] if tag.startswith(self._namespace) else "\0" + tag

    def _is_tool_entry(self, path: list[str] | None = None) -> bool:
        """metadata/tools/tool (≤1.4) or metadata/tools/components/component, …/services/service (1.5+)."""
        path = self._path if path is None else path
        return path in (
            ["metadata", "tools", "tool"],
            ["metadata", "tools", "components", "component"],
            ["metadata", "tools", "services", "service"],
        )


def _detect_xml(path: Path, handle: BinaryIO, head: bytes) -> Detected:
    reader = _CycloneDXHead()
    parser = ElementTree.XMLParser(target=reader)
    try:
        for chunk in _chunks(head, handle):
            parser.feed(chunk)
        parser.close()
    except _StopParsing:
        pass
    except _NotCycloneDX as exc:
        raise _refuse(path, exc.found) from None
    except ElementTree.ParseError as exc:  # in the part we read; the rest is never looked at
        raise _refuse(path, f"XML that is not well-formed ({one_line(str(exc))})") from None
    except (LookupError, ValueError) as exc:  # an XML declaration naming an encoding expat cannot read
        raise _refuse(path, f"XML in an encoding that cannot be read ({one_line(str(exc))})") from None
    if reader.version is None:
        raise _refuse(path, "an XML document without a root element")
    return Detected(
        artifact_type=CYCLONEDX_XML,
        media_type=CYCLONEDX_XML,
        annotations=_annotations("cyclonedx", reader.version, reader.timestamp, reader.tools),
        format=f"CycloneDX {reader.version} XML",
    )


def _chunks(head: bytes, handle: BinaryIO) -> Iterator[bytes]:
    yield head
    while chunk := handle.read(_XML_CHUNK):
        yield chunk


# --- SPDX tag-value ---------------------------------------------------------------------------------------


def _detect_tag_value(path: Path, handle: BinaryIO, head: bytes) -> Detected:
    lines = _head_lines(path, handle, head)
    fields = [_tag_value_field(line) for line in lines]
    version_field = next((value for key, value in fields if key == "SPDXVersion"), None)
    if version_field is None:
        raise _refuse(path, "text that is neither JSON, XML nor SPDX tag-value")
    version = _spdx2_version(path, version_field)
    if not any(key == "SPDXID" and value == _SPDX_DOCUMENT_ID for key, value in fields):
        raise _refuse(
            path, f"SPDX {version} tag-value without SPDXID: {_SPDX_DOCUMENT_ID} in its first {TAG_VALUE_LINES} lines"
        )
    created = next((value for key, value in fields if key == "Created"), None)
    creators = [value for key, value in fields if key == "Creator"]
    return Detected(
        artifact_type=SPDX_TAG_VALUE,
        media_type=SPDX_TAG_VALUE,
        annotations=_annotations("spdx", f"SPDX-{version}", created, _spdx_tools(creators)),
        format=f"SPDX {version} tag-value",
    )


def _head_lines(path: Path, handle: BinaryIO, head: bytes) -> list[str]:
    """The first ``TAG_VALUE_LINES`` lines, reading at most ``TAG_VALUE_HEAD`` bytes; strict UTF-8."""
    data = head + handle.read(max(0, TAG_VALUE_HEAD - len(head)))
    if len(data) >= TAG_VALUE_HEAD and b"\n" in data:
        data = data[: data.rindex(b"\n")]  # never cut a multi-byte character in half
    if looks_binary(data):
        raise _refuse(path, describe_binary(data))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _refuse(path, "a file that is not valid UTF-8") from None
    return text.splitlines()[:TAG_VALUE_LINES]


def _tag_value_field(line: str) -> tuple[str, str]:
    key, separator, value = line.partition(":")
    return (key.strip(), value.strip()) if separator else ("", "")


def _spdx_tools(creators: Iterable[str]) -> list[str]:
    """``Tool: syft-1.0.0`` → ``syft@1.0.0``; SPDX writes tools as ``name-version``, not as two fields."""
    tools = []
    for creator in creators:
        kind, _, identity = creator.partition(":")
        if kind.strip() != "Tool" or not identity.strip():
            continue
        match = _SPDX_TOOL.match(identity.strip())
        tools.append(_tool_label(match["name"], match["version"]) if match else identity.strip())
    return tools


# --- shared -----------------------------------------------------------------------------------------------


def _annotations(sbom_format: str, spec_version: str, created: object, tools: list[str]) -> dict[str, str]:
    annotations = {ANNOTATION_FORMAT: sbom_format, ANNOTATION_SPEC_VERSION: spec_version}
    if isinstance(created, str) and _RFC3339.match(created.strip()):
        annotations[ANNOTATION_CREATED] = created.strip()
    labels = list(dict.fromkeys(label for label in tools if label))[:MAX_TOOLS]
    if labels:
        annotations[ANNOTATION_TOOL] = ",".join(labels)
    return annotations


def _tool_label(name: object, version: object) -> str:
    """``name@version``, or ``name`` alone; empty when the tool has no usable name."""
    if not isinstance(name, str) or not name.strip():
        return ""
    if isinstance(version, str) and version.strip():
        return f"{name.strip()}@{version.strip()}"
    return name.strip()


def _object(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
