"""Certificate generation for the registry harness.

Two independent chains are produced, both with ``cryptography`` only (no
``openssl`` binary, so the harness works on any machine that can pip-install
the test dependencies):

* a **TLS chain** -- a CA and a server certificate for ``127.0.0.1`` /
  ``localhost`` -- so the registry can serve HTTPS and tests can verify it with
  the CA file, exactly as a user with a private CA would;
* a **token-signing chain** -- a root CA (the registry's ``rootcertbundle``)
  and an EC P-256 leaf that signs the JWTs -- because distribution only trusts
  tokens whose ``x5c`` header chains to a certificate in that bundle.

The certificates follow the stricter RFC 5280 profile (critical basic
constraints and key usage, subject/authority key identifiers) so they also pass
``VERIFY_X509_STRICT``, which Python 3.13+ enables by default.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "TLSFiles",
    "TokenSigningChain",
    "generate_tls_files",
    "generate_token_signing_chain",
]

# Backdate validity so that small clock differences between the test process
# and the registry never make a fresh certificate "not yet valid".
_BACKDATE = _dt.timedelta(minutes=5)
_VALIDITY = _dt.timedelta(days=7)


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for serving HTTPS on 127.0.0.1 and trusting it.

    Attributes:
        ca_cert: CA certificate; what a client passes as its trust anchor.
        server_cert: server certificate (SAN IP 127.0.0.1, DNS localhost).
        server_key: unencrypted PKCS#8 private key of the server certificate.
    """

    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class TokenSigningChain:
    """Material the token issuer signs with and the registry verifies against.

    Attributes:
        root_cert: PEM file for the registry's ``auth.token.rootcertbundle``.
        root_cert_der: DER bytes of the root, optionally appended to ``x5c``.
        signing_key: EC P-256 private key of the leaf (signs ES256 JWTs).
        signing_cert_der: DER bytes of the leaf certificate (``x5c[0]``).
    """

    root_cert: Path
    root_cert_der: bytes
    signing_key: ec.EllipticCurvePrivateKey
    signing_cert_der: bytes


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys are fast to generate (unlike RSA) and accepted both by Go's
    # TLS stack and by distribution's ES256 token verification.
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signing only; a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create a self-signed CA able to sign end-entity certificates only."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    server_auth: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create an end-entity certificate issued by ``ca_cert``.

    ``server_auth`` adds the TLS server EKU and the 127.0.0.1/localhost SANs;
    the token-signing leaf needs neither (distribution verifies its chain with
    ``ExtKeyUsageAny``).
    """
    key = _new_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server_auth:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def generate_tls_files(directory: Path) -> TLSFiles:
    """Write ``ca.pem``, ``server.pem`` and ``server-key.pem`` into ``directory``.

    A separate CA (rather than one self-signed server certificate) lets tests
    check the realistic case: trusting a private CA, not pinning a leaf.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca("ci-oras test TLS CA")
    server_key, server_cert = _make_leaf("127.0.0.1", ca_key, ca_cert, server_auth=True)
    return TLSFiles(
        ca_cert=_write_cert(directory / "ca.pem", ca_cert),
        server_cert=_write_cert(directory / "server.pem", server_cert),
        server_key=_write_key(directory / "server-key.pem", server_key),
    )


def generate_token_signing_chain(directory: Path) -> TokenSigningChain:
    """Write the token root CA as ``token-root.pem`` and return signing material.

    The leaf key stays in memory (the issuer runs in-process); it is also
    written as ``token-signing-key.pem`` only to make failures debuggable.
    """
    directory.mkdir(parents=True, exist_ok=True)
    root_key, root_cert = _make_ca("ci-oras test token root")
    leaf_key, leaf_cert = _make_leaf("ci-oras test token signer", root_key, root_cert, server_auth=False)
    _write_cert(directory / "token-signing.pem", leaf_cert)
    _write_key(directory / "token-signing-key.pem", leaf_key)
    return TokenSigningChain(
        root_cert=_write_cert(directory / "token-root.pem", root_cert),
        root_cert_der=root_cert.public_bytes(serialization.Encoding.DER),
        signing_key=leaf_key,
        signing_cert_der=leaf_cert.public_bytes(serialization.Encoding.DER),
    )
