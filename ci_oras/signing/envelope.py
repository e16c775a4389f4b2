"""The two Notary Project signature envelopes (signature specification v1.1): JWS JSON serialization
(``application/jose+json``) and COSE_Sign1 (``application/cose``).

Both sign the same payload, ``{"targetArtifact": <descriptor of the signed manifest>}`` (content type
``application/vnd.cncf.notary.payload.v1+json``), with protected headers naming the algorithm, the content
type, the signing scheme ``notary.x509``, the signing time, an optional expiry, and ``crit`` listing the
headers a verifier must understand; the certificate chain travels unprotected (JWS ``x5c``, COSE ``x5chain``
label 33), as the specification requires, since the chain is authenticated by the signature it carries.

Parsing keeps the exact bytes the signature covers (JWS ``BASE64URL(protected) '.' BASE64URL(payload)``; COSE
the ``Sig_structure`` over the received protected-header bytes), so integrity is checked over what was signed,
never over a re-encoding. A malformed envelope raises :class:`EnvelopeError` with the reason.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ci_oras.formats import cbor
from ci_oras.formats.signature import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, NOTARY_PAYLOAD_TYPE
from ci_oras.oci.descriptor import Descriptor
from ci_oras.signing.keys import BY_COSE, BY_NAME, Algorithm, PrivateKey, algorithm_for, sign_bytes

SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"
SIGNING_SCHEMES = (SCHEME_X509, SCHEME_SIGNING_AUTHORITY)

H_SIGNING_SCHEME = "io.cncf.notary.signingScheme"
H_SIGNING_TIME = "io.cncf.notary.signingTime"
H_AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
H_EXPIRY = "io.cncf.notary.expiry"
H_SIGNING_AGENT = "io.cncf.notary.signingAgent"
H_TIMESTAMP_SIGNATURE = "io.cncf.notary.timestampSignature"

FORMATS = {"jws": JWS_MEDIA_TYPE, "cose": COSE_MEDIA_TYPE}

_COSE_SIGN1_TAG = 18
_COSE_ALG, _COSE_CRIT, _COSE_CTY, _COSE_X5CHAIN = 1, 2, 3, 33
_CBOR_EPOCH_TAG = 1
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
#: Headers the specification defines and this verifier understands when a signer marks them critical.
_UNDERSTOOD = {H_SIGNING_SCHEME, H_SIGNING_TIME, H_AUTHENTIC_SIGNING_TIME, H_EXPIRY}


class EnvelopeError(ValueError):
    """The bytes are not a well-formed Notary Project envelope; the message says what is wrong."""


@dataclass(frozen=True)
class Envelope:
    """What a parsed envelope claims; nothing here has been verified yet."""

    media_type: str
    algorithm: Algorithm
    signing_scheme: str
    #: ``io.cncf.notary.signingTime`` (self-asserted by the signer) or ``authenticSigningTime``.
    signing_time: dt.datetime
    expiry: dt.datetime | None
    payload: bytes
    #: The exact bytes the signature covers.
    signed: bytes
    signature: bytes
    #: DER certificates, leaf first.
    chain: tuple[bytes, ...]
    #: True when an RFC 3161 timestamp countersignature is attached (not verified by ci-oras).
    timestamped: bool
    signing_agent: str | None

    @property
    def format(self) -> str:
        return "jws" if self.media_type == JWS_MEDIA_TYPE else "cose"


def payload_for(subject: Descriptor) -> bytes:
    """The signed payload: the subject's descriptor (media type, digest, size, annotations) as notation writes it."""
    return json.dumps({"targetArtifact": subject.to_dict()}, separators=(",", ":")).encode("utf-8")


def target_of(payload: bytes) -> dict[str, object]:
    """The ``targetArtifact`` object of a payload; EnvelopeError when there is none."""
    try:
        document: object = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EnvelopeError("the signed payload is not JSON") from None
    target = document.get("targetArtifact") if isinstance(document, dict) else None
    if not isinstance(target, dict):
        raise EnvelopeError("the signed payload has no targetArtifact object")
    return target


def target_mismatch(payload: bytes, subject: Descriptor) -> str | None:
    """Why the payload does not name ``subject`` (digest, size and media type all must agree), or None."""
    target = target_of(payload)
    for key, wanted in (("digest", subject.digest), ("size", subject.size), ("mediaType", subject.media_type)):
        if target.get(key) != wanted:
            return (f"the signature was made for {target.get('digest')!s} ({key} {target.get(key)!r}), "
                    f"not for {subject.digest} ({key} {wanted!r})")
    return None


def sign_envelope(signature_format: str, key: PrivateKey, chain: Sequence[bytes], payload: bytes, *,
                  signing_time: dt.datetime, expiry: dt.datetime | None, signing_agent: str) -> bytes:
    """A signed envelope of ``signature_format`` (``jws`` or ``cose``) over ``payload``."""
    algorithm = algorithm_for(key)
    if algorithm is None:  # load_private_key refuses these; a guard for direct library callers
        raise ValueError("unsupported signing key")
    crit = [H_SIGNING_SCHEME] + ([H_EXPIRY] if expiry is not None else [])
    if signature_format == "jws":
        return _sign_jws(key, algorithm, chain, payload, crit, signing_time, expiry, signing_agent)
    if signature_format == "cose":
        return _sign_cose(key, algorithm, chain, payload, crit, signing_time, expiry, signing_agent)
    raise ValueError(f"unknown signature format {signature_format!r}")


def parse_envelope(media_type: str, data: bytes) -> Envelope:
    if media_type == JWS_MEDIA_TYPE:
        return _parse_jws(data)
    if media_type == COSE_MEDIA_TYPE:
        return _parse_cose(data)
    raise EnvelopeError(f"{media_type!r} is not a Notary Project envelope media type")


# --- JWS ---------------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not text or "=" in text:
        raise EnvelopeError(f"the JWS {what} is not unpadded base64url")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"the JWS {what} is not unpadded base64url") from None


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sign_jws(key: PrivateKey, algorithm: Algorithm, chain: Sequence[bytes], payload: bytes, crit: list[str],
              signing_time: dt.datetime, expiry: dt.datetime | None, signing_agent: str) -> bytes:
    protected: dict[str, object] = {
        "alg": algorithm.name,
        "crit": crit,
        "cty": NOTARY_PAYLOAD_TYPE,
        H_SIGNING_SCHEME: SCHEME_X509,
        H_SIGNING_TIME: _rfc3339(signing_time),
    }
    if expiry is not None:
        protected[H_EXPIRY] = _rfc3339(expiry)
    protected_b64 = _b64url(json.dumps(protected, separators=(",", ":")).encode("utf-8"))
    payload_b64 = _b64url(payload)
    signature = sign_bytes(key, algorithm, f"{protected_b64}.{payload_b64}".encode("ascii"))
    envelope = {
        "payload": payload_b64,
        "protected": protected_b64,
        "header": {"x5c": [base64.b64encode(der).decode("ascii") for der in chain],
                   H_SIGNING_AGENT: signing_agent},
        "signature": _b64url(signature),
    }
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


def _parse_jws(data: bytes) -> Envelope:
    try:
        envelope: object = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EnvelopeError("the JWS envelope is not JSON") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("the JWS envelope is not a JSON object")
    protected_b64, payload_b64 = envelope.get("protected"), envelope.get("payload")
    protected_raw = _unb64url(protected_b64, "protected header")
    payload = _unb64url(payload_b64, "payload")
    signature = _unb64url(envelope.get("signature"), "signature")
    try:
        protected: object = json.loads(protected_raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EnvelopeError("the JWS protected header is not JSON") from None
    if not isinstance(protected, dict):
        raise EnvelopeError("the JWS protected header is not a JSON object")
    header = envelope.get("header")
    if not isinstance(header, dict):
        raise EnvelopeError("the JWS has no unprotected header (it carries the certificate chain)")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise EnvelopeError("the JWS header has no x5c certificate chain")
    chain = []
    for entry in x5c:
        try:
            chain.append(base64.b64decode(entry, validate=True) if isinstance(entry, str) else b"")
        except (binascii.Error, ValueError):
            chain.append(b"")
        if not chain[-1]:
            raise EnvelopeError("an x5c entry is not a base64 certificate")
    name = protected.get("alg")
    algorithm = BY_NAME.get(name) if isinstance(name, str) else None
    if algorithm is None:
        raise EnvelopeError(f"the JWS algorithm {name!r} is not one of PS256/384/512, ES256/384/512")
    crit = protected.get("crit")
    times = {label: _jws_time(protected, label) for label in (H_SIGNING_TIME, H_AUTHENTIC_SIGNING_TIME, H_EXPIRY)}
    scheme, signing_time = _common_headers(protected.get("cty"), protected.get(H_SIGNING_SCHEME), crit,
                                           set(protected), times)
    agent = header.get(H_SIGNING_AGENT)
    return Envelope(
        media_type=JWS_MEDIA_TYPE, algorithm=algorithm, signing_scheme=scheme, signing_time=signing_time,
        expiry=times[H_EXPIRY], payload=payload, signed=f"{protected_b64}.{payload_b64}".encode("ascii"),
        signature=signature, chain=tuple(chain), timestamped=H_TIMESTAMP_SIGNATURE in header,
        signing_agent=agent if isinstance(agent, str) else None,
    )


def _jws_time(protected: dict[str, object], label: str) -> dt.datetime | None:
    value = protected.get(label)
    if value is None:
        return None
    match = _RFC3339.match(value) if isinstance(value, str) else None
    moment = None
    if match:
        # Go writes up to nine fractional digits; datetime keeps six (and Python 3.10 parses no "Z").
        date, time, fraction, zone = match.groups()
        fraction = (fraction or ".0")[:7].ljust(7, "0")
        zone = "+00:00" if zone in ("Z", "z") else zone
        try:
            moment = dt.datetime.fromisoformat(f"{date}T{time}{fraction}{zone}")
        except ValueError:
            moment = None
    if moment is None:
        raise EnvelopeError(f"the {label} header is not an RFC 3339 time with a time zone")
    return moment.astimezone(dt.timezone.utc)


# --- COSE --------------------------------------------------------------------------------------------------


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 §4.4: what a COSE_Sign1 signature covers (no external AAD)."""
    return cbor.encode(["Signature1", protected, b"", payload])


def _epoch(moment: dt.datetime) -> cbor.Tag:
    return cbor.Tag(_CBOR_EPOCH_TAG, int(moment.timestamp()))


def _sign_cose(key: PrivateKey, algorithm: Algorithm, chain: Sequence[bytes], payload: bytes, crit: list[str],
               signing_time: dt.datetime, expiry: dt.datetime | None, signing_agent: str) -> bytes:
    headers: dict[cbor.CborKey, cbor.CborValue] = {
        _COSE_ALG: algorithm.cose,
        _COSE_CRIT: list[cbor.CborValue](crit),
        _COSE_CTY: NOTARY_PAYLOAD_TYPE,
        H_SIGNING_SCHEME: SCHEME_X509,
        H_SIGNING_TIME: _epoch(signing_time),
    }
    if expiry is not None:
        headers[H_EXPIRY] = _epoch(expiry)
    protected = cbor.encode(headers)
    signature = sign_bytes(key, algorithm, _sig_structure(protected, payload))
    unprotected: dict[cbor.CborKey, cbor.CborValue] = {
        _COSE_X5CHAIN: list[cbor.CborValue](chain),
        H_SIGNING_AGENT: signing_agent,
    }
    return cbor.encode(cbor.Tag(_COSE_SIGN1_TAG, [protected, unprotected, payload, signature]))


def _parse_cose(data: bytes) -> Envelope:
    try:
        item = cbor.decode(data)
    except ValueError as exc:
        raise EnvelopeError(f"the COSE envelope is not valid CBOR ({exc})") from None
    if isinstance(item, cbor.Tag):
        if item.number != _COSE_SIGN1_TAG:
            raise EnvelopeError(f"the COSE envelope has tag {item.number}, not COSE_Sign1 (18)")
        item = item.value
    if not isinstance(item, list) or len(item) != 4:
        raise EnvelopeError("the COSE envelope is not a COSE_Sign1 array of four items")
    protected_raw, unprotected, payload, signature = item
    if not isinstance(protected_raw, bytes) or not isinstance(unprotected, dict):
        raise EnvelopeError("the COSE_Sign1 headers are malformed")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise EnvelopeError("the COSE_Sign1 message has no embedded payload or no signature")
    try:
        protected = cbor.decode(protected_raw) if protected_raw else {}
    except ValueError as exc:
        raise EnvelopeError(f"the COSE protected header is not valid CBOR ({exc})") from None
    if not isinstance(protected, dict):
        raise EnvelopeError("the COSE protected header is not a map")
    alg = protected.get(_COSE_ALG)
    algorithm = BY_COSE.get(alg) if isinstance(alg, int) and not isinstance(alg, bool) else None
    if algorithm is None:
        raise EnvelopeError(f"the COSE algorithm {alg!r} is not one of PS256/384/512, ES256/384/512")
    chain = _x5chain(unprotected.get(_COSE_X5CHAIN))
    times = {label: _cose_time(protected, label) for label in (H_SIGNING_TIME, H_AUTHENTIC_SIGNING_TIME, H_EXPIRY)}
    names = {key for key in protected if isinstance(key, str)}
    scheme, signing_time = _common_headers(protected.get(_COSE_CTY), protected.get(H_SIGNING_SCHEME),
                                           protected.get(_COSE_CRIT), names, times)
    agent = unprotected.get(H_SIGNING_AGENT)
    return Envelope(
        media_type=COSE_MEDIA_TYPE, algorithm=algorithm, signing_scheme=scheme, signing_time=signing_time,
        expiry=times[H_EXPIRY], payload=payload, signed=_sig_structure(protected_raw, payload),
        signature=signature, chain=chain, timestamped=H_TIMESTAMP_SIGNATURE in unprotected,
        signing_agent=agent if isinstance(agent, str) else None,
    )


def _x5chain(value: cbor.CborValue) -> tuple[bytes, ...]:
    certificates = [value] if isinstance(value, bytes) else value
    if not isinstance(certificates, list) or not certificates or not all(
            isinstance(der, bytes) and der for der in certificates):
        raise EnvelopeError("the COSE unprotected header has no x5chain (label 33) of DER certificates")
    return tuple(der for der in certificates if isinstance(der, bytes))


def _cose_time(protected: dict[cbor.CborKey, cbor.CborValue], label: str) -> dt.datetime | None:
    value = protected.get(label)
    if value is None:
        return None
    seconds = value.value if isinstance(value, cbor.Tag) and value.number == _CBOR_EPOCH_TAG else None
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        raise EnvelopeError(f"the {label} header is not an epoch time (CBOR tag 1)")
    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise EnvelopeError(f"the {label} header is out of range") from None


# --- shared header rules -----------------------------------------------------------------------------------


def _common_headers(content_type: object, scheme: object, crit: object, present: set[str],
                    times: dict[str, dt.datetime | None]) -> tuple[str, dt.datetime]:
    """Check the headers both envelopes share; return the signing scheme and the signing time it defines."""
    if content_type != NOTARY_PAYLOAD_TYPE:
        raise EnvelopeError(f"the payload content type is {content_type!r}, not {NOTARY_PAYLOAD_TYPE}")
    if scheme not in SIGNING_SCHEMES:
        raise EnvelopeError(f"the signing scheme {scheme!r} is not notary.x509 or notary.x509.signingAuthority")
    if not isinstance(crit, list) or not all(isinstance(name, str) for name in crit):
        raise EnvelopeError("the protected header has no crit list of header names")
    critical = {name for name in crit if isinstance(name, str)}
    time_label = H_SIGNING_TIME if scheme == SCHEME_X509 else H_AUTHENTIC_SIGNING_TIME
    required = {H_SIGNING_SCHEME} | ({H_AUTHENTIC_SIGNING_TIME} if scheme == SCHEME_SIGNING_AUTHORITY else set())
    required |= {H_EXPIRY} if times[H_EXPIRY] is not None else set()
    missing = sorted(required - critical)
    if missing:
        raise EnvelopeError(f"crit does not list {', '.join(missing)}")
    unknown = sorted(critical - _UNDERSTOOD)
    if unknown:
        raise EnvelopeError(f"crit lists {', '.join(unknown)}, which this verifier does not understand")
    absent = sorted(critical - present)
    if absent:
        raise EnvelopeError(f"crit lists {', '.join(absent)} but the protected header lacks it")
    signing_time = times[time_label]
    if signing_time is None:
        raise EnvelopeError(f"the protected header has no {time_label}")
    return str(scheme), signing_time
