"""Code-signing certificate chains for the signing tests, made with ``cryptography``.

A root CA issues a leaf whose properties each test can spoil one at a time (key usage, extended key usage,
validity window, subject), so every refusal the verifier owes has a chain that provokes exactly it. Keys are
cached per type: RSA 4096 takes a second to generate and the tests only need distinct keys per type.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ec256", "ec384", "ec521")
ALGORITHM_OF = {"rsa2048": "PS256", "rsa3072": "PS384", "rsa4096": "PS512",
                "ec256": "ES256", "ec384": "ES384", "ec521": "ES512"}
SUBJECT = (("C", "US"), ("ST", "WA"), ("L", "Seattle"), ("O", "Acme Rockets"), ("CN", "Release Signer"))
_OIDS = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
         "O": NameOID.ORGANIZATION_NAME, "CN": NameOID.COMMON_NAME}
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@functools.cache
def key(kind: str, slot: int = 0) -> PrivateKey:
    """A key of ``kind``; ``slot`` gives another key of the same kind."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curve = {"ec256": ec.SECP256R1(), "ec384": ec.SECP384R1(), "ec521": ec.SECP521R1()}[kind]
    return ec.generate_private_key(curve)


def name(attributes: tuple[tuple[str, str], ...]) -> x509.Name:
    return x509.Name([x509.NameAttribute(_OIDS[attr], value) for attr, value in attributes])


def _usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


@dataclass(frozen=True)
class Pki:
    root_key: PrivateKey
    root: x509.Certificate
    leaf_key: PrivateKey
    leaf: x509.Certificate

    @property
    def chain_pem(self) -> bytes:
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in (self.leaf, self.root))

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, traditional: bool = False) -> bytes:
        fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
        return self.leaf_key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())

    def write_store(self, root: Path, store: str = "acme", store_type: str = "ca") -> Path:
        directory = root / "x509" / store_type / store
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "root.pem").write_bytes(self.root_pem)
        return root


def make_root(common_name: str = "Acme Root CA", kind: str = "ec384", slot: int = 0) -> tuple[PrivateKey,
                                                                                                 x509.Certificate]:
    root_key = key(kind, 100 + slot)
    subject = name((("C", "US"), ("ST", "WA"), ("O", "Acme Rockets"), ("CN", common_name)))
    root = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=365)).not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .sign(root_key, hashes.SHA384()))
    return root_key, root


def make_pki(kind: str = "ec256", *, root: tuple[PrivateKey, x509.Certificate] | None = None,
             subject: tuple[tuple[str, str], ...] = SUBJECT, digital_signature: bool = True,
             ekus: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.CODE_SIGNING,),
             not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> Pki:
    """A root and a leaf of key type ``kind``; each keyword spoils (or customises) one leaf property."""
    root_key, root_cert = root or make_root()
    leaf_key = key(kind)
    builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(root_cert.subject)
               .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - dt.timedelta(days=30))
               .not_valid_after(not_after or NOW + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_usage(digital_signature=digital_signature), critical=True))
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    return Pki(root_key, root_cert, leaf_key, builder.sign(root_key, hashes.SHA384()))
