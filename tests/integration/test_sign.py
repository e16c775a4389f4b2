"""The ``sign`` step against real stores: sign, then find the signature through the referrers listing and
verify it, on an OCI image layout and on docker-registry (tag-schema referrers).

What is checked is what ``notation verify`` reads: the referrer manifest (artifact type, empty config, one
envelope layer without a title, the subject, the thumbprint and created annotations) and the envelope itself,
judged by the same policy code ``verify`` uses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from harness import notary_pki as pki
from harness.cli import clean_env, run_cli
from harness.oci import NOTARY, push_image
from harness.registry import RunningRegistry

from ci_oras.errors import UsageError
from ci_oras.graph.signatures import examine_signature
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.reference import parse_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.schemas import load_schema
from ci_oras.signing.policy import NotaryPolicy, Policies
from ci_oras.steps.common import resolve_subject
from ci_oras.steps.sign import SignOptions, sign
from ci_oras.store.protocols import Target

THUMBPRINT = "io.cncf.notary.x509chain.thumbprint#S256"
CREATED = "2024-05-02T10:15:30Z"


@pytest.fixture(scope="module")
def chain() -> pki.Pki:
    return pki.make_pki("ec384")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    home = tmp_path / "home"
    home.mkdir()
    runtime = Runtime(TransportOptions(), LoginFlags(), {"HOME": str(home), "PATH": os.environ.get("PATH", "")})
    yield runtime
    runtime.close()


def _sign(target: Target, repository: str, reference: str, chain: pki.Pki, fmt: str) -> dict[str, object]:
    subject = resolve_subject(target, reference, reference)
    result = sign(target, repository, subject, chain.key_pem(traditional=True), chain.chain_pem,
                  SignOptions(signature_format=fmt, expiry=dt.timedelta(days=7), created=CREATED))
    document = result.document()
    jsonschema.validate(document, load_schema("sign"))
    return document


def _verify_all(target: Target, reference: str, policy: NotaryPolicy, scope: str) -> list[dict[str, object]]:
    """What verify does with a trust policy: list the subject's signatures, fetch each, judge each."""
    subject = resolve_subject(target, reference, reference)
    outcomes = []
    for listed in target.referrers(subject, NOTARY):
        referrer = target.fetch_manifest(listed.digest)
        outcome = examine_signature(target, referrer, subject, Policies((policy,)), scope)
        assert outcome is not None
        outcomes.append(outcome.document())
    return outcomes


def _check_manifest(target: Target, document: dict[str, object], chain: pki.Pki, media_type: str) -> None:
    manifest = target.fetch_manifest(str(document["digest"]))
    assert manifest.artifact_type == NOTARY and manifest.config == EMPTY_DESCRIPTOR
    assert [layer.media_type for layer in manifest.layers] == [media_type]
    assert manifest.layers[0].annotations == {}  # notation writes no title on the envelope
    ders = [cert.public_bytes(serialization.Encoding.DER) for cert in (chain.leaf, chain.root)]
    assert manifest.annotations == {
        THUMBPRINT: json.dumps([hashlib.sha256(der).hexdigest() for der in ders], separators=(",", ":")),
        "org.opencontainers.image.created": CREATED,
    }
    with closing(target.fetch(manifest.layers[0])) as chunks:
        assert len(b"".join(chunks)) == manifest.layers[0].size


def test_sign_then_verify_on_an_oci_layout(tmp_path: Path, chain: pki.Pki, runtime: Runtime) -> None:
    (tmp_path / "app.txt").write_text("the app\n")
    (tmp_path / "report.txt").write_text("an SBOM stand-in\n")
    env = clean_env(tmp_path)
    layout = f"oci:{tmp_path / 'layout'}"
    assert run_cli("push", f"{layout}:v1", "app.txt", env=env, cwd=tmp_path).returncode == 0
    sbom = run_cli("attach", f"{layout}:v1", "report.txt", "--artifact-type", "application/spdx+json",
                   "-O", "json", env=env, cwd=tmp_path).json()
    target = runtime.open(parse_reference(layout))
    try:
        image = _sign(target, layout, "v1", chain, "jws")
        on_sbom = _sign(target, layout, str(sbom["digest"]), chain, "cose")  # signing a referrer works the same
        _check_manifest(target, image, chain, "application/jose+json")
        _check_manifest(target, on_sbom, chain, "application/cose")
        assert image["signature"]["algorithm"] == "ES384"  # type: ignore[index]

        trusted = NotaryPolicy.signed_by(chain.root_pem, "root.pem")
        [outcome] = _verify_all(target, "v1", trusted, "local/layout")
        assert (outcome["digest"], outcome["result"], outcome["format"]) == (image["digest"], "verified", "notary/jws")
        [outcome] = _verify_all(target, str(sbom["digest"]), trusted, "local/layout")
        assert (outcome["digest"], outcome["result"]) == (on_sbom["digest"], "verified")

        stranger = pki.make_root("Stranger Root", slot=3)[1].public_bytes(serialization.Encoding.PEM)
        [refused] = _verify_all(target, "v1", NotaryPolicy.signed_by(stranger, "stranger.pem"), "local/layout")
        assert refused["result"] == "failed" and refused["failedCheck"] == "authenticity"
    finally:
        target.close()


@pytest.mark.parametrize("fmt", ["jws", "cose"])
def test_sign_then_verify_on_docker_registry(registry_plain: RunningRegistry, unique_repo: str, chain: pki.Pki,
                                             runtime: Runtime, tmp_path: Path, fmt: str) -> None:
    with httpx.Client(timeout=30) as client:
        push_image(client, registry_plain.url, unique_repo, tag="v1")
    repository = f"{registry_plain.host}/{unique_repo}"
    target = runtime.open(parse_reference(f"{repository}:v1"), create=True)
    try:
        document = _sign(target, repository, "v1", chain, fmt)
        _check_manifest(target, document, chain, f"application/{'jose+json' if fmt == 'jws' else 'cose'}")
        policy_path, store = _notation_config(tmp_path, chain)
        assert NotaryPolicy.from_files(policy_path).store == NotaryPolicy.from_files(policy_path, store).store
        policy = NotaryPolicy.from_files(policy_path)
        [outcome] = _verify_all(target, "v1", policy, repository)
        assert outcome["result"] == "verified", outcome
        assert outcome["policy"] == "release" and outcome["signer"] == chain.leaf.subject.rfc4514_string()
    finally:
        target.close()


def _notation_config(tmp_path: Path, chain: pki.Pki) -> tuple[Path, Path]:
    """A trust policy and trust store exactly as a notation user keeps them."""
    store = chain.write_store(tmp_path / "truststore", "release-roots")  # notation's own place, beside the policy
    policy = tmp_path / "trustpolicy.json"
    policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [{
        "name": "release", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:release-roots"],
        "trustedIdentities": ["x509.subject: C=US, ST=WA, L=Seattle, O=Acme Rockets, CN=Release Signer"]}]}))
    return policy, store


def test_sign_refuses_what_could_never_verify(tmp_path: Path, chain: pki.Pki, runtime: Runtime) -> None:
    (tmp_path / "app.txt").write_text("the app\n")
    layout = f"oci:{tmp_path / 'layout'}"
    assert run_cli("push", f"{layout}:v1", "app.txt", env=clean_env(tmp_path), cwd=tmp_path).returncode == 0
    target = runtime.open(parse_reference(layout))
    subject = resolve_subject(target, "v1", layout)
    other = pki.make_pki("ec256")
    server_leaf = pki.make_pki("ec256", ekus=(pki.ExtendedKeyUsageOID.SERVER_AUTH,))
    not_yet = pki.make_pki("ec256", not_before=pki.NOW + dt.timedelta(days=1))
    cases = [
        (other.key_pem(), chain.chain_pem, SignOptions(), "is not the key of the first certificate"),
        (server_leaf.key_pem(), server_leaf.chain_pem, SignOptions(), "serverAuth"),
        (not_yet.key_pem(), not_yet.chain_pem, SignOptions(), "is not valid at signing time"),
        (chain.key_pem(), chain.chain_pem, SignOptions(signature_format="pgp"), "unknown signature format"),
        (chain.key_pem(), chain.chain_pem, SignOptions(expiry=dt.timedelta(0)), "positive duration"),
        (b"not a key", chain.chain_pem, SignOptions(key_source="$SIGNING_KEY"), "$SIGNING_KEY does not hold"),
    ]
    try:
        for key, certs, options, message in cases:
            with pytest.raises(UsageError) as refused:
                sign(target, layout, subject, key, certs, options)
            assert message in str(refused.value)
        assert target.referrers(subject) == []
    finally:
        target.close()


def test_a_notary_typed_referrer_without_an_envelope_fails_with_its_reason(tmp_path: Path, chain: pki.Pki,
                                                                          runtime: Runtime) -> None:
    """An unsigned blob typed as a Notary signature passes a gate that only counts referrers; not this one."""
    from ci_oras.oci.digest import digest_bytes
    from ci_oras.steps.common import AttachOptions, BytesLayer, attach_layers

    (tmp_path / "app.txt").write_text("the app\n")
    layout = f"oci:{tmp_path / 'layout'}"
    assert run_cli("push", f"{layout}:v1", "app.txt", env=clean_env(tmp_path), cwd=tmp_path).returncode == 0
    target = runtime.open(parse_reference(layout))
    try:
        subject = resolve_subject(target, "v1", layout)
        for media_type in ("text/plain", "application/jose+json"):
            blob = f"trust me ({media_type})".encode()
            layer = BytesLayer(Descriptor(media_type, digest_bytes(blob), len(blob)), blob)
            attach_layers(target, layout, subject, [layer], AttachOptions(artifact_type=NOTARY), step="attach",
                          detected_format=None)
        outcomes = _verify_all(target, "v1", NotaryPolicy.signed_by(chain.root_pem, "root.pem"), "local/layout")
        reasons = sorted(str(outcome["reason"]) for outcome in outcomes)
        assert [outcome["failedCheck"] for outcome in outcomes] == ["integrity", "integrity"]
        assert "has no single application/jose+json or application/cose layer" in reasons[1]
        assert reasons[0].startswith("malformed signature envelope: the JWS envelope is not JSON")
    finally:
        target.close()


def test_created_defaults_to_the_signing_time(tmp_path: Path, chain: pki.Pki, runtime: Runtime) -> None:
    (tmp_path / "app.txt").write_text("the app\n")
    layout = f"oci:{tmp_path / 'layout'}"
    assert run_cli("push", f"{layout}:v1", "app.txt", env=clean_env(tmp_path), cwd=tmp_path).returncode == 0
    target = runtime.open(parse_reference(layout))
    try:
        at = (pki.NOW - dt.timedelta(days=1)).replace(microsecond=678)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        result = sign(target, layout, resolve_subject(target, "v1", layout), chain.key_pem(), chain.chain_pem,
                      SignOptions(signature_format="cose", signing_time=at))
        manifest = target.fetch_manifest(result.digest)
        assert manifest.annotations["org.opencontainers.image.created"] == stamp
        assert result.document()["signature"]["signingTime"] == stamp
        assert "expiry" not in result.document()["signature"]
    finally:
        target.close()
