"""``verify --require`` specs: aliases, chains, counts, files, durations, and the errors that name the fix."""

from __future__ import annotations

import pytest
from harness.oci import CYCLONEDX, NOTARY, SIGSTORE_BUNDLE

from ci_oras.errors import EXIT_USAGE, UsageError
from ci_oras.requirements import (
    ALIASES,
    ANNOTATION_PREDICATE_TYPE,
    SIGSTORE_BUNDLES,
    Requirement,
    merge,
    normalize_media_type,
    parse_duration,
    parse_requirement,
    parse_requirement_file,
    parse_requirements,
)

PREDICATE = {ANNOTATION_PREDICATE_TYPE: "https://slsa.dev/provenance/v1"}


def _matches(spec: str, artifact_type: str | None, annotations: dict[str, str] | None = None) -> bool:
    requirement = parse_requirement(spec)
    assert len(requirement.chain) == 1
    return requirement.chain[0].matches(artifact_type, annotations or {})


# -- aliases -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("artifact_type", [
    CYCLONEDX, "application/vnd.cyclonedx+xml", "application/spdx+json", "text/spdx",
])
def test_sbom_alias_covers_cyclonedx_and_spdx(artifact_type: str) -> None:
    assert _matches("sbom", artifact_type)
    assert not _matches("signature", artifact_type)


@pytest.mark.parametrize("artifact_type", [
    NOTARY, "application/vnd.dev.cosign.artifact.sig.v1+json", *SIGSTORE_BUNDLES,
    "application/vnd.dev.sigstore.bundle+json; version=0.2",  # spacing as some tools write it
])
def test_signature_alias(artifact_type: str) -> None:
    assert _matches("signature", artifact_type)
    assert not _matches("attestation", artifact_type)


@pytest.mark.parametrize("artifact_type", [
    "application/vnd.in-toto+json", "application/vnd.dsse.envelope.v1+json",
    "application/vnd.dev.cosign.attestation.v1+json",
])
def test_attestation_alias(artifact_type: str) -> None:
    assert _matches("attestation", artifact_type)
    assert not _matches("signature", artifact_type)


@pytest.mark.parametrize("bundle", SIGSTORE_BUNDLES)
def test_sigstore_bundle_with_predicate_is_an_attestation_not_a_signature(bundle: str) -> None:
    assert _matches("attestation", bundle, PREDICATE)
    assert not _matches("signature", bundle, PREDICATE)
    assert _matches("signature", bundle, {ANNOTATION_PREDICATE_TYPE: ""})  # empty counts as absent
    assert not _matches("attestation", bundle)


def test_media_type_written_out_ignores_annotations() -> None:
    assert _matches(SIGSTORE_BUNDLE, SIGSTORE_BUNDLE, PREDICATE)
    assert _matches(SIGSTORE_BUNDLE, SIGSTORE_BUNDLE)


@pytest.mark.parametrize("artifact_type", [
    "application/sarif+json", "application/vnd.aquasec.trivy.report.v1+json",
    "application/vnd.aquasecurity.trivy.report.sarif.v1", "vnd.aquasecurity.trivy.report.sarif.v1",
    "application/vnd.anchore.grype.report.v1+json", "application/vnd.openvex+json",
])
def test_vuln_report_alias(artifact_type: str) -> None:
    assert _matches("vuln-report", artifact_type)


def test_no_artifact_type_matches_nothing() -> None:
    for name in ALIASES:
        assert not _matches(name, None)
        assert not _matches(name, "")


def test_aliases_are_case_insensitive_and_canonical() -> None:
    assert parse_requirement("  SBOM ").spec == "sbom"
    assert parse_requirement("Signature").chain == parse_requirement("signature").chain


def test_alias_families_do_not_overlap_except_through_the_predicate_rule() -> None:
    plain = {name: set(alias.types) for name, alias in ALIASES.items()}
    names = list(plain)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not plain[first] & plain[second], (first, second)


# -- media types -------------------------------------------------------------------------------------------


def test_media_type_is_normalised_for_matching() -> None:
    requirement = parse_requirement("Application/VND.CycloneDX+JSON")
    assert requirement.spec == CYCLONEDX
    assert requirement.chain[0].matches(CYCLONEDX, {})
    assert requirement.chain[0].matches("application/vnd.cyclonedx+json", {})
    assert not requirement.chain[0].matches("application/vnd.cyclonedx+xml", {})
    assert requirement.chain[0].may_match("APPLICATION/vnd.cyclonedx+json")
    assert not requirement.chain[0].may_match(None)


def test_media_type_parameters() -> None:
    requirement = parse_requirement("application/vnd.dev.sigstore.bundle+json ; version = 0.3")
    assert requirement.spec == "application/vnd.dev.sigstore.bundle+json;version=0.3"
    assert requirement.chain[0].matches("application/vnd.dev.sigstore.bundle+json;version=0.3", {})
    assert normalize_media_type("A/B; X=1;y = 2") == "a/b;x=1;y=2"


# -- chains and counts -------------------------------------------------------------------------------------


def test_chain_of_any_length() -> None:
    requirement = parse_requirement("sbom > signature>application/vnd.example.countersig.v1")
    assert [m.text for m in requirement.chain] == ["sbom", "signature", "application/vnd.example.countersig.v1"]
    assert requirement.count == 1
    assert requirement.spec == "sbom>signature>application/vnd.example.countersig.v1"


@pytest.mark.parametrize(("spec", "count", "canonical"), [
    ("signature*2", 2, "signature*2"),
    ("signature * 3", 3, "signature*3"),
    ("sbom>signature*2", 2, "sbom>signature*2"),
    ("sbom*1", 1, "sbom"),
    ("application/spdx+json*4", 4, "application/spdx+json*4"),
])
def test_count_suffix(spec: str, count: int, canonical: str) -> None:
    requirement = parse_requirement(spec)
    assert requirement.count == count
    assert requirement.spec == canonical
    assert str(requirement) == canonical


# -- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "problem", "fix"), [
    ("", "empty requirement", "alias or an artifact type"),
    ("   ", "empty requirement", "alias or an artifact type"),
    ("sbm", "unknown alias 'sbm'", "did you mean 'sbom'"),
    ("provenance", "unknown alias 'provenance'", "sbom, signature, attestation, vuln-report"),
    ("sbom>", "empty element", "both sides of every '>'"),
    (">signature", "empty element", "both sides of every '>'"),
    ("sbom>>signature", "empty element", "both sides of every '>'"),
    ("signature*", "count '' after '*' is not a number", "*N"),
    ("signature*two", "count 'two' after '*' is not a number", "*N"),
    ("signature*-1", "count '-1'", "*N"),
    ("signature*1.5", "count '1.5'", "*N"),
    ("signature*0", "count of 0", "*1 or more"),
    ("*2", "nothing before the count", "what to count"),
    ("sbom*2>signature", "count inside the chain", "end of the whole spec"),
    ("sbom*2*3", "count inside the chain", "end of the whole spec"),
    ("application/", "is not a media type", "type/subtype"),
    ("application/x y", "is not a media type", "type/subtype"),
    ("application/x;version", "is not a media type", "type/subtype"),
])
def test_bad_specs_name_the_spec_and_the_fix(spec: str, problem: str, fix: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_requirement(spec)
    assert caught.value.exit_code == EXIT_USAGE
    text = str(caught.value)
    assert problem in text
    assert fix in text
    if spec.strip():
        assert repr(spec.strip()) in text


# -- several specs -----------------------------------------------------------------------------------------


def test_require_values_split_on_commas_and_deduplicate() -> None:
    found = parse_requirements(["sbom, signature", "SBOM", "sbom>signature", " sbom > signature "])
    assert [r.spec for r in found] == ["sbom", "signature", "sbom>signature"]


def test_empty_spec_between_commas_is_refused() -> None:
    with pytest.raises(UsageError, match="empty spec between commas"):
        parse_requirements(["sbom,,signature"])


def test_differently_spelled_media_types_are_one_requirement() -> None:
    found = parse_requirements(["application/SPDX+json", "application/spdx+json"])
    assert len(found) == 1


def test_requirement_file_comments_blank_lines_and_commas() -> None:
    text = (
        "# gate for prod\n"
        "\n"
        "sbom            # any SBOM\n"
        "   signature*2\n"
        "sbom > signature, vuln-report\n"
        "\t\n"
        "application/vnd.example#not-a-comment+json\n"
        "sbom\n"
    )
    found = parse_requirement_file(text, "gate.txt")
    assert [r.spec for r in found] == [
        "sbom", "signature*2", "sbom>signature", "vuln-report", "application/vnd.example#not-a-comment+json",
    ]


def test_requirement_file_errors_name_file_and_line() -> None:
    with pytest.raises(UsageError) as caught:
        parse_requirement_file("sbom\n# fine\nsignatur\n", "gate.txt")
    assert "gate.txt:3:" in str(caught.value)
    assert "did you mean 'signature'" in str(caught.value)


def test_empty_requirement_file_gives_nothing() -> None:
    assert parse_requirement_file("# nothing\n\n", "gate.txt") == []


def test_merge_keeps_first_order() -> None:
    first = parse_requirements(["signature", "sbom"])
    second = parse_requirement_file("sbom\nattestation\n", "f")
    assert [r.spec for r in merge(first, second)] == ["signature", "sbom", "attestation"]


def test_requirements_are_hashable_values() -> None:
    assert {parse_requirement("sbom>signature"), parse_requirement("sbom > signature")} == {
        parse_requirement("sbom>signature")}
    assert isinstance(parse_requirement("sbom"), Requirement)


# -- durations ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("45", 45.0), ("2.5", 2.5), ("30s", 30.0), ("2m", 120.0), ("1m30s", 90.0),
    ("1h", 3600.0), ("1h2m3s", 3723.0), ("500ms", 0.5), ("1.5s", 1.5), (" 10S ", 10.0), ("1d", 86400.0),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--wait") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1m30", "5 s", "-1", "-5s", "s", "1x", "nan", "inf", "m30s", "2d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text, "--wait")
    assert "--wait" in str(caught.value)
    assert "30s, 2m, 1m30s" in str(caught.value)


def test_a_longer_maximum_admits_a_signature_lifetime_and_names_itself() -> None:
    assert parse_duration("90d", "--expiry", 365 * 86400.0) == 90 * 86400.0
    with pytest.raises(UsageError, match="the maximum is 24h"):
        parse_duration("2d", "--wait")
    with pytest.raises(UsageError, match="the maximum is 365d"):
        parse_duration("400d", "--expiry", 365 * 86400.0)


@pytest.mark.parametrize("predicate", [
    "https://spdx.dev/Document", "https://spdx.dev/Document/v2.3", "https://cyclonedx.org/bom",
    "https://cyclonedx.org/bom/v1.5", "https://cyclonedx.org/bom/1.6",
])
@pytest.mark.parametrize("bundle", SIGSTORE_BUNDLES)
def test_sigstore_bundle_of_an_sbom_predicate_is_an_sbom(bundle: str, predicate: str) -> None:
    annotations = {ANNOTATION_PREDICATE_TYPE: predicate}
    assert _matches("sbom", bundle, annotations)
    assert not _matches("attestation", bundle, annotations), "an attested SBOM is an sbom, as its producer meant"
    assert not _matches("signature", bundle, annotations)
    assert _matches(f"attestation:{predicate}", bundle, annotations), "named exactly, any predicate matches"


@pytest.mark.parametrize("predicate", ["https://sigstore.dev/cosign/sign/v1", "https://sigstore.dev/cosign/sign"])
@pytest.mark.parametrize("bundle", SIGSTORE_BUNDLES)
def test_cosign_v3_sign_statement_is_a_signature_not_an_attestation(bundle: str, predicate: str) -> None:
    annotations = {ANNOTATION_PREDICATE_TYPE: predicate}
    assert _matches("signature", bundle, annotations)
    assert not _matches("attestation", bundle, annotations)
    assert not _matches("sbom", bundle, annotations)


@pytest.mark.parametrize("predicate", ["https://slsa.dev/provenance/v1", "https://in-toto.io/attestation/vulns/v0.1",
                                       "https://sigstore.dev/cosign/signature", "https://sigstore.dev/cosign/sign/x"])
def test_every_other_predicate_is_an_attestation(predicate: str) -> None:
    annotations = {ANNOTATION_PREDICATE_TYPE: predicate}
    assert _matches("attestation", SIGSTORE_BUNDLE, annotations)
    assert not _matches("signature", SIGSTORE_BUNDLE, annotations)


@pytest.mark.parametrize("predicate", [
    "https://slsa.dev/provenance/v1", "https://spdx.dev/Documentary", "https://spdx.dev/Document/extra",
    "https://cyclonedx.org/vex", "", "HTTPS://SPDX.DEV/DOCUMENT",
])
def test_sigstore_bundle_of_another_predicate_is_not_an_sbom(predicate: str) -> None:
    assert not _matches("sbom", SIGSTORE_BUNDLE, {ANNOTATION_PREDICATE_TYPE: predicate})
    assert not _matches("sbom", SIGSTORE_BUNDLE)
    # an SBOM predicate on an in-toto type that is not a Sigstore bundle does not make it an SBOM either
    assert not _matches("sbom", "application/vnd.in-toto+json", {ANNOTATION_PREDICATE_TYPE: "https://spdx.dev/Document"})


def test_attestation_predicate_type_requirement_matches_that_predicate_exactly() -> None:
    spec = "attestation:https://slsa.dev/provenance/v1"
    assert _matches(spec, SIGSTORE_BUNDLE, PREDICATE)
    assert _matches(spec, "application/vnd.dev.sigstore.bundle+json;version=0.2", PREDICATE)
    assert not _matches(spec, SIGSTORE_BUNDLE,
                        {ANNOTATION_PREDICATE_TYPE: "https://slsa.dev/provenance/v0.2"})
    assert not _matches(spec, SIGSTORE_BUNDLE, {ANNOTATION_PREDICATE_TYPE: "https://SLSA.dev/provenance/v1"})
    assert not _matches(spec, SIGSTORE_BUNDLE)
    assert not _matches(spec, "application/vnd.in-toto+json", PREDICATE)  # no bundle, no predicate to read
    # the prefix is case-insensitive and canonical; the URI keeps its case
    assert parse_requirement(" Attestation: https://Example.test/P ").spec == "attestation:https://Example.test/P"


def test_attestation_predicate_type_in_chains_counts_and_lists() -> None:
    requirement = parse_requirement("sbom > attestation:https://slsa.dev/provenance/v1 * 2")
    assert requirement.spec == "sbom>attestation:https://slsa.dev/provenance/v1*2"
    assert requirement.count == 2
    found = parse_requirements(["attestation:https://spdx.dev/Document,signature"])
    assert [r.spec for r in found] == ["attestation:https://spdx.dev/Document", "signature"]
    from_file = parse_requirement_file("attestation:https://slsa.dev/provenance/v1  # provenance\n", "req.txt")
    assert [r.spec for r in from_file] == ["attestation:https://slsa.dev/provenance/v1"]


@pytest.mark.parametrize("spec", ["attestation:", "attestation:provenance", "attestation:https://a b",
                                  "attestation:/no/scheme"])
def test_attestation_predicate_type_must_be_a_uri(spec: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_requirement(spec)
    assert info.value.exit_code == EXIT_USAGE
    assert "predicate type" in info.value.message and "attestation:https://" in (info.value.hint or "")
