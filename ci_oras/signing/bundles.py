"""Sigstore bundles judged keyless: who signed them, checked offline with sigstore-python.

cosign v3 and GitHub's ``actions/attest-*`` attach Sigstore bundles (a Fulcio certificate, a Rekor entry, and a
DSSE envelope around an in-toto statement, or a signature over a digest) as OCI referrers. A bundle counts for a
requirement only when sigstore-python verifies it against the trusted root (certificate chain to a Fulcio root
at the logged signing time, its SCT, the transparency-log entry's inclusion proof and checkpoint or its
inclusion promise, the signature) and ci-oras then finds the certificate's identity in the policy and the
statement (or the message digest) naming the very manifest the bundle refers to. The cryptography is
sigstore-python's; what is ours is the policy (cosign's ``--certificate-identity``/``-regexp`` and
``--certificate-oidc-issuer``/``-regexp``, ``gh attestation verify``'s ``--repo`` and ``--signer-workflow``) and
which check a failure belongs to, for the JSON result.

Offline: the trusted root is the public-good instance's, as the installed sigstore-python ships it, or the file
``--trusted-root`` names (``gh attestation trusted-root`` for GitHub's own instance, or a company's Sigstore).
No request leaves for anything but the registry. sigstore-python (and pydantic with it) is imported when the
first bundle is judged, never at start-up.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ci_oras.errors import CiOrasError, UsageError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.shape import Fields, load_json
from ci_oras.requirements import ANNOTATION_PREDICATE_TYPE, is_sigstore_bundle

if TYPE_CHECKING:
    from cryptography import x509
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore.verify import Verifier

    from ci_oras.signing.policy import Signature, SignatureOutcome

#: GitHub Actions' OIDC issuer: what ``--github-repo`` and ``--signer-workflow`` fix the issuer to.
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
#: The checks a bundle can fail, as the JSON result names them.
BUNDLE, CHAIN, TLOG, SIGNATURE, IDENTITY, SUBJECT = "bundle", "chain", "tlog", "signature", "identity", "subject"
#: Fulcio's certificate extensions (fulcio's docs/oid-info.md): the issuer (v1 raw, v2 DER UTF8String) and the
#: GitHub claims ``--github-repo`` reads.
_ISSUER_V1, _ISSUER_V2 = "1.3.6.1.4.1.57264.1.1", "1.3.6.1.4.1.57264.1.8"
_GITHUB_REPOSITORY_V1, _SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.5", "1.3.6.1.4.1.57264.1.12"
_OTHERNAME_SAN = "1.3.6.1.4.1.57264.1.7"
_OWNER_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_WORKFLOW = re.compile(r"(?:github\.com/)?([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[^@\s]+?)(?:@(\S+))?")
#: sigstore-python's messages, first match wins: which check a verification error belongs to.
_CHECK_OF_MESSAGE = (
    ("log entry", TLOG), ("inclusion", TLOG), ("checkpoint", TLOG), ("SET:", TLOG), ("verified time", TLOG),
    ("Timestamp", TLOG), ("message digest mismatch", SUBJECT), ("SCT", CHAIN), ("certificate", CHAIN),
    ("cert", CHAIN), ("usage", CHAIN),
)


@dataclass(frozen=True)
class IdentityPolicy:
    """Who may have signed: cosign's four flags and ``gh attestation verify``'s two, all that are given must hold.

    ``github_repo`` (``OWNER/REPO``) and ``signer_workflow`` (``OWNER/REPO/PATH[@REF]``) fix the issuer to GitHub
    Actions'; the repository is read from the certificate's GitHub claims (source repository URI, or the v1
    repository extension), the workflow from its identity (the workflow file's URL, ``@`` the ref)."""

    identity: str | None = None
    identity_regexp: re.Pattern[str] | None = None
    issuer: str | None = None
    issuer_regexp: re.Pattern[str] | None = None
    github_repo: str | None = None
    signer_workflow: str | None = None

    @classmethod
    def from_flags(cls, *, identity: str | None, identity_regexp: str | None, issuer: str | None,
                   issuer_regexp: str | None, github_repo: str | None,
                   signer_workflow: str | None) -> IdentityPolicy | None:
        """The policy the flags describe (None when none is given), refused (exit 2) when it cannot be met or
        would let anyone through."""
        given = {key: value for key, value in (("identity", identity), ("identity_regexp", identity_regexp),
                                               ("issuer", issuer), ("issuer_regexp", issuer_regexp),
                                               ("github_repo", github_repo), ("signer_workflow", signer_workflow))
                 if value is not None}
        if not given:
            return None
        if any(not value.strip() for value in given.values()):
            raise UsageError("a Sigstore identity flag is empty", hint="give each flag a value, or leave it out")
        github = github_repo is not None or signer_workflow is not None
        if identity is not None and identity_regexp is not None:
            raise UsageError("--certificate-identity and --certificate-identity-regexp are mutually exclusive",
                             hint="give the identity exactly, or a regular expression for it")
        if issuer is not None and issuer_regexp is not None:
            raise UsageError("--certificate-oidc-issuer and --certificate-oidc-issuer-regexp are mutually exclusive",
                             hint="give the issuer exactly, or a regular expression for it")
        if not github and (identity is None and identity_regexp is None or issuer is None and issuer_regexp is None):
            raise UsageError("a Sigstore identity needs both who signed and who vouched for them",
                             hint="give --certificate-identity(-regexp) and --certificate-oidc-issuer(-regexp), "
                                  "as cosign does, or --github-repo OWNER/REPO")
        if github and issuer not in (None, GITHUB_ACTIONS_ISSUER):
            raise UsageError(f"--github-repo and --signer-workflow check GitHub Actions' issuer, not {issuer!r}",
                             hint=f"leave --certificate-oidc-issuer out (it is {GITHUB_ACTIONS_ISSUER})")
        if github_repo is not None and not _OWNER_REPO.fullmatch(github_repo):
            raise UsageError(f"--github-repo {github_repo!r} is not OWNER/REPO", hint="e.g. --github-repo acme/shop")
        if signer_workflow is not None and not _WORKFLOW.fullmatch(signer_workflow):
            raise UsageError(f"--signer-workflow {signer_workflow!r} is not OWNER/REPO/PATH[@REF]",
                             hint="e.g. --signer-workflow acme/shop/.github/workflows/release.yml@refs/heads/main")
        return cls(identity, _pattern("--certificate-identity-regexp", identity_regexp), issuer,
                   _pattern("--certificate-oidc-issuer-regexp", issuer_regexp), github_repo, signer_workflow)

    def mismatch(self, identities: Sequence[str], issuer: str | None, github_repository: str | None) -> str | None:
        """Why a certificate with these claims does not satisfy the policy; None when it does."""
        if self.identity is not None and self.identity not in identities:
            return f"signed by {_listed(identities)}, not {self.identity}"
        pattern = self.identity_regexp
        if pattern is not None and not any(pattern.search(value) for value in identities):
            return f"signed by {_listed(identities)}, which does not match {pattern.pattern!r}"
        wanted_issuer = GITHUB_ACTIONS_ISSUER if self.github_repo or self.signer_workflow else self.issuer
        if wanted_issuer is not None and issuer != wanted_issuer:
            return f"issued for {issuer or 'no OIDC issuer'}, not {wanted_issuer}"
        pattern = self.issuer_regexp
        if pattern is not None and not (issuer is not None and pattern.search(issuer)):
            return f"issued for {issuer or 'no OIDC issuer'}, which does not match {pattern.pattern!r}"
        if self.github_repo is not None and (github_repository or "").lower() != self.github_repo.lower():
            return f"built in repository {github_repository or '(none named)'}, not {self.github_repo}"
        if self.signer_workflow is not None:
            match = _WORKFLOW.fullmatch(self.signer_workflow)
            assert match is not None  # checked in from_flags
            prefix = f"https://github.com/{match.group(1)}@"
            wanted = prefix + match.group(2) if match.group(2) else None
            if not any(value == wanted if wanted else value.startswith(prefix) for value in identities):
                return f"signed by {_listed(identities)}, not the workflow {self.signer_workflow}"
        return None


def _pattern(flag: str, text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise UsageError(f"{flag} {text!r} is not a regular expression ({exc})",
                         hint="Python's regular expressions, searched in the value as cosign does (anchor it with "
                              "^...$ to match the whole value)") from None


def _listed(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "no identity"


@dataclass
class SigstorePolicy:
    """Judges Sigstore bundle referrers (``SignaturePolicy`` of ``ci_oras.signing.policy``)."""

    identity: IdentityPolicy
    #: A ``trusted_root.json``; None: the public-good instance's, as sigstore-python ships it.
    trusted_root: Path | None = None
    _verifier: Verifier | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def handles(self, artifact_type: str) -> bool:
        return is_sigstore_bundle(artifact_type)

    def pick_layer(self, layers: Sequence[Descriptor]) -> Descriptor | None:
        bundles = [layer for layer in layers if is_sigstore_bundle(layer.media_type)]
        return bundles[0] if len(bundles) == 1 else None

    def evaluate(self, signature: Signature, subject: Descriptor, scope: str) -> SignatureOutcome:
        return _Judgement(self, signature, subject).run()

    def verifier(self) -> Verifier:
        """sigstore-python's ``Verifier`` for the trusted root, made once (loading the root parses certificates);
        a trusted root that cannot be read is a usage error (exit 2)."""
        with self._lock:
            if self._verifier is None:
                self._verifier = _make_verifier(self.trusted_root)
            return self._verifier


def _make_verifier(path: Path | None) -> Verifier:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    source = str(path) if path is not None else "the public-good trusted root shipped with sigstore"
    try:
        if path is None:
            import importlib.resources

            shipped = importlib.resources.files("sigstore") / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
            with importlib.resources.as_file(shipped / "trusted_root.json") as file:
                root = TrustedRoot.from_file(str(file))
        else:
            root = TrustedRoot.from_file(str(path))
        return Verifier(trusted_root=root)
    except OSError as exc:
        raise UsageError(f"cannot read trusted root {source}: {exc.strerror or exc}",
                         hint="pass a trusted_root.json, e.g. from 'gh attestation trusted-root'") from None
    except (SigstoreError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{source} is not a Sigstore trusted root: {first}",
                         hint="pass a trusted_root.json (media type "
                              "application/vnd.dev.sigstore.trustedroot+json;version=0.1)") from None


class _Failed(Exception):
    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check
        self.reason = reason


@dataclass
class _Judgement:
    """One bundle judged: what it says about itself is collected as it is learned, for the result."""

    policy: SigstorePolicy
    signature: Signature
    subject: Descriptor
    identities: tuple[str, ...] = ()
    issuer: str | None = None
    predicate_type: str | None = None
    log_index: int | None = None
    kind: str | None = None
    github_repository: str | None = None

    def run(self) -> SignatureOutcome:
        from ci_oras.signing.policy import FAILED, PASSED, CheckResult, SignatureOutcome

        failed_check: str | None = None
        reason: str | None = None
        claims: dict[str, str] | None = None
        try:
            self._judge()
        except _Failed as failed:
            result, failed_check, reason = FAILED, failed.check, failed.reason
            checks: tuple[CheckResult, ...] = (CheckResult(failed.check, FAILED, failed.reason),)
        else:
            result = "verified"
            checks = tuple(CheckResult(check, PASSED) for check in (CHAIN, TLOG, SIGNATURE, IDENTITY, SUBJECT))
            # What the verified content says it is decides the kind, not the annotation (a claim).
            claims = {ANNOTATION_PREDICATE_TYPE: self.predicate_type} if self.predicate_type else {}
        return SignatureOutcome(
            digest=self.signature.digest, artifact_type=self.signature.artifact_type, result=result,
            failed_check=failed_check, reason=reason, format=self.kind,
            signer=_listed(self.identities) if self.identities else None, checks=checks, issuer=self.issuer,
            predicate_type=self.predicate_type, log_index=self.log_index, claims=claims)

    def _judge(self) -> None:
        content = self.signature.content
        if not content:
            raise _Failed(BUNDLE, "the referrer holds no Sigstore bundle layer (or one too large to read)")
        document = self._document(content)
        dsse = document.has("dsseEnvelope")
        self.kind = "sigstore/dsse" if dsse else "sigstore/message-signature"
        self._read_log_index(document)
        bundle = self._load(content)
        self._read_certificate(bundle)
        self._verify(bundle, dsse)
        mismatch = self.policy.identity.mismatch(self.identities, self.issuer, self.github_repository)
        if mismatch is not None:
            raise _Failed(IDENTITY, mismatch)

    def _document(self, content: bytes) -> Fields:
        try:
            document = Fields.of(load_json(content, UsageError), UsageError)
            if not document.has("dsseEnvelope") and not document.has("messageSignature"):
                raise UsageError("it holds neither a DSSE envelope nor a message signature")
        except CiOrasError as exc:
            raise _Failed(BUNDLE, f"not a Sigstore bundle: {exc.message}") from None
        return document

    def _load(self, content: bytes) -> Bundle:
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import Bundle, InvalidBundle

        try:
            return Bundle.from_json(content)
        except InvalidBundle as exc:
            raise _Failed(_check_of(str(exc), default=BUNDLE), f"not a valid Sigstore bundle: {_first(exc)}") from None
        except (SigstoreError, ValueError, TypeError) as exc:
            raise _Failed(BUNDLE, f"not a valid Sigstore bundle: {_first(exc)}") from None

    def _read_certificate(self, bundle: Bundle) -> None:
        certificate = bundle.signing_certificate
        self.identities = _identities(certificate)
        self.issuer = _issuer(certificate)
        self.github_repository = _github_repository(certificate)

    def _verify(self, bundle: Bundle, dsse: bool) -> None:
        from sigstore.errors import Error as SigstoreError

        # Everything sigstore-python checks besides the identity runs here; the identity is judged by
        # IdentityPolicy afterwards, so that its failure is reported as one.
        verifier = self.policy.verifier()
        try:
            if dsse:
                payload_type, payload = verifier.verify_dsse(bundle, _JudgedAfterwards())
            else:
                verifier.verify_artifact(self._subject_hash(), bundle, _JudgedAfterwards())
                return
        except (SigstoreError, ValueError) as exc:
            raise _Failed(_check_of(str(exc), default=SIGNATURE), _first(exc)) from None
        self._check_statement(payload_type, payload)

    def _subject_hash(self) -> Hashed:
        from sigstore.hashes import Hashed

        algorithm, _, hex_digest = self.subject.digest.partition(":")
        if algorithm != "sha256":
            raise _Failed(SUBJECT, f"the subject's digest is {algorithm}; a Sigstore message signature is over sha256")
        # The algorithm by name: pydantic turns it into sigstore's enum, so no second package is imported.
        return Hashed.model_validate({"algorithm": "SHA2_256", "digest": bytes.fromhex(hex_digest)})

    def _check_statement(self, payload_type: str, payload: bytes) -> None:
        if payload_type != IN_TOTO_PAYLOAD:
            raise _Failed(SUBJECT, f"the signed payload is {payload_type!r}, not an in-toto statement")
        algorithm = self.subject.digest.partition(":")[0]
        try:
            statement = Fields.of(load_json(payload, UsageError), UsageError, what="the statement")
            self.predicate_type = statement.string("predicateType")
            if not statement.has("subject"):
                raise UsageError('"subject" is missing')
            named = [f"{algorithm}:{entry.string_map('digest')[algorithm]}" for entry in statement.children("subject")
                     if algorithm in entry.string_map("digest")]
        except CiOrasError as exc:
            raise _Failed(SUBJECT, f"the signed statement is malformed: {exc.message}") from None
        if self.subject.digest not in named:
            raise _Failed(SUBJECT, f"the signed statement names {', '.join(named) or 'no ' + algorithm + ' digest'}, "
                                   f"not the manifest the bundle refers to ({self.subject.digest})")

    def _read_log_index(self, document: Fields) -> None:
        """The log entry's index, for the result; a malformed entry is sigstore-python's to refuse."""
        try:
            material = document.optional_child("verificationMaterial")
            entries = material.children("tlogEntries") if material is not None else []
        except CiOrasError:
            return
        index = entries[0].raw("logIndex") if entries else None
        if isinstance(index, str) and index.isascii() and index.isdigit():
            self.log_index = int(index)  # protobuf JSON writes int64 as a string


class _JudgedAfterwards:
    """sigstore-python's ``VerificationPolicy`` extension point, given a policy that accepts every certificate:
    :class:`IdentityPolicy` judges the identity once sigstore-python has verified the rest (its own no-op policy
    would log a warning into the user's output on every bundle)."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


def _check_of(message: str, *, default: str) -> str:
    return next((check for marker, check in _CHECK_OF_MESSAGE if marker in message), default)


def _first(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _identities(certificate: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509
    from cryptography.x509.oid import ObjectIdentifier

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    values: list[str] = [*names.get_values_for_type(x509.UniformResourceIdentifier),
                         *names.get_values_for_type(x509.RFC822Name)]
    for other in names.get_values_for_type(x509.OtherName):
        if other.type_id == ObjectIdentifier(_OTHERNAME_SAN):
            text = _der_utf8(other.value)
            if text is not None:
                values.append(text)
    return tuple(values)


def _extension(certificate: x509.Certificate, oid: str) -> bytes | None:
    from cryptography import x509
    from cryptography.x509.oid import ObjectIdentifier

    try:
        value = certificate.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value
    except x509.ExtensionNotFound:
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _issuer(certificate: x509.Certificate) -> str | None:
    v2 = _extension(certificate, _ISSUER_V2)
    if v2 is not None:
        return _der_utf8(v2)
    v1 = _extension(certificate, _ISSUER_V1)
    return v1.decode("utf-8", "replace") if v1 is not None else None


def _github_repository(certificate: x509.Certificate) -> str | None:
    uri = _extension(certificate, _SOURCE_REPOSITORY_URI)
    text = _der_utf8(uri) if uri is not None else None
    if text is not None:
        return text.removeprefix("https://github.com/")
    v1 = _extension(certificate, _GITHUB_REPOSITORY_V1)
    return v1.decode("utf-8", "replace") if v1 is not None else None


def _der_utf8(data: bytes) -> str | None:
    """A DER UTF8String's text (Fulcio's v2 extensions); None when the bytes are not one."""
    if len(data) < 2 or data[0] != 0x0C:
        return None
    length, start = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        length, start = int.from_bytes(data[2:2 + count], "big"), 2 + count
    if start + length != len(data):
        return None
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError:
        return None
