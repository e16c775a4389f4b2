"""A local Sigstore instance: a Fulcio-like CA with a CT log, a Rekor-like transparency log and the
``trusted_root.json`` naming them, minting bundles that sigstore-python verifies as it verifies production's.

Keyless signing needs three services online (an OIDC provider, Fulcio, Rekor); the tests have none of them,
and a recorded production bundle pins one identity, one artifact and one moment. This module plays all three
with keys of its own, so a test can sign any statement or blob as any workflow identity, and spoil one property
at a time (the payload, the certificate's validity, the log entry) to provoke each refusal a verifier owes.

Nothing here imports sigstore: only ``cryptography`` (a runtime dependency of ci-oras) and the standard library,
so the harness works wherever the project's own verification code runs. Everything is ECDSA P-256 with SHA-256,
as in the public-good instance. What each piece must look like was read from sigstore-python 4.5.1 (the checks
it makes are cited where each piece is built); tests/unit/test_sigstore_instance.py proves the result with
sigstore-python itself.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "CT_SCT_LIST_OID",
    "FULCIO_OIDS",
    "INTOTO_PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "TRUSTED_ROOT_MEDIA_TYPE",
    "Signer",
    "SigstoreInstance",
    "mint_instance",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: RFC 6962's embedded SCT list (the "precertificate SCTs" extension).
CT_SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")

_FULCIO = "1.3.6.1.4.1.57264.1."
#: Fulcio's certificate extensions by name (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
#: The first six ("v1") hold the raw string bytes; from ``issuer_v2`` on each holds a DER UTF8String.
FULCIO_OIDS: dict[str, str] = {
    "issuer": _FULCIO + "1",
    "github_workflow_trigger": _FULCIO + "2",
    "github_workflow_sha": _FULCIO + "3",
    "github_workflow_name": _FULCIO + "4",
    "github_workflow_repository": _FULCIO + "5",
    "github_workflow_ref": _FULCIO + "6",
    "issuer_v2": _FULCIO + "8",
    "build_signer_uri": _FULCIO + "9",
    "build_signer_digest": _FULCIO + "10",
    "runner_environment": _FULCIO + "11",
    "source_repository_uri": _FULCIO + "12",
    "source_repository_digest": _FULCIO + "13",
    "source_repository_ref": _FULCIO + "14",
    "source_repository_identifier": _FULCIO + "15",
    "source_repository_owner_uri": _FULCIO + "16",
    "source_repository_owner_identifier": _FULCIO + "17",
    "build_config_uri": _FULCIO + "18",
    "build_config_digest": _FULCIO + "19",
    "build_trigger": _FULCIO + "20",
    "run_invocation_uri": _FULCIO + "21",
    "source_repository_visibility": _FULCIO + "22",
}
_V1_CLAIMS = frozenset(("issuer", "github_workflow_trigger", "github_workflow_sha", "github_workflow_name",
                        "github_workflow_repository", "github_workflow_ref"))

#: Fulcio's certificates live 10 minutes: the signer has that long to sign and reach the log.
LEAF_LIFETIME = dt.timedelta(minutes=10)
#: How long before the log's integrated time a good certificate was issued (Fulcio, then the signature, then
#: the upload), and how long before it an ``expired`` one was: its 10 minutes ended 20 minutes before.
_ISSUED_BEFORE_ENTRY = dt.timedelta(minutes=1)
_EXPIRED_ISSUED_BEFORE_ENTRY = dt.timedelta(minutes=30)
#: Entries the log holds before the first bundle's, and appends after each: every inclusion proof then has
#: hashes on both sides of its leaf, as a production proof does (the leaf is neither first nor last).
_LEADING_ENTRIES = 5
_TRAILING_ENTRIES = 2


@dataclass(frozen=True)
class Signer:
    """Who signs: the OIDC identity Fulcio puts in the certificate's SAN, its issuer, and the GitHub Actions
    claims of the workflow run (``github_repository=None``: an identity with no GitHub claims, such as a
    person's email address)."""

    identity: str = "https://github.com/acme/shop/.github/workflows/release.yml@refs/heads/main"
    issuer: str = "https://token.actions.githubusercontent.com"
    github_repository: str | None = "acme/shop"
    github_ref: str = "refs/heads/main"
    github_workflow_path: str = ".github/workflows/release.yml"
    github_sha: str = "4c6b3e1f2d8a9b0c7e5f6a1b2c3d4e5f60718293"
    github_event: str = "push"
    github_workflow_name: str = "release"
    github_runner_environment: str = "github-hosted"
    github_repository_id: str = "700100"
    github_owner_id: str = "700001"
    github_run_id: str = "9000000001"
    github_visibility: str = "public"

    def claims(self) -> dict[str, str]:
        """Every Fulcio extension the certificate carries, by dotted OID, as the text it holds: what a policy
        on that extension must expect to pass (the issuer always; the GitHub claims when there is a
        repository)."""
        named = {"issuer": self.issuer, "issuer_v2": self.issuer}
        if self.github_repository is not None:
            repository_uri = f"https://github.com/{self.github_repository}"
            owner = self.github_repository.split("/", 1)[0]
            workflow_uri = f"{repository_uri}/{self.github_workflow_path}@{self.github_ref}"
            named.update({
                "github_workflow_trigger": self.github_event,
                "github_workflow_sha": self.github_sha,
                "github_workflow_name": self.github_workflow_name,
                "github_workflow_repository": self.github_repository,
                "github_workflow_ref": self.github_ref,
                # The workflow that ran (a reusable one would differ from the caller's build config).
                "build_signer_uri": self.identity if "://" in self.identity else workflow_uri,
                "build_signer_digest": self.github_sha,
                "runner_environment": self.github_runner_environment,
                "source_repository_uri": repository_uri,
                "source_repository_digest": self.github_sha,
                "source_repository_ref": self.github_ref,
                "source_repository_identifier": self.github_repository_id,
                "source_repository_owner_uri": f"https://github.com/{owner}",
                "source_repository_owner_identifier": self.github_owner_id,
                "build_config_uri": workflow_uri,
                "build_config_digest": self.github_sha,
                "build_trigger": self.github_event,
                "run_invocation_uri": f"{repository_uri}/actions/runs/{self.github_run_id}/attempts/1",
                "source_repository_visibility": self.github_visibility,
            })
        return {FULCIO_OIDS[name]: value for name, value in named.items()}

    def extensions(self) -> list[x509.UnrecognizedExtension]:
        """The claims as certificate extensions, each encoded as Fulcio does (sigstore's ``policy`` module
        reads v1 ones with ``value.decode()`` and v2 ones with a DER UTF8String decoder)."""
        v1_oids = {FULCIO_OIDS[name] for name in _V1_CLAIMS}
        return [x509.UnrecognizedExtension(x509.ObjectIdentifier(oid),
                                           value.encode() if oid in v1_oids else _der_utf8_string(value))
                for oid, value in self.claims().items()]

    def subject_alternative_name(self) -> x509.GeneralName:
        """A workflow identity is a URI; anything else is taken for an email address, as Fulcio issues for a
        person's account."""
        if "://" in self.identity:
            return x509.UniformResourceIdentifier(self.identity)
        return x509.RFC822Name(self.identity)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON for the log's documents (entry bodies, the signed entry timestamp's payload,
    the envelope hash): their keys are ASCII and their values strings, integers, lists and objects, for which
    sorted keys, no whitespace and UTF-8 are exactly RFC 8785 (no floats to format, no non-BMP keys to order
    by UTF-16). Rekor stores canonical bodies and its signed entry timestamp covers a canonical document."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _der_utf8_string(text: str) -> bytes:
    """DER UTF8String (tag 0x0C): the encoding of Fulcio's v2 extensions."""
    data = text.encode()
    return b"\x0c" + _der_length(len(data)) + data


def _der_octet_string(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962's log ID (SHA-256 of the DER SubjectPublicKeyInfo): how sigstore names every key in the
    trusted root, and how SCTs, log entries and checkpoint signatures say which key signed them."""
    return hashlib.sha256(_spki(key)).digest()


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what an envelope's signature covers."""
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


def _utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def _rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _public_key_document(key: ec.EllipticCurvePublicKey, url: str, valid_from: dt.datetime) -> dict[str, Any]:
    """A trusted root's transparency-log instance (both ``tlogs`` and ``ctlogs`` take this shape)."""
    return {
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": _b64(_spki(key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                      "validFor": {"start": _rfc3339(valid_from)}},
        "logId": {"keyId": _b64(_key_id(key))},
    }


class _MerkleTree:
    """RFC 6962 Merkle tree over leaf hashes (SHA-256, 0x00 leaf and 0x01 node prefixes): the shape whose
    audit paths sigstore's ``verify_merkle_inclusion`` chains up to the root hash."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []

    @property
    def size(self) -> int:
        return len(self._leaves)

    def append(self, data: bytes) -> int:
        """Adds a leaf; returns its index."""
        self._leaves.append(hashlib.sha256(b"\x00" + data).digest())
        return len(self._leaves) - 1

    def root(self, size: int) -> bytes:
        return self._hash(0, size)

    def proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of the first ``size`` leaves, from the leaf up
        (RFC 6962 section 2.1.1's PATH)."""
        return self._path(index, 0, size)

    def _hash(self, start: int, end: int) -> bytes:
        if end - start == 1:
            return self._leaves[start]
        split = start + _largest_power_of_two_below(end - start)
        return hashlib.sha256(b"\x01" + self._hash(start, split) + self._hash(split, end)).digest()

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        split = start + _largest_power_of_two_below(end - start)
        if index < split:
            return self._path(index, start, split) + [self._hash(split, end)]
        return self._path(index, split, end) + [self._hash(start, split)]


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


class _TransparencyLog:
    """A Rekor v1-like log: it appends canonical entry bodies to a Merkle tree and answers with what a bundle's
    ``tlogEntries[0]`` holds: integrated time, signed entry timestamp (the inclusion promise) and an inclusion
    proof whose checkpoint (a signed note) the log key signs."""

    def __init__(self, name: str) -> None:
        self.key = _new_key()
        self.log_id = _key_id(self.key.public_key())
        self.url = f"https://rekor.{name}.example"
        #: A signed note's signer name has no spaces; Rekor's is its host name.
        self.note_name = f"rekor.{name}.example"
        #: Rekor's checkpoint origin: its host name and the tree's ID.
        self.origin = f"{self.note_name} - {int.from_bytes(self.log_id[:8], 'big') >> 1}"
        self._tree = _MerkleTree()
        for filler in range(_LEADING_ENTRIES):
            self._append_filler(filler)

    def _append_filler(self, number: int) -> None:
        """Someone else's entry: the log is shared, so a bundle's leaf has neighbours."""
        self._tree.append(_canonical_json({"kind": "filler", "entry": f"{self.note_name}/{number}"}))

    def record(self, kind: str, body: dict[str, Any], integrated_time: int) -> dict[str, Any]:
        """Logs ``body`` (a ``kind`` 0.0.1 entry) and returns the bundle's transparency log entry."""
        canonical = _canonical_json(body)
        index = self._tree.append(canonical)
        for _ in range(_TRAILING_ENTRIES):
            self._append_filler(self._tree.size)
        size = self._tree.size
        root = self._tree.root(size)
        # sigstore's TransparencyLogEntry._encode_canonical: what the signed entry timestamp covers.
        promise = _canonical_json({"body": _b64(canonical), "integratedTime": integrated_time,
                                   "logID": self.log_id.hex(), "logIndex": index})
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.key, promise))},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(node) for node in self._tree.proof(index, size)],
                "checkpoint": {"envelope": self._checkpoint(size, root)},
            },
            "canonicalizedBody": _b64(canonical),
        }

    def _checkpoint(self, size: int, root: bytes) -> str:
        """A signed note over the tree head (origin, size, base64 root), as Rekor writes it: the signature
        line is an em dash, the signer's name and base64 of the key hash (the first 4 bytes of the log ID,
        which sigstore matches) followed by the signature over the note's text."""
        note = f"{self.origin}\n{size}\n{_b64(root)}\n"
        signature = self.log_id[:4] + _sign(self.key, note.encode())
        return f"{note}\n\u2014 {self.note_name} {_b64(signature)}\n"


class _CertificateAuthority:
    """A Fulcio-like CA (root, intermediate) and the CT log whose SCT every leaf embeds."""

    def __init__(self, name: str, now: dt.datetime) -> None:
        self.name = name
        self.not_before = now - dt.timedelta(days=1)
        organization = f"sigstore.{name}.example"
        self.root_key = _new_key()
        self.root = self._ca_certificate(
            x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                       x509.NameAttribute(NameOID.COMMON_NAME, "sigstore")]),
            self.root_key, None, path_length=None)
        self.intermediate_key = _new_key()
        self.intermediate = self._ca_certificate(
            x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                       x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-intermediate")]),
            self.intermediate_key, (self.root, self.root_key), path_length=0)
        self.ct_key = _new_key()
        self.ct_url = f"https://ctfe.{name}.example/log"

    def _ca_certificate(self, subject: x509.Name, key: ec.EllipticCurvePrivateKey,
                        issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
                        path_length: int | None) -> x509.Certificate:
        """A CA certificate as Fulcio's are (critical basic constraints and key usage, key identifiers;
        the intermediate restricted to code signing): what cryptography's Web PKI CA policy, which sigstore
        builds chains with, requires."""
        issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(self.not_before).not_valid_after(self.not_before + dt.timedelta(days=3650))
                   .add_extension(_usage(cert_sign=True), critical=True)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
        if issuer is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                                            critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def issue(self, signer: Signer, public_key: ec.EllipticCurvePublicKey,
              not_before: dt.datetime) -> x509.Certificate:
        """A Fulcio leaf for ``signer``'s key: empty subject, critical SAN, code signing, the claims, and an
        embedded SCT over the precertificate.

        The SCT signs the TBSCertificate without the SCT list extension (RFC 6962 section 3.2, what
        ``Certificate.tbs_precertificate_bytes`` returns): so the certificate is built once without it, its
        TBS signed by the CT log, and built again with the SCT list appended as the last extension.
        """
        issuer_public_key = self.intermediate_key.public_key()
        builder = (x509.CertificateBuilder().subject_name(x509.Name([]))
                   .issuer_name(self.intermediate.subject).public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before).not_valid_after(not_before + LEAF_LIFETIME)
                   .add_extension(_usage(digital_signature=True), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key),
                                  critical=False)
                   # Critical: the subject is empty, so the SAN is the certificate's only name (RFC 5280).
                   .add_extension(x509.SubjectAlternativeName([signer.subject_alternative_name()]),
                                  critical=True))
        for extension in signer.extensions():
            builder = builder.add_extension(extension, critical=False)
        precertificate = builder.sign(self.intermediate_key, hashes.SHA256())
        tbs = precertificate.tbs_certificate_bytes
        sct_list = self._sct_list(tbs, hashlib.sha256(_spki(issuer_public_key)).digest(), not_before)
        certificate = builder.add_extension(
            x509.UnrecognizedExtension(CT_SCT_LIST_OID, _der_octet_string(sct_list)), critical=False,
        ).sign(self.intermediate_key, hashes.SHA256())
        if certificate.tbs_precertificate_bytes != tbs:  # the SCT would not verify: better to fail here
            raise RuntimeError("the certificate's TBS without its SCT list differs from the one the SCT signs")
        return certificate

    def _sct_list(self, tbs: bytes, issuer_key_hash: bytes, issued: dt.datetime) -> bytes:
        """A SignedCertificateTimestampList of one v1 precertificate SCT (RFC 6962 section 3.2 and 3.3).

        The timestamp is whole seconds in milliseconds: sigstore rebuilds it from cryptography's datetime as
        ``int(timestamp() * 1000)``, which a millisecond part could round one short."""
        timestamp = int(issued.timestamp()) * 1000
        signed = (struct.pack("!BBQH", 0, 0, timestamp, 1)  # v1, certificate_timestamp, time, precert_entry
                  + issuer_key_hash + len(tbs).to_bytes(3, "big") + tbs
                  + struct.pack("!H", 0))  # no CT extensions
        signature = _sign(self.ct_key, signed)
        sct = (struct.pack("!B", 0) + _key_id(self.ct_key.public_key()) + struct.pack("!QH", timestamp, 0)
               + struct.pack("!BBH", 4, 3, len(signature)) + signature)  # sha256, ecdsa
        return struct.pack("!HH", len(sct) + 2, len(sct)) + sct

    def authority_document(self) -> dict[str, Any]:
        """The trusted root's certificate authority: the chain from the intermediate to the root."""
        return {
            "subject": {"organization": f"sigstore.{self.name}.example", "commonName": "sigstore"},
            "uri": f"https://fulcio.{self.name}.example",
            "certChain": {"certificates": [
                {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))}
                for cert in (self.intermediate, self.root)]},
            "validFor": {"start": _rfc3339(self.not_before)},
        }


@dataclass
class SigstoreInstance:
    """One local Sigstore deployment: its CA, CT log and transparency log, and the ``trusted_root.json`` that
    trusts exactly them. Bundles from another instance do not verify against this one's root."""

    name: str
    directory: Path
    trusted_root: Path
    _ca: _CertificateAuthority = field(repr=False)
    _log: _TransparencyLog = field(repr=False)

    def statement(self, subject_digest: str, predicate_type: str, predicate: dict[str, Any] | None = None,
                  subject_name: str = "registry.example/shop/api") -> dict[str, Any]:
        """An in-toto v1 statement about the artifact ``subject_digest`` (``sha256:<hex>``)."""
        algorithm, _, hex_digest = subject_digest.partition(":")
        if algorithm != "sha256" or len(hex_digest) != 64:
            raise ValueError(f"expected sha256:<64 hex digits>, got {subject_digest!r}")
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": subject_name, "digest": {"sha256": hex_digest}}],
            "predicateType": predicate_type,
            "predicate": predicate if predicate is not None else {},
        }

    def dsse_bundle(self, statement: dict[str, Any], signer: Signer = Signer(), *, tamper_payload: bool = False,
                    expired: bool = False, log_entry: bool = True) -> bytes:
        """A bundle of a DSSE envelope over ``statement``, logged as a ``dsse`` 0.0.1 entry.

        ``tamper_payload``: the envelope carries another statement (its subject digest changed) than the one
        signed and logged; ``expired``: the certificate's 10 minutes ended before the log integrated the
        entry; ``log_entry=False``: no transparency log entry at all.
        """
        key, certificate, integrated_time = self._certify(signer, expired)
        payload = _statement_bytes(statement)
        signature = _sign(key, _pae(INTOTO_PAYLOAD_TYPE, payload))
        envelope = {"payload": _b64(payload), "payloadType": INTOTO_PAYLOAD_TYPE,
                    "signatures": [{"sig": _b64(signature)}]}
        # Rekor's dsse 0.0.1 entry; sigstore checks its payload hash and signatures against the envelope (the
        # envelope hash covers Rekor's own re-encoding, which no client can check).
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256",
                                 "value": hashlib.sha256(_canonical_json(envelope)).hexdigest()},
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                "signatures": [{"signature": _b64(signature), "verifier": _pem_b64(certificate)}],
            },
        }
        if tamper_payload:
            envelope["payload"] = _b64(_statement_bytes(_tampered(statement)))
        entries = [self._log.record("dsse", body, integrated_time)] if log_entry else []
        return self._bundle(certificate, entries, {"dsseEnvelope": envelope})

    def message_bundle(self, message: bytes, signer: Signer = Signer(), *, expired: bool = False,
                       log_entry: bool = True) -> bytes:
        """A bundle of a signature over ``message`` (its SHA-256 digest signed, as sigstore signs a blob),
        logged as a ``hashedrekord`` 0.0.1 entry; ``expired`` and ``log_entry`` as for :meth:`dsse_bundle`."""
        key, certificate, integrated_time = self._certify(signer, expired)
        digest = hashlib.sha256(message).digest()
        signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        # Rekor's hashedrekord 0.0.1 entry: sigstore rebuilds this from the bundle and the input and compares.
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {"content": _b64(signature), "publicKey": {"content": _pem_b64(certificate)}},
            },
        }
        entries = [self._log.record("hashedrekord", body, integrated_time)] if log_entry else []
        content = {"messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                                        "signature": _b64(signature)}}
        return self._bundle(certificate, entries, content)

    def _certify(self, signer: Signer, expired: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, int]:
        """An ephemeral key, its certificate, and the time the log integrates the entry (now): the
        certificate was issued a minute before, or, ``expired``, half an hour before."""
        integrated_time = int(time.time())
        issued = _utc(integrated_time) - (_EXPIRED_ISSUED_BEFORE_ENTRY if expired else _ISSUED_BEFORE_ENTRY)
        key = _new_key()
        return key, self._ca.issue(signer, key.public_key(), issued), integrated_time

    @staticmethod
    def _bundle(certificate: x509.Certificate, entries: list[dict[str, Any]], content: dict[str, Any]) -> bytes:
        document = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(certificate.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": entries,
            },
            **content,
        }
        return json.dumps(document, indent=2).encode()


def _statement_bytes(statement: dict[str, Any]) -> bytes:
    """The payload as a signer serializes it: compact, keys in the caller's order. A DSSE payload is opaque
    bytes to the verifier, so it need not be canonical (and a predicate may hold what RFC 8785 formats
    differently from ``json``, such as floats)."""
    return json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode()


def _pem_b64(certificate: x509.Certificate) -> str:
    """Base64 of the PEM certificate: how Rekor's entries name the verifier (sigstore compares this text)."""
    return _b64(certificate.public_bytes(serialization.Encoding.PEM))


def _tampered(statement: dict[str, Any]) -> dict[str, Any]:
    """``statement`` about another artifact: every subject's sha256 replaced by the hash of itself."""
    changed = copy.deepcopy(statement)
    for subject in changed.get("subject", []):
        digests = subject.get("digest", {})
        for algorithm, value in digests.items():
            digests[algorithm] = hashlib.sha256(str(value).encode()).hexdigest()
    if changed == statement:  # no subject digest to change: change the predicate instead
        changed["predicate"] = {"tampered": True}
    return changed


def mint_instance(directory: Path, name: str = "local") -> SigstoreInstance:
    """A new instance with fresh keys, its ``trusted_root.json`` written to ``directory``. ``name`` goes into
    its URLs and certificate names, so two instances are told apart in an error message."""
    directory.mkdir(parents=True, exist_ok=True)
    now = _utc(int(time.time()))
    ca = _CertificateAuthority(name, now)
    log = _TransparencyLog(name)
    document = {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [_public_key_document(log.key.public_key(), log.url, ca.not_before)],
        "certificateAuthorities": [ca.authority_document()],
        "ctlogs": [_public_key_document(ca.ct_key.public_key(), ca.ct_url, ca.not_before)],
        "timestampAuthorities": [],
    }
    trusted_root = directory / "trusted_root.json"
    trusted_root.write_text(json.dumps(document, indent=2) + "\n")
    return SigstoreInstance(name=name, directory=directory, trusted_root=trusted_root, _ca=ca, _log=log)
