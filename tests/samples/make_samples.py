"""Realistic SBOM and signature samples, built at test time from each format's own structure.

Nothing here is a canned blob copied from a tool: CycloneDX/SPDX documents follow their schemas (the shape of
``metadata.tools`` changes at CycloneDX 1.5, as real generators' output does), and signatures are real —
a CA and a leaf certificate are minted with ``cryptography``, and the Notary JWS, the COSE_Sign1 (CBOR encoded
here by hand) and the Sigstore bundles carry genuine signatures over genuine payloads, so a test can verify
them. Builders return bytes; :func:`write_all` drops one file per sample into a directory for CLI tests.

Run ``python tests/samples/make_samples.py OUTDIR`` to look at them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CREATED = "2024-05-02T10:15:30Z"
NOTARY_PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SUBJECT_DIGEST = "sha256:" + hashlib.sha256(b"the image manifest being signed").hexdigest()
SUBJECT_SIZE = 1234
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"

# --- CBOR encoding (the test-side counterpart of ci_oras.formats.cbor) -----------------------------------


@dataclass(frozen=True)
class Tagged:
    number: int
    value: Any


def cbor_head(major: int, argument: int) -> bytes:
    """Initial byte plus argument in the shortest form (RFC 8949 §3, preferred serialization)."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            return bytes([major << 5 | info]) + argument.to_bytes(size, "big")
    raise ValueError("argument too large")


def cbor_encode(value: Any) -> bytes:
    if value is False:
        return b"\xf4"
    if value is True:
        return b"\xf5"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return cbor_head(0, value) if value >= 0 else cbor_head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return cbor_head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return cbor_head(3, len(raw)) + raw
    if isinstance(value, list):
        return cbor_head(4, len(value)) + b"".join(cbor_encode(item) for item in value)
    if isinstance(value, dict):
        body = b"".join(cbor_encode(key) + cbor_encode(item) for key, item in value.items())
        return cbor_head(5, len(value)) + body
    if isinstance(value, Tagged):
        return cbor_head(6, value.number) + cbor_encode(value.value)
    raise TypeError(type(value))


# --- PKI ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """A signing key and its certificate chain, leaf first (x5c / x5chain order)."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    leaf: x509.Certificate
    ca: x509.Certificate

    @property
    def ders(self) -> list[bytes]:
        return [cert.public_bytes(serialization.Encoding.DER) for cert in (self.leaf, self.ca)]


def make_chain(kind: str = "ec") -> Chain:
    """A CA and a code-signing leaf as notation expects them (CA:TRUE/keyCertSign; digitalSignature, codeSigning)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci-oras test CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ci-oras")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "release signer"),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ci-oras")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    return Chain(key, leaf, ca)


def raw_signature(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, message: bytes) -> bytes:
    """ES256 as JOSE/COSE want it (r||s, 32 bytes each) or PS256 (salt = digest length)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def notary_payload(target: dict[str, Any] | None = None) -> bytes:
    """The signed descriptor, compact as notation marshals it; ``target`` is the signed manifest's descriptor
    (``attach-signature`` refuses an envelope made for another subject than the one it is attached to)."""
    if target is None:
        target = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": SUBJECT_DIGEST,
                  "size": SUBJECT_SIZE}
    else:
        target = {key: target[key] for key in ("mediaType", "digest", "size")}
    return json.dumps({"targetArtifact": target}, separators=(",", ":")).encode()


# --- Notary Project signatures --------------------------------------------------------------------------


def notary_jws(chain: Chain, *, alg: str = "ES256", x5c: list[str] | None = None,
               target: dict[str, Any] | None = None) -> bytes:
    """A Notary Project JWS envelope in JSON serialization, signed for real; ``x5c`` overrides the chain."""
    protected = {
        "alg": alg,
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": NOTARY_PAYLOAD_TYPE,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2024-05-02T12:15:30+02:00",
    }
    protected_b64 = b64url(json.dumps(protected, separators=(",", ":")).encode())
    payload_b64 = b64url(notary_payload(target))
    signature = raw_signature(chain.key, f"{protected_b64}.{payload_b64}".encode())
    header: dict[str, Any] = {
        "x5c": [base64.b64encode(der).decode() for der in chain.ders] if x5c is None else x5c,
        "io.cncf.notary.signingAgent": "notation-go/1.1.0",
    }
    envelope = {"payload": payload_b64, "protected": protected_b64, "header": header,
                "signature": b64url(signature)}
    return json.dumps(envelope, separators=(",", ":")).encode()


def notary_cose(chain: Chain, *, x5chain: Any = None, tagged: bool = True,
                content_type: str = NOTARY_PAYLOAD_TYPE, target: dict[str, Any] | None = None) -> bytes:
    """A Notary Project COSE_Sign1, signed for real over its Sig_structure (RFC 9052 §4.4)."""
    protected = cbor_encode({
        1: -7,  # ES256
        2: ["io.cncf.notary.signingScheme"],
        3: content_type,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": Tagged(1, 1714644930),
    })
    payload = notary_payload(target)
    to_sign = cbor_encode(["Signature1", protected, b"", payload])
    signature = raw_signature(chain.key, to_sign)
    unprotected = {33: chain.ders if x5chain is None else x5chain,
                   "io.cncf.notary.signingAgent": "notation-go/1.1.0"}
    sign1 = [protected, unprotected, payload, signature]
    return cbor_encode(Tagged(18, sign1) if tagged else sign1)


# --- Sigstore bundles -----------------------------------------------------------------------------------


def _tlog_entry(body: bytes) -> dict[str, Any]:
    return {
        "logIndex": "94316214",
        "logId": {"keyId": base64.b64encode(hashlib.sha256(b"rekor public key").digest()).decode()},
        "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
        "integratedTime": "1714644930",
        "inclusionPromise": {"signedEntryTimestamp": base64.b64encode(b"\x30\x45" + b"\x01" * 69).decode()},
        "inclusionProof": {
            "logIndex": "72411952",
            "rootHash": base64.b64encode(hashlib.sha256(b"root").digest()).decode(),
            "treeSize": "72411953",
            "hashes": [base64.b64encode(hashlib.sha256(bytes([i])).digest()).decode() for i in range(3)],
            "checkpoint": {"envelope": "rekor.sigstore.dev - 1193050959916656506\n72411953\n...\n"},
        },
        "canonicalizedBody": base64.b64encode(body).decode(),
    }


def _verification_material(chain: Chain, media_type: str) -> dict[str, Any]:
    leaf = base64.b64encode(chain.ders[0]).decode()
    material: dict[str, Any] = {"tlogEntries": [_tlog_entry(b'{"apiVersion":"0.0.1","kind":"hashedrekord"}')]}
    if "0.3" in media_type:
        material["certificate"] = {"rawBytes": leaf}
    else:  # 0.1 / 0.2 carried the whole chain
        material["x509CertificateChain"] = {"certificates": [{"rawBytes": leaf}]}
    return material


def sigstore_message_bundle(chain: Chain, artifact: bytes = b"release.tar.gz contents\n", *,
                            media_type: str = "application/vnd.dev.sigstore.bundle.v0.3+json") -> bytes:
    """What ``cosign sign-blob --bundle`` writes: a message signature over the artifact's digest."""
    digest = hashlib.sha256(artifact).digest()
    assert isinstance(chain.key, ec.EllipticCurvePrivateKey)
    signature = chain.key.sign(artifact, ec.ECDSA(hashes.SHA256()))  # DER, as Sigstore stores it
    bundle = {
        "mediaType": media_type,
        "verificationMaterial": _verification_material(chain, media_type),
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(digest).decode()},
            "signature": base64.b64encode(signature).decode(),
        },
    }
    return json.dumps(bundle, indent=2).encode()


def in_toto_statement(predicate_type: str = SLSA_PROVENANCE_V1) -> bytes:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.example/app", "digest": {"sha256": SUBJECT_DIGEST.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/o/r",
                                                    "path": ".github/workflows/release.yml"}},
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
        },
    }
    return json.dumps(statement).encode()


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sigstore_dsse_bundle(chain: Chain, *, predicate_type: str = SLSA_PROVENANCE_V1,
                         payload: bytes | None = None, payload_type: str = IN_TOTO_PAYLOAD_TYPE,
                         media_type: str = "application/vnd.dev.sigstore.bundle.v0.3+json") -> bytes:
    """What ``cosign attest --new-bundle-format`` / GitHub attestations write: a DSSE-wrapped in-toto statement."""
    body = in_toto_statement(predicate_type) if payload is None else payload
    assert isinstance(chain.key, ec.EllipticCurvePrivateKey)
    signature = chain.key.sign(dsse_pae(payload_type, body), ec.ECDSA(hashes.SHA256()))
    bundle = {
        "mediaType": media_type,
        "verificationMaterial": _verification_material(chain, media_type),
        "dsseEnvelope": {
            "payload": base64.b64encode(body).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=2).encode()


# --- SBOMs ----------------------------------------------------------------------------------------------

_PURLS = [
    ("library", "openssl", "3.0.13-1~deb12u1", "pkg:deb/debian/openssl@3.0.13-1~deb12u1?arch=amd64&distro=debian-12",
     "Apache-2.0"),
    ("library", "requests", "2.31.0", "pkg:pypi/requests@2.31.0", "Apache-2.0"),
    ("library", "urllib3", "2.2.1", "pkg:pypi/urllib3@2.2.1", "MIT"),
]


def cyclonedx_tools(spec_version: str) -> Any:
    """``metadata.tools``: a list of {vendor,name,version} up to 1.4, an object of components/services from 1.5."""
    if tuple(int(part) for part in spec_version.split(".")) < (1, 5):
        return [{"vendor": "anchore", "name": "syft", "version": "0.98.0"},
                {"vendor": "CycloneDX", "name": "cyclonedx-go", "version": "0.7.2"}]
    return {
        "components": [{"type": "application", "author": "anchore", "name": "syft", "version": "1.4.1"}],
        "services": [{"name": "sbom-enricher", "version": "2.0"}],
    }


def cyclonedx_json(spec_version: str = "1.5", *, tools: Any = "default", timestamp: str | None = CREATED) -> bytes:
    metadata: dict[str, Any] = {
        "component": {"bom-ref": "app", "type": "container", "name": "registry.example/app", "version": "v1"},
    }
    if timestamp is not None:
        metadata["timestamp"] = timestamp
    if tools is not None:
        metadata["tools"] = cyclonedx_tools(spec_version) if tools == "default" else tools
    components = [
        {"bom-ref": purl, "type": kind, "name": name, "version": version, "purl": purl,
         "licenses": [{"license": {"id": license_id}}],
         "hashes": [{"alg": "SHA-256", "content": hashlib.sha256(name.encode()).hexdigest()}]}
        for kind, name, version, purl, license_id in _PURLS
    ]
    document = {
        "$schema": f"http://cyclonedx.org/schema/bom-{spec_version}.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": spec_version,
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": [{"ref": "app", "dependsOn": [purl for *_, purl, _ in _PURLS]}],
    }
    return json.dumps(document, indent=2).encode()


def cyclonedx_vex_json() -> bytes:
    """A VEX-only CycloneDX document: no components, only vulnerability statements about the image."""
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {"timestamp": CREATED},
        "vulnerabilities": [{
            "id": "CVE-2024-0727",
            "source": {"name": "NVD", "url": "https://nvd.nist.gov/vuln/detail/CVE-2024-0727"},
            "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
            "affects": [{"ref": "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#pkg:deb/debian/openssl"}],
        }],
    }
    return json.dumps(document).encode()


def cyclonedx_xml(spec_version: str = "1.5", *, timestamp: str | None = CREATED) -> bytes:
    ns = f"http://cyclonedx.org/schema/bom/{spec_version}"
    if tuple(int(part) for part in spec_version.split(".")) < (1, 5):
        tools = ("<tools><tool><vendor>anchore</vendor><name>syft</name><version>0.98.0</version></tool>"
                 "<tool><vendor>CycloneDX</vendor><name>cyclonedx-go</name><version>0.7.2</version></tool></tools>")
    else:
        tools = ("<tools><components><component type=\"application\"><author>anchore</author><name>syft</name>"
                 "<version>1.4.1</version><hashes><hash alg=\"SHA-256\">00</hash></hashes></component></components>"
                 "<services><service><name>sbom-enricher</name><version>2.0</version></service></services></tools>")
    stamp = f"<timestamp>{timestamp}</timestamp>" if timestamp else ""
    components = "".join(
        f'<component type="{kind}" bom-ref="{purl.replace("&", "&amp;")}"><name>{name}</name>'
        f"<version>{version}</version><licenses><license><id>{license_id}</id></license></licenses>"
        f"<purl>{purl.replace('&', '&amp;')}</purl></component>"
        for kind, name, version, purl, license_id in _PURLS
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bom xmlns="{ns}" serialNumber="urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79" version="1">\n'
        f"  <metadata>{stamp}\n    {tools}\n"
        f'    <component type="container" bom-ref="app"><name>registry.example/app</name><version>v1</version>'
        f"</component>\n  </metadata>\n  <components>{components}</components>\n</bom>\n"
    ).encode()


def spdx_json(*, spdx_id: str | None = "SPDXRef-DOCUMENT", version: str = "SPDX-2.3") -> bytes:
    document: dict[str, Any] = {
        "spdxVersion": version,
        "dataLicense": "CC0-1.0",
        "name": "registry.example/app-v1",
        "documentNamespace": "https://anchore.com/syft/image/registry.example/app-v1-6b2e5a1e",
        "creationInfo": {
            "licenseListVersion": "3.23",
            "creators": ["Organization: Anchore, Inc", "Tool: syft-1.4.1"],
            "created": CREATED,
        },
        "packages": [
            {"name": name, "SPDXID": f"SPDXRef-Package-{name}", "versionInfo": version_info,
             "downloadLocation": "NOASSERTION", "licenseConcluded": license_id,
             "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                               "referenceLocator": purl}]}
            for _, name, version_info, purl, license_id in _PURLS
        ],
        "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relatedSpdxElement": "SPDXRef-Package-openssl",
                           "relationshipType": "DESCRIBES"}],
    }
    if spdx_id is not None:
        document["SPDXID"] = spdx_id
    return json.dumps(document, indent=2).encode()


def spdx_tag_value() -> bytes:
    lines = [
        "SPDXVersion: SPDX-2.3",
        "DataLicense: CC0-1.0",
        "SPDXID: SPDXRef-DOCUMENT",
        "DocumentName: registry.example/app-v1",
        "DocumentNamespace: https://anchore.com/syft/image/registry.example/app-v1-6b2e5a1e",
        "LicenseListVersion: 3.23",
        "Creator: Organization: Anchore, Inc",
        "Creator: Tool: syft-1.4.1",
        "Creator: Tool: spdx-sbom-generator-v0.0.15",
        f"Created: {CREATED}",
        "",
        "##### Package: openssl",
        "",
    ]
    for _, name, version, purl, license_id in _PURLS:
        lines += [
            f"PackageName: {name}",
            f"SPDXID: SPDXRef-Package-{name}",
            f"PackageVersion: {version}",
            "PackageDownloadLocation: NOASSERTION",
            f"PackageLicenseConcluded: {license_id}",
            f"ExternalRef: PACKAGE-MANAGER purl {purl}",
            "",
        ]
    lines.append("Relationship: SPDXRef-DOCUMENT DESCRIBES SPDXRef-Package-openssl")
    return ("\n".join(lines) + "\n").encode()


def package_json() -> bytes:
    return json.dumps({"name": "web", "version": "1.0.0", "scripts": {"build": "vite build"},
                       "dependencies": {"react": "^18.2.0"}}, indent=2).encode()


# --- all at once ----------------------------------------------------------------------------------------


def write_all(directory: Path) -> dict[str, Path]:
    """Write every accepted sample into ``directory``; returns name → path (for CLI and integration tests)."""
    directory.mkdir(parents=True, exist_ok=True)
    chain = make_chain()
    samples = {
        "cyclonedx-1.4.json": cyclonedx_json("1.4"),
        "cyclonedx-1.5.json": cyclonedx_json("1.5"),
        "cyclonedx-1.6.json": cyclonedx_json("1.6"),
        "cyclonedx-vex.json": cyclonedx_vex_json(),
        "cyclonedx-1.5.xml": cyclonedx_xml("1.5"),
        "spdx-2.3.json": spdx_json(),
        "spdx-2.3.spdx": spdx_tag_value(),
        "notary.jws.sig": notary_jws(chain),
        "notary.cose.sig": notary_cose(chain),
        "sigstore-message.sigstore.json": sigstore_message_bundle(chain),
        "sigstore-dsse.sigstore.json": sigstore_dsse_bundle(chain),
    }
    paths = {}
    for name, data in samples.items():
        paths[name] = directory / name
        paths[name].write_bytes(data)
    return paths


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "samples-out")).values():
        print(written)
