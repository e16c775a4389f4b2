"""Notary Project signing and verification: every key type and both envelopes round-trip, and every way a
signature can be wrong is refused with its own reason.

Chains are minted per test with ``cryptography`` (tests/harness/notary_pki.py), each spoiling one property.
The envelopes are also checked by hand, independently of the verifier (the JWS signing input recomputed, the
COSE Sig_structure encoded by the test's own CBOR encoder), so sign and verify cannot agree on a mistake.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from harness import notary_pki as pki
from samples.make_samples import Tagged, cbor_encode

from ci_oras.errors import UsageError
from ci_oras.formats import cbor
from ci_oras.formats.signature import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, NOTARY_ARTIFACT_TYPE
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.signing import policy as P
from ci_oras.signing.envelope import EnvelopeError, parse_envelope, payload_for, sign_envelope
from ci_oras.signing.keys import BY_NAME, load_private_key, verify_bytes

SUBJECT = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "ab" * 32, 1234)
OTHER = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "cd" * 32, 1234)
SCOPE = "registry.example/app"
NOW = pki.NOW
MEDIA = {"jws": JWS_MEDIA_TYPE, "cose": COSE_MEDIA_TYPE}


def envelope(chain: pki.Pki, fmt: str = "jws", subject: Descriptor = SUBJECT, *,
             signing_time: dt.datetime = NOW, expiry: dt.datetime | None = None) -> bytes:
    key = load_private_key(chain.key_pem(), "key.pem")
    ders = [chain.leaf.public_bytes(pki.serialization.Encoding.DER),
            chain.root.public_bytes(pki.serialization.Encoding.DER)]
    return sign_envelope(fmt, key, ders, payload_for(subject), signing_time=signing_time, expiry=expiry,
                         signing_agent="test")


def as_signature(data: bytes, fmt: str = "jws") -> P.Signature:
    layer = Descriptor(MEDIA[fmt], digest_bytes(data), len(data))
    return P.Signature(digest="sha256:" + "ee" * 32, artifact_type=NOTARY_ARTIFACT_TYPE, layer=layer, content=data)


def judge(policy: P.NotaryPolicy, data: bytes, fmt: str = "jws", subject: Descriptor = SUBJECT,
          at: dt.datetime = NOW) -> P.SignatureOutcome:
    """Judge at a fixed time (NOW unless told): a slow suite must not age short expiries past the check."""
    policy = P.NotaryPolicy(policy.document, policy.store, now=lambda: at)
    return policy.evaluate(as_signature(data, fmt), subject, SCOPE)


def check(outcome: P.SignatureOutcome, name: str) -> P.CheckResult:
    return next(result for result in outcome.checks if result.check == name)


@pytest.fixture(scope="module")
def good() -> pki.Pki:
    return pki.make_pki("ec256")


# --- round trips -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jws", "cose"])
@pytest.mark.parametrize("kind", pki.KEY_TYPES)
def test_round_trip_every_key_type(kind: str, fmt: str) -> None:
    chain = pki.make_pki(kind)
    data = envelope(chain, fmt, expiry=NOW + dt.timedelta(days=1))
    parsed = parse_envelope(MEDIA[fmt], data)
    assert parsed.algorithm.name == pki.ALGORITHM_OF[kind]
    outcome = judge(P.NotaryPolicy.signed_by(chain.root_pem, "root.pem"), data, fmt)
    assert outcome.result == "verified", outcome.reason
    assert outcome.counts and outcome.format == f"notary/{fmt}"
    assert outcome.signer == chain.leaf.subject.rfc4514_string()
    assert [c.result for c in outcome.checks] == ["passed"] * 4 + ["not-checked"]
    assert "revocation" in (check(outcome, "revocation").detail or "")


@pytest.mark.parametrize("kind", ["rsa2048", "ec384"])
def test_traditional_pem_keys_load(kind: str) -> None:
    chain = pki.make_pki(kind)
    assert b"BEGIN PRIVATE KEY" not in chain.key_pem(traditional=True)
    assert load_private_key(chain.key_pem(traditional=True), "k").private_numbers() == \
        load_private_key(chain.key_pem(), "k").private_numbers()


def test_jws_shape_and_independent_check(good: pki.Pki) -> None:
    data = envelope(good, "jws", expiry=NOW + dt.timedelta(hours=1))
    jws = json.loads(data)
    protected = json.loads(base64.urlsafe_b64decode(jws["protected"] + "=="))
    assert protected == {
        "alg": "ES256", "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "io.cncf.notary.expiry": (NOW + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    payload = json.loads(base64.urlsafe_b64decode(jws["payload"] + "=="))
    assert payload == {"targetArtifact": SUBJECT.to_dict()}
    assert [base64.b64decode(c) for c in jws["header"]["x5c"]][0] == good.leaf.public_bytes(
        pki.serialization.Encoding.DER)
    signature = base64.urlsafe_b64decode(jws["signature"] + "==")
    assert len(signature) == 64  # r || s, not DER
    signed = f"{jws['protected']}.{jws['payload']}".encode()
    assert verify_bytes(good.leaf.public_key(), BY_NAME["ES256"], signed, signature)


def test_cose_shape_and_independent_check(good: pki.Pki) -> None:
    data = envelope(good, "cose")
    item = cbor.decode(data)
    assert isinstance(item, cbor.Tag) and item.number == 18
    protected_raw, unprotected, payload, signature = item.value  # type: ignore[misc]
    protected = cbor.decode(protected_raw)
    assert protected == {1: -7, 2: ["io.cncf.notary.signingScheme"],
                         3: "application/vnd.cncf.notary.payload.v1+json",
                         "io.cncf.notary.signingScheme": "notary.x509",
                         "io.cncf.notary.signingTime": cbor.Tag(1, int(NOW.timestamp()))}
    assert unprotected[33][1] == good.root.public_bytes(pki.serialization.Encoding.DER)  # type: ignore[index]
    sig_structure = cbor_encode(["Signature1", protected_raw, b"", payload])  # the test's own encoder
    assert verify_bytes(good.leaf.public_key(), BY_NAME["ES256"], sig_structure, signature)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 23, 24, 255, 256, 65536, 2**32, 2**64 - 1, -1, -25, -(2**64), b"", "é",
                                   [1, [2]], {1: -7, "k": b"v"}, None, True, False])
def test_cbor_encoder_matches_reference(value: object) -> None:
    assert cbor.encode(value) == cbor_encode(value)  # type: ignore[arg-type]
    assert cbor.encode(cbor.Tag(1, 5)) == cbor_encode(Tagged(1, 5))


# --- refusals, each with its reason ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jws", "cose"])
def test_tampered_payload_fails_integrity(good: pki.Pki, fmt: str) -> None:
    data = envelope(good, fmt)
    forged_payload = payload_for(OTHER)
    if fmt == "jws":
        jws = json.loads(data)
        jws["payload"] = base64.urlsafe_b64encode(forged_payload).rstrip(b"=").decode()
        tampered = json.dumps(jws).encode()
    else:
        item = cbor.decode(data)
        assert isinstance(item, cbor.Tag) and isinstance(item.value, list)
        tampered = cbor.encode(cbor.Tag(18, [item.value[0], item.value[1], forged_payload, item.value[3]]))
    outcome = judge(P.NotaryPolicy.signed_by(good.root_pem, "root.pem"), tampered, fmt, subject=OTHER)
    assert (outcome.result, outcome.failed_check) == ("failed", "integrity")
    assert "does not match the signed content" in (outcome.reason or "")
    assert not outcome.counts


def test_wrong_subject(good: pki.Pki) -> None:
    outcome = judge(P.NotaryPolicy.signed_by(good.root_pem, "r"), envelope(good), subject=OTHER)
    assert outcome.failed_check == "integrity"
    assert f"made for {SUBJECT.digest}" in (outcome.reason or "") and OTHER.digest in (outcome.reason or "")


def test_expired_signature(good: pki.Pki) -> None:
    data = envelope(good, expiry=NOW + dt.timedelta(minutes=5))
    later = NOW + dt.timedelta(hours=1)
    outcome = judge(P.NotaryPolicy.signed_by(good.root_pem, "r"), data, at=later)
    assert outcome.failed_check == "expiry" and "expired at" in (outcome.reason or "")
    assert judge(P.NotaryPolicy.signed_by(good.root_pem, "r"), data).result == "verified"


def test_untrusted_root(good: pki.Pki) -> None:
    stranger = pki.make_root("Stranger Root", slot=1)[1]
    policy = P.NotaryPolicy.signed_by(stranger.public_bytes(pki.serialization.Encoding.PEM), "stranger.pem")
    outcome = judge(policy, envelope(good))
    assert outcome.failed_check == "authenticity"
    assert "does not lead to a certificate in trust store" in (outcome.reason or "")


def test_wrong_identity(good: pki.Pki, tmp_path: Path) -> None:
    policy = policy_files(tmp_path, good, identities=["x509.subject: C=US, ST=WA, O=Acme Rockets, CN=Someone Else"])
    outcome = judge(policy, envelope(good))
    assert outcome.failed_check == "authenticity" and "is not a trusted identity" in (outcome.reason or "")
    right = policy_files(tmp_path / "2", good, identities=["x509.subject: CN=Release Signer, O=Acme Rockets, "
                                                            "ST=WA, C=US"])
    assert judge(right, envelope(good)).result == "verified"


def test_certificate_not_valid_at_signing_time() -> None:
    chain = pki.make_pki("ec256", not_before=NOW - dt.timedelta(days=1))
    data = envelope(chain, signing_time=NOW - dt.timedelta(days=2))
    outcome = judge(P.NotaryPolicy.signed_by(chain.root_pem, "r"), data)
    assert outcome.failed_check == "authenticity"
    assert "is not valid at signing time" in (outcome.reason or "")


def test_certificate_expired_now_fails_authentic_timestamp_in_strict_only() -> None:
    chain = pki.make_pki("ec256", not_after=NOW + dt.timedelta(days=1))
    data = envelope(chain)
    later = NOW + dt.timedelta(days=2)
    outcome = judge(P.NotaryPolicy.signed_by(chain.root_pem, "r"), data, at=later)
    assert outcome.failed_check == "authenticTimestamp" and "not valid now" in (outcome.reason or "")


@pytest.mark.parametrize(("spoil", "reason"), [
    ({"digital_signature": False}, "lacks the digitalSignature key usage"),
    ({"ekus": (ExtendedKeyUsageOID.SERVER_AUTH,)}, "serverAuth extended key usage"),
    ({"ekus": (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,)}, "without codeSigning"),
])
def test_leaf_without_code_signing_usage(spoil: dict[str, object], reason: str) -> None:
    chain = pki.make_pki("ec256", **spoil)  # type: ignore[arg-type]
    outcome = judge(P.NotaryPolicy.signed_by(chain.root_pem, "r"), envelope(chain))
    assert outcome.failed_check == "authenticity" and reason in (outcome.reason or "")


def test_no_eku_is_allowed() -> None:
    chain = pki.make_pki("ec256", ekus=None)
    assert judge(P.NotaryPolicy.signed_by(chain.root_pem, "r"), envelope(chain)).result == "verified"


def test_garbage_envelope_is_an_integrity_failure(good: pki.Pki) -> None:
    outcome = judge(P.NotaryPolicy.signed_by(good.root_pem, "r"), b'{"protected": "!!"}')
    assert outcome.failed_check == "integrity" and "malformed signature envelope" in (outcome.reason or "")


def test_unknown_critical_header_is_refused(good: pki.Pki) -> None:
    data = json.loads(envelope(good))
    protected = json.loads(base64.urlsafe_b64decode(data["protected"] + "=="))
    protected["crit"].append("acme.mustUnderstand")
    protected["acme.mustUnderstand"] = 1
    data["protected"] = base64.urlsafe_b64encode(json.dumps(protected).encode()).rstrip(b"=").decode()
    with pytest.raises(EnvelopeError, match="does not understand"):
        parse_envelope(JWS_MEDIA_TYPE, json.dumps(data).encode())


# --- levels ------------------------------------------------------------------------------------------------


def policy_files(tmp_path: Path, chain: pki.Pki, *, level: str = "strict", identities: list[str] | None = None,
                 override: dict[str, str] | None = None) -> P.NotaryPolicy:
    tmp_path.mkdir(parents=True, exist_ok=True)
    chain.write_store(tmp_path / "store")
    verification: dict[str, object] = {"level": level}
    if override:
        verification["override"] = override
    statement: dict[str, object] = {"name": "app", "registryScopes": [SCOPE], "signatureVerification": verification}
    if level != "skip":
        statement.update(trustStores=["ca:acme"], trustedIdentities=identities or ["*"])
    (tmp_path / "trustpolicy.json").write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    return P.NotaryPolicy.from_files(tmp_path / "trustpolicy.json", tmp_path / "store")


def test_permissive_logs_expiry(good: pki.Pki, tmp_path: Path) -> None:
    data = envelope(good, expiry=NOW + dt.timedelta(minutes=1))
    outcome = judge(policy_files(tmp_path, good, level="permissive"), data, at=NOW + dt.timedelta(hours=1))
    assert outcome.result == "verified" and check(outcome, "expiry").result == "logged"
    assert check(outcome, "revocation").result == "not-checked"


def test_audit_logs_untrusted(good: pki.Pki, tmp_path: Path) -> None:
    other = pki.make_pki("ec256", root=pki.make_root("Other Root", slot=2))
    outcome = judge(policy_files(tmp_path, good, level="audit"), envelope(other))
    assert outcome.result == "verified" and check(outcome, "authenticity").result == "logged"


def test_audit_still_enforces_integrity(good: pki.Pki, tmp_path: Path) -> None:
    outcome = judge(policy_files(tmp_path, good, level="audit"), envelope(good), subject=OTHER)
    assert outcome.failed_check == "integrity"


def test_override_can_enforce_or_skip(good: pki.Pki, tmp_path: Path) -> None:
    data = envelope(good, expiry=NOW + dt.timedelta(minutes=1))
    late = NOW + dt.timedelta(hours=1)
    enforced = judge(policy_files(tmp_path / "a", good, level="permissive", override={"expiry": "enforce"}), data,
                     at=late)
    assert enforced.failed_check == "expiry"
    skipped = judge(policy_files(tmp_path / "b", good, override={"expiry": "skip", "revocation": "skip"}), data,
                    at=late)
    assert skipped.result == "verified"
    assert (check(skipped, "expiry").result, check(skipped, "revocation").result) == ("skipped", "skipped")


def test_skip_level_accepts_without_looking(good: pki.Pki, tmp_path: Path) -> None:
    outcome = judge(policy_files(tmp_path, good, level="skip"), b"not an envelope")
    assert outcome.result == "skipped" and outcome.counts


def test_outcome_document(good: pki.Pki) -> None:
    doc = judge(P.NotaryPolicy.signed_by(good.root_pem, "r"), envelope(good), subject=OTHER).document()
    assert doc["result"] == "failed" and doc["failedCheck"] == "integrity" and doc["level"] == "strict"
    assert doc["signingTime"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ") and doc["format"] == "notary/jws"
    assert {"check": "integrity", "result": "failed", "detail": doc["reason"]} in doc["checks"]


# --- trust policy document and store ----------------------------------------------------------------------


def statement(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "p", "registryScopes": [SCOPE], "signatureVerification": {"level": "strict"},
                               "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


@pytest.mark.parametrize(("document", "message"), [
    ({"version": "2.0", "trustPolicies": [statement()]}, "version"),
    ({"version": "1.0", "trustPolicies": []}, "non-empty"),
    ({"version": "1.0", "trustPolicies": [statement(), statement()]}, "names must be unique"),
    ({"version": "1.0", "trustPolicies": [statement(), statement(name="q")]}, "one policy only"),
    ({"version": "1.0", "trustPolicies": [statement(registryScopes=["*", SCOPE])]}, "wildcard scope"),
    ({"version": "1.0", "trustPolicies": [statement(registryScopes=[SCOPE + ":v1"])]}, "no tag"),
    ({"version": "1.0", "trustPolicies": [statement(signatureVerification={"level": "lenient"})]}, "level"),
    ({"version": "1.0", "trustPolicies": [statement(signatureVerification={
        "level": "strict", "override": {"integrity": "log"}})]}, "integrity cannot be overridden"),
    ({"version": "1.0", "trustPolicies": [statement(trustStores=["root:acme"])]}, "TYPE:NAME"),
    ({"version": "1.0", "trustPolicies": [statement(trustStores=None)]}, "no trustStores"),
    ({"version": "1.0", "trustPolicies": [statement(trustedIdentities=["x509.subject: CN=x"])]},
     "C, ST and O are required"),
    ({"version": "1.0", "trustPolicies": [statement(trustedIdentities=["CN=x"])]}, "does not start with"),
    ({"version": "1.0", "trustPolicies": [statement(signatureVerification={"level": "skip"})]}, "level skip"),
    ({"version": "1.0", "trustPolicies": [statement(trustStore=["ca:x"])]}, "unknown field 'trustStore'"),
])
def test_invalid_trust_policies(document: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match="invalid trust policy") as raised:
        P.parse_trust_policy(json.dumps(document).encode(), "trustpolicy.json")
    assert message in raised.value.message
    assert raised.value.exit_code == 2


def test_scope_selection_prefers_exact_then_wildcard() -> None:
    document = P.parse_trust_policy(json.dumps({"version": "1.0", "trustPolicies": [
        statement(name="global", registryScopes=["*"]), statement(name="app")]}).encode(), "tp")
    assert document.select(SCOPE).name == "app"
    assert document.select("registry.example/other").name == "global"
    only = P.parse_trust_policy(json.dumps({"version": "1.0", "trustPolicies": [statement()]}).encode(), "tp")
    with pytest.raises(UsageError, match="no trust policy applies to registry.example/other"):
        only.select("registry.example/other")


def test_missing_trust_store_is_a_usage_error(good: pki.Pki, tmp_path: Path) -> None:
    policy = policy_files(tmp_path, good)
    missing = P.NotaryPolicy(policy.document, P.DirectoryTrustStore(tmp_path / "nowhere"))
    with pytest.raises(UsageError, match="trust store ca:acme not found"):
        judge(missing, envelope(good))


def test_der_and_bundle_files_in_a_store(good: pki.Pki, tmp_path: Path) -> None:
    store = tmp_path / "x509" / "ca" / "acme"
    store.mkdir(parents=True)
    (store / "root.der").write_bytes(good.root.public_bytes(pki.serialization.Encoding.DER))
    assert P.DirectoryTrustStore(tmp_path).certificates("ca", "acme") == (good.root,)


# --- envelopes notation made (notation-go's test data: internal/testdata, verifier/testdata) -----------------

NOTATION_SAMPLES = Path(__file__).parent.parent / "samples" / "notation"


@pytest.mark.parametrize("name", ["jws_signature.sig", "withoutTimestamp.sig"])
def test_envelopes_made_by_notation_verify(name: str) -> None:
    data = (NOTATION_SAMPLES / name).read_bytes()
    parsed = parse_envelope(JWS_MEDIA_TYPE, data)
    assert parsed.algorithm.name == "PS256" and parsed.signing_agent == "Notation/1.0.0"
    assert parsed.signing_time.utcoffset() == dt.timedelta(0)  # "+08:00" in the header, normalised
    target = json.loads(parsed.payload)["targetArtifact"]
    subject = Descriptor(target["mediaType"], target["digest"], target["size"])
    leaf = pki.x509.load_der_x509_certificate(parsed.chain[0])  # a self-signed code-signing leaf
    trusted = P.NotaryPolicy.signed_by(leaf.public_bytes(pki.serialization.Encoding.PEM), "alpine.pem")
    outcome = trusted.evaluate(as_signature(data), subject, SCOPE)
    assert outcome.result == "verified", outcome.reason
    assert outcome.signer == "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US"
    wrong = trusted.evaluate(as_signature(data), OTHER, SCOPE)
    assert wrong.failed_check == "integrity"
    stranger = P.NotaryPolicy.signed_by(pki.make_root("Stranger", slot=4)[1].public_bytes(
        pki.serialization.Encoding.PEM), "s")
    assert stranger.evaluate(as_signature(data), subject, SCOPE).failed_check == "authenticity"
    envelope = json.loads(data)
    envelope["signature"] = ("A" if envelope["signature"][0] != "A" else "B") + envelope["signature"][1:]
    flipped = json.dumps(envelope).encode()
    assert trusted.evaluate(as_signature(flipped), subject, SCOPE).failed_check == "integrity"


def test_notation_identity_spelling_matches_its_own_certificate() -> None:
    data = (NOTATION_SAMPLES / "jws_signature.sig").read_bytes()
    parsed = parse_envelope(JWS_MEDIA_TYPE, data)
    leaf = pki.x509.load_der_x509_certificate(parsed.chain[0])
    identity = P.parse_identity("x509.subject: C=US, ST=WA, L=Seattle, O=Notary, CN=alpine", lambda m: UsageError(m))
    assert identity.matches(leaf.subject)
    assert not P.parse_identity("x509.subject: C=US, ST=WA, O=Notary, CN=debian",
                                lambda m: UsageError(m)).matches(leaf.subject)


@pytest.mark.parametrize(("text", "expected"), [
    ("2022-08-24T17:18:15.491958356Z", dt.datetime(2022, 8, 24, 17, 18, 15, 491958, dt.timezone.utc)),
    ("2023-03-14T16:10:02+08:00", dt.datetime(2023, 3, 14, 8, 10, 2, tzinfo=dt.timezone.utc)),
    ("2024-01-01t00:00:00z", dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)),
    ("2024-01-01T00:00:00", None), ("yesterday", None), (1714644930, None),
])
def test_jws_times_as_go_writes_them(good: pki.Pki, text: object, expected: dt.datetime | None) -> None:
    data = json.loads(envelope(good))
    protected = json.loads(base64.urlsafe_b64decode(data["protected"] + "=="))
    protected["io.cncf.notary.signingTime"] = text
    data["protected"] = base64.urlsafe_b64encode(json.dumps(protected).encode()).rstrip(b"=").decode()
    if expected is None:
        with pytest.raises(EnvelopeError, match="not an RFC 3339 time"):
            parse_envelope(JWS_MEDIA_TYPE, json.dumps(data).encode())
    else:
        assert parse_envelope(JWS_MEDIA_TYPE, json.dumps(data).encode()).signing_time == expected


def test_keys_notary_signatures_cannot_use_are_refused_without_echoing_them() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    encrypted = pki.key("ec256").private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.BestAvailableEncryption(b"secret"))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    edwards = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for pem, message in ((encrypted, "is encrypted"), (small, "an RSA 1024-bit key"),
                         (edwards, "Ed25519PrivateKey"), (b"-----BEGIN PRIVATE KEY-----\nAAAA\n", "readable")):
        with pytest.raises(UsageError, match=message) as refused:
            load_private_key(pem, "$SIGNING_KEY")
        assert "$SIGNING_KEY" in refused.value.message and "AAAA" not in str(refused.value)


def _hand_made_jws(chain: pki.Pki, protected: dict[str, object], header: dict[str, object] | None = None) -> bytes:
    """A JWS built here, not by sign_envelope, for headers ci-oras never writes itself."""
    from ci_oras.signing.keys import sign_bytes

    key = load_private_key(chain.key_pem(), "k")
    protected_b64 = base64.urlsafe_b64encode(json.dumps(protected).encode()).rstrip(b"=").decode()
    payload_b64 = base64.urlsafe_b64encode(payload_for(SUBJECT)).rstrip(b"=").decode()
    signature = sign_bytes(key, BY_NAME["ES256"], f"{protected_b64}.{payload_b64}".encode())
    x5c = [base64.b64encode(c.public_bytes(pki.serialization.Encoding.DER)).decode() for c in (chain.leaf, chain.root)]
    return json.dumps({"payload": payload_b64, "protected": protected_b64, "header": {"x5c": x5c, **(header or {})},
                       "signature": base64.urlsafe_b64encode(signature).rstrip(b"=").decode()}).encode()


X509_HEADERS: dict[str, object] = {
    "alg": "ES256", "cty": "application/vnd.cncf.notary.payload.v1+json", "crit": ["io.cncf.notary.signingScheme"],
    "io.cncf.notary.signingScheme": "notary.x509", "io.cncf.notary.signingTime": NOW.isoformat()}


def test_a_timestamp_countersignature_is_reported_not_checked(good: pki.Pki) -> None:
    data = _hand_made_jws(good, X509_HEADERS, {"io.cncf.notary.timestampSignature": "MIIB"})
    outcome = judge(P.NotaryPolicy.signed_by(good.root_pem, "r"), data)
    assert outcome.result == "verified"
    timestamp = check(outcome, "authenticTimestamp")
    assert timestamp.result == "passed" and "present but not checked" in (timestamp.detail or "")


def test_signing_authority_scheme_uses_signing_authority_stores(good: pki.Pki, tmp_path: Path) -> None:
    headers = {**X509_HEADERS, "io.cncf.notary.signingScheme": "notary.x509.signingAuthority",
               "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.authenticSigningTime"]}
    headers["io.cncf.notary.authenticSigningTime"] = headers.pop("io.cncf.notary.signingTime")
    data = _hand_made_jws(good, headers)
    with_ca_only = judge(policy_files(tmp_path / "ca", good), data)
    assert with_ca_only.failed_check == "authenticity"
    assert "no signingAuthority trust store" in (with_ca_only.reason or "")
    good.write_store(tmp_path / "sa" / "store", store_type="signingAuthority")
    (tmp_path / "sa" / "trustpolicy.json").write_text(json.dumps({"version": "1.0", "trustPolicies": [{
        "name": "sa", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
        "trustStores": ["signingAuthority:acme"], "trustedIdentities": ["*"]}]}))
    policy = P.NotaryPolicy.from_files(tmp_path / "sa" / "trustpolicy.json", tmp_path / "sa" / "store")
    outcome = judge(policy, data)
    assert outcome.result == "verified", outcome.reason
    assert "authentic" in (check(outcome, "authenticTimestamp").detail or "")


def test_unreadable_or_non_json_policy_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read trust policy"):
        P.NotaryPolicy.from_files(tmp_path / "missing.json")
    (tmp_path / "trustpolicy.json").write_text("{not json")
    with pytest.raises(UsageError, match="is not a JSON trust policy document"):
        P.NotaryPolicy.from_files(tmp_path / "trustpolicy.json")


def test_policies_dispatch_by_artifact_type_so_another_kind_can_join(good: pki.Pki) -> None:
    """The shape a Sigstore bundle policy will plug into: one policy per kind, chosen by artifact type."""

    class BundlePolicy:
        def handles(self, artifact_type: str) -> bool:
            return artifact_type.startswith("application/vnd.dev.sigstore.bundle")

        def pick_layer(self, layers: object) -> Descriptor | None:
            return None

        def evaluate(self, signature: P.Signature, subject: Descriptor, scope: str) -> P.SignatureOutcome:
            return P.SignatureOutcome(signature.digest, signature.artifact_type, "failed", "integrity", "unchecked")

    notary = P.NotaryPolicy.signed_by(good.root_pem, "r")
    bundles = BundlePolicy()
    policies = P.Policies((notary, bundles))
    assert policies.for_type(NOTARY_ARTIFACT_TYPE) is notary
    assert policies.for_type("application/vnd.dev.sigstore.bundle.v0.3+json") is bundles
    assert policies.for_type("application/spdx+json") is None


def test_a_trust_store_is_read_once(good: pki.Pki, tmp_path: Path) -> None:
    policy = policy_files(tmp_path, good)
    assert judge(policy, envelope(good)).result == "verified"
    (tmp_path / "store" / "x509" / "ca" / "acme" / "root.pem").unlink()  # a second read would now fail
    assert judge(policy, envelope(good, "cose"), "cose").result == "verified"
