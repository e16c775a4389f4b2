"""SBOM detection for attach-sbom: realistic CycloneDX/SPDX documents are typed; anything else is refused (exit 2)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from samples import make_samples as samples

from ci_oras.errors import EXIT_USAGE, UsageError
from ci_oras.formats import Detected
from ci_oras.formats.sbom import JSON_LIMIT, TAG_VALUE_LINES, detect_sbom

FORMAT = "dev.ci-oras.sbom.format"
SPEC = "dev.ci-oras.sbom.spec-version"
TOOL = "dev.ci-oras.sbom.tool"
CREATED = "org.opencontainers.image.created"
REFUSE_HINT = "pass --artifact-type to attach it anyway"


def write(tmp_path: Path, data: bytes, name: str = "sbom") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path) -> UsageError:
    with pytest.raises(UsageError) as caught:
        detect_sbom(path)
    error = caught.value
    assert error.exit_code == EXIT_USAGE
    assert "\n" not in str(error), "refusals are one line"
    return error


# --- CycloneDX JSON ---------------------------------------------------------------------------------------


#: CycloneDX versions and the tools annotation their samples carry: 1.4 lists metadata.tools, 1.5 and 1.6
#: have them as {components, services}.
CYCLONEDX_VERSIONS = pytest.mark.parametrize(
    ("version", "tools"),
    [
        ("1.4", "syft@0.98.0,cyclonedx-go@0.7.2"),
        ("1.5", "syft@1.4.1,sbom-enricher@2.0"),
        ("1.6", "syft@1.4.1,sbom-enricher@2.0"),
    ],
)


def cyclonedx(encoding: str, version: str, tools: str) -> Detected:
    """What detecting a CycloneDX sample in ``encoding`` (``json``, ``xml``) must find."""
    return Detected(
        artifact_type=f"application/vnd.cyclonedx+{encoding}",
        media_type=f"application/vnd.cyclonedx+{encoding}",
        annotations={FORMAT: "cyclonedx", SPEC: version, CREATED: samples.CREATED, TOOL: tools},
        format=f"CycloneDX {version} {encoding.upper()}",
    )


@CYCLONEDX_VERSIONS
def test_cyclonedx_json(tmp_path: Path, version: str, tools: str) -> None:
    detected = detect_sbom(write(tmp_path, samples.cyclonedx_json(version), "bom.cdx.json"))
    assert detected == cyclonedx("json", version, tools)


def test_cyclonedx_vex_only_document_is_still_cyclonedx(tmp_path: Path) -> None:
    detected = detect_sbom(write(tmp_path, samples.cyclonedx_vex_json()))
    assert detected.artifact_type == "application/vnd.cyclonedx+json"
    assert detected.format == "CycloneDX 1.6 JSON"
    assert TOOL not in detected.annotations


def test_cyclonedx_without_tools_or_timestamp_leaves_those_keys_out(tmp_path: Path) -> None:
    detected = detect_sbom(write(tmp_path, samples.cyclonedx_json("1.5", tools=None, timestamp=None)))
    assert detected.annotations == {FORMAT: "cyclonedx", SPEC: "1.5"}


def test_cyclonedx_timestamp_that_is_not_rfc3339_is_left_out(tmp_path: Path) -> None:
    detected = detect_sbom(write(tmp_path, samples.cyclonedx_json("1.5", timestamp="yesterday")))
    assert CREATED not in detected.annotations


def test_cyclonedx_tools_without_version_or_name(tmp_path: Path) -> None:
    tools = {"components": [{"type": "application", "name": "trivy"}, {"type": "application", "version": "1"}],
             "services": "not a list"}
    detected = detect_sbom(write(tmp_path, samples.cyclonedx_json("1.5", tools=tools)))
    assert detected.annotations[TOOL] == "trivy"


def test_tool_list_is_deduplicated_and_bounded(tmp_path: Path) -> None:
    tools = [{"name": "syft", "version": "1"}] * 3 + [{"name": f"t{i}", "version": "1"} for i in range(40)]
    detected = detect_sbom(write(tmp_path, samples.cyclonedx_json("1.4", tools=tools)))
    labels = detected.annotations[TOOL].split(",")
    assert labels[0] == "syft@1" and labels.count("syft@1") == 1
    assert len(labels) == 16


def test_cyclonedx_with_utf8_bom_and_leading_whitespace(tmp_path: Path) -> None:
    detected = detect_sbom(write(tmp_path, b"\xef\xbb\xbf\n  " + samples.cyclonedx_json("1.5")))
    assert detected.format == "CycloneDX 1.5 JSON"


def test_large_cyclonedx_json(tmp_path: Path) -> None:
    """Tens of MB are normal for an image SBOM; JSON under the limit is parsed whole."""
    document = json.loads(samples.cyclonedx_json("1.5"))
    component = document["components"][0]
    document["components"] = [dict(component, name=f"pkg{i}", purl=f"pkg:pypi/pkg{i}@1.0") for i in range(40_000)]
    path = write(tmp_path, json.dumps(document).encode())
    assert path.stat().st_size > 10 * 1024 * 1024
    assert detect_sbom(path).format == "CycloneDX 1.5 JSON"


def test_json_over_the_limit_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.write(b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "padding": "' + b" " * 100_000)
        handle.truncate(JSON_LIMIT + 1)  # sparse: costs no disk
    error = refused(path)
    assert "256 MiB" in error.message
    assert "--artifact-type" in (error.hint or "") and "--media-type" in (error.hint or "")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_reads_from_a_pipe(tmp_path: Path) -> None:
    """``attach-sbom <(syft ...)`` hands us a pipe: detection must not seek."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = samples.spdx_json()
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    try:
        assert detect_sbom(fifo).format == "SPDX 2.3 JSON"
    finally:
        writer.join(timeout=10)


# --- CycloneDX XML ----------------------------------------------------------------------------------------


@CYCLONEDX_VERSIONS
def test_cyclonedx_xml(tmp_path: Path, version: str, tools: str) -> None:
    detected = detect_sbom(write(tmp_path, samples.cyclonedx_xml(version), "bom.cdx.xml"))
    assert detected == cyclonedx("xml", version, tools)


def test_cyclonedx_xml_stops_after_metadata(tmp_path: Path) -> None:
    """Everything after metadata is never parsed: a broken tail (or a 100 MB one) costs nothing."""
    document = samples.cyclonedx_xml("1.5")
    cut = document.rindex(b"<components>") + len(b"<components>")  # the BOM's, not metadata/tools'

    path = write(tmp_path, document[:cut] + b"<component <<< not xml at all" + b"x" * 1_000_000)
    assert detect_sbom(path).annotations[TOOL] == "syft@1.4.1,sbom-enricher@2.0"


def test_cyclonedx_xml_broken_inside_metadata_is_refused(tmp_path: Path) -> None:
    document = samples.cyclonedx_xml("1.5")
    cut = document.index(b"<services>")
    assert "not well-formed" in refused(write(tmp_path, document[:cut] + b"<<<")).message
    assert "not well-formed" in refused(write(tmp_path, document[:cut])).message  # truncated


def test_cyclonedx_xml_without_metadata(tmp_path: Path) -> None:
    path = write(tmp_path, b'<bom xmlns="http://cyclonedx.org/schema/bom/1.3" version="1"><components/></bom>')
    assert detect_sbom(path).annotations == {FORMAT: "cyclonedx", SPEC: "1.3"}


def test_cyclonedx_xml_empty_bom(tmp_path: Path) -> None:
    path = write(tmp_path, b'<?xml version="1.0"?>\n<bom xmlns="http://cyclonedx.org/schema/bom/1.5"/>')
    assert detect_sbom(path).format == "CycloneDX 1.5 XML"


def test_xml_with_a_doctype_is_refused_before_entities_expand(tmp_path: Path) -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE bom [<!ENTITY a "aaaaaaaaaa">'
              + b"".join(b'<!ENTITY a%d "%s">' % (i, (b"&a%d;" % (i - 1) if i else b"&a;") * 10) for i in range(9))
              + b']><bom xmlns="http://cyclonedx.org/schema/bom/1.5"><metadata><timestamp>&a8;</timestamp>'
              b"</metadata></bom>")
    assert "DOCTYPE" in refused(write(tmp_path, laughs)).message


@pytest.mark.parametrize(
    ("document", "found"),
    [
        (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>', "root element"),  # SPDX RDF
        (b'<bom version="1"><metadata/></bom>', "root element <bom>"),  # no CycloneDX namespace
        (b'<project xmlns="http://maven.apache.org/POM/4.0.0"></project>', "root element"),
        (b"<bom xmlns='http://cyclonedx.org/schema/bom/1.5'", "not well-formed"),
        (b"<<<>>>", "not well-formed"),
    ],
)
def test_other_xml_is_refused(tmp_path: Path, document: bytes, found: str) -> None:
    error = refused(write(tmp_path, document))
    assert found in error.message
    assert error.hint == REFUSE_HINT


# --- SPDX ---------------------------------------------------------------------------------------------------


def test_spdx_json(tmp_path: Path) -> None:
    detected = detect_sbom(write(tmp_path, samples.spdx_json(), "sbom.spdx.json"))
    assert detected == Detected(
        artifact_type="application/spdx+json",
        media_type="application/spdx+json",
        annotations={FORMAT: "spdx", SPEC: "SPDX-2.3", CREATED: samples.CREATED, TOOL: "syft@1.4.1"},
        format="SPDX 2.3 JSON",
    )


def test_spdx_2_2_json(tmp_path: Path) -> None:
    assert detect_sbom(write(tmp_path, samples.spdx_json(version="SPDX-2.2"))).format == "SPDX 2.2 JSON"


def test_spdx_json_without_document_spdxid_is_refused(tmp_path: Path) -> None:
    assert "SPDXRef-DOCUMENT" in refused(write(tmp_path, samples.spdx_json(spdx_id=None))).message
    assert "SPDXRef-DOCUMENT" in refused(write(tmp_path, samples.spdx_json(spdx_id="SPDXRef-Package-x"))).message


def test_spdx_3_is_refused_by_version(tmp_path: Path) -> None:
    assert "'SPDX-3.0'" in refused(write(tmp_path, samples.spdx_json(version="SPDX-3.0"))).message


def test_spdx_tag_value(tmp_path: Path) -> None:
    detected = detect_sbom(write(tmp_path, samples.spdx_tag_value(), "sbom.spdx"))
    assert detected == Detected(
        artifact_type="text/spdx",
        media_type="text/spdx",
        annotations={
            FORMAT: "spdx",
            SPEC: "SPDX-2.3",
            CREATED: samples.CREATED,
            TOOL: "syft@1.4.1,spdx-sbom-generator@v0.0.15",
        },
        format="SPDX 2.3 tag-value",
    )


def test_spdx_tag_value_with_crlf_line_endings(tmp_path: Path) -> None:
    data = samples.spdx_tag_value().replace(b"\n", b"\r\n")
    assert detect_sbom(write(tmp_path, data)).annotations[TOOL].startswith("syft@1.4.1")


def test_spdx_tag_value_needs_its_document_id_near_the_top(tmp_path: Path) -> None:
    lines = samples.spdx_tag_value().decode().splitlines()
    lines.remove("SPDXID: SPDXRef-DOCUMENT")
    late = lines[:1] + ["PackageComment: filler"] * TAG_VALUE_LINES + ["SPDXID: SPDXRef-DOCUMENT"] + lines[1:]
    assert "SPDXRef-DOCUMENT" in refused(write(tmp_path, "\n".join(late).encode())).message


# --- refusals -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"", "an empty file"),
        (b"  \n\t\n", "only whitespace"),
        (samples.package_json(), "a JSON object with keys name, version, scripts, dependencies"),
        (b'{"kind": "Deployment", "apiVersion": "apps/v1"}', "a JSON object with keys kind, apiVersion"),
        (b"{}", "an empty JSON object"),
        (b'[{"bomFormat": "CycloneDX", "specVersion": "1.5"}]', "a JSON array"),
        (b'{"bomFormat": "CycloneDX", "specVersion": ', "invalid JSON"),
        (b'{"bomFormat": "SWID", "specVersion": "1.0"}', "bomFormat is 'SWID'"),
        (b'{"bomFormat": "CycloneDX"}', "without a valid specVersion"),
        (b'{"bomFormat": "CycloneDX", "specVersion": 1.5}', "without a valid specVersion"),
        (b'{"spdxVersion": 2, "SPDXID": "SPDXRef-DOCUMENT"}', "SPDX version"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), "binary data"),
        (b"\xff\xfe{\x00\"\x00", "UTF-16"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "x": "\xff\xfe"}', "not valid UTF-8"),
        (b"name: caf\xe9\nSPDXVersion: SPDX-2.3\n", "not valid UTF-8"),
        (b"# Just a README\n\nNothing to see.\n", "neither JSON, XML nor SPDX tag-value"),
        (b'"CycloneDX"', "neither JSON, XML nor SPDX tag-value"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_non_sboms_are_refused(tmp_path: Path, data: bytes, found: str) -> None:
    path = write(tmp_path, data)
    error = refused(path)
    assert found in error.message
    assert error.message.startswith(f"{path} is not a CycloneDX or SPDX SBOM: found ")
    assert error.hint == REFUSE_HINT


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    assert "binary data" in refused(write(tmp_path, os.urandom(4096) + b"\x00")).message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "cannot read" in refused(tmp_path / "absent.json").message
    assert "is a directory" in refused(tmp_path).message
