"""Signature detection for attach-signature, and the bounded CBOR decoder it uses for COSE.

Samples are real: a CA and a leaf are minted per test module, the Notary JWS/COSE envelopes and Sigstore
bundles are signed with the leaf key, and the tests check the signatures verify before relying on them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from harness.oci import NOTARY, SIGSTORE_BUNDLE
from samples import make_samples as samples
from samples.make_samples import Chain, Tagged, cbor_encode

from ci_oras.errors import EXIT_USAGE, UsageError
from ci_oras.formats import Detected, cbor
from ci_oras.formats.signature import SIGNATURE_LIMIT, detect_signature

THUMBPRINTS = "io.cncf.notary.x509chain.thumbprint#S256"
CONTENT = "dev.sigstore.bundle.content"
PREDICATE = "dev.sigstore.bundle.predicateType"


@pytest.fixture(scope="module")
def chain() -> Chain:
    return samples.make_chain("ec")


@pytest.fixture(scope="module")
def rsa_chain() -> Chain:
    return samples.make_chain("rsa")


def write(tmp_path: Path, data: bytes, name: str = "signature") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expected_thumbprints(chain: Chain) -> str:
    """As notation-go writes it: json.Marshal([]string{hex...}), compact."""
    hexes = [hashlib.sha256(der).hexdigest() for der in chain.ders]
    return "[" + ",".join(f'"{h}"' for h in hexes) + "]"


def notary(chain: Chain, envelope: str, media_type: str) -> Detected:
    """What detecting a Notary Project signature by ``chain`` in ``envelope`` (JWS, COSE) must find."""
    return Detected(
        artifact_type=NOTARY,
        media_type=media_type,
        annotations={THUMBPRINTS: expected_thumbprints(chain)},
        format=f"Notary Project {envelope} signature",
    )


def refused(path: Path) -> UsageError:
    with pytest.raises(UsageError) as caught:
        detect_signature(path)
    assert caught.value.exit_code == EXIT_USAGE
    assert "\n" not in str(caught.value)
    return caught.value


def unknown(path: Path) -> str:
    error = refused(path)
    assert error.message.startswith(f"cannot tell what kind of signature {path} is (found ")
    assert error.hint == "pass --artifact-type and --media-type"
    return error.message


def ec_verify(chain: Chain, signature: bytes, message: bytes) -> None:
    """Check an ECDSA P-256/SHA-256 signature: DER, or raw r||s as JOSE and COSE carry it."""
    key = chain.leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    if len(signature) == 64:
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        signature = encode_dss_signature(r, s)
    key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- Notary Project JWS -------------------------------------------------------------------------------------


def test_notary_jws_es256(tmp_path: Path, chain: Chain) -> None:
    data = samples.notary_jws(chain, alg="ES256")
    envelope = json.loads(data)
    signing_input = f"{envelope['protected']}.{envelope['payload']}".encode()
    ec_verify(chain, b64url_decode(envelope["signature"]), signing_input)
    detected = detect_signature(write(tmp_path, data, "sig.jws"))
    assert detected == notary(chain, "JWS", "application/jose+json")
    hexes = json.loads(detected.annotations[THUMBPRINTS])
    assert hexes == [hashlib.sha256(der).hexdigest() for der in chain.ders]
    assert " " not in detected.annotations[THUMBPRINTS]


def test_notary_jws_ps256(tmp_path: Path, rsa_chain: Chain) -> None:
    data = samples.notary_jws(rsa_chain, alg="PS256")
    envelope = json.loads(data)
    key = rsa_chain.leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        b64url_decode(envelope["signature"]),
        f"{envelope['protected']}.{envelope['payload']}".encode(),
        padding.PSS(padding.MGF1(hashes.SHA256()), 32),
        hashes.SHA256(),
    )
    detected = detect_signature(write(tmp_path, data))
    assert detected.annotations == {THUMBPRINTS: expected_thumbprints(rsa_chain)}


def test_notary_jws_leaf_only(tmp_path: Path, chain: Chain) -> None:
    leaf = base64.b64encode(chain.ders[0]).decode()
    detected = detect_signature(write(tmp_path, samples.notary_jws(chain, x5c=[leaf])))
    assert detected.annotations[THUMBPRINTS] == f'["{hashlib.sha256(chain.ders[0]).hexdigest()}"]'


@pytest.mark.parametrize(
    ("x5c", "problem"),
    [
        ([], "missing or empty"),
        (["not base64!"], "x5c[0] is not a base64 DER certificate"),
        (["-----BEGIN CERTIFICATE-----"], "x5c[0]"),
        ([base64.b64encode(b"\x04\x03abc").decode()], "x5c[0]"),  # base64, but not a DER SEQUENCE
        ([123], "x5c[0]"),
    ],
)
def test_notary_jws_without_a_usable_chain_is_refused(tmp_path: Path, chain: Chain, x5c: list[str],
                                                      problem: str) -> None:
    error = refused(write(tmp_path, samples.notary_jws(chain, x5c=x5c)))
    assert "is a Notary Project JWS signature but" in error.message
    assert problem in error.message
    assert "--artifact-type" in (error.hint or "")


def test_notary_jws_without_header_is_refused(tmp_path: Path, chain: Chain) -> None:
    envelope = json.loads(samples.notary_jws(chain))
    del envelope["header"]
    assert "x5c" in refused(write(tmp_path, json.dumps(envelope).encode())).message


def test_jws_for_another_payload_is_unknown(tmp_path: Path, chain: Chain) -> None:
    envelope = json.loads(samples.notary_jws(chain))
    envelope["protected"] = samples.b64url(b'{"alg":"ES256","cty":"application/json"}')
    assert "content type 'application/json'" in unknown(write(tmp_path, json.dumps(envelope).encode()))


def test_jws_with_garbage_protected_header_is_unknown(tmp_path: Path, chain: Chain) -> None:
    envelope = json.loads(samples.notary_jws(chain))
    for protected in ("***", samples.b64url(b"not json"), samples.b64url(b"[1]"), 7):
        envelope["protected"] = protected
        assert "protected header" in unknown(write(tmp_path, json.dumps(envelope).encode()))


# --- Notary Project COSE ------------------------------------------------------------------------------------


def verify_cose(chain: Chain, data: bytes) -> None:
    item = cbor.decode(data)
    assert isinstance(item, cbor.Tag) and item.number == 18
    assert isinstance(item.value, list)
    protected, _, payload, signature = item.value
    assert isinstance(protected, bytes) and isinstance(payload, bytes) and isinstance(signature, bytes)
    ec_verify(chain, signature, cbor_encode(["Signature1", protected, b"", payload]))  # RFC 9052 Sig_structure


def test_notary_cose(tmp_path: Path, chain: Chain) -> None:
    data = samples.notary_cose(chain)
    verify_cose(chain, data)
    detected = detect_signature(write(tmp_path, data, "sig.cose"))
    assert detected == notary(chain, "COSE", "application/cose")


def test_notary_cose_untagged_and_single_certificate(tmp_path: Path, chain: Chain) -> None:
    data = samples.notary_cose(chain, x5chain=chain.ders[0], tagged=False)
    detected = detect_signature(write(tmp_path, data))
    assert detected.annotations[THUMBPRINTS] == f'["{hashlib.sha256(chain.ders[0]).hexdigest()}"]'


@pytest.mark.parametrize("x5chain", [[], "text", [b"\x04\x01x"], [b"\x30\x03abc", 5]])
def test_notary_cose_without_a_usable_chain_is_refused(tmp_path: Path, chain: Chain, x5chain: object) -> None:
    error = refused(write(tmp_path, samples.notary_cose(chain, x5chain=x5chain)))
    assert "is a Notary Project COSE signature but its x5chain" in error.message


def test_cose_for_another_payload_is_unknown(tmp_path: Path, chain: Chain) -> None:
    data = samples.notary_cose(chain, content_type="application/json")
    assert "COSE_Sign1 message with content type 'application/json'" in unknown(write(tmp_path, data))


def test_other_cbor_is_unknown(tmp_path: Path) -> None:
    assert "tag 98" in unknown(write(tmp_path, cbor_encode(Tagged(98, [b"", {}, b"", []]))))
    assert "not a COSE_Sign1" in unknown(write(tmp_path, cbor_encode({"a": 1})))
    assert "not a COSE_Sign1" in unknown(write(tmp_path, cbor_encode([b"\xff", {}, b"", b""])))  # bad header


def test_mutated_cose_never_escapes_as_anything_but_a_usage_error(tmp_path: Path, chain: Chain) -> None:
    original = samples.notary_cose(chain)
    rng = random.Random(1234)
    path = tmp_path / "mutated"
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data[: rng.randint(1, len(data))] if rng.random() < 0.3 else data))
        try:
            detect_signature(path)
        except UsageError:
            pass


# --- Sigstore bundles ---------------------------------------------------------------------------------------


def test_sigstore_message_signature_bundle(tmp_path: Path, chain: Chain) -> None:
    detected = detect_signature(write(tmp_path, samples.sigstore_message_bundle(chain), "a.sigstore.json"))
    assert detected == Detected(
        artifact_type=SIGSTORE_BUNDLE,
        media_type=SIGSTORE_BUNDLE,
        annotations={CONTENT: "message-signature"},
        format="Sigstore bundle v0.3 (message signature)",
    )


def test_sigstore_dsse_bundle_with_provenance(tmp_path: Path, chain: Chain) -> None:
    data = samples.sigstore_dsse_bundle(chain)
    envelope = json.loads(data)["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    ec_verify(chain, base64.b64decode(envelope["signatures"][0]["sig"]),
              samples.dsse_pae(envelope["payloadType"], payload))
    detected = detect_signature(write(tmp_path, data))
    assert detected == Detected(
        artifact_type=SIGSTORE_BUNDLE,
        media_type=SIGSTORE_BUNDLE,
        annotations={CONTENT: "dsse-envelope", PREDICATE: "https://slsa.dev/provenance/v1"},
        format="Sigstore bundle v0.3 (DSSE envelope)",
    )


@pytest.mark.parametrize(
    ("media_type", "artifact_type", "version"),
    [
        ("application/vnd.dev.sigstore.bundle+json;version=0.3", SIGSTORE_BUNDLE, "0.3"),
        ("application/vnd.dev.sigstore.bundle+json; version=0.3", SIGSTORE_BUNDLE, "0.3"),
        ("application/vnd.dev.sigstore.bundle+json;version=0.2",
         "application/vnd.dev.sigstore.bundle+json;version=0.2", "0.2"),
        ("application/vnd.dev.sigstore.bundle+json;version=0.1",
         "application/vnd.dev.sigstore.bundle+json;version=0.1", "0.1"),
    ],
)
def test_sigstore_bundle_versions(tmp_path: Path, chain: Chain, media_type: str, artifact_type: str,
                                  version: str) -> None:
    detected = detect_signature(write(tmp_path, samples.sigstore_message_bundle(chain, media_type=media_type)))
    assert (detected.artifact_type, detected.media_type) == (artifact_type, artifact_type)
    assert detected.format == f"Sigstore bundle v{version} (message signature)"


def test_sigstore_bundle_of_unknown_version_is_refused(tmp_path: Path, chain: Chain) -> None:
    data = samples.sigstore_message_bundle(chain, media_type="application/vnd.dev.sigstore.bundle.v0.9+json")
    error = refused(write(tmp_path, data))
    assert "v0.9" in error.message and "--media-type" in (error.hint or "")


def test_dsse_bundle_with_another_payload_type_has_no_predicate(tmp_path: Path, chain: Chain) -> None:
    data = samples.sigstore_dsse_bundle(chain, payload=b"plain text", payload_type="text/plain")
    assert detect_signature(write(tmp_path, data)).annotations == {CONTENT: "dsse-envelope"}


def test_dsse_bundle_with_urlsafe_payload(tmp_path: Path, chain: Chain) -> None:
    bundle = json.loads(samples.sigstore_dsse_bundle(chain, predicate_type="https://spdx.dev/Document"))
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    bundle["dsseEnvelope"]["payload"] = base64.urlsafe_b64encode(payload).decode()
    detected = detect_signature(write(tmp_path, json.dumps(bundle).encode()))
    assert detected.annotations[PREDICATE] == "https://spdx.dev/Document"


def test_dsse_bundle_with_broken_in_toto_payload_is_refused(tmp_path: Path, chain: Chain) -> None:
    data = samples.sigstore_dsse_bundle(chain, payload=b"\x00\x01 not json")
    assert "in-toto payload" in unknown(write(tmp_path, data))


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        (lambda b: b.pop("verificationMaterial"), "without verificationMaterial"),
        (lambda b: b.pop("messageSignature"), "exactly one of"),
        (lambda b: b.update(dsseEnvelope={"payload": "", "payloadType": "x", "signatures": []}), "exactly one of"),
    ],
)
def test_malformed_sigstore_bundles_are_refused(tmp_path: Path, chain: Chain,
                                                edit: Callable[[dict[str, Any]], object], found: str) -> None:
    bundle = json.loads(samples.sigstore_message_bundle(chain))
    edit(bundle)
    assert found in unknown(write(tmp_path, json.dumps(bundle).encode()))


# --- anything else ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"", "an empty file"),
        (b'{"name": "web", "version": "1.0.0"}', "a JSON object with keys name, version"),
        (b'{"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}',
         "bare DSSE envelope"),
        (b"[1, 2]", "text that is not a JSON signature envelope"),  # not starting with {: tried as CBOR
        (b"{not json", "invalid JSON"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "text that is not"),
        (b"MEUCIQDx...cosign legacy base64 signature", "text that is not"),
        (b"1", "text that is not"),  # valid CBOR (-18), but plainly text
        (b"\x18\x2a", "CBOR data that is not a COSE_Sign1"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data that is neither JSON nor CBOR"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
    ],
)
def test_non_signatures_are_unknown(tmp_path: Path, data: bytes, found: str) -> None:
    assert found in unknown(write(tmp_path, data))


def test_signature_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.sig"
    with path.open("wb") as handle:
        handle.truncate(SIGNATURE_LIMIT + 1)
    error = refused(path)
    assert "too large" in error.message and "--media-type" in (error.hint or "")


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read" in refused(tmp_path / "absent.sig").message


# --- the CBOR decoder -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [0, 23, 24, 255, 256, 65535, 65536, 2**32, 2**64 - 1, -1, -24, -25, -(2**64), b"", b"\x00" * 300, "",
     "café ✓", [], [1, [2, [3]]], {}, {1: -7, "k": b"v", b"b": [None, True, False]}, Tagged(1, 1714644930)],
)
def test_cbor_round_trip(value: object) -> None:
    decoded = cbor.decode(cbor_encode(value))
    if isinstance(value, Tagged):
        assert decoded == cbor.Tag(value.number, value.value)
    else:
        assert decoded == value


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (bytes.fromhex("f93c00"), 1.0),  # half precision
        (bytes.fromhex("fa47c35000"), 100000.0),  # single
        (bytes.fromhex("fb3ff199999999999a"), 1.1),  # double
        (bytes.fromhex("f7"), None),  # undefined reads as None
        (bytes.fromhex("1b000000e8d4a51000"), 1_000_000_000_000),  # RFC 8949 Appendix A
        (bytes.fromhex("c11a514b67b0"), cbor.Tag(1, 1363896240)),
    ],
)
def test_cbor_rfc_examples(encoded: bytes, expected: object) -> None:
    assert cbor.decode(encoded) == expected


def test_cbor_infinity() -> None:
    value = cbor.decode(bytes.fromhex("f97c00"))
    assert isinstance(value, float) and math.isinf(value)


@pytest.mark.parametrize(
    ("encoded", "reason"),
    [
        (b"", "empty"),
        (bytes.fromhex("19ff"), "needs 2 bytes"),  # truncated uint16
        (bytes.fromhex("5b") + b"\xff" * 8 + b"abc", "needs"),  # bstr claiming 2**64-1 bytes
        (bytes.fromhex("7a7fffffff") + b"abc", "needs"),  # tstr claiming 2 GiB
        (bytes.fromhex("9b") + b"\xff" * 8 + b"\x00", "array claims"),  # 2**64-1 items
        (bytes.fromhex("9a00100000") + b"\x00" * 10, "array claims"),
        (bytes.fromhex("bb") + b"\xff" * 8 + b"\x00\x00", "map claims"),
        (bytes.fromhex("a3") + b"\x01\x02\x03\x04", "map claims"),
        (bytes.fromhex("9f0102ff"), "indefinite"),  # indefinite array
        (bytes.fromhex("5f41aaff"), "indefinite"),  # indefinite bstr
        (bytes.fromhex("bf6161 01ff".replace(" ", "")), "indefinite"),
        (bytes.fromhex("ff"), "break"),
        (bytes.fromhex("1c"), "reserved"),
        (bytes.fromhex("f820"), "simple value"),
        (bytes.fromhex("0000"), "trailing"),
        (bytes.fromhex("62c328"), "utf-8"),  # invalid UTF-8 in a text string
        (bytes.fromhex("a1800a"), "map key"),  # array as a map key
        (bytes.fromhex("a1f50a"), "map key"),  # boolean as a map key
        (bytes.fromhex("a201020103"), "duplicate"),
        (b"\x81" * 33 + b"\x00", "nesting"),
        (b"\xa1\x00" * 33 + b"\x00", "nesting"),
        (b"\xc1" * 33 + b"\x00", "nesting"),  # tags nest too
    ],
)
def test_cbor_refuses_hostile_input(encoded: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=f"(?i){reason}"):
        cbor.decode(encoded)


def test_cbor_nesting_up_to_the_limit_is_fine() -> None:
    assert cbor.decode(b"\x81" * 32 + b"\x00") is not None
    with pytest.raises(ValueError, match="nesting"):
        cbor.decode(b"\x81" * 4 + b"\x00", max_depth=3)


def test_cbor_every_truncation_of_a_real_envelope_is_refused(chain: Chain) -> None:
    data = samples.notary_cose(chain)
    for end in range(len(data)):
        with pytest.raises(ValueError):
            cbor.decode(data[:end])


def test_cbor_random_input_raises_only_value_error() -> None:
    rng = random.Random(42)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        try:
            cbor.decode(data)
        except ValueError:
            pass


def test_cbor_huge_claims_are_refused_fast() -> None:
    """A 9-byte header must not make us allocate or loop: lengths are checked against what remains."""
    blob = bytes.fromhex("9b") + (2**63).to_bytes(8, "big") + os.urandom(16)
    with pytest.raises(ValueError):
        cbor.decode(blob)
