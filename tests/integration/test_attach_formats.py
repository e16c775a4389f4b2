"""``attach-sbom`` and ``attach-signature`` with realistic samples, through the real CLI.

The samples (``tests/samples/make_samples.py``) are built from each format's own structure, signatures are
real. What is checked is what scanners and verifiers read from the registry: the referrer manifest's
``artifactType``, its layer's media type and title, and the annotations (SBOM spec version, creation time,
generating tools; the Notary certificate-chain thumbprints; the Sigstore bundle content). A file that is not
what the command expects is refused before anything is uploaded.

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``): a subprocess would add only its
start-up, some 0.2 s of CPU a run; the process boundary is tested elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import CliResult, clean_env, invoke_cli
from harness.fake_registry import FakeRegistry
from harness.oci import NOTARY, OCI_EMPTY_DIGEST, OCI_EMPTY_JSON, OCI_MANIFEST, SIGSTORE_BUNDLE, push_image
from samples.make_samples import CREATED, make_chain, notary_cose, notary_jws, package_json, write_all

from ci_oras.errors import EXIT_USAGE
from ci_oras.schemas import load_schema

FakeFactory = Callable[..., FakeRegistry]

TITLE = "org.opencontainers.image.title"
CREATED_KEY = "org.opencontainers.image.created"
SBOM_FORMAT = "dev.ci-oras.sbom.format"
SBOM_SPEC = "dev.ci-oras.sbom.spec-version"
SBOM_TOOL = "dev.ci-oras.sbom.tool"
THUMBPRINT = "io.cncf.notary.x509chain.thumbprint#S256"
#: SOURCE_DATE_EPOCH for the signature tests: 2024-05-02T10:15:30Z.
EPOCH = "1714644930"


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def registry(fake_registry: FakeFactory) -> Iterator[tuple[FakeRegistry, str]]:
    """A fake registry with the referrers API (fast: no tag-schema settling) and an image tagged v1."""
    fake = fake_registry()
    with httpx.Client(timeout=30) as client:
        subject = push_image(client, fake.url, "app", tag="v1").manifest_digest
    fake.clear()
    yield fake, subject


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path, {"SOURCE_DATE_EPOCH": EPOCH})


def _ok(result: CliResult) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def _stored(fake: FakeRegistry, digest: str) -> dict[str, Any]:
    stored = fake.manifest("app", digest)
    assert stored is not None
    assert stored.media_type == OCI_MANIFEST
    manifest: dict[str, Any] = stored.json()
    return manifest


def _check_manifest(manifest: dict[str, Any], path: Path, subject: str, artifact_type: str, layer_type: str) -> None:
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["artifactType"] == artifact_type
    config = manifest["config"]
    assert (config["mediaType"], config["digest"], config["size"]) == (OCI_EMPTY_JSON, OCI_EMPTY_DIGEST, 2)
    assert config.get("data", "e30=") == "e30="  # embedded "{}" allowed (oras-go writes it)
    assert manifest["subject"]["digest"] == subject
    (layer,) = manifest["layers"]
    data = path.read_bytes()
    assert layer["mediaType"] == layer_type
    assert layer["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer["size"] == len(data)
    assert layer["annotations"][TITLE] == path.name


# -- SBOMs ------------------------------------------------------------------------------------------------------

SBOMS = {
    "cyclonedx-1.4.json": ("application/vnd.cyclonedx+json", "CycloneDX 1.4 JSON", {
        SBOM_FORMAT: "cyclonedx", SBOM_SPEC: "1.4", CREATED_KEY: CREATED,
        SBOM_TOOL: "syft@0.98.0,cyclonedx-go@0.7.2"}),
    "cyclonedx-1.5.json": ("application/vnd.cyclonedx+json", "CycloneDX 1.5 JSON", {
        SBOM_FORMAT: "cyclonedx", SBOM_SPEC: "1.5", CREATED_KEY: CREATED, SBOM_TOOL: "syft@1.4.1,sbom-enricher@2.0"}),
    "cyclonedx-vex.json": ("application/vnd.cyclonedx+json", "CycloneDX 1.6 JSON", {
        SBOM_FORMAT: "cyclonedx", SBOM_SPEC: "1.6", CREATED_KEY: CREATED}),
    "cyclonedx-1.5.xml": ("application/vnd.cyclonedx+xml", "CycloneDX 1.5 XML", {
        SBOM_FORMAT: "cyclonedx", SBOM_SPEC: "1.5", CREATED_KEY: CREATED, SBOM_TOOL: "syft@1.4.1,sbom-enricher@2.0"}),
    "spdx-2.3.json": ("application/spdx+json", "SPDX 2.3 JSON", {
        SBOM_FORMAT: "spdx", SBOM_SPEC: "SPDX-2.3", CREATED_KEY: CREATED, SBOM_TOOL: "syft@1.4.1"}),
    "spdx-2.3.spdx": ("text/spdx", "SPDX 2.3 tag-value", {
        SBOM_FORMAT: "spdx", SBOM_SPEC: "SPDX-2.3", CREATED_KEY: CREATED,
        SBOM_TOOL: "syft@1.4.1,spdx-sbom-generator@v0.0.15"}),
}


@pytest.mark.parametrize("name", list(SBOMS))
def test_attach_sbom_types_and_annotates(registry: tuple[FakeRegistry, str], samples: dict[str, Path],
                                         env: dict[str, str], name: str) -> None:
    fake, subject = registry
    artifact_type, fmt, annotations = SBOMS[name]
    doc = _ok(invoke_cli("attach-sbom", f"{fake.host}/app:v1", str(samples[name]), "-O", "json", env=env))
    assert doc["schema"] == "ci-oras/attach-sbom/v1"
    jsonschema.validate(doc, load_schema("attach-sbom"))
    assert doc["format"] == fmt
    assert doc["artifactType"] == artifact_type
    assert doc["annotations"] == annotations, "the SBOM's own creation time, not SOURCE_DATE_EPOCH or now"
    assert doc["subject"]["digest"] == subject

    manifest = _stored(fake, doc["digest"])
    _check_manifest(manifest, samples[name], subject, artifact_type, artifact_type)
    assert manifest["annotations"] == annotations
    assert [d["digest"] for d in fake.referrers("app", subject)] == [doc["digest"]]
    listed = fake.referrers("app", subject)[0]
    assert listed["artifactType"] == artifact_type and listed["annotations"] == annotations


def test_attach_sbom_text_output_and_manifest_fetch(registry: tuple[FakeRegistry, str], samples: dict[str, Path],
                                                    env: dict[str, str]) -> None:
    fake, subject = registry
    text = invoke_cli("attach-sbom", f"{fake.host}/app:v1", str(samples["spdx-2.3.json"]),
                   "-a", f"{CREATED_KEY}=2025-01-01T00:00:00Z", "-a", "team=platform", env=env)
    assert text.returncode == 0, text.stderr
    assert text.stdout == ""
    assert "Detected SPDX 2.3 JSON" in text.stderr
    digest = next(line.split(": ", 1)[1] for line in text.stderr.splitlines() if line.startswith("Digest: "))
    assert f"Attached to {fake.host}/app@{subject}" in text.stderr

    fetched = invoke_cli("manifest", "fetch", f"{fake.host}/app@{digest}", env=env)
    assert fetched.returncode == 0, fetched.stderr
    stored = fake.manifest("app", digest)
    assert stored is not None and fetched.stdout.encode() == stored.body  # the exact bytes, no newline
    annotations = json.loads(stored.body)["annotations"]
    # --annotation wins over what was detected.
    assert annotations[CREATED_KEY] == "2025-01-01T00:00:00Z"
    assert annotations["team"] == "platform"
    assert annotations[SBOM_SPEC] == "SPDX-2.3"


def test_attach_sbom_refuses_a_non_sbom_and_pushes_nothing(registry: tuple[FakeRegistry, str], tmp_path: Path,
                                                           env: dict[str, str]) -> None:
    fake, _subject = registry
    (tmp_path / "package.json").write_bytes(package_json())
    refused = invoke_cli("attach-sbom", f"{fake.host}/app:v1", "package.json", env=env, cwd=tmp_path)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "not a CycloneDX or SPDX SBOM" in refused.stderr
    assert "--artifact-type" in refused.stderr
    assert refused.stdout == ""
    assert fake.writes() == []

    missing = invoke_cli("attach-sbom", f"{fake.host}/app:v1", "nope.json", env=env, cwd=tmp_path)
    assert missing.returncode == EXIT_USAGE and "file not found" in missing.stderr
    assert fake.writes() == []

    # --artifact-type skips detection: the file is attached as it is.
    forced = _ok(invoke_cli("attach-sbom", f"{fake.host}/app:v1", "package.json", "--artifact-type",
                         "application/vnd.example.npm-manifest", "-O", "json", env=env, cwd=tmp_path))
    assert forced["schema"] == "ci-oras/attach-sbom/v1"
    assert forced["artifactType"] == "application/vnd.example.npm-manifest"
    assert _stored(fake, forced["digest"])["artifactType"] == "application/vnd.example.npm-manifest"
    # Nothing was detected; whatever the document says about that, it must match the shipped schema.
    jsonschema.validate(forced, load_schema("attach-sbom"))


def test_attach_sbom_refusal_leaves_a_layout_untouched(samples: dict[str, Path], tmp_path: Path,
                                                       env: dict[str, str]) -> None:
    layout = tmp_path / "layout"
    (tmp_path / "app.txt").write_text("app\n")
    (tmp_path / "package.json").write_bytes(package_json())
    assert invoke_cli("push", f"oci:{layout}:v1", "app.txt", env=env, cwd=tmp_path).returncode == 0
    before = sorted(p.name for p in (layout / "blobs" / "sha256").iterdir())
    index_before = (layout / "index.json").read_bytes()

    refused = invoke_cli("attach-sbom", f"oci:{layout}:v1", "package.json", env=env, cwd=tmp_path)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert sorted(p.name for p in (layout / "blobs" / "sha256").iterdir()) == before
    assert (layout / "index.json").read_bytes() == index_before

    ok = _ok(invoke_cli("attach-sbom", f"oci:{layout}:v1", str(samples["cyclonedx-1.5.json"]), "-O", "json", env=env))
    assert ok["format"] == "CycloneDX 1.5 JSON"
    raw = (layout / "blobs" / "sha256" / ok["digest"].split(":")[1]).read_bytes()
    assert json.loads(raw)["annotations"][SBOM_SPEC] == "1.5"


# -- signatures -------------------------------------------------------------------------------------------------


def _thumbprints(ders: list[bytes]) -> str:
    return json.dumps([hashlib.sha256(der).hexdigest() for der in ders], separators=(",", ":"))


@pytest.mark.parametrize("envelope", ["jws", "cose"])
def test_attach_notary_signature(registry: tuple[FakeRegistry, str], tmp_path: Path, env: dict[str, str],
                                 envelope: str) -> None:
    fake, subject = registry
    chain = make_chain()
    path = tmp_path / f"notary.{envelope}.sig"
    image = fake.manifest("app", subject)
    assert image is not None
    target = {"mediaType": image.media_type, "digest": subject, "size": len(image.body)}
    path.write_bytes(notary_jws(chain, target=target) if envelope == "jws" else notary_cose(chain, target=target))
    if envelope == "jws":  # the chain in the file is the chain we made: x5c is standard base64 DER
        x5c = json.loads(path.read_bytes())["header"]["x5c"]
        assert [base64.b64decode(c) for c in x5c] == chain.ders
    layer_type = "application/jose+json" if envelope == "jws" else "application/cose"
    expected = {THUMBPRINT: _thumbprints(chain.ders), CREATED_KEY: "2024-05-02T10:15:30Z"}

    doc = _ok(invoke_cli("attach-signature", f"{fake.host}/app:v1", str(path), "-O", "json", env=env))
    assert doc["schema"] == "ci-oras/attach-signature/v1"
    jsonschema.validate(doc, load_schema("attach-signature"))
    assert doc["format"] == f"Notary Project {envelope.upper()} signature"
    assert doc["artifactType"] == NOTARY
    assert doc["annotations"] == expected
    manifest = _stored(fake, doc["digest"])
    _check_manifest(manifest, path, subject, NOTARY, layer_type)
    assert manifest["annotations"] == expected
    # The thumbprints are exactly what notation writes: a compact JSON array of lowercase hex, leaf first.
    assert json.loads(manifest["annotations"][THUMBPRINT])[0] == hashlib.sha256(chain.ders[0]).hexdigest()
    assert fake.referrers("app", subject)[0]["annotations"][THUMBPRINT] == expected[THUMBPRINT]


@pytest.mark.parametrize("envelope", ["jws", "cose"])
def test_attach_notary_signature_made_for_another_artifact_is_refused(
        registry: tuple[FakeRegistry, str], tmp_path: Path, env: dict[str, str], envelope: str) -> None:
    fake, subject = registry
    path = tmp_path / f"other.{envelope}.sig"
    path.write_bytes(notary_jws(make_chain()) if envelope == "jws" else notary_cose(make_chain()))  # another target
    refused = invoke_cli("attach-signature", f"{fake.host}/app:v1", str(path), "-O", "json", env=env)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert f"not of {subject}" in refused.stderr and "Traceback" not in refused.stderr
    assert fake.referrers("app", subject) == []
    # Explicit types do not bypass it: the envelope is still a Notary signature of something else.
    forced = invoke_cli("attach-signature", f"{fake.host}/app:v1", str(path), "--artifact-type", NOTARY,
                     "--media-type", "application/jose+json" if envelope == "jws" else "application/cose", env=env)
    assert forced.returncode == EXIT_USAGE


@pytest.mark.parametrize("payload", [{"targetArtifact": {"mediaType": OCI_MANIFEST, "size": 3}},
                                     {"targetArtifact": {"digest": None}}, {"targetArtifact": "sha256:00"},
                                     {"somethingElse": 1}])
def test_attach_notary_envelope_whose_payload_names_no_target_says_so(
        registry: tuple[FakeRegistry, str], tmp_path: Path, env: dict[str, str], payload: dict[str, Any]) -> None:
    """Not "a Notary Project signature of None": the envelope names no artifact, and the message says that."""
    fake, subject = registry
    envelope = json.loads(notary_jws(make_chain()))
    envelope["payload"] = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    path = tmp_path / "untargeted.jws.sig"
    path.write_text(json.dumps(envelope))
    refused = invoke_cli("attach-signature", f"{fake.host}/app:v1", str(path), env=env)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "envelope whose payload names no target artifact" in lines[0], lines[0]
    assert "None" not in lines[0] and "signature of" not in lines[0]
    assert fake.referrers("app", subject) == []


@pytest.mark.parametrize(("name", "content"), [("sigstore-message.sigstore.json", "message-signature"),
                                               ("sigstore-dsse.sigstore.json", "dsse-envelope")])
def test_attach_sigstore_bundle(registry: tuple[FakeRegistry, str], samples: dict[str, Path], env: dict[str, str],
                                name: str, content: str) -> None:
    fake, subject = registry
    doc = _ok(invoke_cli("attach-signature", f"{fake.host}/app:v1", str(samples[name]), "-O", "json", env=env))
    assert doc["schema"] == "ci-oras/attach-signature/v1"
    assert doc["format"].startswith("Sigstore bundle v0.3")
    manifest = _stored(fake, doc["digest"])
    _check_manifest(manifest, samples[name], subject, SIGSTORE_BUNDLE, SIGSTORE_BUNDLE)
    assert manifest["annotations"]["dev.sigstore.bundle.content"] == content
    if content == "dsse-envelope":
        assert manifest["annotations"]["dev.sigstore.bundle.predicateType"] == "https://slsa.dev/provenance/v1"
    assert manifest["annotations"][CREATED_KEY] == "2024-05-02T10:15:30Z"


def test_attach_signature_unknown_format_needs_both_flags(registry: tuple[FakeRegistry, str], tmp_path: Path,
                                                          env: dict[str, str]) -> None:
    fake, subject = registry
    sig = tmp_path / "image.sig"
    sig.write_text("MEUCIQDx1vTfJ8kq1cLx0s0v4k8nS3cQd3w0N5mJ8m7n2o5H2AIgQ0m0mZ3p0s1vYk2yq1g==\n")  # cosign-ish
    refused = invoke_cli("attach-signature", f"{fake.host}/app:v1", "image.sig", env=env, cwd=tmp_path)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "cannot tell what kind of signature" in refused.stderr
    assert "--artifact-type and --media-type" in refused.stderr
    assert refused.stdout == ""

    half = invoke_cli("attach-signature", f"{fake.host}/app:v1", "image.sig", "--artifact-type",
                   "application/vnd.dev.cosign.simplesigning.v1+json", env=env, cwd=tmp_path)
    assert half.returncode == EXIT_USAGE, half.stderr
    assert "--artifact-type and --media-type" in half.stderr
    assert fake.writes() == [], "nothing is uploaded for a refused signature"

    doc = _ok(invoke_cli("attach-signature", f"{fake.host}/app:v1", "image.sig", "--artifact-type",
                      "application/vnd.example.cosign-signature", "--media-type",
                      "application/vnd.dev.cosign.simplesigning.v1+json", "-a", "signer=ci", "-O", "json",
                      env=env, cwd=tmp_path))
    assert doc["schema"] == "ci-oras/attach-signature/v1"
    manifest = _stored(fake, doc["digest"])
    _check_manifest(manifest, sig, subject, "application/vnd.example.cosign-signature",
                    "application/vnd.dev.cosign.simplesigning.v1+json")
    assert manifest["annotations"] == {"signer": "ci", CREATED_KEY: "2024-05-02T10:15:30Z"}
    # Nothing was detected; whatever the document says about that, it must match the shipped schema.
    jsonschema.validate(doc, load_schema("attach-signature"))


def test_generic_attach_json_document(registry: tuple[FakeRegistry, str], tmp_path: Path,
                                      env: dict[str, str]) -> None:
    fake, subject = registry
    (tmp_path / "report.txt").write_text("report\n")
    doc = _ok(invoke_cli("attach", f"{fake.host}/app:v1", "report.txt", "--artifact-type", "application/x.report",
                      "-O", "json", env=env, cwd=tmp_path))
    assert doc["schema"] == "ci-oras/attach/v1"
    jsonschema.validate(doc, load_schema("attach"))
    assert "format" not in doc
    assert doc["subject"]["digest"] == subject
    assert doc["annotations"] == {CREATED_KEY: "2024-05-02T10:15:30Z"}
    assert doc["blobsUploaded"] == 1  # the file; the empty config was there already
