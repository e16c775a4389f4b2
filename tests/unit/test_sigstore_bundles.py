"""Sigstore bundles judged by ``ci_oras.signing.bundles``: sigstore-python verifies them (real verification,
against the local instance the harness mints), the identity policy is cosign's and ``gh attestation verify``'s,
and every refusal names the check that failed."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from harness.sigstore_instance import SigstoreInstance, Signer, mint_instance
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_oras.errors import UsageError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.requirements import ANNOTATION_PREDICATE_TYPE
from ci_oras.signing.bundles import GITHUB_ACTIONS_ISSUER, IdentityPolicy, SigstorePolicy
from ci_oras.signing.policy import Signature, SignatureOutcome

BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
SUBJECT = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + hashlib.sha256(MANIFEST).hexdigest(),
                     len(MANIFEST))
OTHER_IMAGE = "sha256:" + "ab" * 32
PROVENANCE = "https://slsa.dev/provenance/v1"
WORKFLOW = "https://github.com/acme/shop/.github/workflows/release.yml@refs/heads/main"
GITLAB = Signer(identity="https://gitlab.com/acme/shop//.gitlab-ci.yml@refs/heads/main",
                issuer="https://gitlab.com", github_repository=None)


@pytest.fixture(scope="module")
def instance(sigstore_instances: tuple[SigstoreInstance, SigstoreInstance]) -> SigstoreInstance:
    return sigstore_instances[0]


@pytest.fixture(scope="module")
def other(sigstore_instances: tuple[SigstoreInstance, SigstoreInstance]) -> SigstoreInstance:
    """A second, untrusted deployment: well-formed bundles under keys the first root does not name."""
    return sigstore_instances[1]


def policy(instance: SigstoreInstance | None, **flags: str) -> SigstorePolicy:
    """The policy the flags describe, on ``instance``'s trusted root (None: the shipped public-good one)."""
    identity = IdentityPolicy.from_flags(**{key: flags.get(key) for key in (
        "identity", "identity_regexp", "issuer", "issuer_regexp", "github_repo", "signer_workflow")})
    assert identity is not None
    return SigstorePolicy(identity, instance.trusted_root if instance is not None else None)


GITHUB = {"identity": WORKFLOW, "issuer": GITHUB_ACTIONS_ISSUER}


def judge(judge_with: SigstorePolicy, content: bytes, subject: Descriptor = SUBJECT,
          annotations: dict[str, str] | None = None) -> SignatureOutcome:
    layer = Descriptor(BUNDLE_TYPE, "sha256:" + hashlib.sha256(content).hexdigest(), len(content))
    signature = Signature(digest="sha256:" + "cd" * 32, artifact_type=BUNDLE_TYPE, layer=layer, content=content,
                          annotations=annotations or {})
    return judge_with.evaluate(signature, subject, "registry.example/shop/api")


def provenance(instance: SigstoreInstance, digest: str = SUBJECT.digest, **options: Any) -> bytes:
    signer = options.pop("signer", Signer())
    return instance.dsse_bundle(instance.statement(digest, PROVENANCE), signer, **options)


def test_a_good_attestation_verifies_and_says_who_signed_it(instance: SigstoreInstance) -> None:
    outcome = judge(policy(instance, **GITHUB), provenance(instance))
    assert outcome.result == "verified" and outcome.counts, outcome
    assert (outcome.signer, outcome.issuer, outcome.predicate_type) == (WORKFLOW, GITHUB_ACTIONS_ISSUER, PROVENANCE)
    assert outcome.format == "sigstore/dsse" and isinstance(outcome.log_index, int)
    assert outcome.claims == {ANNOTATION_PREDICATE_TYPE: PROVENANCE}, "the verified statement decides the kind"
    document = outcome.document()
    assert {check["check"] for check in document["checks"]} == {"chain", "tlog", "signature", "identity", "subject"}
    assert document["logIndex"] == outcome.log_index and document["predicateType"] == PROVENANCE


def test_a_message_signature_over_the_manifest_verifies(instance: SigstoreInstance) -> None:
    outcome = judge(policy(instance, **GITHUB), instance.message_bundle(MANIFEST))
    assert outcome.result == "verified" and outcome.format == "sigstore/message-signature"
    assert outcome.claims == {} and outcome.predicate_type is None, "a message signature has no predicate"
    moved = judge(policy(instance, **GITHUB), instance.message_bundle(b"another manifest"))
    assert (moved.result, moved.failed_check) == ("failed", "subject"), moved


@pytest.mark.parametrize(("flags", "passes"), [
    ({"identity_regexp": r"^https://github\.com/acme/", "issuer": GITHUB_ACTIONS_ISSUER}, True),
    ({"identity": WORKFLOW, "issuer_regexp": r"githubusercontent\.com$"}, True),
    ({"github_repo": "acme/shop"}, True),
    ({"github_repo": "ACME/Shop"}, True),  # GitHub names are case-insensitive
    ({"signer_workflow": "acme/shop/.github/workflows/release.yml"}, True),
    ({"signer_workflow": "acme/shop/.github/workflows/release.yml@refs/heads/main"}, True),
    ({"signer_workflow": "github.com/acme/shop/.github/workflows/release.yml"}, True),
    ({"github_repo": "acme/shop", "signer_workflow": "acme/shop/.github/workflows/release.yml@refs/tags/v1"}, False),
    ({"signer_workflow": "acme/shop/.github/workflows/ci.yml"}, False),
    ({"github_repo": "acme/other"}, False),
    ({"identity": WORKFLOW.replace("release", "ci"), "issuer": GITHUB_ACTIONS_ISSUER}, False),
    ({"identity_regexp": r"^https://gitlab\.com/", "issuer": GITHUB_ACTIONS_ISSUER}, False),
    ({"identity": WORKFLOW, "issuer": "https://gitlab.com"}, False),
    ({"identity": WORKFLOW, "issuer_regexp": "^https://gitlab"}, False),
])
def test_the_identity_policy(instance: SigstoreInstance, flags: dict[str, str], passes: bool) -> None:
    outcome = judge(policy(instance, **flags), provenance(instance))
    assert outcome.counts is passes, outcome
    if not passes:
        assert outcome.failed_check == "identity" and outcome.reason


def test_a_gitlab_keyless_signature_is_judged_by_its_issuer(instance: SigstoreInstance) -> None:
    statement = instance.statement(SUBJECT.digest, "https://sigstore.dev/cosign/sign/v1")
    bundle = instance.dsse_bundle(statement, GITLAB)
    assert judge(policy(instance, identity=GITLAB.identity, issuer="https://gitlab.com"), bundle).counts
    refused = judge(policy(instance, github_repo="acme/shop"), bundle)
    assert (refused.failed_check, refused.reason) == ("identity", f"issued for https://gitlab.com, not "
                                                                  f"{GITHUB_ACTIONS_ISSUER}")


@pytest.mark.parametrize(("case", "check"), [
    ("tampered statement", "signature"),
    ("subject of another image", "subject"),
    ("expired certificate", "chain"),
    ("missing log entry", "tlog"),
    ("another instance", "chain"),
    ("not JSON", "bundle"),
    ("no bundle layer", "bundle"),
    ("neither envelope nor signature", "bundle"),
])
def test_each_spoiled_bundle_fails_the_check_it_breaks(instance: SigstoreInstance, other: SigstoreInstance,
                                                       case: str, check: str) -> None:
    content = {
        "tampered statement": lambda: provenance(instance, tamper_payload=True),
        "subject of another image": lambda: provenance(instance, OTHER_IMAGE),
        "expired certificate": lambda: provenance(instance, expired=True),
        "missing log entry": lambda: provenance(instance, log_entry=False),
        "another instance": lambda: provenance(other),
        "not JSON": lambda: b"\x00not json",
        "no bundle layer": lambda: b"",
        "neither envelope nor signature": lambda: json.dumps({"mediaType": BUNDLE_TYPE}).encode(),
    }[case]()
    outcome = judge(policy(instance, **GITHUB), content)
    assert (outcome.result, outcome.failed_check) == ("failed", check), outcome
    assert outcome.reason and not outcome.counts and outcome.claims is None
    assert outcome.document()["failedCheck"] == check


def test_another_instance_verifies_against_its_own_trusted_root(other: SigstoreInstance) -> None:
    assert judge(policy(other, **GITHUB), provenance(other)).counts


def test_a_statement_that_is_not_in_toto_is_refused(instance: SigstoreInstance) -> None:
    statement = instance.statement(SUBJECT.digest, PROVENANCE)
    del statement["subject"]
    outcome = judge(policy(instance, **GITHUB), instance.dsse_bundle(statement))
    assert (outcome.failed_check, outcome.result) == ("subject", "failed")
    assert "malformed" in (outcome.reason or "")


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=3), max_leaves=12),
       st.sampled_from(["dsseEnvelope", "messageSignature", "verificationMaterial", "mediaType"]))
def test_any_shape_of_bundle_is_a_refusal_never_a_crash(tmp_path_factory: pytest.TempPathFactory, value: object,
                                                        key: str) -> None:
    judge_with = _shared_policy(tmp_path_factory)
    for document in (value, {key: value}, {"mediaType": BUNDLE_TYPE, key: value, "dsseEnvelope": value}):
        outcome = judge(judge_with, json.dumps(document).encode())
        assert outcome.result == "failed" and outcome.failed_check in {"bundle", "chain", "tlog", "signature"}


_SHARED: dict[str, SigstorePolicy] = {}


def _shared_policy(tmp_path_factory: pytest.TempPathFactory) -> SigstorePolicy:
    if "policy" not in _SHARED:
        _SHARED["policy"] = policy(mint_instance(tmp_path_factory.mktemp("shapes") / "local"), **GITHUB)
    return _SHARED["policy"]


@pytest.mark.parametrize(("flags", "message"), [
    ({"identity": WORKFLOW}, "needs both who signed and who vouched"),
    ({"issuer": GITHUB_ACTIONS_ISSUER}, "needs both who signed and who vouched"),
    ({"identity": WORKFLOW, "identity_regexp": ".", "issuer": "x"}, "mutually exclusive"),
    ({"identity": WORKFLOW, "issuer": "x", "issuer_regexp": "."}, "mutually exclusive"),
    ({"identity_regexp": "(", "issuer": "x"}, "is not a regular expression"),
    ({"github_repo": "acme"}, "is not OWNER/REPO"),
    ({"signer_workflow": "acme/shop"}, "is not OWNER/REPO/PATH[@REF]"),
    ({"github_repo": "acme/shop", "issuer": "https://gitlab.com"}, "check GitHub Actions' issuer"),
    ({"identity": " ", "issuer": "x"}, "is empty"),
])
def test_flags_that_cannot_be_met_are_refused_before_anything_runs(flags: dict[str, str], message: str) -> None:
    arguments = {key: flags.get(key) for key in ("identity", "identity_regexp", "issuer", "issuer_regexp",
                                                 "github_repo", "signer_workflow")}
    with pytest.raises(UsageError, match=re.escape(message)):
        IdentityPolicy.from_flags(**arguments)


def test_no_flag_is_no_policy() -> None:
    assert IdentityPolicy.from_flags(identity=None, identity_regexp=None, issuer=None, issuer_regexp=None,
                                     github_repo=None, signer_workflow=None) is None


def test_a_trusted_root_that_is_not_one_is_a_usage_error(tmp_path: Path) -> None:
    identity = IdentityPolicy.from_flags(identity=None, identity_regexp=None, issuer=None, issuer_regexp=None,
                                         github_repo="acme/shop", signer_workflow=None)
    assert identity is not None
    for content in (b"{}", b"not json", json.dumps({"mediaType": "x"}).encode()):
        path = tmp_path / "trusted_root.json"
        path.write_bytes(content)
        with pytest.raises(UsageError, match="is not a Sigstore trusted root"):
            SigstorePolicy(identity, path).verifier()
    with pytest.raises(UsageError, match="cannot read trusted root"):
        SigstorePolicy(identity, tmp_path / "missing.json").verifier()


PUBLIC_GOOD = Path(__file__).parent.parent / "samples" / "sigstore" / "public-good-message-signature.sigstore.json"
#: The file that bundle signs (its SHA-256, as the bundle's message digest names it), by a GitHub login.
PUBLIC_GOOD_SUBJECT = Descriptor("text/plain", "sha256:a7ddbbe3faad1e9646f07d92311ba950d10c2c4441e58ea9935da8dd701794da",
                                 5)
PUBLIC_GOOD_SIGNER = {"identity": "aryadeeptade@gmail.com", "issuer": "https://github.com/login/oauth"}


def test_a_public_good_bundle_verifies_offline_against_the_shipped_root(capfd: pytest.CaptureFixture[str]) -> None:
    """A bundle from the public-good instance (one of sigstore-python's published test vectors: a message
    signature over a file, logged in Rekor, with an RFC 3161 timestamp) verifies through the same path as an
    image's, against the trusted root the installed sigstore-python ships, without a network request and
    without a word on stderr."""
    content = PUBLIC_GOOD.read_bytes()
    judge_with = policy(None, **PUBLIC_GOOD_SIGNER)
    outcome = judge(judge_with, content, PUBLIC_GOOD_SUBJECT)
    assert (outcome.result, outcome.signer, outcome.issuer) == ("verified", *PUBLIC_GOOD_SIGNER.values()), outcome
    assert outcome.log_index == 2574120827
    assert judge(judge_with, content, SUBJECT).failed_check == "subject", "another file's digest"
    stranger = policy(None, identity="someone@example.com", issuer=PUBLIC_GOOD_SIGNER["issuer"])
    refused = judge(stranger, content, PUBLIC_GOOD_SUBJECT)
    assert refused.failed_check == "identity" and "aryadeeptade@gmail.com" in (refused.reason or "")
    assert capfd.readouterr().err == ""

