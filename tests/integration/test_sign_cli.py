"""``ci-oras sign`` then ``ci-oras verify --signed-by/--trust-policy`` through the command line, on an OCI
layout and on docker-registry: a signature counts only when it verifies, and every refusal exits 1 with the
failed check and its reason in the JSON document.

Commands run in-process (``invoke_cli``): the process boundary adds nothing these tests look at, except the
key-handling test, which reads the real stderr of a real process.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from harness import notary_pki as pki
from harness.cli import CliResult, clean_env, invoke_cli, run_cli
from harness.oci import NOTARY, push_image
from harness.registry import RunningRegistry
from samples.make_samples import cyclonedx_json

from ci_oras.oci.reference import parse_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.schemas import load_schema
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.steps.common import AttachOptions, BytesLayer, attach_layers, resolve_subject
from ci_oras.steps.sign import SignOptions
from ci_oras.steps.sign import sign as sign_step



class Workspace:
    """Key, chain and trusted root on disk, as a pipeline has them, and a CLI bound to a private HOME."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.chain = pki.make_pki("ec256")
        self.key = self._write("key.pem", self.chain.key_pem())
        self.cert = self._write("chain.pem", self.chain.chain_pem)
        self.trusted = self._write("root.pem", self.chain.root_pem)
        stranger = pki.make_root("Stranger Root", slot=7)[1]
        self.stranger = self._write("stranger.pem", stranger.public_bytes(serialization.Encoding.PEM))
        self.env = clean_env(root, {"SIGNING_KEY": self.chain.key_pem().decode()})

    def _write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path

    def cli(self, *args: str) -> CliResult:
        return invoke_cli(*args, "--emit", "none", env=self.env, cwd=self.root)

    def sign(self, subject: str, *extra: str) -> dict[str, Any]:
        result = self.cli("sign", subject, "--key", str(self.key), "--cert", str(self.cert), "-O", "json", *extra)
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = result.json()
        jsonschema.validate(document, load_schema("sign"))
        return document

    def verify(self, subject: str, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.cli("verify", subject, "-O", "json", *args)
        assert result.returncode in (0, 1), result.stderr
        document: dict[str, Any] = result.json()
        jsonschema.validate(document, load_schema("verify"))
        return result.returncode, document

    def push(self, layout: str, tag: str, content: str) -> str:
        (self.root / f"{tag}.txt").write_text(content)
        result = self.cli("push", f"{layout}:{tag}", f"{tag}.txt", "-O", "json")
        assert result.returncode == 0, result.stderr
        return str(result.json()["digest"])

    def attach(self, subject: str, path: Path, media_type: str, artifact_type: str = NOTARY) -> str:
        result = self.cli("attach", subject, f"{path.name}:{media_type}", "--artifact-type", artifact_type,
                          "-O", "json")
        assert result.returncode == 0, result.stderr
        return str(result.json()["digest"])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("sign-cli"))


def _only(document: dict[str, Any]) -> dict[str, Any]:
    [signature] = document["signatures"]
    return signature


@pytest.mark.parametrize("fmt", ["jws", "cose"])
def test_sign_then_verify_signed_by_on_an_oci_layout(ws: Workspace, fmt: str) -> None:
    layout = f"oci:{ws.root / f'app-{fmt}'}"
    digest = ws.push(layout, "v1", f"the app, {fmt}\n")
    signed = ws.sign(f"{layout}:v1", "--signature-format", fmt, "--expiry", "90d", "-a", "team=release")
    assert signed["subject"]["digest"] == digest and signed["signature"]["format"] == fmt
    assert signed["annotations"]["team"] == "release"
    expiry = dt.datetime.fromisoformat(signed["signature"]["expiry"].replace("Z", "+00:00"))
    signing_time = dt.datetime.fromisoformat(signed["signature"]["signingTime"].replace("Z", "+00:00"))
    assert expiry - signing_time == dt.timedelta(days=90)

    code, document = ws.verify(f"{layout}:v1", "-r", "signature", "--signed-by", str(ws.trusted))
    assert code == 0 and document["ok"]
    assert document["trustScope"] == f"local/app-{fmt}"
    outcome = _only(document)
    assert (outcome["digest"], outcome["subject"], outcome["result"]) == (signed["digest"], digest, "verified")
    assert outcome["format"] == f"notary/{fmt}" and outcome["level"] == "strict"
    assert document["requirements"][0]["found"] == [signed["digest"]]


@pytest.mark.parametrize("fmt", ["jws", "cose"])
def test_sign_with_key_env_then_verify_signed_by_on_docker_registry(ws: Workspace, registry_plain: RunningRegistry,
                                                                    unique_repo: str, fmt: str) -> None:
    with httpx.Client(timeout=30) as client:
        image = push_image(client, registry_plain.url, unique_repo, tag="v1")
    reference = f"{registry_plain.host}/{unique_repo}:v1"
    result = ws.cli("sign", reference, "--key-env", "SIGNING_KEY", "--cert", str(ws.cert),
                    "--signature-format", fmt)
    assert result.returncode == 0, result.stderr
    assert "Signed by CN=Release Signer" in result.stderr and ws.chain.key_pem().decode() not in result.stderr

    code, document = ws.verify(reference, "-r", "signature", "--signed-by", str(ws.trusted))
    assert code == 0, document
    assert document["trustScope"] == f"{registry_plain.host}/{unique_repo}"
    outcome = _only(document)
    assert outcome["result"] == "verified" and outcome["subject"] == image.manifest_digest

    code, document = ws.verify(reference, "-r", "signature", "--signed-by", str(ws.stranger))
    assert code == 1 and document["missing"] == ["signature"]
    assert _only(document)["failedCheck"] == "authenticity"


def test_key_env_may_hold_the_base64_of_the_pem(ws: Workspace) -> None:
    """A masked CI variable must be one line without spaces: GitLab cannot mask a PEM block, only its base64."""
    layout = f"oci:{ws.root / 'b64'}"
    ws.push(layout, "v1", "signed with a masked key\n")
    encoded = base64.b64encode(ws.chain.key_pem()).decode()
    result = run_cli("sign", f"{layout}:v1", "--key-env", "MASKED_KEY", "--cert", str(ws.cert), "--emit", "none",
                     env={**ws.env, "MASKED_KEY": encoded}, cwd=ws.root)
    assert result.returncode == 0, result.stderr
    assert encoded not in result.stdout + result.stderr

    code, document = ws.verify(f"{layout}:v1", "-r", "signature", "--signed-by", str(ws.trusted))
    assert code == 0 and _only(document)["result"] == "verified"

    not_a_key = base64.b64encode(b"just some text").decode()
    result = run_cli("sign", f"{layout}:v1", "--key-env", "MASKED_KEY", "--cert", str(ws.cert), "--emit", "none",
                     env={**ws.env, "MASKED_KEY": not_a_key}, cwd=ws.root)
    assert result.returncode == 2 and "MASKED_KEY" in result.stderr and not_a_key not in result.stderr


def _tampered(envelope: bytes) -> bytes:
    """A JWS envelope with one bit of its signature flipped; everything else, the payload included, intact."""
    jws = json.loads(envelope)
    raw = bytearray(base64.urlsafe_b64decode(jws["signature"] + "=" * (-len(jws["signature"]) % 4)))
    raw[0] ^= 1
    jws["signature"] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return json.dumps(jws).encode()


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    run = Runtime(TransportOptions(), LoginFlags(), {"HOME": str(tmp_path), "PATH": ""})
    yield run
    run.close()


def test_each_refusal_exits_1_with_its_reason(ws: Workspace, runtime: Runtime) -> None:
    layout = f"oci:{ws.root / 'refusals'}"
    policy_args = ("--signed-by", str(ws.trusted))

    # an unsigned blob typed as a Notary signature: counted by type alone, refused under a policy
    ws.push(layout, "unsigned", "unsigned\n")
    blob = ws.root / "blob.jws"
    blob.write_text('{"trust": "me"}')
    forged = ws.attach(f"{layout}:unsigned", blob, "application/jose+json")
    assert ws.verify(f"{layout}:unsigned", "-r", "signature")[0] == 0  # no policy: behaviour as before
    code, document = ws.verify(f"{layout}:unsigned", "-r", "signature", *policy_args)
    assert code == 1 and _only(document)["digest"] == forged
    assert _only(document)["failedCheck"] == "integrity" and _only(document)["reason"]

    # a real signature with its signature bytes tampered with
    ws.push(layout, "tampered", "tampered\n")
    signed = ws.sign(f"{layout}:tampered")
    (ws.root / "tampered.jws").write_bytes(_tampered(_envelope(runtime, layout, signed)))
    ws.cli("delete", f"{layout}@{signed['digest']}")
    ws.attach(f"{layout}:tampered", ws.root / "tampered.jws", "application/jose+json")
    code, document = ws.verify(f"{layout}:tampered", "-r", "signature", *policy_args)
    assert code == 1 and _only(document)["failedCheck"] == "integrity"
    assert "signature" in _only(document)["reason"]

    # a valid signature of another image, attached here: the CLI refuses to (exit 2), a forger writes it anyway
    ws.push(layout, "other", "other\n")
    ws.push(layout, "wrong-subject", "wrong subject\n")
    envelope = _envelope(runtime, layout, ws.sign(f"{layout}:other"))
    (ws.root / "other.jws").write_bytes(envelope)
    refused = ws.cli("attach", f"{layout}:wrong-subject", "other.jws:application/jose+json", "--artifact-type", NOTARY)
    assert refused.returncode == 2 and "not of" in refused.stderr
    target = runtime.open(parse_reference(layout))
    layer = BytesLayer(Descriptor("application/jose+json", digest_bytes(envelope), len(envelope)), envelope)
    attach_layers(target, layout, resolve_subject(target, "wrong-subject", layout), [layer],
                  AttachOptions(artifact_type=NOTARY), step="attach", detected_format=None)
    code, document = ws.verify(f"{layout}:wrong-subject", "-r", "signature", *policy_args)
    assert code == 1 and _only(document)["failedCheck"] == "integrity"
    assert "was made for" in _only(document)["reason"]

    # expired: signed two days ago for one day (the step takes the signing time; no clock is waited for)
    expired_digest = ws.push(layout, "expired", "expired\n")
    target = runtime.open(parse_reference(layout))
    subject = resolve_subject(target, "expired", layout)
    assert subject.digest == expired_digest
    sign_step(target, layout, subject, ws.chain.key_pem(), ws.chain.chain_pem,
              SignOptions(expiry=dt.timedelta(days=1), signing_time=pki.NOW - dt.timedelta(days=2)))
    code, document = ws.verify(f"{layout}:expired", "-r", "signature", *policy_args)
    assert code == 1 and _only(document)["failedCheck"] == "expiry" and "expired" in _only(document)["reason"]

    # untrusted root
    ws.push(layout, "untrusted", "untrusted\n")
    ws.sign(f"{layout}:untrusted")
    code, document = ws.verify(f"{layout}:untrusted", "-r", "signature", "--signed-by", str(ws.stranger))
    assert code == 1 and _only(document)["failedCheck"] == "authenticity"
    assert "trust store" in _only(document)["reason"]

    # wrong identity under a notation trust policy (and the right one passes)
    for name, identity, want in (("someone", "x509.subject: C=US, ST=WA, O=Acme Rockets, CN=Someone Else", 1),
                                 ("release", "x509.subject: C=US, ST=WA, O=Acme Rockets, CN=Release Signer", 0)):
        policy = _trust_policy(ws.root / f"policy-{name}", ws.chain, ["local/refusals"], identity)
        code, document = ws.verify(f"{layout}:untrusted", "-r", "signature", "--trust-policy", str(policy))
        assert code == want, document
        if want:
            assert _only(document)["failedCheck"] == "authenticity"
            assert "is not a trusted identity" in _only(document)["reason"]


def _envelope(runtime: Runtime, layout: str, signed: dict[str, Any]) -> bytes:
    from contextlib import closing

    target = runtime.open(parse_reference(layout))
    manifest = target.fetch_manifest(signed["digest"])
    with closing(target.fetch(manifest.layers[0])) as chunks:
        return b"".join(chunks)


def _trust_policy(directory: Path, chain: pki.Pki, scopes: list[str], identity: str) -> Path:
    """notation's trust policy and trust store layout, the store beside the policy as notation keeps it."""
    directory.mkdir(exist_ok=True)
    chain.write_store(directory / "truststore", "release-roots")
    policy = directory / "trustpolicy.json"
    policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [{
        "name": "release", "registryScopes": scopes, "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:release-roots"], "trustedIdentities": [identity]}]}))
    return policy


def test_signed_sbom_chain(ws: Workspace) -> None:
    layout = f"oci:{ws.root / 'sboms'}"
    (ws.root / "bom.json").write_bytes(cyclonedx_json())
    for tag, signer in (("signed", ws.cert), ("forged", None)):
        ws.push(layout, tag, f"{tag}\n")
        sbom = ws.cli("attach-sbom", f"{layout}:{tag}", "bom.json", "-O", "json").json()["digest"]
        if signer is not None:
            ws.sign(f"{layout}@{sbom}")
        else:
            blob = ws.root / "sbom-blob.jws"
            blob.write_text("{}")
            ws.attach(f"{layout}@{sbom}", blob, "application/jose+json")

    code, document = ws.verify(f"{layout}:signed", "-r", "sbom>signature", "--signed-by", str(ws.trusted))
    assert code == 0 and len(document["requirements"][0]["paths"][0]) == 2
    assert _only(document)["result"] == "verified"

    assert ws.verify(f"{layout}:forged", "-r", "sbom>signature")[0] == 0  # counted by type alone
    code, document = ws.verify(f"{layout}:forged", "-r", "sbom,sbom>signature", "--signed-by", str(ws.trusted))
    assert code == 1 and document["missing"] == ["sbom>signature"]
    assert _only(document)["failedCheck"] == "integrity"

    summary, outputs = ws.root / "summary.md", ws.root / "outputs.txt"
    result = invoke_cli("verify", f"{layout}:forged", "-r", "sbom>signature", "--signed-by", str(ws.trusted),
                        "--emit", "github", env={**ws.env, "GITHUB_ACTIONS": "true",
                                                 "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)})
    assert result.returncode == 1
    [row] = [line for line in summary.read_text().splitlines() if line.startswith(f"| `{_only(document)['digest']}`")]
    assert "❌ failed" in row and f"`integrity: {_only(document)['reason']}`" in row
    assert "refused, integrity" in result.stderr  # the text output names it too


def test_bad_keys_and_policies_exit_2_naming_only_their_source(ws: Workspace) -> None:
    layout = f"oci:{ws.root / 'bad'}"
    ws.push(layout, "v1", "bad inputs\n")
    secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDsecretsecret"
    bad_key = ws.root / "bad-key.pem"
    bad_key.write_text(f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n")
    env = {**ws.env, "BROKEN_KEY": bad_key.read_text()}
    cases = [
        (("--key", str(bad_key), "--cert", str(ws.cert)), str(bad_key)),
        (("--key-env", "BROKEN_KEY", "--cert", str(ws.cert)), "BROKEN_KEY"),
        (("--key-env", "NOT_SET_ANYWHERE", "--cert", str(ws.cert)), "NOT_SET_ANYWHERE"),
        (("--key", str(ws.key), "--key-env", "SIGNING_KEY", "--cert", str(ws.cert)), "exactly one of"),
        (("--key", str(ws.key)), "--cert"),
        (("--key", str(ws.key), "--cert", str(ws.cert), "--expiry", "soon"), "--expiry"),
    ]
    for args, named in cases:
        result = run_cli("sign", f"{layout}:v1", *args, "--emit", "none", env=env, cwd=ws.root)
        assert result.returncode == 2, (args, result.stderr)
        assert named in result.stderr and secret not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr

    broken_policy = ws.root / "broken-policy.json"
    broken_policy.write_text('{"version": "1.0", "trustPolicies": [{"name": "x"}]}')
    elsewhere = _trust_policy(ws.root / "policy-elsewhere", ws.chain, ["registry.example/app"],
                              "x509.subject: C=US, ST=WA, O=Acme Rockets, CN=Release Signer")
    for args, named in ((("--trust-policy", str(broken_policy)), "broken-policy.json"),
                        (("--trust-policy", str(elsewhere)), "local/bad"),
                        (("--trust-policy", str(elsewhere), "--signed-by", str(ws.trusted)), "mutually exclusive"),
                        (("--trust-store", str(ws.root)), "--trust-store needs --trust-policy"),
                        (("--signed-by", str(ws.key)), "key.pem")):
        result = ws.cli("verify", f"{layout}:v1", "-r", "signature", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert named in result.stderr


def test_verify_without_a_policy_does_not_load_the_signing_layer(ws: Workspace) -> None:
    """The gate's start-up cost stays as it was for everyone not judging signatures (a fresh process)."""
    layout = f"oci:{ws.root / 'no-policy'}"
    ws.push(layout, "v1", "no policy\n")
    ws.sign(f"{layout}:v1")
    probe = ("import sys\nfrom ci_oras.cli import main\ntry:\n    main()\nexcept SystemExit as stop:\n"
             "    assert stop.code == 0, stop.code\n"
             "print(sorted({m.split('.')[0] for m in sys.modules\n"
             "              if m.startswith(('cryptography', 'ci_oras.signing', 'sigstore', 'pydantic'))}))")
    def loaded(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", probe, "verify", f"{layout}:v1", "-r", "signature",
                               "--emit", "none", *args], env=ws.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert loaded() == "[]"
    assert loaded("--signed-by", str(ws.trusted)) == "['ci_oras', 'cryptography']"
