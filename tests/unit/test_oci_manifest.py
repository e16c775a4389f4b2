"""Manifests built by ci-oras are byte-identical to what ORAS writes for the same inputs.

The expected strings are manifests printed by ``oras manifest fetch`` in ORAS's own documentation and tests,
so a mismatch here means ``oras`` and ci-oras would produce different digests for the same artifact.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from ci_oras.errors import MalformedError, UsageError
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor, Platform
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.manifest import build_image_manifest, build_index, parse_manifest

ORAS_PUSH_TWO_FILES = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"artifactType":"application/vnd.unknown.artifact.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json",'
    b'"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},'
    b'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar",'
    b'"digest":"sha256:6cb759c4296e67e35b0367f3c0f51dfdb776a0c99a45f39d0476e43d82696d65","size":14477,'
    b'"annotations":{"org.opencontainers.image.title":"sbom.spdx"}},'
    b'{"mediaType":"application/vnd.oci.image.layer.v1.tar",'
    b'"digest":"sha256:54c0e84503c8790e03afe34bfc05a5ce45c933430cfd9c5f8a99d2c89f1f1b69","size":6639,'
    b'"annotations":{"org.opencontainers.image.title":"scan-test-verify-image.json"}}],'
    b'"annotations":{"org.opencontainers.image.created":"2023-12-13T15:08:49Z"}}'
)

ORAS_ATTACH = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"artifactType":"application/vnd.cyclonedx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json",'
    b'"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},'
    b'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar",'
    b'"digest":"sha256:f9d5ec3c9dd70ddccedc62cda9e91302635f217b44ebdeef6a67baff8fc73549","size":14,'
    b'"annotations":{"org.opencontainers.image.title":"hi.txt"}}],'
    b'"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"digest":"sha256:506db421764d1fb236de66d61fe81ccb92af2ab9b89f6ef7afbfeebd220b883f","size":521},'
    b'"annotations":{"key1":"val1","org.opencontainers.image.created":"2024-07-18T14:43:47Z"}}'
)

ORAS_EMPTY_ARTIFACT = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"artifactType":"application/vnd.unknown.artifact.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json",'
    b'"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},'
    b'"layers":[{"mediaType":"application/vnd.oci.empty.v1+json",'
    b'"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="}]}'
)


def _layer(digest: str, size: int, title: str) -> Descriptor:
    return Descriptor(mediatypes.OCI_LAYER_TAR, digest, size, {"org.opencontainers.image.title": title})


def test_push_manifest_matches_oras_bytes() -> None:
    manifest = build_image_manifest(
        artifact_type=mediatypes.UNKNOWN_ARTIFACT,
        config=EMPTY_DESCRIPTOR,
        layers=[
            _layer("sha256:6cb759c4296e67e35b0367f3c0f51dfdb776a0c99a45f39d0476e43d82696d65", 14477, "sbom.spdx"),
            _layer("sha256:54c0e84503c8790e03afe34bfc05a5ce45c933430cfd9c5f8a99d2c89f1f1b69", 6639,
                   "scan-test-verify-image.json"),
        ],
        annotations={"org.opencontainers.image.created": "2023-12-13T15:08:49Z"},
    )
    assert manifest.raw == ORAS_PUSH_TWO_FILES
    assert manifest.digest == "sha256:" + hashlib.sha256(ORAS_PUSH_TWO_FILES).hexdigest()


def test_attach_manifest_with_subject_matches_oras_bytes() -> None:
    subject = Descriptor(mediatypes.OCI_MANIFEST,
                         "sha256:506db421764d1fb236de66d61fe81ccb92af2ab9b89f6ef7afbfeebd220b883f", 521)
    manifest = build_image_manifest(
        artifact_type="application/vnd.cyclonedx+json",
        config=EMPTY_DESCRIPTOR,
        layers=[_layer("sha256:f9d5ec3c9dd70ddccedc62cda9e91302635f217b44ebdeef6a67baff8fc73549", 14, "hi.txt")],
        subject=subject,
        # Given unsorted on purpose: Go sorts map keys.
        annotations={"org.opencontainers.image.created": "2024-07-18T14:43:47Z", "key1": "val1"},
    )
    assert manifest.raw == ORAS_ATTACH
    assert manifest.subject == subject


def test_empty_artifact_matches_oras_digest() -> None:
    manifest = build_image_manifest(
        artifact_type=mediatypes.UNKNOWN_ARTIFACT, config=EMPTY_DESCRIPTOR, layers=[EMPTY_DESCRIPTOR]
    )
    assert manifest.raw == ORAS_EMPTY_ARTIFACT
    assert manifest.digest == "sha256:1bb053792feb8d8d590001c212f2defad9277e091d2aa868cde2879ff41abb1b"


def test_parse_keeps_exact_bytes_and_fields() -> None:
    pretty = ORAS_ATTACH.replace(b",", b",\n  ")  # different bytes, same JSON
    manifest = parse_manifest(pretty)
    assert manifest.raw == pretty
    assert manifest.digest == "sha256:" + hashlib.sha256(pretty).hexdigest()
    assert manifest.artifact_type == "application/vnd.cyclonedx+json"
    assert manifest.layers[0].title == "hi.txt"
    assert manifest.config is not None and manifest.config.data == b"{}"
    assert manifest.annotations["key1"] == "val1"


def test_go_html_escaping() -> None:
    manifest = build_image_manifest(artifact_type="a/b", config=EMPTY_DESCRIPTOR, layers=[EMPTY_DESCRIPTOR],
                                    annotations={"k": "<a&b>", "u": "é"})
    assert b'"k":"\\u003ca\\u0026b\\u003e"' in manifest.raw
    assert '"u":"é"'.encode() in manifest.raw


def test_index_round_trip_with_platform() -> None:
    child = Descriptor(mediatypes.OCI_MANIFEST, "sha256:" + "a" * 64, 10,
                       platform=Platform(os="linux", architecture="arm64", variant="v8"))
    index = build_index([child])
    assert index.is_index
    assert index.manifests[0].platform == child.platform
    assert b'"platform":{"architecture":"arm64","os":"linux","variant":"v8"}' in index.raw


def test_artifact_type_falls_back_to_config_media_type() -> None:
    config = Descriptor("application/vnd.example.config.v1+json", "sha256:" + "b" * 64, 3)
    manifest = build_image_manifest(artifact_type=None, config=config, layers=[])
    assert manifest.effective_artifact_type == "application/vnd.example.config.v1+json"


@pytest.mark.parametrize(("raw", "field"), [
    (b"not json", "invalid JSON"), (b"[]", "the document must be a JSON object, not a list"),
    (b'{"layers":[{"mediaType":"x","digest":"sha256:bad","size":1}]}', '"layers[0].digest" is not a digest'),
    (b'{"layers":5}', '"layers" must be a list, not a number'),
    (b'{"annotations":["x"]}', '"annotations" must be an object, not a list'),
    (b'{"config":{"mediaType":"x","digest":"sha256:' + b"a" * 64 + b'","size":"2"}}',
     '"config.size" must be an integer, not a string'),
])
def test_malformed_manifests_are_integrity_errors_naming_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(MalformedError) as info:
        parse_manifest(raw, source="reg.example/app")
    assert info.value.exit_code == 6
    assert str(info.value).startswith(f"manifest {digest_bytes(raw)} of reg.example/app: {field}"), str(info.value)


def test_a_manifest_of_another_media_type_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_manifest(b'{"mediaType":"text/plain"}')


def test_an_index_read_as_a_listing_keeps_malformed_entries_apart() -> None:
    good = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "c" * 64, "size": 3}
    raw = json.dumps({"mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": [good, "x", {**good, "digest": 5}]}).encode()
    with pytest.raises(MalformedError, match=r'"manifests\[1\]" must be a JSON object, not a string'):
        parse_manifest(raw)
    index = parse_manifest(raw, listing=True)
    assert [d.digest for d in index.manifests] == [good["digest"]]
    assert [(e.position, e.problem) for e in index.malformed] == [
        (1, '"manifests[1]" must be a JSON object, not a string'),
        (2, '"manifests[2].digest" must be a string, not a number')]
