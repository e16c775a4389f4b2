"""The checks a listed referrer must pass (``ci_oras.graph.listing``), against an OCI layout on disk.

The layout is a real store: a listed entry is fetched from its files, so a missing or tampered manifest is
met as the steps meet it. The registry reproductions are in tests/integration/test_listing_trust.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from ci_oras.graph.listing import Fetched, Reason, Rejected, check_entries, fetch_listed, judge
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.manifest import Manifest, build_image_manifest
from ci_oras.store.layout import OCILayout

SIG = "application/vnd.example.sig+json"


def manifest(note: str, *, subject: Descriptor | None = None, artifact_type: str = SIG) -> Manifest:
    return build_image_manifest(artifact_type=artifact_type, config=EMPTY_DESCRIPTOR, layers=[], subject=subject,
                                annotations={"note": note})


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    store = OCILayout(tmp_path / "layout", create=True)
    store.push_blob(EMPTY_DESCRIPTOR, [b"{}"])
    return store


def stored(layout: OCILayout, item: Manifest) -> Manifest:
    layout.push_manifest(item)
    return item


def test_an_accepted_entry_is_described_by_its_manifest_not_by_the_listing(layout: OCILayout) -> None:
    subject = stored(layout, manifest("subject", artifact_type="application/vnd.example.image"))
    signature = stored(layout, manifest("signature", subject=subject.descriptor))
    listed = replace(signature.descriptor, artifact_type=SIG.upper(), annotations={"claimed": "yes"})

    accepted = judge(subject.digest, listed, fetch_listed(layout, subject.digest, listed))

    assert accepted == signature.descriptor, "the manifest's own type and annotations, whatever was listed"


def test_each_way_a_listing_can_lie(layout: OCILayout) -> None:
    subject = stored(layout, manifest("subject", artifact_type="application/vnd.example.image"))
    other = stored(layout, manifest("other", artifact_type="application/vnd.example.image"))
    genuine = stored(layout, manifest("genuine", subject=subject.descriptor))
    foreign = stored(layout, manifest("for another image", subject=other.descriptor))
    sbom = stored(layout, manifest("an sbom", subject=subject.descriptor, artifact_type="application/spdx+json"))
    tampered = stored(layout, manifest("tampered", subject=subject.descriptor))
    layout.blob_path(tampered.digest).write_bytes(tampered.raw.replace(b"tampered", b"tampered!"))
    never = manifest("never stored", subject=subject.descriptor)
    entries = [(subject.digest, d) for d in (
        genuine.descriptor, never.descriptor, tampered.descriptor, other.descriptor, foreign.descriptor,
        replace(sbom.descriptor, artifact_type=SIG), subject.descriptor)]
    fetched: dict[str, Fetched] = {}

    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = check_entries(layout, pool, entries, fetched)

    assert verdicts[0] == genuine.descriptor
    reasons = [(v.reason, v.message) for v in verdicts[1:] if isinstance(v, Rejected)]
    assert reasons == [
        (Reason.not_found, "listed but not found (deleted or garbage-collected)"),
        (Reason.digest_mismatch, "the manifest does not match the listed digest"),
        (Reason.subject_mismatch, "not a referrer: the manifest has no subject"),
        (Reason.subject_mismatch, f"the manifest's subject is {other.digest}"),
        (Reason.artifact_type_mismatch, "the manifest's artifactType is application/spdx+json"),
        (Reason.self_reference, "listed as a referrer of itself"),
    ]
    assert subject.digest not in fetched, "a self-entry is rejected without a fetch"
    assert len(fetched) == 6
    # What a delete may treat as its own: a referrer that is gone, or listed with the wrong type.
    assert [v.reason.foreign for v in verdicts[1:] if isinstance(v, Rejected)] == [
        False, True, True, True, False, True]


def test_a_digest_listed_again_is_not_fetched_again(layout: OCILayout) -> None:
    subject = stored(layout, manifest("subject", artifact_type="application/vnd.example.image"))
    signature = stored(layout, manifest("signature", subject=subject.descriptor))
    fetched: dict[str, Fetched] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        check_entries(layout, pool, [(subject.digest, signature.descriptor)], fetched)
        layout.blob_path(signature.digest).unlink()  # a second fetch would now find nothing
        again = check_entries(layout, pool, [(subject.digest, signature.descriptor),
                                             (signature.digest, signature.descriptor)], fetched)
    assert again[0] == signature.descriptor
    assert isinstance(again[1], Rejected) and again[1].reason is Reason.self_reference


def test_the_listed_digest_is_hashed_with_its_own_algorithm(layout: OCILayout) -> None:
    subject = stored(layout, manifest("subject", artifact_type="application/vnd.example.image"))
    signature = stored(layout, manifest("signature", subject=subject.descriptor))
    sha512 = replace(signature.descriptor, digest=digest_bytes(signature.raw, "sha512"))
    assert judge(subject.digest, sha512, signature) == replace(signature.descriptor, digest=sha512.digest)
    wrong = replace(sha512, digest=digest_bytes(b"something else", "sha512"))
    verdict = judge(subject.digest, wrong, signature)
    assert isinstance(verdict, Rejected) and verdict.reason is Reason.digest_mismatch
