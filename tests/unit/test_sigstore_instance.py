"""The local Sigstore instance (tests/harness/sigstore_instance.py) is judged by sigstore-python itself: its
bundles verify through ``Verifier(trusted_root=TrustedRoot.from_file(...))`` exactly as production bundles do,
with no part of sigstore-python replaced, and each spoiled bundle is refused for its own reason.

What sigstore-python 4.5.1 raises for each negative case (the harness's users can expect the same):

* another identity or issuer: ``VerificationError`` from the policy ("Certificate's SANs do not match ...",
  "Certificate's OIDCIssuer does not match ...");
* a tampered statement: ``VerificationError("DSSE: invalid signature")``: the certificate, SCT and log entry
  all check out first, the envelope's signature is the first thing the payload breaks;
* an expired certificate and another instance's bundle: ``CertValidationError`` (a ``VerificationError``),
  "failed to build timestamp certificate chain: validation failed: ..." ("cert is not valid at validation
  time", "candidates exhausted"): the chain is built at the log's integrated time, before anything else;
* no log entry: ``InvalidBundle("expected exactly one log entry in bundle")`` from ``Bundle.from_json``, before
  any verification. ``InvalidBundle`` derives from ``sigstore.errors.Error``, not from ``VerificationError``:
  a caller catching only ``VerificationError`` would let it through.

sigstore-python is a runtime dependency of ci-oras (``ci_oras/signing/bundles.py`` verifies bundles with it);
the harness itself uses only ``cryptography``, so what it mints is independent of the verifier it feeds.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cryptography import x509
from harness.sigstore_instance import (
    BUNDLE_MEDIA_TYPE,
    INTOTO_PAYLOAD_TYPE,
    TRUSTED_ROOT_MEDIA_TYPE,
    Signer,
    SigstoreInstance,
    mint_instance,
)
from sigstore.errors import CertValidationError, Error, VerificationError
from sigstore.models import Bundle, InvalidBundle, TrustedRoot
from sigstore.verify import Verifier, policy

DIGEST = "sha256:" + hashlib.sha256(b"registry.example/shop/api manifest").hexdigest()
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PREDICATE = {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"}}
SIGNER = Signer()
IDENTITY = policy.Identity(identity=SIGNER.identity, issuer=SIGNER.issuer)
PERSON = Signer(identity="alice@example.com", issuer="https://accounts.google.com", github_repository=None)
MESSAGE = b"shop-api-1.4.2.tar.gz contents"

#: Every policy in sigstore.verify.policy that checks one certificate extension (v1 raw string, v2 DER
#: UTF8String), found by what they share rather than listed: a class a new sigstore adds is held to the
#: harness's claims too.
EXTENSION_POLICIES: list[type[Any]] = sorted(
    (cls for name, cls in vars(policy).items()
     if inspect.isclass(cls) and not name.startswith("_") and cls.__module__ == policy.__name__
     and isinstance(getattr(cls, "oid", None), x509.ObjectIdentifier)),
    key=lambda cls: [int(part) for part in cls.oid.dotted_string.split(".")])


@pytest.fixture(scope="module")
def instance(sigstore_instances: tuple[SigstoreInstance, SigstoreInstance]) -> SigstoreInstance:
    return sigstore_instances[0]


@pytest.fixture(scope="module")
def other(sigstore_instances: tuple[SigstoreInstance, SigstoreInstance]) -> SigstoreInstance:
    """A second, untrusted deployment: well-formed bundles under keys the first root does not name."""
    return sigstore_instances[1]


@pytest.fixture(scope="module")
def verifier(instance: SigstoreInstance) -> Verifier:
    return Verifier(trusted_root=TrustedRoot.from_file(str(instance.trusted_root)))


@pytest.fixture(scope="module")
def statement(instance: SigstoreInstance) -> dict[str, Any]:
    return instance.statement(DIGEST, PREDICATE_TYPE, PREDICATE)


@pytest.fixture(scope="module")
def good_bundle(instance: SigstoreInstance, statement: dict[str, Any]) -> Bundle:
    """One good DSSE bundle, verified under many policies."""
    return Bundle.from_json(instance.dsse_bundle(statement))


def test_trusted_root_names_the_ca_chain_the_tlog_and_the_ctlog(instance: SigstoreInstance) -> None:
    """The file is the production format, read by sigstore's own loader."""
    document = json.loads(instance.trusted_root.read_text())
    assert instance.trusted_root == instance.directory / "trusted_root.json"
    assert document["mediaType"] == TRUSTED_ROOT_MEDIA_TYPE
    assert [len(ca["certChain"]["certificates"]) for ca in document["certificateAuthorities"]] == [2]
    assert len(document["tlogs"]) == len(document["ctlogs"]) == 1
    root = TrustedRoot.from_file(str(instance.trusted_root))
    intermediate, ca_root = root.get_fulcio_certs()
    assert intermediate.issuer == ca_root.subject == ca_root.issuer


def test_statement_is_an_in_toto_v1_statement(instance: SigstoreInstance, statement: dict[str, Any]) -> None:
    assert statement == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.example/shop/api", "digest": {"sha256": DIGEST.removeprefix("sha256:")}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": PREDICATE,
    }
    with pytest.raises(ValueError, match="sha256:<64 hex digits>"):
        instance.statement("sha512:" + "ab" * 64, PREDICATE_TYPE)


def test_dsse_bundle_verifies_and_returns_the_statement(verifier: Verifier, instance: SigstoreInstance,
                                                        statement: dict[str, Any]) -> None:
    raw = instance.dsse_bundle(statement)
    assert json.loads(raw)["mediaType"] == BUNDLE_MEDIA_TYPE
    payload_type, payload = verifier.verify_dsse(Bundle.from_json(raw), IDENTITY)
    assert payload_type == INTOTO_PAYLOAD_TYPE
    assert json.loads(payload) == statement


def test_any_json_predicate_round_trips(verifier: Verifier, instance: SigstoreInstance) -> None:
    """The payload is opaque to the verifier: floats and non-ASCII text come back as signed."""
    statement = instance.statement(DIGEST, "https://example.com/review/v1", {"score": 0.75, "reviewer": "Zoë"})
    _, payload = verifier.verify_dsse(Bundle.from_json(instance.dsse_bundle(statement)), IDENTITY)
    assert json.loads(payload) == statement


def test_github_workflow_policies_v1_and_v2(verifier: Verifier, good_bundle: Bundle,
                                            statement: dict[str, Any]) -> None:
    """What a deployment gate asks of a GitHub Actions attestation: the repository, ref and workflow, through
    the deprecated raw-string extensions and their DER successors alike."""
    github = policy.AllOf([
        policy.GitHubWorkflowRepository("acme/shop"),
        policy.GitHubWorkflowRef("refs/heads/main"),
        policy.GitHubWorkflowTrigger("push"),
        policy.OIDCIssuerV2("https://token.actions.githubusercontent.com"),
        policy.OIDCSourceRepositoryURI("https://github.com/acme/shop"),
        policy.OIDCSourceRepositoryRef("refs/heads/main"),
        policy.OIDCSourceRepositoryOwnerURI("https://github.com/acme"),
        policy.OIDCBuildConfigURI("https://github.com/acme/shop/.github/workflows/release.yml@refs/heads/main"),
        policy.OIDCBuildSignerURI(SIGNER.identity),
        policy.OIDCRunnerEnvironment("github-hosted"),
        IDENTITY,
    ])
    _, payload = verifier.verify_dsse(good_bundle, github)
    assert json.loads(payload) == statement
    with pytest.raises(VerificationError, match="GitHubWorkflowRepository does not match"):
        verifier.verify_dsse(good_bundle, policy.AllOf([IDENTITY, policy.GitHubWorkflowRepository("acme/other")]))
    with pytest.raises(VerificationError, match="OIDCSourceRepositoryURI does not match"):
        verifier.verify_dsse(good_bundle, policy.OIDCSourceRepositoryURI("https://github.com/acme/other"))


@pytest.mark.parametrize("policy_class", EXTENSION_POLICIES, ids=lambda cls: cls.__name__)
def test_every_extension_policy_reads_its_claim(verifier: Verifier, good_bundle: Bundle,
                                                policy_class: type[Any]) -> None:
    """Each extension holds the claim :meth:`Signer.claims` names, encoded as that policy decodes it."""
    claims = SIGNER.claims()
    assert policy_class.oid.dotted_string in claims, f"the certificate lacks {policy_class.__name__}"
    verifier.verify_dsse(good_bundle, policy_class(claims[policy_class.oid.dotted_string]))
    with pytest.raises(VerificationError, match=f"{policy_class.__name__} does not match"):
        verifier.verify_dsse(good_bundle, policy_class("something else"))


def test_message_bundle_verifies_with_verify_artifact(verifier: Verifier, instance: SigstoreInstance) -> None:
    bundle = Bundle.from_json(instance.message_bundle(MESSAGE))
    verifier.verify_artifact(MESSAGE, bundle, IDENTITY)
    with pytest.raises(VerificationError, match="Bundle message digest mismatch"):
        verifier.verify_artifact(MESSAGE + b"!", bundle, IDENTITY)


def test_an_email_identity_without_github_claims(verifier: Verifier, instance: SigstoreInstance,
                                                 statement: dict[str, Any]) -> None:
    """A person's identity is an email SAN, and the certificate carries no workflow claims to match."""
    bundle = Bundle.from_json(instance.dsse_bundle(statement, PERSON))
    verifier.verify_dsse(bundle, policy.Identity(identity=PERSON.identity, issuer=PERSON.issuer))
    verifier.verify_dsse(bundle, policy.OIDCIssuerV2(PERSON.issuer))
    with pytest.raises(VerificationError, match=r"does not contain GitHubWorkflowRepository \(1.3.6.1.4.1.57264.1.5\)"):
        verifier.verify_dsse(bundle, policy.GitHubWorkflowRepository("acme/shop"))


def test_a_claim_longer_than_127_bytes(verifier: Verifier, instance: SigstoreInstance) -> None:
    """A v2 extension's UTF8String needs DER's long length form past 127 bytes (workflow paths can be long)."""
    path = ".github/workflows/" + "release-" * 16 + "yml"
    signer = Signer(identity=f"https://github.com/acme/shop/{path}@refs/heads/main", github_workflow_path=path)
    assert len(signer.identity) > 127
    bundle = Bundle.from_json(instance.message_bundle(MESSAGE, signer))
    verifier.verify_artifact(MESSAGE, bundle, policy.AllOf([
        policy.Identity(identity=signer.identity, issuer=signer.issuer),
        policy.OIDCBuildSignerURI(signer.identity), policy.OIDCBuildConfigURI(signer.identity)]))


def _other_identity() -> policy.VerificationPolicy:
    return policy.Identity(identity="https://github.com/acme/shop/.github/workflows/ci.yml@refs/heads/main",
                           issuer=SIGNER.issuer)


def _other_issuer() -> policy.VerificationPolicy:
    return policy.Identity(identity=SIGNER.identity, issuer="https://gitlab.com")


@pytest.mark.parametrize(("make_policy", "message"), [
    (_other_identity, "Certificate's SANs do not match https://github.com/acme/shop/.github/workflows/ci.yml"),
    (_other_issuer, "Certificate's OIDCIssuer does not match"),
], ids=["another-identity", "another-issuer"])
def test_a_policy_for_someone_else_is_refused(verifier: Verifier, good_bundle: Bundle,
                                              make_policy: Callable[[], policy.VerificationPolicy],
                                              message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        verifier.verify_dsse(good_bundle, make_policy())


def test_a_tampered_statement_is_refused(verifier: Verifier, instance: SigstoreInstance,
                                         statement: dict[str, Any]) -> None:
    raw = instance.dsse_bundle(statement, tamper_payload=True)
    payload = base64.b64decode(json.loads(raw)["dsseEnvelope"]["payload"])
    assert json.loads(payload)["subject"][0]["digest"] != statement["subject"][0]["digest"]
    with pytest.raises(VerificationError, match="^DSSE: invalid signature$"):
        verifier.verify_dsse(Bundle.from_json(raw), IDENTITY)


@pytest.mark.parametrize("kind", ["dsse", "message"])
def test_a_certificate_expired_before_the_log_entry_is_refused(verifier: Verifier, instance: SigstoreInstance,
                                                               statement: dict[str, Any], kind: str) -> None:
    raw = instance.dsse_bundle(statement, expired=True) if kind == "dsse" \
        else instance.message_bundle(MESSAGE, expired=True)
    bundle = Bundle.from_json(raw)
    certificate = bundle.signing_certificate
    integrated = dt.datetime.fromtimestamp(int(json.loads(raw)["verificationMaterial"]["tlogEntries"][0]
                                               ["integratedTime"]), dt.timezone.utc)
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == dt.timedelta(minutes=10)
    assert certificate.not_valid_after_utc < integrated
    with pytest.raises(CertValidationError, match="cert is not valid at validation time"):
        if kind == "dsse":
            verifier.verify_dsse(bundle, IDENTITY)
        else:
            verifier.verify_artifact(MESSAGE, bundle, IDENTITY)


@pytest.mark.parametrize("kind", ["dsse", "message"])
def test_a_bundle_without_a_log_entry_is_refused_on_loading(instance: SigstoreInstance,
                                                            statement: dict[str, Any], kind: str) -> None:
    """sigstore refuses it in ``Bundle.from_json`` with ``InvalidBundle``, which is not a
    ``VerificationError``: both derive from ``sigstore.errors.Error``, the type to catch for either."""
    raw = instance.dsse_bundle(statement, log_entry=False) if kind == "dsse" \
        else instance.message_bundle(MESSAGE, log_entry=False)
    assert json.loads(raw)["verificationMaterial"]["tlogEntries"] == []
    with pytest.raises(InvalidBundle, match="^expected exactly one log entry in bundle$"):
        Bundle.from_json(raw)
    assert issubclass(InvalidBundle, Error) and not issubclass(InvalidBundle, VerificationError)


@pytest.mark.parametrize("kind", ["dsse", "message"])
def test_another_instances_bundle_is_refused(verifier: Verifier, other: SigstoreInstance,
                                             statement: dict[str, Any], kind: str) -> None:
    """Well-formed and logged, for the same identity, but under a CA the trusted root does not name."""
    if kind == "dsse":
        bundle = Bundle.from_json(other.dsse_bundle(statement))
        Verifier(trusted_root=TrustedRoot.from_file(str(other.trusted_root))).verify_dsse(bundle, IDENTITY)
        with pytest.raises(CertValidationError, match="candidates exhausted"):
            verifier.verify_dsse(bundle, IDENTITY)
    else:
        bundle = Bundle.from_json(other.message_bundle(MESSAGE))
        Verifier(trusted_root=TrustedRoot.from_file(str(other.trusted_root))).verify_artifact(MESSAGE, bundle,
                                                                                                IDENTITY)
        with pytest.raises(CertValidationError, match="candidates exhausted"):
            verifier.verify_artifact(MESSAGE, bundle, IDENTITY)


def test_log_entries_are_proven_inside_a_growing_tree(instance: SigstoreInstance,
                                                      statement: dict[str, Any]) -> None:
    """Each entry's inclusion proof has hashes (its leaf has neighbours on both sides) and a checkpoint over
    the same root; the tree grows with every bundle, as a shared log does."""
    entries = [json.loads(raw)["verificationMaterial"]["tlogEntries"][0]
               for raw in (instance.dsse_bundle(statement), instance.message_bundle(MESSAGE))]
    for entry in entries:
        proof = entry["inclusionProof"]
        index, size = int(proof["logIndex"]), int(proof["treeSize"])
        assert 0 < index < size - 1 and proof["hashes"]
        assert entry["logIndex"] == proof["logIndex"]
        note = proof["checkpoint"]["envelope"]
        assert note.split("\n")[1:3] == [str(size), proof["rootHash"]]
        assert "\n\n\u2014 rekor.local.example " in note
        assert entry["inclusionPromise"]["signedEntryTimestamp"]
    assert [entry["kindVersion"] for entry in entries] == [{"kind": "dsse", "version": "0.0.1"},
                                                           {"kind": "hashedrekord", "version": "0.0.1"}]
    assert int(entries[1]["inclusionProof"]["treeSize"]) > int(entries[0]["inclusionProof"]["treeSize"])


def test_log_bodies_are_rfc8785_canonical(instance: SigstoreInstance, statement: dict[str, Any]) -> None:
    """The harness writes canonical JSON without the rfc8785 package; held here to that package's output."""
    import rfc8785  # installed with sigstore
    for raw in (instance.dsse_bundle(statement), instance.message_bundle(MESSAGE)):
        body = base64.b64decode(json.loads(raw)["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])
        assert rfc8785.dumps(json.loads(body)) == body


def test_leaf_certificate_follows_fulcio(good_bundle: Bundle) -> None:
    """The profile sigstore and Fulcio share: empty subject with a critical SAN, code signing, an embedded SCT."""
    certificate = good_bundle.signing_certificate
    assert certificate.subject == x509.Name([])
    assert certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    scts = certificate.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    assert len(scts) == 1


def test_instances_write_where_they_are_told(tmp_path: Path) -> None:
    """``mint_instance`` makes the directory it is given."""
    made = mint_instance(tmp_path / "deep" / "er", "third")
    assert made.trusted_root.is_file() and made.name == "third"
