"""``sign``: make a Notary Project signature of a manifest and attach it, as ``notation sign`` does.

The referrer is what notation writes, so ``notation verify`` (and ci-oras ``verify``) find and accept it:
artifact type ``application/vnd.cncf.notary.signature``, the empty config, one layer holding the envelope
(``application/jose+json`` or ``application/cose``, no title), the subject, and the annotations
``io.cncf.notary.x509chain.thumbprint#S256`` and ``org.opencontainers.image.created``.

The key and chain arrive as bytes: the CLI reads them from a file or from the text of an environment variable
(a CI secret), so this step never touches the environment, and errors name the source, never the key. The
key must belong to the chain's first certificate and the chain must meet the Notary Project certificate
requirements at the signing time: a signature that could never verify is refused before anything is pushed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_oras import __version__
from ci_oras.errors import UsageError
from ci_oras.formats.signature import ANNOTATION_THUMBPRINTS, NOTARY_ARTIFACT_TYPE, thumbprint_annotation
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.steps.common import AttachOptions, AttachResult, BytesLayer, attach_layers
from ci_oras.store.protocols import GraphStorage

FORMAT_NAMES = {"jws": "Notary Project JWS signature", "cose": "Notary Project COSE signature"}


@dataclass(frozen=True)
class SignOptions:
    #: ``jws`` (notation's default) or ``cose``.
    signature_format: str = "jws"
    #: How long the signature stays valid; None for no ``io.cncf.notary.expiry``.
    expiry: dt.timedelta | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: ``org.opencontainers.image.created``; None means the signing time.
    created: str | None = None
    #: Where the key and chain came from, for messages (``--key FILE``, ``$VAR``): never their content.
    key_source: str = "the signing key"
    chain_source: str = "the certificate chain"
    #: The signing time; None means now. Tests pass a fixed time rather than waiting for a clock.
    signing_time: dt.datetime | None = None


@dataclass(frozen=True)
class SignResult:
    attached: AttachResult
    signature_format: str
    algorithm: str
    signer: str
    signing_time: dt.datetime
    expiry: dt.datetime | None

    @property
    def digest(self) -> str:
        return self.attached.digest

    def document(self) -> dict[str, Any]:
        doc = self.attached.document()
        doc["schema"] = "ci-oras/sign/v1"
        signature: dict[str, Any] = {
            "format": self.signature_format,
            "mediaType": self.attached.layers[0].media_type,
            "digest": self.attached.layers[0].digest,
            "size": self.attached.layers[0].size,
            "algorithm": self.algorithm,
            "signer": self.signer,
            "signingTime": _iso(self.signing_time),
        }
        if self.expiry is not None:
            signature["expiry"] = _iso(self.expiry)
        doc["signature"] = signature
        return doc


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(target: GraphStorage, repository: str, subject: Descriptor, key_pem: bytes, chain_pem: bytes,
         options: SignOptions) -> SignResult:
    """Sign ``subject`` (already resolved in ``target``) and attach the signature; refuse a key, chain or
    option that would make a signature nobody can verify."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ci_oras.signing import certs
    from ci_oras.signing.envelope import FORMATS, payload_for, sign_envelope
    from ci_oras.signing.keys import algorithm_for, load_certificates, load_private_key, same_public_key

    media_type = FORMATS.get(options.signature_format)
    if media_type is None:
        raise UsageError(f"unknown signature format {options.signature_format!r}", hint="use jws or cose")
    if options.expiry is not None and options.expiry <= dt.timedelta(0):
        raise UsageError("the signature expiry must be a positive duration", hint="e.g. --expiry 90d")
    if ANNOTATION_THUMBPRINTS in options.annotations:
        raise UsageError(f"annotation {ANNOTATION_THUMBPRINTS} is written by sign itself",
                         hint="leave it out of --annotation")
    key = load_private_key(key_pem, options.key_source)
    chain = load_certificates(chain_pem, options.chain_source)
    if not chain:
        raise UsageError(f"{options.chain_source} holds no certificate", hint="pass the certificate chain, leaf first")
    if not same_public_key(key, chain[0]):
        raise UsageError(f"{options.key_source} is not the key of the first certificate in {options.chain_source}",
                         hint="the chain starts with the signing certificate, whose key you sign with")
    signing_time = (options.signing_time or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    problem = certs.chain_problem(chain) or certs.validity_problem(chain, signing_time, "at signing time")
    if problem:
        raise UsageError(f"{options.chain_source} cannot make Notary Project signatures: {problem}",
                         hint="use a code-signing certificate chain, leaf first and ending with its root")
    expiry = signing_time + options.expiry if options.expiry is not None else None
    ders = [cert.public_bytes(Encoding.DER) for cert in chain]
    envelope = sign_envelope(options.signature_format, key, ders, payload_for(subject), signing_time=signing_time,
                             expiry=expiry, signing_agent=f"ci-oras/{__version__}")
    layer = BytesLayer(Descriptor(media_type=media_type, digest=digest_bytes(envelope), size=len(envelope)),
                       envelope)
    # notation always stamps the manifest's creation time; without one from the caller, that is the signing time.
    attach_options = AttachOptions(artifact_type=NOTARY_ARTIFACT_TYPE, created=options.created or _iso(signing_time),
                                   annotations={ANNOTATION_THUMBPRINTS: thumbprint_annotation(ders),
                                                **options.annotations})
    attached = attach_layers(target, repository, subject, [layer], attach_options, step="sign",
                             detected_format=FORMAT_NAMES[options.signature_format])
    algorithm = algorithm_for(key)
    return SignResult(attached=attached, signature_format=options.signature_format,
                      algorithm=algorithm.name if algorithm else "", signer=certs.name_of(chain[0]),
                      signing_time=signing_time, expiry=expiry)
