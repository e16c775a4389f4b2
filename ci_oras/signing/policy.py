"""Trust policy and trust store in notation's own formats, and the evaluation of one signature against them.

A team's existing notation configuration has to work unchanged, so the formats are notation's:

- the trust policy document, version ``1.0``::

    {"version": "1.0", "trustPolicies": [{
        "name": "prod", "registryScopes": ["registry.example/app"],      # or ["*"]
        "signatureVerification": {"level": "strict", "override": {"expiry": "log"}},
        "trustStores": ["ca:acme"],                                        # or signingAuthority:NAME
        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme, CN=Release"]}]}   # or ["*"]

- the trust store directory: ``x509/ca/NAME/*`` and ``x509/signingAuthority/NAME/*`` (PEM or DER files).

Levels (what each check does on failure — ``enforce`` fails the signature, ``log`` records and continues,
``skip`` does not look):

==========  =========  ============  ==================  =======  ==========
level       integrity  authenticity  authenticTimestamp  expiry   revocation
==========  =========  ============  ==================  =======  ==========
strict      enforce    enforce       enforce             enforce  enforce
permissive  enforce    enforce       log                 log      log
audit       enforce    log           log                 log      log
skip        skip       skip          skip                skip     skip
==========  =========  ============  ==================  =======  ==========

``override`` changes any check but integrity. That the payload names the artifact being verified is part
of integrity. ci-oras does no network I/O here, so revocation (OCSP/CRL) and RFC 3161 timestamp
countersignatures are reported as ``not-checked`` in every outcome that would have looked at them — visible
in strict rather than silently skipped. Without a verified timestamp the self-asserted signing time proves
nothing, so ``authenticTimestamp`` checks the chain at verification time, as notation does.

Verifiers are plugged in per artifact type behind :class:`SignaturePolicy`, so a Sigstore bundle policy can
join :class:`Policies` later without changing how the Notary one is built or called.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ci_oras.errors import UsageError
from ci_oras.formats.signature import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, NOTARY_ARTIFACT_TYPE
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.shape import load_json
from ci_oras.signing import certs
from ci_oras.signing.envelope import SCHEME_SIGNING_AUTHORITY, EnvelopeError, parse_envelope, target_mismatch
from ci_oras.signing.keys import algorithm_for, load_certificates, public_key, verify_bytes

ENFORCE, LOG, SKIP = "enforce", "log", "skip"
INTEGRITY, AUTHENTICITY, TIMESTAMP, EXPIRY, REVOCATION = (
    "integrity", "authenticity", "authenticTimestamp", "expiry", "revocation")
CHECKS = (INTEGRITY, AUTHENTICITY, TIMESTAMP, EXPIRY, REVOCATION)
LEVELS: dict[str, dict[str, str]] = {
    "strict": dict.fromkeys(CHECKS, ENFORCE),
    "permissive": {INTEGRITY: ENFORCE, AUTHENTICITY: ENFORCE, TIMESTAMP: LOG, EXPIRY: LOG, REVOCATION: LOG},
    "audit": {INTEGRITY: ENFORCE, AUTHENTICITY: LOG, TIMESTAMP: LOG, EXPIRY: LOG, REVOCATION: LOG},
    "skip": dict.fromkeys(CHECKS, SKIP),
}
STORE_TYPES = ("ca", "signingAuthority", "tsa")
#: What each check reported: ``passed``; ``failed`` (enforced); ``logged`` (failed, level says log);
#: ``skipped`` (level says skip); ``not-checked`` (ci-oras cannot check it, reported so nobody assumes it was).
PASSED, FAILED, LOGGED, SKIPPED, NOT_CHECKED = "passed", "failed", "logged", "skipped", "not-checked"

_POLICY_HINT = "fix the trust policy document (notation's trust policy format, version 1.0)"
_STORE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_IDENTITY_PREFIX = "x509.subject:"
_STATEMENT_KEYS = {"name", "registryScopes", "signatureVerification", "trustStores", "trustedIdentities"}
#: Envelopes are kilobytes; this bounds what a verifier reads for one signature.
MAX_SIGNATURE_BYTES = 64 * 1024 * 1024


# --- outcome -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    check: str
    result: str
    detail: str | None = None

    def document(self) -> dict[str, str]:
        out = {"check": self.check, "result": self.result}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class SignatureOutcome:
    """What one signature's evaluation found: verified, skipped by the policy's level, or failed (and why)."""

    #: Digest of the signature's referrer manifest.
    digest: str
    artifact_type: str
    #: ``verified``, ``skipped`` (the level is skip) or ``failed``.
    result: str
    failed_check: str | None = None
    reason: str | None = None
    policy: str | None = None
    level: str | None = None
    #: The envelope format, e.g. ``notary/jws``.
    format: str | None = None
    #: The signing certificate's subject (RFC 4514).
    signer: str | None = None
    signing_time: dt.datetime | None = None
    expiry: dt.datetime | None = None
    checks: tuple[CheckResult, ...] = ()
    #: Sigstore bundles: the certificate's OIDC issuer, the statement's predicate type, the log entry's index.
    issuer: str | None = None
    predicate_type: str | None = None
    log_index: int | None = None
    #: What the verified content says it is (``dev.sigstore.bundle.predicateType``, or nothing for a message
    #: signature), which a requirement matches instead of the manifest's annotations; None: the annotations.
    claims: Mapping[str, str] | None = None

    @property
    def counts(self) -> bool:
        """Whether a ``signature`` requirement may count it: everything the level enforces passed (or the
        level is skip, where notation accepts without looking)."""
        return self.result != FAILED

    def document(self) -> dict[str, Any]:
        out: dict[str, Any] = {"digest": self.digest, "artifactType": self.artifact_type, "result": self.result}
        for key, value in (("failedCheck", self.failed_check), ("reason", self.reason), ("policy", self.policy),
                           ("level", self.level), ("format", self.format), ("signer", self.signer),
                           ("signingTime", _iso(self.signing_time)), ("expiry", _iso(self.expiry)),
                           ("issuer", self.issuer), ("predicateType", self.predicate_type),
                           ("logIndex", self.log_index)):
            if value is not None:
                out[key] = value
        out["checks"] = [check.document() for check in self.checks]
        return out


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Signature:
    """A signature as the graph layer hands it over: its referrer manifest's digest, type and annotations, and
    the one layer holding the envelope or bundle (fetched and digest-verified by the caller)."""

    digest: str
    artifact_type: str
    layer: Descriptor
    content: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)


class SignaturePolicy(Protocol):
    """One kind of signature (Notary Project today, Sigstore bundles next) and how to judge it."""

    def handles(self, artifact_type: str) -> bool:
        """True for the referrer artifact types this policy evaluates."""

    def pick_layer(self, layers: Sequence[Descriptor]) -> Descriptor | None:
        """The layer holding the signature among a referrer manifest's layers; None when there is none."""

    def evaluate(self, signature: Signature, subject: Descriptor, scope: str) -> SignatureOutcome:
        """Judge ``signature`` of ``subject`` found in repository ``scope`` (``registry/repository``)."""


@dataclass(frozen=True)
class Policies:
    """Every configured policy; the first that handles a signature's artifact type judges it."""

    policies: tuple[SignaturePolicy, ...]

    def for_type(self, artifact_type: str) -> SignaturePolicy | None:
        return next((policy for policy in self.policies if policy.handles(artifact_type)), None)


# --- trust policy document ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedIdentity:
    """``x509.subject: DN``: the leaf's subject must contain every attribute listed (any order, others allowed)."""

    text: str
    attributes: tuple[tuple[str, str], ...]

    def matches(self, subject: x509.Name) -> bool:
        have = [(attr.oid.dotted_string, str(attr.value)) for attr in subject]
        for wanted in self.attributes:
            if wanted not in have:
                return False
            have.remove(wanted)
        return True


@dataclass(frozen=True)
class TrustPolicyStatement:
    name: str
    registry_scopes: tuple[str, ...]
    level: str
    #: The action for every check, overrides applied.
    actions: Mapping[str, str]
    trust_stores: tuple[tuple[str, str], ...]
    #: None means ``*`` (any identity).
    trusted_identities: tuple[TrustedIdentity, ...] | None


@dataclass(frozen=True)
class TrustPolicyDocument:
    statements: tuple[TrustPolicyStatement, ...]

    def select(self, scope: str) -> TrustPolicyStatement:
        """The statement naming ``scope`` exactly, else the global ``*`` one (notation's rule)."""
        for statement in self.statements:
            if scope in statement.registry_scopes:
                return statement
        for statement in self.statements:
            if "*" in statement.registry_scopes:
                return statement
        raise UsageError(f"no trust policy applies to {scope}",
                         hint=f'add "{scope}" to a policy\'s registryScopes, or a policy with registryScopes ["*"]')


def parse_trust_policy(data: bytes, source: str) -> TrustPolicyDocument:
    """Parse and validate a trust policy document; every problem is a UsageError naming ``source``."""
    document = load_json(data, lambda problem: UsageError(
        f"{source} is not a JSON trust policy document ({problem})", hint=_POLICY_HINT), encoding="utf-8-sig")
    if not isinstance(document, dict):
        raise _bad(source, "the document is not a JSON object")
    if document.get("version") != "1.0":
        raise _bad(source, f"version is {document.get('version')!r}; ci-oras reads trust policy version \"1.0\"")
    entries = document.get("trustPolicies")
    if not isinstance(entries, list) or not entries:
        raise _bad(source, "trustPolicies must be a non-empty list")
    statements = [_statement(source, index, entry) for index, entry in enumerate(entries)]
    seen_names: set[str] = set()
    seen_scopes: dict[str, str] = {}
    for statement in statements:
        if statement.name in seen_names:
            raise _bad(source, f"two policies are named {statement.name!r}; names must be unique")
        seen_names.add(statement.name)
        for scope in statement.registry_scopes:
            if scope in seen_scopes:
                raise _bad(source, f"registry scope {scope!r} is in policies {seen_scopes[scope]!r} and "
                                   f"{statement.name!r}; a scope may appear in one policy only")
            seen_scopes[scope] = statement.name
    return TrustPolicyDocument(tuple(statements))


def _bad(source: str, problem: str) -> UsageError:
    return UsageError(f"invalid trust policy {source}: {problem}", hint=_POLICY_HINT)


def _statement(source: str, index: int, entry: object) -> TrustPolicyStatement:
    if not isinstance(entry, dict):
        raise _bad(source, f"trustPolicies[{index}] is not an object")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad(source, f"trustPolicies[{index}] has no name")
    where = f"policy {name!r}"
    unknown = sorted(set(entry) - _STATEMENT_KEYS)
    if unknown:
        raise _bad(source, f"{where} has unknown field {unknown[0]!r} (fields: {', '.join(sorted(_STATEMENT_KEYS))})")
    scopes = _strings(source, where, "registryScopes", entry.get("registryScopes"))
    if not scopes:
        raise _bad(source, f"{where} has no registryScopes")
    if "*" in scopes and len(scopes) > 1:
        raise _bad(source, f"{where}: the wildcard scope \"*\" cannot be listed with other scopes")
    for scope in scopes:
        if scope != "*" and not _valid_scope(scope):
            raise _bad(source, f"{where}: registry scope {scope!r} is not REGISTRY/REPOSITORY (no tag, no digest)")
    level, actions = _verification(source, where, entry.get("signatureVerification"))
    stores = _strings(source, where, "trustStores", entry.get("trustStores", []))
    identities = _strings(source, where, "trustedIdentities", entry.get("trustedIdentities", []))
    if level == "skip":
        if stores or identities:
            raise _bad(source, f"{where} has level skip, so it must not list trustStores or trustedIdentities")
        return TrustPolicyStatement(name, tuple(scopes), level, actions, (), None)
    if not stores:
        raise _bad(source, f"{where} lists no trustStores")
    if not identities:
        raise _bad(source, f"{where} lists no trustedIdentities (use [\"*\"] to trust any identity)")
    return TrustPolicyStatement(name, tuple(scopes), level, actions,
                                tuple(_store_ref(source, where, store) for store in stores),
                                _identities(source, where, identities))


def _strings(source: str, where: str, key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad(source, f"{where}: {key} must be a list of strings")
    return [str(item) for item in value]


def _valid_scope(scope: str) -> bool:
    if "/" not in scope or "@" in scope or scope != scope.strip() or any(c.isspace() for c in scope):
        return False
    host, _, path = scope.partition("/")
    return bool(host) and all(path.split("/")) and ":" not in path


def _verification(source: str, where: str, value: object) -> tuple[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise _bad(source, f"{where} has no signatureVerification object")
    level = value.get("level")
    if not isinstance(level, str) or level not in LEVELS:  # a list or object is unhashable: no lookup
        raise _bad(source, f"{where}: level {level!r} is not one of {', '.join(LEVELS)}")
    actions = dict(LEVELS[str(level)])
    override = value.get("override", {})
    if not isinstance(override, dict):
        raise _bad(source, f"{where}: override must be an object")
    if override and level == "skip":
        raise _bad(source, f"{where}: level skip cannot be overridden")
    for check, action in override.items():
        if check == INTEGRITY:
            raise _bad(source, f"{where}: integrity cannot be overridden")
        if check not in CHECKS:
            raise _bad(source, f"{where}: override names {check!r}; checks are {', '.join(CHECKS[1:])}")
        if action not in (ENFORCE, LOG, SKIP):
            raise _bad(source, f"{where}: override {check} is {action!r}, not enforce, log or skip")
        actions[check] = str(action)
    verify_timestamp = value.get("verifyTimestamp", "always")
    if verify_timestamp not in ("always", "afterCertExpiry"):
        raise _bad(source, f"{where}: verifyTimestamp is {verify_timestamp!r}, not always or afterCertExpiry")
    return str(level), actions


def _store_ref(source: str, where: str, text: str) -> tuple[str, str]:
    store_type, _, name = text.partition(":")
    if store_type not in STORE_TYPES or not _STORE_NAME.match(name):
        raise _bad(source, f"{where}: trust store {text!r} is not TYPE:NAME with TYPE ca, signingAuthority or tsa")
    return store_type, name


def _identities(source: str, where: str, texts: list[str]) -> tuple[TrustedIdentity, ...] | None:
    if "*" in texts:
        if len(texts) > 1:
            raise _bad(source, f"{where}: the wildcard identity \"*\" cannot be listed with other identities")
        return None
    return tuple(parse_identity(text, lambda problem: _bad(source, f"{where}: {problem}")) for text in texts)


def _tidy_dn(dn: str) -> str:
    """notation writes ``C=US, ST=WA``; RFC 4514 has no space after the comma: drop spaces around unescaped
    separators (an escaped ``\\,`` stays part of its value)."""
    parts, current, escaped = [], "", False
    for char in dn:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            current, escaped = current + char, True
        elif char == ",":
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return ",".join(parts)


def parse_identity(text: str, error: Callable[[str], UsageError]) -> TrustedIdentity:
    """``x509.subject: C=US, ST=WA, O=Acme`` → the attributes; notation requires C, ST and O at least."""
    if not text.startswith(_IDENTITY_PREFIX):
        raise error(f"trusted identity {text!r} does not start with {_IDENTITY_PREFIX!r}")
    dn = text[len(_IDENTITY_PREFIX):].strip()
    try:
        name = x509.Name.from_rfc4514_string(_tidy_dn(dn))
    except ValueError as exc:
        raise error(f"trusted identity {text!r} is not a distinguished name ({exc})") from None
    short = {attr.rfc4514_attribute_name for attr in name}
    missing = [attr for attr in ("C", "ST", "O") if attr not in short]
    if missing:
        raise error(f"trusted identity {text!r} lacks {', '.join(missing)}; C, ST and O are required")
    return TrustedIdentity(text, tuple((attr.oid.dotted_string, str(attr.value)) for attr in name))


# --- trust stores ------------------------------------------------------------------------------------------


class TrustStore(Protocol):
    def certificates(self, store_type: str, name: str) -> tuple[x509.Certificate, ...]:
        """The certificates of trust store ``store_type:name``; UsageError when it is missing or empty."""


@dataclass(frozen=True)
class DirectoryTrustStore:
    """notation's layout: ``ROOT/x509/<type>/<name>/`` holding PEM or DER certificate files."""

    root: Path
    #: Each named store is read once per run, however many signatures it judges.
    _loaded: dict[tuple[str, str], tuple[x509.Certificate, ...]] = field(default_factory=dict, compare=False,
                                                                         repr=False)

    def certificates(self, store_type: str, name: str) -> tuple[x509.Certificate, ...]:
        if (store_type, name) not in self._loaded:
            self._loaded[(store_type, name)] = self._read(store_type, name)
        return self._loaded[(store_type, name)]

    def _read(self, store_type: str, name: str) -> tuple[x509.Certificate, ...]:
        directory = self.root / "x509" / store_type / name
        hint = f"put the trusted root certificate(s) (PEM) in {directory}"
        if not directory.is_dir():
            raise UsageError(f"trust store {store_type}:{name} not found ({directory} is not a directory)", hint=hint)
        found: list[x509.Certificate] = []
        try:
            files = sorted(path for path in directory.iterdir() if path.is_file())
            for path in files:
                found += load_certificates(path.read_bytes(), str(path))
        except OSError as exc:
            raise UsageError(f"cannot read trust store {directory}: {exc.strerror or exc}", hint=hint) from exc
        if not found:
            raise UsageError(f"trust store {store_type}:{name} ({directory}) holds no certificates", hint=hint)
        return tuple(found)


@dataclass(frozen=True)
class MemoryTrustStore:
    stores: Mapping[tuple[str, str], tuple[x509.Certificate, ...]]

    def certificates(self, store_type: str, name: str) -> tuple[x509.Certificate, ...]:
        found = self.stores.get((store_type, name))
        if not found:
            raise UsageError(f"trust store {store_type}:{name} not found", hint="name a configured trust store")
        return found


# --- the Notary Project policy -----------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class NotaryPolicy:
    """Judges Notary Project signatures (``application/vnd.cncf.notary.signature``) with notation's semantics."""

    document: TrustPolicyDocument
    store: TrustStore
    #: The verification time; a parameter so tests can move the clock instead of waiting for it.
    now: Callable[[], dt.datetime] = _utcnow

    @classmethod
    def from_files(cls, policy_path: Path, store_root: Path | None = None) -> NotaryPolicy:
        """The trust policy at ``policy_path`` with the trust store at ``store_root``; without one, the
        ``truststore`` directory beside the policy, which is where notation keeps both
        (``~/.config/notation/trustpolicy.json`` and ``~/.config/notation/truststore``)."""
        if store_root is None:
            store_root = policy_path.parent / "truststore"
        try:
            data = policy_path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read trust policy {policy_path}: {exc.strerror or exc}",
                             hint="pass the path of notation's trustpolicy.json") from exc
        return cls(parse_trust_policy(data, str(policy_path)), DirectoryTrustStore(store_root))

    @classmethod
    def signed_by(cls, certificate_pem: bytes, source: str) -> NotaryPolicy:
        """``--signed-by CERT.pem``: the certificate(s) are the one trusted root, any identity, level strict."""
        trusted = tuple(load_certificates(certificate_pem, source))
        statement = TrustPolicyStatement(name="signed-by", registry_scopes=("*",), level="strict",
                                         actions=dict(LEVELS["strict"]), trust_stores=(("ca", "signed-by"),),
                                         trusted_identities=None)
        return cls(TrustPolicyDocument((statement,)), MemoryTrustStore({("ca", "signed-by"): trusted}))

    def handles(self, artifact_type: str) -> bool:
        return artifact_type.lower() == NOTARY_ARTIFACT_TYPE

    def pick_layer(self, layers: Sequence[Descriptor]) -> Descriptor | None:
        envelopes = [layer for layer in layers if layer.media_type in (JWS_MEDIA_TYPE, COSE_MEDIA_TYPE)]
        return envelopes[0] if len(envelopes) == 1 else None

    def evaluate(self, signature: Signature, subject: Descriptor, scope: str) -> SignatureOutcome:
        statement = self.document.select(scope)
        return _Evaluation(statement, self.store, self.now(), signature, subject).run()


class _Failed(Exception):
    """An enforced check failed: evaluation stops with this check and reason."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check
        self.reason = reason


class _Evaluation:
    """One signature against one policy statement; checks run in notation's order and are all recorded."""

    def __init__(self, statement: TrustPolicyStatement, store: TrustStore, now: dt.datetime,
                 signature: Signature, subject: Descriptor) -> None:
        self.statement = statement
        self.store = store
        self.now = now
        self.signature = signature
        self.subject = subject
        self.checks: list[CheckResult] = []
        self.fields: dict[str, Any] = {}

    def run(self) -> SignatureOutcome:
        base: dict[str, Any] = {"digest": self.signature.digest, "artifact_type": self.signature.artifact_type,
                "policy": self.statement.name, "level": self.statement.level}
        if self.statement.level == "skip":
            return SignatureOutcome(result=SKIPPED, checks=tuple(CheckResult(check, SKIPPED) for check in CHECKS),
                                    **base)
        try:
            self._all()
        except _Failed as failure:
            return SignatureOutcome(result=FAILED, failed_check=failure.check, reason=failure.reason,
                                    checks=tuple(self.checks), **base, **self.fields)
        return SignatureOutcome(result="verified", checks=tuple(self.checks), **base, **self.fields)

    def _record(self, check: str, problem: str | None, detail: str | None = None) -> None:
        """Record ``check``'s result; an enforced failure stops the evaluation."""
        action = self.statement.actions[check]
        if problem is None:
            self.checks.append(CheckResult(check, PASSED, detail))
            return
        if action == ENFORCE:
            self.checks.append(CheckResult(check, FAILED, problem))
            raise _Failed(check, problem)
        self.checks.append(CheckResult(check, LOGGED if action == LOG else SKIPPED, problem))

    def _all(self) -> None:
        layer = self.signature.layer
        if layer.media_type not in (JWS_MEDIA_TYPE, COSE_MEDIA_TYPE):
            self._record(INTEGRITY, f"the signature manifest has no single {JWS_MEDIA_TYPE} or {COSE_MEDIA_TYPE} "
                                    "layer holding the envelope")
        if layer.size > MAX_SIGNATURE_BYTES:
            self._record(INTEGRITY, f"the envelope layer is {layer.size} bytes, far more than any signature")
        try:
            envelope = parse_envelope(self.signature.layer.media_type, self.signature.content)
            chain = [x509.load_der_x509_certificate(der) for der in envelope.chain]
        except EnvelopeError as exc:
            self._record(INTEGRITY, f"malformed signature envelope: {exc}")
            return
        except ValueError:
            self._record(INTEGRITY, "the envelope's certificate chain holds a certificate that cannot be parsed")
            return
        leaf = chain[0]
        self.fields.update(format=f"notary/{envelope.format}", signer=leaf.subject.rfc4514_string(),
                           signing_time=envelope.signing_time, expiry=envelope.expiry)

        # Integrity: the signature covers the exact bytes, with the algorithm the leaf's key prescribes.
        key = public_key(leaf)
        expected = algorithm_for(key) if key is not None else None
        if key is None or expected != envelope.algorithm:
            self._record(INTEGRITY, f"the envelope says {envelope.algorithm.name} but the signing certificate's key "
                                    f"calls for {expected.name if expected else 'no supported algorithm'}")
        elif not verify_bytes(key, envelope.algorithm, envelope.signed, envelope.signature):
            self._record(INTEGRITY, "the signature does not match the signed content (it was altered after signing, "
                                    "or signed with another key)")
        else:
            try:
                mismatch = target_mismatch(envelope.payload, self.subject)
            except EnvelopeError as exc:
                mismatch = str(exc)
            self._record(INTEGRITY, mismatch)

        self._authenticity(envelope.signing_scheme, envelope.signing_time, chain)

        if envelope.signing_scheme == SCHEME_SIGNING_AUTHORITY:
            self._record(TIMESTAMP, None, "the signing time is authentic (signing authority scheme)")
        elif self.statement.actions[TIMESTAMP] == SKIP:
            self.checks.append(CheckResult(TIMESTAMP, SKIPPED))
        else:
            note = ("a timestamp countersignature is present but not checked by ci-oras; the chain was checked at "
                    "verification time instead" if envelope.timestamped else
                    "no timestamp countersignature: the chain was checked at verification time")
            self._record(TIMESTAMP, certs.validity_problem(chain, self.now, "now"), note)

        if self.statement.actions[EXPIRY] == SKIP:
            self.checks.append(CheckResult(EXPIRY, SKIPPED))
        elif envelope.expiry is not None and self.now > envelope.expiry:
            self._record(EXPIRY, f"the signature expired at {_iso(envelope.expiry)}")
        else:
            self._record(EXPIRY, None, None if envelope.expiry else "the signature has no expiry")

        revocation = self.statement.actions[REVOCATION]
        self.checks.append(CheckResult(REVOCATION, SKIPPED if revocation == SKIP else NOT_CHECKED,
                                       None if revocation == SKIP else
                                       f"revocation (OCSP/CRL) is not checked by ci-oras (policy: {revocation})"))

    def _authenticity(self, scheme: str, signing_time: dt.datetime, chain: list[x509.Certificate]) -> None:
        if self.statement.actions[AUTHENTICITY] == SKIP:
            self.checks.append(CheckResult(AUTHENTICITY, SKIPPED))
            return
        problem = certs.chain_problem(chain)
        if problem is None:
            problem = self._untrusted(scheme, chain)
        if problem is None:
            problem = certs.validity_problem(chain, signing_time, "at signing time")
        if problem is None and self.statement.trusted_identities is not None:
            if not any(identity.matches(chain[0].subject) for identity in self.statement.trusted_identities):
                problem = (f"the signing certificate's subject {chain[0].subject.rfc4514_string()!r} is not a "
                           f"trusted identity of policy {self.statement.name!r}")
        self._record(AUTHENTICITY, problem)

    def _untrusted(self, scheme: str, chain: list[x509.Certificate]) -> str | None:
        store_type = "signingAuthority" if scheme == SCHEME_SIGNING_AUTHORITY else "ca"
        names = [name for kind, name in self.statement.trust_stores if kind == store_type]
        if not names:
            return f"policy {self.statement.name!r} lists no {store_type} trust store for {scheme} signatures"
        der = serialization.Encoding.DER
        trusted = {cert.public_bytes(der) for name in names for cert in self.store.certificates(store_type, name)}
        if any(cert.public_bytes(der) in trusted for cert in chain):
            return None
        return (f"the certificate chain (root {certs.name_of(chain[-1])!r}) does not lead to a certificate in "
                f"trust store(s) {', '.join(f'{store_type}:{name}' for name in names)}")
