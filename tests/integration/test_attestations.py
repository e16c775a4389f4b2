"""Attestations stored the way GitHub's ``actions/attest-sbom`` / ``attest-build-provenance`` store them with
``push-to-registry``: a Sigstore bundle as an OCI 1.1 referrer (artifactType and the one layer
``application/vnd.dev.sigstore.bundle.v0.3+json``, empty config, ``dev.sigstore.bundle.content`` and
``dev.sigstore.bundle.predicateType`` annotations), listed through the ``sha256-<hex>`` tag schema on the real
registry (distribution 2.8 has no referrers API). The fallback index entries are written without annotations or
with false ones, so a pass proves the match was made on the fetched manifest's annotations.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import CliResult, clean_env, invoke_cli
from harness.oci import SIGSTORE_BUNDLE, compact, push_fallback_index, push_image, push_referrer, subject_of
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_OK, EXIT_VERIFICATION_FAILED
from ci_oras.schemas import load_schema

PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
SPDX = "https://spdx.dev/Document/v2.3"
CYCLONEDX = "https://cyclonedx.org/bom"
PROVENANCE = "https://slsa.dev/provenance/v1"


def _attest(client: httpx.Client, url: str, repo: str, subject: dict[str, Any], predicate: str,
            listed: list[dict[str, Any]], listed_annotations: dict[str, str] | None = None) -> str:
    """Push a bundle referrer as actions/attest does and add it to the subject's fallback index."""
    bundle = compact({"mediaType": SIGSTORE_BUNDLE, "dsseEnvelope": {
        "payloadType": "application/vnd.in-toto+json", "payload": uuid.uuid4().hex, "signatures": []}})
    annotations = {"dev.sigstore.bundle.content": "dsse-envelope", PREDICATE_TYPE: predicate,
                   "org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
    pushed = push_referrer(client, url, repo, subject, SIGSTORE_BUNDLE, bundle, layer_type=SIGSTORE_BUNDLE,
                           annotations=annotations)
    # the listing entry carries the annotations it is given (none, or false ones), not the manifest's
    entry = {key: pushed[key] for key in ("mediaType", "digest", "size", "artifactType")}
    if listed_annotations is not None:
        entry["annotations"] = listed_annotations
    listed.append(entry)
    push_fallback_index(client, url, repo, subject["digest"], listed)
    digest: str = entry["digest"]
    return digest


@dataclass(frozen=True)
class Attested:
    registry: RunningRegistry
    repo: str
    env: dict[str, str]
    work: Path

    def verify(self, tag: str, *requires: str) -> CliResult:
        args = [arg for spec in requires for arg in ("--require", spec)]
        return invoke_cli("verify", f"{self.registry.host}/{self.repo}:{tag}", *args, "-O", "json",
                          env=self.env, cwd=self.work)


@pytest.fixture(scope="module")
def attested(registry_plain: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attested]:
    """Tags: ``spdx`` (SPDX + provenance attestations), ``cdx`` (CycloneDX), ``prov`` (provenance only, its
    listing entry falsely claiming SPDX), ``none`` (nothing attached)."""
    work = tmp_path_factory.mktemp("attestations")
    repo = f"test/attest-{uuid.uuid4().hex[:8]}"
    url = registry_plain.url
    with httpx.Client(timeout=30) as client:
        subjects = {}
        for tag in ("spdx", "cdx", "prov", "none"):
            subjects[tag] = subject_of(push_image(client, url, repo, tag=tag, layer=f"image {tag}".encode()))
        spdx: list[dict[str, Any]] = []
        _attest(client, url, repo, subjects["spdx"], SPDX, spdx)
        _attest(client, url, repo, subjects["spdx"], PROVENANCE, spdx, listed_annotations={})
        _attest(client, url, repo, subjects["cdx"], CYCLONEDX, [], listed_annotations={PREDICATE_TYPE: PROVENANCE})
        _attest(client, url, repo, subjects["prov"], PROVENANCE, [], listed_annotations={PREDICATE_TYPE: SPDX})
    yield Attested(registry_plain, repo, clean_env(work), work)


def _document(result: CliResult, code: int) -> dict[str, Any]:
    assert result.returncode == code, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    document: dict[str, Any] = result.json()
    jsonschema.validate(document, load_schema("verify"))
    return document


def _held(document: dict[str, Any]) -> dict[str, bool]:
    return {entry["spec"]: entry["satisfied"] for entry in document["requirements"]}


@pytest.mark.parametrize("tag", ["spdx", "cdx"])
def test_sbom_attestation_counts_as_an_sbom(attested: Attested, tag: str) -> None:
    """An attested SBOM is the SBOM, as its producer meant: ``sbom``, not also an ``attestation``."""
    assert _held(_document(attested.verify(tag, "sbom"), EXIT_OK)) == {"sbom": True}
    if tag == "cdx":  # its one bundle is a CycloneDX statement (spdx also has a provenance attestation)
        document = _document(attested.verify(tag, "sbom", "attestation"), EXIT_VERIFICATION_FAILED)
        assert _held(document) == {"sbom": True, "attestation": False}


def test_provenance_attestation_is_not_an_sbom_whatever_the_listing_claims(attested: Attested) -> None:
    document = _document(attested.verify("prov", "sbom", "attestation", "signature"), EXIT_VERIFICATION_FAILED)
    assert _held(document) == {"sbom": False, "attestation": True, "signature": False}
    assert sorted(document["missing"]) == ["sbom", "signature"]


def test_predicate_type_requirement_matches_the_manifest_annotation(attested: Attested) -> None:
    ok = _document(attested.verify("spdx", f"attestation:{PROVENANCE}", f"attestation:{SPDX}",
                                   "attestation*1", "sbom*1"), EXIT_OK)
    assert all(_held(ok).values())
    # the cdx listing claims provenance; the manifest says CycloneDX
    failed = _document(attested.verify("cdx", f"attestation:{PROVENANCE}", f"Attestation:{CYCLONEDX}"),
                       EXIT_VERIFICATION_FAILED)
    assert _held(failed) == {f"attestation:{PROVENANCE}": False, f"attestation:{CYCLONEDX}": True}


def test_predicate_type_counts_and_case(attested: Attested) -> None:
    document = _document(attested.verify("spdx", f"attestation:{PROVENANCE}*2", "sbom*2",
                                         "attestation:https://SLSA.dev/provenance/v1",
                                         "attestation:https://spdx.dev/Document"), EXIT_VERIFICATION_FAILED)
    # one provenance statement is not two; an SBOM and a provenance are one SBOM; predicate types are compared
    # case-sensitively and without version folding
    assert not any(_held(document).values())
    assert _document(attested.verify("none", f"attestation:{PROVENANCE}"), EXIT_VERIFICATION_FAILED)["ok"] is False
