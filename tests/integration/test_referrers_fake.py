"""Referrers against the spec-faithful fake registry: the native API, its absence and the registry quirks.

distribution (the real registry of the other integration tests) has no referrers API, so every path that
depends on one — ``OCI-Subject``, server-side ``artifactType`` filtering, ``Link`` pages, lost list updates —
and the quirks of registries in the wild (HTML on the referrers path, GitLab's dash tag resolving to the
subject) are exercised here, through the real CLI. Content the client reads is seeded by raw HTTP, so a
symmetric bug in the client's writing and reading cannot hide itself. Each test asserts the outcome and the
requests the fake recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from harness.cli import CliResult, clean_env
from harness.fake_registry import FakeRegistry, FakeRequest
from harness.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    compact,
    digest_of,
    fallback_tag,
    push_blob,
    push_image,
    push_index,
    push_manifest,
    push_referrer,
    subject_of,
    with_platform,
)

from ci_oras.errors import EXIT_NOT_FOUND, EXIT_REGISTRY, EXIT_USAGE
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.reference import parse_reference
from ci_oras.registry.referrers import ReferrersMode
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime

FakeFactory = Callable[..., FakeRegistry]

REPORT = "application/vnd.example.report.v1"
SIGNATURE = "application/vnd.example.signature.v1"
SBOM = "application/vnd.example.sbom.v1"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
IMAGE_LAYER = "application/vnd.oci.image.layer.v1.tar"


# -- seeding by raw HTTP -------------------------------------------------------------------------------------


def seed_image(client: httpx.Client, fake: FakeRegistry, repo: str, tag: str = "v1") -> dict[str, Any]:
    """A tagged one-layer image; returns its descriptor (as a subject is written)."""
    return subject_of(push_image(client, fake.url, repo, tag=tag, layer=f"image {repo}:{tag}\n".encode()))


def seed_platform_index(client: httpx.Client, base: str, repo: str, tag: str) -> tuple[dict[str, Any],
                                                                                      dict[str, dict[str, Any]]]:
    """A multi-arch image: two image manifests (linux/amd64, linux/arm64) in an index tagged ``tag``."""
    children: dict[str, dict[str, Any]] = {}
    for arch in ("amd64", "arm64"):
        config = compact({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
        layer = f"{arch} root filesystem\n".encode()
        config_digest = push_blob(client, base, repo, config)
        layer_digest = push_blob(client, base, repo, layer)
        raw = compact({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": IMAGE_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": IMAGE_LAYER, "digest": layer_digest, "size": len(layer)}],
        })
        digest = push_manifest(client, base, repo, digest_of(raw), raw)
        image = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)}
        children[f"linux/{arch}"] = with_platform(image, f"linux/{arch}")
    return push_index(client, base, repo, tag, list(children.values())), children


# -- what the fake recorded ------------------------------------------------------------------------------------


def referrers_gets(fake: FakeRegistry) -> list[FakeRequest]:
    return [r for r in fake.requests if r.method == "GET" and "/referrers/" in r.path]


def fallback_requests(fake: FakeRegistry, subject_digest: str, method: str | None = None) -> list[FakeRequest]:
    tag = fallback_tag(subject_digest)
    return [r for r in fake.requests
            if r.path.endswith(f"/manifests/{tag}") and (method is None or r.method == method)]


def manifest_puts(fake: FakeRegistry, reference: str) -> list[FakeRequest]:
    return [r for r in fake.requests if r.method == "PUT" and r.path.endswith(f"/manifests/{reference}")]


def fallback_index(fake: FakeRegistry, repo: str, subject_digest: str) -> list[str]:
    stored = fake.manifest(repo, fallback_tag(subject_digest))
    assert stored is not None, f"no fallback index {fallback_tag(subject_digest)}"
    assert stored.media_type == OCI_INDEX
    return [entry["digest"] for entry in stored.json()["manifests"]]


# -- the CLI ---------------------------------------------------------------------------------------------------


def attach(cli: Callable[..., CliResult], tmp_path: Path, subject: str, name: str, *extra: str,
           artifact_type: str = REPORT) -> dict[str, Any]:
    (tmp_path / name).write_text(f"contents of {name}\n")
    result = cli("attach", subject, name, "--artifact-type", artifact_type, "--output", "json", *extra)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def attach_unannounced(fake: FakeRegistry, client: httpx.Client, cli: Callable[..., CliResult],
                       tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Seed ``app:v1`` and attach a report to it, on a registry whose answer to the report's PUT carries no
    ``OCI-Subject`` (the client is not told the registry listed it); returns both descriptors."""
    subject = seed_image(client, fake, "app")
    fake.clear()
    attached = attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt")
    (put,) = manifest_puts(fake, attached["digest"])
    assert put.response_header("OCI-Subject") is None
    return subject, attached


def discover(cli: Callable[..., CliResult], reference: str, *extra: str) -> dict[str, Any]:
    result = cli("discover", reference, "--output", "json", *extra)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def digests(nodes: list[dict[str, Any]]) -> list[str]:
    return [node["digest"] for node in nodes]


def _open(run: Runtime, reference: str, mode: ReferrersMode = ReferrersMode.auto) -> Any:
    return run.open(parse_reference(reference), referrers=mode)


# -- 1. API with OCI-Subject -----------------------------------------------------------------------------------


def test_api_attach_is_listed_by_api_and_writes_no_fallback_tag(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry()
    subject = seed_image(client, fake, "app")
    fake.clear()

    attached = attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt")
    assert attached["subject"]["digest"] == subject["digest"]
    (put,) = manifest_puts(fake, attached["digest"])
    assert put.response_header("OCI-Subject") == subject["digest"]
    assert fake.tags("app") == ["v1"], "the tag schema must not be used when the registry confirms the subject"
    assert not fallback_requests(fake, subject["digest"]), "neither read nor written"
    assert [d["digest"] for d in fake.referrers("app", subject["digest"])] == [attached["digest"]]
    # The client read the list back once to confirm it (the spec does not promise the list is updated).
    assert len(referrers_gets(fake)) == 1

    fake.clear()
    found = discover(cli, f"{fake.host}/app:v1")
    assert digests(found["referrers"]) == [attached["digest"]]
    assert found["referrers"][0]["artifactType"] == REPORT
    assert found["count"] == 1
    listed = referrers_gets(fake)
    assert [r.path for r in listed] == [f"/v2/app/referrers/{subject['digest']}",
                                        f"/v2/app/referrers/{attached['digest']}"]
    assert all(r.status == 200 and r.response_header("Content-Type") == OCI_INDEX for r in listed)
    assert not fallback_requests(fake, subject["digest"])
    assert not fallback_requests(fake, attached["digest"])


def test_api_answer_is_remembered_per_repository(fake_registry: FakeFactory, client: httpx.Client,
                                                 tmp_path: Path) -> None:
    fake = fake_registry()
    subject = seed_image(client, fake, "app")
    push_referrer(client, fake.url, "app", subject, REPORT, b"report")
    fake.clear()

    run = Runtime(TransportOptions(), LoginFlags(), clean_env(tmp_path))
    try:
        target = _open(run, f"{fake.host}/app:v1")
        desc = Descriptor.from_dict(subject)
        first = target.referrers(desc)
        second = target.referrers(desc)
        again = _open(run, f"{fake.host}/app:v1").referrers(desc)  # a second open in the same run
        assert [d.artifact_type for d in first] == [REPORT]
        assert first == second == again
        assert target.client.referrers_api == {"app": True}
    finally:
        run.close()
    # Each listing is one API request, never followed by a look at the fallback tag.
    assert len(referrers_gets(fake)) == 3
    assert not fallback_requests(fake, subject["digest"])


# -- 2. API without OCI-Subject ----------------------------------------------------------------------------------


def test_api_without_oci_subject_header_maintains_the_fallback_index(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry(oci_subject_header=False)
    subject, attached = attach_unannounced(fake, client, cli, tmp_path)
    # Without the header the client cannot know the registry listed it: it keeps the tag schema up to date.
    assert fallback_tag(subject["digest"]) in fake.tags("app")
    assert fallback_index(fake, "app", subject["digest"]) == [attached["digest"]]
    assert manifest_puts(fake, fallback_tag(subject["digest"]))

    fake.clear()
    found = discover(cli, f"{fake.host}/app:v1")
    assert digests(found["referrers"]) == [attached["digest"]]
    assert found["count"] == 1


# -- 3. artifactType filtering -----------------------------------------------------------------------------------


def test_artifact_type_filter_is_applied_here_case_insensitively(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """The registry's filter (the fake applies it, as the spec says, exactly) would miss a type spelled in
    another case, so listings go unfiltered and the type is matched here — also in the library's listing."""
    fake = fake_registry(filter_header=True)
    subject = seed_image(client, fake, "app")
    report = push_referrer(client, fake.url, "app", subject, REPORT, b"report")
    signature = push_referrer(client, fake.url, "app", subject, SIGNATURE.upper(), b"signature")
    fake.clear()

    found = discover(cli, f"{fake.host}/app:v1", "--artifact-type", SIGNATURE)
    assert digests(found["referrers"]) == [signature["digest"]]
    assert [r.params for r in referrers_gets(fake)] == [{}, {}], "the image and the signature, unfiltered"

    fake.clear()
    run = Runtime(TransportOptions(), LoginFlags(), clean_env(tmp_path))
    try:
        listed = _open(run, f"{fake.host}/app:v1").referrers(Descriptor.from_dict(subject), SIGNATURE)
    finally:
        run.close()
    assert [d.digest for d in listed] == [signature["digest"]]
    assert report["digest"] not in [d.digest for d in listed]
    (request,) = referrers_gets(fake)
    assert request.params == {}


# -- 4. pagination ---------------------------------------------------------------------------------------------


def test_discover_follows_link_pages(fake_registry: FakeFactory, client: httpx.Client,
                                     cli: Callable[..., CliResult]) -> None:
    fake = fake_registry(page_size=2)
    subject = seed_image(client, fake, "app")
    seeded = [push_referrer(client, fake.url, "app", subject, REPORT, f"report {n}".encode())["digest"]
              for n in range(5)]
    fake.clear()

    found = discover(cli, f"{fake.host}/app:v1", "--depth", "1")
    assert digests(found["referrers"]) == seeded
    pages = referrers_gets(fake)
    assert len(pages) == 3
    assert "_cursor" not in pages[0].params
    assert all("_cursor" in page.params for page in pages[1:])
    assert pages[0].response_header("Link") and pages[1].response_header("Link")
    assert pages[2].response_header("Link") is None


# -- 5. no API: tag schema, answer remembered --------------------------------------------------------------------


def test_without_api_the_tag_schema_is_used_and_probed_once(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry(referrers_api=False)
    subject, attached = attach_unannounced(fake, client, cli, tmp_path)
    assert fallback_index(fake, "app", subject["digest"]) == [attached["digest"]]
    stored, referrer = fake.manifest("app", fallback_tag(subject["digest"])), fake.manifest("app", attached["digest"])
    assert stored is not None and referrer is not None
    # The fallback index lists the referrer as the API would: type, size, artifactType and annotations.
    assert stored.json()["manifests"] == [referrer.descriptor()]

    fake.clear()
    found = discover(cli, f"{fake.host}/app:v1")
    assert digests(found["referrers"]) == [attached["digest"]]
    # Two levels listed (the image, then the report), one probe: the 404 is remembered for the repository.
    (probe,) = referrers_gets(fake)
    assert probe.status == 404
    assert (probe.response_header("Content-Type") or "").startswith("text/plain")
    assert len(fallback_requests(fake, subject["digest"], "GET")) == 1
    assert len(fallback_requests(fake, attached["digest"], "GET")) == 1


def test_missing_api_is_remembered_per_repository_within_a_run(fake_registry: FakeFactory, client: httpx.Client,
                                                                tmp_path: Path) -> None:
    fake = fake_registry(referrers_api=False)
    subjects = {repo: seed_image(client, fake, repo) for repo in ("one", "two")}
    fake.clear()

    run = Runtime(TransportOptions(), LoginFlags(), clean_env(tmp_path))
    try:
        for repo, subject in subjects.items():
            desc = Descriptor.from_dict(subject)
            target = _open(run, f"{fake.host}/{repo}:v1")
            assert target.referrers(desc) == []
            assert target.referrers(desc) == []
            assert _open(run, f"{fake.host}/{repo}:v1").referrers(desc) == []
        assert target.client.referrers_api == {"one": False, "two": False}
    finally:
        run.close()
    assert sorted(r.path.split("/")[2] for r in referrers_gets(fake)) == ["one", "two"]
    for subject in subjects.values():
        assert len(fallback_requests(fake, subject["digest"], "GET")) == 3


# -- 6. HTML on the referrers path -------------------------------------------------------------------------------


def test_html_answer_means_no_api(fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult],
                                  tmp_path: Path) -> None:
    fake = fake_registry(html_referrers=True)
    subject = seed_image(client, fake, "app")
    fake.clear()

    attached = attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt")
    # This fake still sends OCI-Subject; the read-back gets HTML, so the client falls back to the tag schema.
    html = referrers_gets(fake)
    assert html and all(r.status == 200 and (r.response_header("Content-Type") or "").startswith("text/html")
                        for r in html)
    assert fallback_index(fake, "app", subject["digest"]) == [attached["digest"]]

    fake.clear()
    found = discover(cli, f"{fake.host}/app:v1")
    assert digests(found["referrers"]) == [attached["digest"]]
    assert len(referrers_gets(fake)) == 1
    assert fallback_requests(fake, subject["digest"], "GET")


# -- 7. GitLab's dash tag that resolves to the subject -------------------------------------------------------------


def test_dash_tag_resolving_to_the_subject_is_ignored(fake_registry: FakeFactory, client: httpx.Client,
                                                      cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry(referrers_api=False, dash_tag_returns_subject=True)
    index, children = seed_platform_index(client, fake.url, "app", "v1")
    fake.clear()

    # sha256-<hex> of the index answers the index itself: its children must not show up as referrers.
    before = discover(cli, f"{fake.host}/app:v1")
    assert before["referrers"] == [] and before["count"] == 0
    (tag_read,) = fallback_requests(fake, index["digest"], "GET")
    assert tag_read.status == 200 and tag_read.response_header("Docker-Content-Digest") == index["digest"]
    # Same for an image manifest (the "index" is not an index at all).
    child = children["linux/arm64"]["digest"]
    assert discover(cli, f"{fake.host}/app@{child}")["referrers"] == []

    fake.clear()
    attached = attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt")
    # A real referrers index now sits at the tag, listing only the referrer — not the subject's children.
    assert fallback_index(fake, "app", index["digest"]) == [attached["digest"]]
    after = discover(cli, f"{fake.host}/app:v1")
    assert digests(after["referrers"]) == [attached["digest"]]
    assert after["count"] == 1


# -- 8. lost list updates ----------------------------------------------------------------------------------------


def test_dropped_referrers_update_is_repaired_by_a_second_put(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry(drop_referrer_updates=1)
    subject = seed_image(client, fake, "app")
    fake.clear()

    attached = attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt")
    assert [d["digest"] for d in fake.referrers("app", subject["digest"])] == [attached["digest"]]
    puts = manifest_puts(fake, attached["digest"])
    assert len(puts) == 2
    assert all(p.status == 201 and p.response_header("OCI-Subject") == subject["digest"] for p in puts)
    assert len(referrers_gets(fake)) == 2  # missing after the first PUT, listed after the second
    assert fake.tags("app") == ["v1"]


# -- 9. --referrers tag|api --------------------------------------------------------------------------------------


def test_referrers_tag_forces_the_tag_schema_on_an_api_registry(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry()
    subject = seed_image(client, fake, "app")
    fake.clear()

    attached = attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt", "--referrers", "tag")
    assert fallback_index(fake, "app", subject["digest"]) == [attached["digest"]]
    assert referrers_gets(fake) == []

    fake.clear()
    found = discover(cli, f"{fake.host}/app:v1", "--referrers", "tag")
    assert digests(found["referrers"]) == [attached["digest"]]
    assert referrers_gets(fake) == []
    assert fallback_requests(fake, subject["digest"], "GET")


def test_referrers_api_trusts_the_api_without_oci_subject(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    # Forced to the API, a missing OCI-Subject header is no reason for the tag schema: the read-back decides.
    fake = fake_registry(oci_subject_header=False)
    subject = seed_image(client, fake, "app")
    fake.clear()

    attached = attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt", "--referrers", "api")
    assert fake.tags("app") == ["v1"]
    assert not fallback_requests(fake, subject["digest"])
    # The probe before pushing (so a registry without the API is refused before anything is written),
    # then the read-back that confirms the listing.
    assert [r.status for r in referrers_gets(fake)] == [200, 200]
    assert [d["digest"] for d in fake.referrers("app", subject["digest"])] == [attached["digest"]]


def test_referrers_api_on_a_registry_without_it_fails_clearly(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry(referrers_api=False)
    subject = seed_image(client, fake, "app")
    fake.clear()
    (tmp_path / "report.txt").write_text("report\n")

    attached = cli("attach", f"{fake.host}/app:v1", "report.txt", "--artifact-type", REPORT, "--referrers", "api")
    assert attached.returncode == EXIT_REGISTRY, attached.stderr
    assert "referrers API" in attached.stderr
    assert "--referrers tag" in attached.stderr
    assert attached.stdout == ""
    assert fake.tags("app") == ["v1"], "no fallback index may be written in api mode"
    assert not [r for r in fake.requests if r.method == "PUT" and "/manifests/" in r.path], \
        "the referrer manifest must not be pushed when it could not be listed"

    found = cli("discover", f"{fake.host}/app:v1", "--referrers", "api")
    assert found.returncode == EXIT_REGISTRY, found.stderr
    assert "referrers API" in found.stderr
    assert not fallback_requests(fake, subject["digest"])

    bad = cli("discover", f"{fake.host}/app:v1", "--referrers", "sometimes")
    assert bad.returncode == EXIT_USAGE
    assert "auto, api or tag" in bad.stderr


# -- 11. --platform -----------------------------------------------------------------------------------------------


def test_platform_picks_the_child_of_an_index(fake_registry: FakeFactory, client: httpx.Client,
                                              cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry()
    index, children = seed_platform_index(client, fake.url, "app", "v1")
    arm64 = children["linux/arm64"]["digest"]
    fake.clear()

    attached = attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt", "--platform", "linux/arm64")
    assert attached["subject"] == {"mediaType": OCI_MANIFEST, "digest": arm64,
                                   "size": children["linux/arm64"]["size"]}
    stored = fake.manifest("app", attached["digest"])
    assert stored is not None and stored.subject == arm64
    assert [d["digest"] for d in fake.referrers("app", arm64)] == [attached["digest"]]
    assert fake.referrers("app", index["digest"]) == []

    plain = discover(cli, f"{fake.host}/app:v1")
    assert plain["referrers"] == [] and "manifests" not in plain
    found = discover(cli, f"{fake.host}/app:v1", "--include-children")
    by_digest = {node["digest"]: node for node in found["manifests"]}
    assert set(by_digest) == {children["linux/amd64"]["digest"], arm64}
    assert digests(by_digest[arm64]["referrers"]) == [attached["digest"]]
    assert by_digest[children["linux/amd64"]["digest"]]["referrers"] == []
    assert found["count"] == 1
    tree = cli("discover", f"{fake.host}/app:v1", "--include-children")
    assert tree.returncode == 0, tree.stderr
    assert f"{arm64} [linux/arm64]" in tree.stdout
    assert attached["digest"] in tree.stdout

    fake.clear()
    unknown = cli("attach", f"{fake.host}/app:v1", "report.txt", "--artifact-type", REPORT,
                  "--platform", "linux/s390x")
    assert unknown.returncode == EXIT_NOT_FOUND, unknown.stderr
    assert "linux/s390x" in unknown.stderr
    assert "linux/amd64" in unknown.stderr and "linux/arm64" in unknown.stderr
    on_image = cli("attach", f"{fake.host}/app@{arm64}", "report.txt", "--artifact-type", REPORT,
                   "--platform", "linux/arm64")
    assert on_image.returncode == EXIT_USAGE, on_image.stderr
    assert "not an image index" in on_image.stderr
    malformed = cli("attach", f"{fake.host}/app:v1", "report.txt", "--artifact-type", REPORT, "--platform", "arm64")
    assert malformed.returncode == EXIT_USAGE, malformed.stderr
    assert fake.writes() == [], "nothing may be pushed when the subject cannot be resolved"


# -- 12. subjects: digests, other referrers, missing ones ------------------------------------------------------------


def test_signature_of_an_sbom_found_by_discover(fake_registry: FakeFactory, client: httpx.Client,
                                                cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry()
    subject = seed_image(client, fake, "app")
    by_digest = attach(cli, tmp_path, f"{fake.host}/app@{subject['digest']}", "sbom.json", artifact_type=SBOM)
    assert by_digest["subject"]["digest"] == subject["digest"]
    attach(cli, tmp_path, f"{fake.host}/app:v1", "report.txt")

    sboms = discover(cli, f"{fake.host}/app:v1", "--artifact-type", SBOM)
    assert digests(sboms["referrers"]) == [by_digest["digest"]]
    sbom_digest = sboms["referrers"][0]["digest"]

    signed = attach(cli, tmp_path, f"{fake.host}/app@{sbom_digest}", "sbom.sig", artifact_type=SIGNATURE)
    assert signed["subject"] == {"mediaType": OCI_MANIFEST, "digest": sbom_digest, "size": by_digest["size"]}
    assert signed["reference"] == f"{fake.host}/app@{signed['digest']}"

    graph = discover(cli, f"{fake.host}/app:v1")
    assert graph["count"] == 3
    sbom_node = next(node for node in graph["referrers"] if node["digest"] == sbom_digest)
    assert digests(sbom_node["referrers"]) == [signed["digest"]]
    assert sbom_node["referrers"][0]["artifactType"] == SIGNATURE


def test_attach_to_a_missing_subject_or_without_type(fake_registry: FakeFactory, client: httpx.Client,
                                                     cli: Callable[..., CliResult], tmp_path: Path) -> None:
    fake = fake_registry()
    seed_image(client, fake, "app")
    (tmp_path / "report.txt").write_text("report\n")
    fake.clear()

    missing_digest = "sha256:" + "0" * 64
    for subject in (f"{fake.host}/app@{missing_digest}", f"{fake.host}/app:nope", f"{fake.host}/other:v1"):
        result = cli("attach", subject, "report.txt", "--artifact-type", REPORT)
        assert result.returncode == EXIT_NOT_FOUND, (subject, result.stderr)
        assert result.stdout == ""
    untyped = cli("attach", f"{fake.host}/app:v1", "report.txt")
    assert untyped.returncode == EXIT_USAGE, untyped.stderr
    assert "--artifact-type" in untyped.stderr
    assert fake.writes() == []


def test_missing_api_is_probed_once_even_when_a_level_is_listed_in_parallel(
        fake_registry: FakeFactory, client: httpx.Client, cli: Callable[..., CliResult]) -> None:
    # --include-children lists the index and both children on the first level, concurrently: the "no API"
    # answer is per repository, so one probe must serve all three (and every later level).
    fake = fake_registry(referrers_api=False)
    index, children = seed_platform_index(client, fake.url, "app", "v1")
    fake.clear()

    found = discover(cli, f"{fake.host}/app:v1", "--include-children")
    assert found["count"] == 0 and len(found["manifests"]) == 2
    assert len(referrers_gets(fake)) == 1, [r.target for r in referrers_gets(fake)]
    for digest in (index["digest"], *(child["digest"] for child in children.values())):
        assert len(fallback_requests(fake, digest, "GET")) == 1
