"""Signing keys, the algorithms they imply, and the raw signature operations both envelopes share.

The Notary Project ties the algorithm to the key: RSA 2048/3072/4096 sign with RSASSA-PSS over SHA-256/384/512
(salt as long as the hash), ECDSA P-256/384/521 with SHA-256/384/512. There is no choice to get wrong, so the
algorithm is derived from the key (and, when verifying, from the leaf certificate's key) and an envelope whose
declared algorithm disagrees is refused. JWS and COSE both carry ECDSA signatures as the fixed-size ``r || s``
concatenation, not DER.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ci_oras.errors import UsageError

PrivateKey: TypeAlias = "rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey"
PublicKey: TypeAlias = "rsa.RSAPublicKey | ec.EllipticCurvePublicKey"

_KEY_HINT = "use an unencrypted PEM RSA (2048, 3072, 4096 bits) or ECDSA (P-256, P-384, P-521) private key"


@dataclass(frozen=True)
class Algorithm:
    """One of the six Notary Project signature algorithms."""

    #: The JWS ``alg`` name (RFC 7518), also used in messages.
    name: str
    #: The COSE algorithm identifier (RFC 9053).
    cose: int
    #: Digest size in bits: 256, 384 or 512.
    bits: int
    #: ``"rsa"`` or ``"ec"``.
    kind: str

    def hash(self) -> hashes.HashAlgorithm:
        return {256: hashes.SHA256(), 384: hashes.SHA384(), 512: hashes.SHA512()}[self.bits]


ALGORITHMS = (
    Algorithm("PS256", -37, 256, "rsa"),
    Algorithm("PS384", -38, 384, "rsa"),
    Algorithm("PS512", -39, 512, "rsa"),
    Algorithm("ES256", -7, 256, "ec"),
    Algorithm("ES384", -35, 384, "ec"),
    Algorithm("ES512", -36, 512, "ec"),
)
BY_NAME = {alg.name: alg for alg in ALGORITHMS}
BY_COSE = {alg.cose: alg for alg in ALGORITHMS}
_RSA_BITS = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
_EC_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def algorithm_for(key: PrivateKey | PublicKey) -> Algorithm | None:
    """The algorithm the Notary Project prescribes for ``key``; None for a key it does not allow."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        name = _RSA_BITS.get(key.key_size)
    elif isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        name = _EC_CURVES.get(key.curve.name)
    else:
        return None
    return BY_NAME[name] if name else None


def describe_key(key: object) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"an RSA {key.key_size}-bit key"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"an ECDSA {key.curve.name} key"
    return f"a {type(key).__name__.lstrip('_')}"


def load_private_key(pem: bytes, source: str) -> PrivateKey:
    """A PEM private key in PKCS#8 or the traditional (PKCS#1 / SEC 1) form; ``source`` names it in errors
    (a file name or an environment variable's name, never the key itself)."""
    if b"-----BEGIN" not in pem:
        raise UsageError(f"{source} does not hold a PEM private key", hint=_KEY_HINT)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise UsageError(f"the private key in {source} is encrypted",
                         hint="decrypt it first (openssl pkey -in KEY -out PLAIN); CI secrets protect it at rest") from None
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"{source} does not hold a readable PEM private key", hint=_KEY_HINT) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) or algorithm_for(key) is None:
        raise UsageError(f"{source} holds {describe_key(key)}, which Notary Project signatures do not use",
                         hint=_KEY_HINT)
    return key


def load_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (or one DER certificate), in file order."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise UsageError(f"{source} does not hold PEM or DER X.509 certificates",
                         hint="pass the certificate chain as PEM, leaf first") from None


def sign_bytes(key: PrivateKey, algorithm: Algorithm, data: bytes) -> bytes:
    """Sign ``data``: RSASSA-PSS with salt = hash length, or ECDSA as fixed-width ``r || s``."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _pss(algorithm), algorithm.hash())
    der = key.sign(data, ec.ECDSA(algorithm.hash()))
    r, s = decode_dss_signature(der)
    width = (key.curve.key_size + 7) // 8
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


def verify_bytes(key: PublicKey, algorithm: Algorithm, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``algorithm``'s signature of ``data`` under ``key``."""
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _pss(algorithm), algorithm.hash())
            return True
        width = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * width:
            return False
        r, s = int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm.hash()))
        return True
    except InvalidSignature:
        return False


def _pss(algorithm: Algorithm) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(algorithm.hash()), salt_length=algorithm.bits // 8)


def public_key(cert: x509.Certificate) -> PublicKey | None:
    """The certificate's key when it is one a Notary Project signature can be made with."""
    key = cert.public_key()
    return key if isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) else None


def same_public_key(a: PrivateKey, cert: x509.Certificate) -> bool:
    der = serialization.Encoding.DER
    info = serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_key().public_bytes(der, info) == cert.public_key().public_bytes(der, info)
