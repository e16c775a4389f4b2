"""verify examines only what its requirements need, and never counts what it has not fetched and checked.

Against a real docker-registry (tag schema: the listing is an index anyone with push access can write) through a
recording proxy, so the requests counted are the ones the CLI really sent. Listings are seeded by raw HTTP with
``org.opencontainers.image.created`` annotations that set the examination order (newest first).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from harness.cli import CliResult, clean_env
from harness.proxy import RegistryProxy
from harness.registry import RunningRegistry
from test_listing_trust import SBOM, SIG, Desc, Repo, as_listed, document, rejections
from test_listing_trust import repo as repo  # noqa: F401  (the fixture)
from test_verify import _verify_then

from ci_oras.errors import EXIT_VERIFICATION_FAILED

CREATED = "org.opencontainers.image.created"
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def dated(desc: Desc, artifact_type: str, hours: int) -> Desc:
    """``desc`` as a listing entry created ``hours`` after 2026-01-01 (RFC 3339, UTC)."""
    created = (EPOCH + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**as_listed(desc, artifact_type), "annotations": {CREATED: created}}


def manifest_gets(proxy: RegistryProxy) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in proxy.requests if r.method == "GET" and "/manifests/sha256:" in r.path]


def test_one_needed_of_many_fetches_only_the_newest(repo: Repo, registry_plain: RunningRegistry,
                                                    cli: Callable[..., CliResult]) -> None:
    subject = repo.image("v1")
    signatures = [repo.referrer(subject, SIG) for _ in range(30)]
    newest = 17
    repo.listing(subject, [dated(s, SIG, 100 if n == newest else n) for n, s in enumerate(signatures)])

    with RegistryProxy(registry_plain) as proxy:
        doc = document(cli("verify", f"{proxy.host}/{repo.name}:v1", "-r", SIG, "-O", "json"), "verify")
        fetched, requests = manifest_gets(proxy), len(proxy.requests)

    (entry,) = doc["requirements"]
    assert entry["found"] == entry["examined"] == [signatures[newest]["digest"]]
    assert entry["candidates"] == 30 and doc["fetches"] == 1
    assert entry["unexamined"] == {"count": 29, "reason": "the requirement held before they were needed"}
    assert fetched == [signatures[newest]["digest"]]
    # the subject, the listing (the API probe and the fallback tag), the one manifest
    assert requests <= 4, requests

    shown = cli("verify", f"{registry_plain.host}/{repo.name}:v1", "-r", SIG)
    assert f"✓ {SIG}: 1 of 1 (examined 1 of 30 candidates)" in shown.stderr.splitlines(), shown.stderr

    with RegistryProxy(registry_plain) as proxy:
        doc = document(cli("verify", f"{proxy.host}/{repo.name}:v1", "-r", f"{SIG}*3", "-O", "json"), "verify")
        fetched = manifest_gets(proxy)
    # the three newest: 17 (hour 100), then 29 and 28
    expected = [signatures[n]["digest"] for n in (newest, 29, 28)]
    assert doc["requirements"][0]["found"] == doc["requirements"][0]["examined"] == expected
    assert sorted(fetched) == sorted(expected) and doc["fetches"] == 3


def test_a_forged_entry_first_costs_one_request_not_a_pass(repo: Repo, registry_plain: RunningRegistry,
                                                           cli: Callable[..., CliResult]) -> None:
    subject = repo.image("v1")
    other = repo.image("other")
    forged = repo.referrer(other, SIG)  # a genuine signature, of another image
    genuine = [repo.referrer(subject, SIG) for _ in range(5)]
    repo.listing(subject, [dated(forged, SIG, 999), *(dated(s, SIG, n) for n, s in enumerate(genuine))])

    with RegistryProxy(registry_plain) as proxy:
        doc = document(cli("verify", f"{proxy.host}/{repo.name}:v1", "-r", SIG, "-O", "json"), "verify")
        fetched = manifest_gets(proxy)
    assert fetched == [forged["digest"], genuine[4]["digest"]]
    assert doc["requirements"][0]["found"] == [genuine[4]["digest"]]
    assert doc["requirements"][0]["examined"] == [forged["digest"], genuine[4]["digest"]]
    assert rejections(doc) == {(forged["digest"], subject["digest"], "subject-mismatch")}

    # forged entries alone never pass, however many are listed
    lone = repo.image("lone")
    repo.listing(lone, [dated(repo.referrer(other, SIG), SIG, n) for n in range(3)])
    doc = document(cli("verify", f"{registry_plain.host}/{repo.name}:lone", "-r", SIG, "-O", "json"), "verify",
                   EXIT_VERIFICATION_FAILED)
    assert doc["requirements"][0]["found"] == [] and len(doc["requirements"][0]["examined"]) == 3
    assert doc["fetches"] == 3 and len(doc["rejected"]) == 3


def test_a_chain_descends_only_until_one_path_holds(repo: Repo, registry_plain: RunningRegistry,
                                                    cli: Callable[..., CliResult]) -> None:
    subject = repo.image("v1")
    sboms = [repo.referrer(subject, SBOM) for _ in range(10)]
    repo.listing(subject, [dated(s, SBOM, n) for n, s in enumerate(sboms)])
    signed = sboms[7]  # the third newest
    signature = repo.referrer(signed, SIG)
    repo.listing(signed, [as_listed(signature, SIG)])

    with RegistryProxy(registry_plain) as proxy:
        doc = document(cli("verify", f"{proxy.host}/{repo.name}:v1", "-r", f"{SBOM}>{SIG}", "-O", "json"),
                       "verify")
        fetched = manifest_gets(proxy)
    (entry,) = doc["requirements"]
    assert entry["paths"] == [[signed["digest"], signature["digest"]]]
    assert entry["examined"] == [sboms[n]["digest"] for n in (9, 8, 7)]
    # the subject's listing, and those of the three SBOMs examined (the first two have none)
    assert doc["listings"] == 4
    assert sorted(fetched) == sorted([sboms[9]["digest"], sboms[8]["digest"], signed["digest"],
                                      signature["digest"]])


def test_wait_fetches_only_entries_it_has_not_met(repo: Repo, registry_plain: RunningRegistry,
                                                  client: httpx.Client, tmp_path: Path) -> None:
    """The first check rejects a forged entry and finds nothing else; the next one lists again and fetches only
    the genuine signature listed meanwhile."""
    subject = repo.image("v1")
    forged = repo.referrer(repo.image("other"), SIG)
    repo.listing(subject, [as_listed(forged, SIG)])
    genuine = repo.referrer(subject, SIG)

    with RegistryProxy(registry_plain) as proxy:
        result = _verify_then((f"{proxy.host}/{repo.name}:v1", "-r", SIG, "--wait", "60", "--interval", "100ms",
                               "-O", "json"), clean_env(tmp_path),
                              lambda: repo.listing(subject, [as_listed(forged, SIG), as_listed(genuine, SIG)]))
        fetched = manifest_gets(proxy)
    doc = document(result, "verify")
    assert doc["attempts"] >= 2 and doc["requirements"][0]["found"] == [genuine["digest"]]
    assert fetched == [forged["digest"], genuine["digest"]], "each listed manifest is fetched once over all checks"
    assert doc["fetches"] == 2
    assert rejections(doc) == {(forged["digest"], subject["digest"], "subject-mismatch")}


def test_wait_reads_an_unchanged_listing_without_its_body(repo: Repo, registry_plain: RunningRegistry,
                                                          tmp_path: Path) -> None:
    """Between checks the fallback index is asked for with If-None-Match (distribution answers 304 while it is
    unchanged); once it changes, it is read again and only its new entry fetched."""
    subject = repo.image("v1")
    forged = repo.referrer(repo.image("other"), SIG)
    repo.listing(subject, [as_listed(forged, SIG)])
    genuine = repo.referrer(subject, SIG)
    tag = f"/manifests/sha256-{subject['digest'].split(':')[1]}"

    with RegistryProxy(registry_plain) as proxy:
        def conditional_reads() -> list[int | None]:
            return [r.status for r in proxy.requests if r.path.endswith(tag) and r.method == "GET"
                    and any(name.lower() == "if-none-match" for name, _ in r.headers)]

        def after_an_unchanged_check() -> None:
            deadline = time.monotonic() + 60
            while 304 not in conditional_reads():
                assert time.monotonic() < deadline, "no conditional read of the listing"
                time.sleep(0.02)
            repo.listing(subject, [as_listed(forged, SIG), as_listed(genuine, SIG)])

        result = _verify_then((f"{proxy.host}/{repo.name}:v1", "-r", SIG, "--wait", "60", "--interval", "100ms",
                               "-O", "json"), clean_env(tmp_path), after_an_unchanged_check)
        statuses = conditional_reads()
        fetched = manifest_gets(proxy)
    doc = document(result, "verify")
    assert doc["requirements"][0]["found"] == [genuine["digest"]]
    # every check after the first asked conditionally; the last one got the changed index whole
    assert statuses[:-1] == [304] * (len(statuses) - 1) and statuses[-1] == 200, statuses
    assert doc["attempts"] == len(statuses) + 1 and doc["unchangedListings"] == len(statuses) - 1
    assert fetched == [forged["digest"], genuine["digest"]]
