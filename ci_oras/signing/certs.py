"""The certificate requirements of the Notary Project signature specification, checked with ``cryptography``.

A signing chain is ordered leaf first and ends in a self-signed root; every certificate is issued (subject
name and signature) by the next one. The leaf is a code-signing end entity: basic constraints, if present,
say it is not a CA; key usage is present, critical, has ``digitalSignature`` and neither ``keyCertSign`` nor
``cRLSign``; an extended key usage, if present, contains ``codeSigning`` and none of serverAuth, clientAuth,
emailProtection, timeStamping, OCSPSigning (as notation checks); the key is RSA ≥ 2048 bits or ECDSA
P-256/384/521. Every CA has basic constraints ``ca=true``, a path length that allows the certificates below it,
and critical key usage with ``keyCertSign``.

Each check returns a reason (a sentence naming the certificate) or None, so the verifier can report exactly
why a chain was refused; nothing here raises for a bad certificate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID

from ci_oras.signing.keys import algorithm_for, public_key

_EXCLUDED_EKUS = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}


def name_of(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def validity_problem(chain: Sequence[x509.Certificate], at: dt.datetime, when: str) -> str | None:
    """Why some certificate in ``chain`` is not valid at ``at`` (``when`` says which time it is), or None."""
    for cert in chain:
        if at < cert.not_valid_before_utc:
            return (f"certificate {name_of(cert)!r} is not valid {when} ({_iso(at)}): "
                    f"it is valid from {_iso(cert.not_valid_before_utc)}")
        if at > cert.not_valid_after_utc:
            return (f"certificate {name_of(cert)!r} is not valid {when} ({_iso(at)}): "
                    f"it expired at {_iso(cert.not_valid_after_utc)}")
    return None


def chain_problem(chain: Sequence[x509.Certificate]) -> str | None:
    """Why ``chain`` (leaf first) is not a valid Notary Project code-signing chain, or None."""
    if not chain:
        return "the signature carries no certificate chain"
    last = len(chain) - 1
    for index, cert in enumerate(chain):
        if index == last:
            if not _self_signed(cert):
                return (f"the chain ends with {name_of(cert)!r}, which is not a self-signed root "
                        "(the chain must include its root)")
        elif _self_signed(cert):
            role = "leaf" if index == 0 else "intermediate"
            return f"the {role} certificate {name_of(cert)!r} is self-signed but is not the end of the chain"
        elif not _issued_by(cert, chain[index + 1]):
            return f"certificate {name_of(cert)!r} is not issued by {name_of(chain[index + 1])!r}"
        problem = leaf_problem(cert) if index == 0 else _ca_problem(cert, index - 1)
        if problem:
            return problem
    return None


def leaf_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` cannot be a Notary Project signing certificate, or None."""
    name = name_of(cert)
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        return f"the signing certificate {name!r} is a CA certificate (basic constraints ca=true)"
    usage = _extension(cert, x509.KeyUsage)
    if usage is None:
        return f"the signing certificate {name!r} has no key usage extension (digitalSignature is required)"
    if not usage.critical:
        return f"the signing certificate {name!r} has a key usage extension that is not marked critical"
    if not usage.value.digital_signature:
        return f"the signing certificate {name!r} lacks the digitalSignature key usage"
    if usage.value.key_cert_sign or usage.value.crl_sign:
        return f"the signing certificate {name!r} has the keyCertSign or cRLSign key usage"
    ekus = _extension(cert, x509.ExtendedKeyUsage)
    if ekus is not None:
        excluded = [_EXCLUDED_EKUS[oid] for oid in ekus.value if oid in _EXCLUDED_EKUS]
        if excluded:
            return f"the signing certificate {name!r} has the {', '.join(excluded)} extended key usage"
        if ExtendedKeyUsageOID.CODE_SIGNING not in ekus.value:
            return f"the signing certificate {name!r} has an extended key usage without codeSigning"
    key = public_key(cert)
    if key is None or algorithm_for(key) is None:
        return (f"the signing certificate {name!r} has a key Notary Project signatures do not use "
                "(RSA 2048/3072/4096 or ECDSA P-256/384/521)")
    return None


def _ca_problem(cert: x509.Certificate, below: int) -> str | None:
    name = name_of(cert)
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.critical or not constraints.value.ca:
        return f"CA certificate {name!r} lacks critical basic constraints with ca=true"
    path_length = constraints.value.path_length
    if path_length is not None and path_length < below:
        return f"CA certificate {name!r} allows {path_length} intermediate(s) below it, the chain has {below}"
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.critical or not usage.value.key_cert_sign:
        return f"CA certificate {name!r} lacks a critical key usage with keyCertSign"
    return None


_E = TypeVar("_E", bound=x509.ExtensionType)


def _extension(cert: x509.Certificate, kind: type[_E]) -> x509.Extension[_E] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _issued_by(cert, cert)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
