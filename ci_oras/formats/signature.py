"""Tell which signature a file holds, so ``attach-signature`` stores it the way its verifier looks for it.

Recognised formats (artifactType → layer media type):

- Notary Project JWS, JSON serialization: ``application/vnd.cncf.notary.signature`` → ``application/jose+json``
- Notary Project COSE_Sign1 (tagged 18 or not): ``application/vnd.cncf.notary.signature`` → ``application/cose``
- Sigstore bundle v0.3 (``application/vnd.dev.sigstore.bundle.v0.3+json`` or the older spelling
  ``application/vnd.dev.sigstore.bundle+json;version=0.3``): ``application/vnd.dev.sigstore.bundle.v0.3+json``
  for both, as cosign stores it
- Sigstore bundle v0.1 / v0.2: ``application/vnd.dev.sigstore.bundle+json;version=0.N`` for both

Annotations, written exactly as the reference tools write them so ``notation verify``/``cosign`` and
policy engines that read the referrers index see the same values:

``io.cncf.notary.x509chain.thumbprint#S256`` (Notary JWS and COSE)
    lowercase hex SHA-256 of each certificate's DER bytes, leaf first (x5c / x5chain order), as a compact
    JSON array string — ``["<hex>","<hex>"]`` — which is what notation-go's ``json.Marshal`` produces. It is
    a hash of the bytes only: no certificate is parsed, so no crypto library is needed.
``dev.sigstore.bundle.content`` (Sigstore)
    ``message-signature`` or ``dsse-envelope``, the values cosign writes and its bundle spec
    (``specs/BUNDLE_SPEC.md``) requires.
``dev.sigstore.bundle.predicateType`` (Sigstore, DSSE only)
    the in-toto statement's ``predicateType`` when the envelope carries one.

Detection checks structure, never validity (with one exception: a Notary Project envelope whose signed payload
names another artifact is refused before it is attached, see :func:`refuse_notary_for_other_subject`): a signature that does not verify is the verifier's business,
but a "Notary signature" without the certificate chain its thumbprint annotation needs is refused. Files
are read whole up to 64 MiB (real signatures are kilobytes). Anything unrecognised is a ``UsageError``
(exit 2) naming what was found.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import TypeAlias

from ci_oras.errors import UsageError
from ci_oras.formats import (
    Detected,
    cbor,
    describe_binary,
    describe_json,
    first_significant_byte,
    one_line,
    open_input,
    read_bounded,
)
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.shape import load_json

NOTARY_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
NOTARY_PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
JWS_MEDIA_TYPE = "application/jose+json"
COSE_MEDIA_TYPE = "application/cose"
ANNOTATION_THUMBPRINTS = "io.cncf.notary.x509chain.thumbprint#S256"

SIGSTORE_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_BUNDLE_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

#: Signatures are kilobytes; a bundle with a large DSSE payload is still far below this.
SIGNATURE_LIMIT = 64 * 1024 * 1024

COSE_SIGN1_TAG = 18
_COSE_ALG = 1
_COSE_CONTENT_TYPE = 3
_COSE_X5CHAIN = 33  # RFC 9360

#: A decoded COSE header map (labels are ints or text).
Header: TypeAlias = "dict[cbor.CborKey, cbor.CborValue]"

_SIGSTORE_PREFIX = "application/vnd.dev.sigstore.bundle"
#: Accepted bundle media types (whitespace around ';' removed) → the artifact type to store them under.
_SIGSTORE_TYPES = {
    SIGSTORE_BUNDLE_V03: SIGSTORE_BUNDLE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.3": SIGSTORE_BUNDLE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "application/vnd.dev.sigstore.bundle+json;version=0.1",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_TEXT_FOUND = "text that is not a JSON signature envelope"
_UNKNOWN_HINT = "pass --artifact-type and --media-type"
_TOO_BIG_HINT = "pass --artifact-type and --media-type to attach it without inspecting it"
_CHAIN_HINT = (
    "a Notary Project signature carries its signing certificate chain; sign again with notation, "
    "or pass --artifact-type and --media-type to attach it as it is"
)


def detect_signature(path: Path) -> Detected:
    """Identify the signature in ``path`` or raise ``UsageError`` (exit 2) saying what the file is instead."""
    with open_input(path) as handle:
        data = read_bounded(handle, path, SIGNATURE_LIMIT, _TOO_BIG_HINT)
    if not data:
        raise _unknown(path, "an empty file")
    if first_significant_byte(data[:4096]) == b"{":
        return _detect_json(path, data)
    return _detect_cbor(path, data)


def _unknown(path: Path, found: str) -> UsageError:
    return UsageError(f"cannot tell what kind of signature {path} is (found {found})", hint=_UNKNOWN_HINT)


def _broken_chain(path: Path, envelope: str, problem: str) -> UsageError:
    return UsageError(f"{path} is a Notary Project {envelope} signature but {problem}", hint=_CHAIN_HINT)


def _notary(media_type: str, envelope: str, chain: list[bytes]) -> Detected:
    return Detected(
        artifact_type=NOTARY_ARTIFACT_TYPE,
        media_type=media_type,
        annotations={ANNOTATION_THUMBPRINTS: thumbprint_annotation(chain)},
        format=f"Notary Project {envelope} signature",
    )


def thumbprint_annotation(chain: list[bytes]) -> str:
    """The ``io.cncf.notary.x509chain.thumbprint#S256`` value: byte-for-byte what notation-go writes."""
    return json.dumps([hashlib.sha256(der).hexdigest() for der in chain], separators=(",", ":"))


def _looks_like_der_certificate(der: bytes) -> bool:
    """A DER certificate is a SEQUENCE (0x30); enough to catch PEM text or other non-DER bytes."""
    return len(der) > 2 and der[0] == 0x30


# --- JSON: Notary JWS and Sigstore bundles ----------------------------------------------------------------


def _detect_json(path: Path, data: bytes) -> Detected:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _unknown(path, "a file that is not valid UTF-8") from None
    document = load_json(text, lambda problem: _unknown(path, one_line(problem)))
    if not isinstance(document, dict):
        raise _unknown(path, describe_json(document))
    media_type = document.get("mediaType")
    if isinstance(media_type, str) and media_type.startswith(_SIGSTORE_PREFIX):
        return _sigstore_bundle(path, media_type, document)
    if "protected" in document and "signature" in document:
        return _jws(path, document)
    if "payloadType" in document and "signatures" in document:
        raise _unknown(path, "a bare DSSE envelope, not a Sigstore bundle")
    raise _unknown(path, describe_json(document))


def _jws(path: Path, envelope: dict[str, object]) -> Detected:
    """A Notary Project JWS in JSON serialization: ``cty`` in the protected header, the chain in ``header.x5c``."""
    protected = _b64url_json(envelope.get("protected"))
    if protected is None:
        raise _unknown(path, "a JWS whose protected header is not base64url-encoded JSON")
    content_type = protected.get("cty")
    if content_type != NOTARY_PAYLOAD_TYPE:
        raise _unknown(path, f"a JWS with content type {one_line(repr(content_type))}, not a Notary Project payload")
    if not isinstance(protected.get("alg"), str):
        raise _unknown(path, "a Notary Project JWS without an \"alg\" in its protected header")
    if not all(isinstance(envelope.get(key), str) for key in ("payload", "signature")):
        raise _unknown(path, "a Notary Project JWS without a payload and signature")
    header = envelope.get("header")
    x5c = header.get("x5c") if isinstance(header, dict) else None
    if not isinstance(x5c, list) or not x5c:
        raise _broken_chain(path, "JWS", "header.x5c (its certificate chain) is missing or empty")
    chain = []
    for index, entry in enumerate(x5c):
        der = _std_base64(entry)
        if der is None or not _looks_like_der_certificate(der):
            raise _broken_chain(path, "JWS", f"header.x5c[{index}] is not a base64 DER certificate")
        chain.append(der)
    return _notary(JWS_MEDIA_TYPE, "JWS", chain)


def _sigstore_bundle(path: Path, media_type: str, bundle: dict[str, object]) -> Detected:
    normalized = ";".join(part.strip() for part in media_type.split(";"))
    artifact_type = _SIGSTORE_TYPES.get(normalized)
    if artifact_type is None:
        raise UsageError(
            f"{path} is a Sigstore bundle of a version ci-oras does not know ({one_line(media_type)})",
            hint=f"ci-oras reads bundle versions 0.1 to 0.3; {_UNKNOWN_HINT}",
        )
    if not isinstance(bundle.get("verificationMaterial"), dict):
        raise _unknown(path, "a Sigstore bundle without verificationMaterial")
    message = bundle.get("messageSignature")
    dsse = bundle.get("dsseEnvelope")
    if isinstance(message, dict) == isinstance(dsse, dict):
        raise _unknown(path, "a Sigstore bundle without exactly one of messageSignature and dsseEnvelope")
    version = "0.3" if artifact_type == SIGSTORE_BUNDLE_V03 else normalized.rsplit("=", 1)[-1]
    annotations = {ANNOTATION_BUNDLE_CONTENT: "message-signature"}
    content = "message signature"
    if isinstance(dsse, dict):
        annotations = {ANNOTATION_BUNDLE_CONTENT: "dsse-envelope"}
        content = "DSSE envelope"
        predicate_type = _in_toto_predicate_type(path, dsse)
        if predicate_type:
            annotations[ANNOTATION_BUNDLE_PREDICATE_TYPE] = predicate_type
    return Detected(
        artifact_type=artifact_type,
        media_type=artifact_type,
        annotations=annotations,
        format=f"Sigstore bundle v{version} ({content})",
    )


def _in_toto_predicate_type(path: Path, envelope: dict[str, object]) -> str | None:
    """The statement's ``predicateType``, when the DSSE payload is an in-toto statement that names one."""
    if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        return None
    payload = envelope.get("payload")
    raw = _std_base64(payload)
    if raw is None and isinstance(payload, str):
        raw = _b64url(payload)  # protobuf JSON readers accept either alphabet, so writers may use either
    statement = _json_or_none(raw, "utf-8")
    if not isinstance(statement, dict):
        raise _unknown(path, "a Sigstore bundle whose in-toto payload is not base64-encoded JSON")
    predicate_type = statement.get("predicateType")
    return predicate_type if isinstance(predicate_type, str) and predicate_type else None


def _std_base64(value: object) -> bytes | None:
    """Strict standard base64 (x5c uses it, RFC 7515 §4.1.6); None when it is not."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _b64url(value: str) -> bytes | None:
    """Unpadded base64url (JWS compact parts); None when it is not."""
    if not _BASE64URL.match(value):
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def _b64url_json(value: object) -> dict[str, object] | None:
    decoded = _json_or_none(_b64url(value) if isinstance(value, str) and value else None, "utf-8")
    return decoded if isinstance(decoded, dict) else None


def _json_or_none(raw: bytes | None, encoding: str) -> object:
    """Decoded JSON, or None for anything undecodable: for sniffing, where "not this format" is an answer."""
    if raw is None:
        return None
    try:
        return load_json(raw, UsageError, encoding=encoding)
    except UsageError:
        return None


# --- CBOR: Notary COSE_Sign1 ------------------------------------------------------------------------------


def _detect_cbor(path: Path, data: bytes) -> Detected:
    try:
        item = cbor.decode(data)
    except ValueError as exc:
        raise _unknown(path, _describe_non_cbor(data, str(exc))) from None
    if isinstance(item, cbor.Tag):
        if item.number != COSE_SIGN1_TAG:
            raise _unknown(path, f"a CBOR item with tag {item.number}, not a COSE_Sign1 message (tag 18)")
        item = item.value
    sign1 = _cose_sign1(item)
    if sign1 is None:
        # Short text often happens to be valid CBOR ("1" is the integer -18): name it as the text it is.
        raise _unknown(path, _TEXT_FOUND if _is_text(data) else "CBOR data that is not a COSE_Sign1 message")
    protected, unprotected = sign1
    content_type = protected.get(_COSE_CONTENT_TYPE)
    if content_type != NOTARY_PAYLOAD_TYPE:
        raise _unknown(
            path, f"a COSE_Sign1 message with content type {one_line(repr(content_type))}, not a Notary Project payload"
        )
    if not isinstance(protected.get(_COSE_ALG), (int, str)):
        raise _unknown(path, "a Notary Project COSE signature without an algorithm in its protected header")
    chain = _x5chain(unprotected.get(_COSE_X5CHAIN, protected.get(_COSE_X5CHAIN)))
    if chain is None:
        raise _broken_chain(path, "COSE", "its x5chain header (label 33) holds no DER certificates")
    return _notary(COSE_MEDIA_TYPE, "COSE", chain)


def _describe_non_cbor(data: bytes, reason: str) -> str:
    if _is_text(data):
        return _TEXT_FOUND
    return f"{describe_binary(data[:4096])} that is neither JSON nor CBOR ({one_line(reason, 80)})"


def _is_text(data: bytes) -> bool:
    """UTF-8 without control characters in the first 4 KiB: a PEM, a cosign base64 ``.sig``, a stray note."""
    head = data[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) == len(head) or exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")  # only a character cut by the 4 KiB sample
    return _CONTROL.search(text) is None


def _cose_sign1(item: cbor.CborValue) -> tuple[Header, Header] | None:
    """(protected, unprotected) headers of ``[protected bstr, unprotected map, payload, signature]``."""
    if not isinstance(item, list) or len(item) != 4:
        return None
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes) or not isinstance(unprotected, dict):
        return None
    if not isinstance(payload, (bytes, type(None))) or not isinstance(signature, bytes):
        return None
    if not protected_bytes:
        return {}, unprotected
    try:
        protected = cbor.decode(protected_bytes)
    except ValueError:
        return None
    return (protected, unprotected) if isinstance(protected, dict) else None


def _x5chain(value: cbor.CborValue) -> list[bytes] | None:
    """RFC 9360: one certificate as a bstr, or several as an array of bstr (leaf first)."""
    certificates = [value] if isinstance(value, bytes) else value
    if not isinstance(certificates, list) or not certificates:
        return None
    chain = []
    for der in certificates:
        if not isinstance(der, bytes) or not _looks_like_der_certificate(der):
            return None
        chain.append(der)
    return chain


# --- the subject a Notary Project envelope was made for -------------------------------------------------


def refuse_notary_for_other_subject(path: Path, media_type: str | None, subject: Descriptor) -> None:
    """Refuse (``UsageError``, exit 2) to attach a Notary Project envelope to a subject it was not made for.

    Such a signature can never verify, yet listed under the subject it would look like one to anything that
    only counts referrers. Only the payload's ``targetArtifact`` is read (no cryptography); a file that is not
    a readable envelope is left to detection, or to the user who passed explicit types.
    """
    if media_type not in (JWS_MEDIA_TYPE, COSE_MEDIA_TYPE) or path.is_dir():
        return
    with open_input(path) as handle:
        data = read_bounded(handle, path, SIGNATURE_LIMIT, _TOO_BIG_HINT)
    payload = _jws_payload(data) if media_type == JWS_MEDIA_TYPE else _cose_payload(data)
    if payload is None:
        return
    document = _json_or_none(payload, "utf-8")
    target = document.get("targetArtifact") if isinstance(document, dict) else None
    named = target.get("digest") if isinstance(target, dict) else None
    if not isinstance(target, dict) or not isinstance(named, str) or not named:
        # Said plainly: an envelope that names nothing cannot be "a signature of" anything.
        found = ("no targetArtifact object" if not isinstance(target, dict)
                 else "a targetArtifact without a digest")
        raise UsageError(f"{path} is a Notary Project envelope whose payload names no target artifact "
                         f"(it has {found})", hint="sign the artifact again with notation or ci-oras sign")
    if named != subject.digest or target.get("size") != subject.size:
        raise UsageError(
            f"{path} is a Notary Project signature of {one_line(named)}, not of {subject.digest}",
            hint="attach it to the artifact it signs, or sign this artifact",
        )


def _jws_payload(data: bytes) -> bytes | None:
    envelope = _json_or_none(data, "utf-8-sig")
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    return _b64url(payload) if isinstance(payload, str) else None


def _cose_payload(data: bytes) -> bytes | None:
    try:
        item = cbor.decode(data)
    except ValueError:
        return None
    if isinstance(item, cbor.Tag):
        item = item.value
    if isinstance(item, list) and len(item) == 4 and isinstance(item[2], bytes):
        return item[2]
    return None
