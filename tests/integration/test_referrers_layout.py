"""Referrers in an OCI image layout (``oci:PATH``): ORAS's convention of untagged entries in index.json.

No registry is involved: the layout is the embedded default store. Referrers written by ci-oras are listed as
index.json entries without ``org.opencontainers.image.ref.name``; a ``sha256-<hex>`` fallback index that some
other tool wrote into the layout is read too. Several CI jobs attaching to one layout at once must all stay
listed (index.json is rewritten under a lock).

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``): a subprocess would add only its
start-up, some 0.2 s of CPU a run; the process boundary is tested elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from harness.cli import clean_env, expect, invoke_cli
from harness.oci import OCI_MANIFEST, fallback_tag
from harness.oci_layout import REF_NAME, add_tag_schema_referrers, index_entries, tag_entry

REPORT = "application/vnd.example.report.v1"
SIGNATURE = "application/vnd.example.signature.v1"
FOREIGN = "application/vnd.other-tool.attestation.v1"


def _setup(tmp_path: Path) -> tuple[Path, str, dict[str, str], str]:
    """A layout with one pushed artifact tagged v1; returns (layout dir, oci: reference, env, subject digest)."""
    layout = tmp_path / "layout"
    env = clean_env(tmp_path)
    (tmp_path / "app.txt").write_text("the application\n")
    pushed = expect(invoke_cli("push", f"oci:{layout}:v1", "app.txt", "-O", "json", env=env, cwd=tmp_path)).json()
    return layout, f"oci:{layout}", env, pushed["digest"]


def test_attach_and_discover_round_trip(tmp_path: Path) -> None:
    layout, ref, env, subject = _setup(tmp_path)
    (tmp_path / "report.txt").write_text("a report\n")
    (tmp_path / "report.sig").write_text("a signature of the report\n")

    report = expect(invoke_cli("attach", f"{ref}:v1", "report.txt", "--artifact-type", REPORT, "-a", "team=qa",
                         "-O", "json", env=env, cwd=tmp_path)).json()
    assert report["subject"]["digest"] == subject
    assert report["reference"] == f"{ref}@{report['digest']}"
    signature = expect(invoke_cli("attach", f"{ref}@{report['digest']}", "report.sig", "--artifact-type", SIGNATURE,
                            "-O", "json", env=env, cwd=tmp_path)).json()

    entries = index_entries(layout)
    tagged = [e for e in entries if REF_NAME in e.get("annotations", {})]
    untagged = [e for e in entries if REF_NAME not in e.get("annotations", {})]
    assert [(e["digest"], e["annotations"][REF_NAME]) for e in tagged] == [(subject, "v1")]
    assert [(e["digest"], e["mediaType"], e["artifactType"]) for e in untagged] == [
        (report["digest"], OCI_MANIFEST, REPORT), (signature["digest"], OCI_MANIFEST, SIGNATURE)]
    for entry, doc in zip(untagged, (report, signature)):
        assert entry["size"] == doc["size"]
        raw = (layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == entry["digest"].split(":")[1]
        assert json.loads(raw)["subject"]["digest"] == doc["subject"]["digest"]
    assert expect(invoke_cli("tags", ref, env=env)).stdout.split() == ["v1"], "referrers are never tagged"

    found = expect(invoke_cli("discover", f"{ref}:v1", "-O", "json", env=env)).json()
    assert found["count"] == 2
    (node,) = found["referrers"]
    assert (node["digest"], node["artifactType"], node["annotations"]["team"]) == (report["digest"], REPORT, "qa")
    assert [n["digest"] for n in node["referrers"]] == [signature["digest"]]
    only = expect(invoke_cli("discover", f"{ref}:v1", "--artifact-type", SIGNATURE, "-O", "json", env=env)).json()
    assert only["referrers"] == []  # the filter applies at every level: the report is not a signature
    tree = expect(invoke_cli("discover", f"{ref}:v1", env=env)).stdout
    assert report["digest"] in tree and signature["digest"] in tree


def test_fallback_index_written_by_another_tool_is_read(tmp_path: Path) -> None:
    layout, ref, env, subject = _setup(tmp_path)
    (tmp_path / "report.txt").write_text("a report\n")
    ours = expect(invoke_cli("attach", f"{ref}:v1", "report.txt", "--artifact-type", REPORT, "-O", "json",
                       env=env, cwd=tmp_path)).json()

    # Another tool stored an attestation only in the tag schema: a referrer manifest (not listed in index.json)
    # and an index tagged sha256-<hex> listing it.
    (foreign,), fallback = add_tag_schema_referrers(layout, subject, FOREIGN, [
        ("application/json", b'{"predicate": "attested"}',
         {"org.opencontainers.image.created": "2024-05-02T10:15:30Z"})])

    found = expect(invoke_cli("discover", f"{ref}:v1", "-O", "json", env=env)).json()
    by_digest = {n["digest"]: n for n in found["referrers"]}
    assert set(by_digest) == {ours["digest"], foreign}
    assert by_digest[foreign]["artifactType"] == FOREIGN
    assert by_digest[foreign]["annotations"] == {"org.opencontainers.image.created": "2024-05-02T10:15:30Z"}
    assert fallback not in by_digest, "the fallback index itself is no referrer"
    assert found["count"] == 2
    filtered = expect(invoke_cli("discover", f"{ref}:v1", "--artifact-type", FOREIGN, "-O", "json", env=env)).json()
    assert [n["digest"] for n in filtered["referrers"]] == [foreign]

    # Attaching again keeps the other tool's index untouched (ci-oras lists its own referrers untagged).
    (tmp_path / "second.txt").write_text("second\n")
    expect(invoke_cli("attach", f"{ref}:v1", "second.txt", "--artifact-type", REPORT, env=env, cwd=tmp_path))
    assert any(e["digest"] == fallback and e["annotations"][REF_NAME].startswith("sha256-") for e in index_entries(layout))
    assert expect(invoke_cli("discover", f"{ref}:v1", "-O", "json", env=env)).json()["count"] == 3


def test_fallback_tag_pointing_at_the_subject_is_ignored(tmp_path: Path) -> None:
    """A layout copied from a registry with GitLab's bug may tag the subject itself as sha256-<hex>."""
    layout, ref, env, subject = _setup(tmp_path)
    entry = next(e for e in index_entries(layout) if e["digest"] == subject)
    tag_entry(layout, entry, fallback_tag(subject))
    found = expect(invoke_cli("discover", f"{ref}:v1", "-O", "json", env=env)).json()
    assert found["referrers"] == [] and found["count"] == 0


def test_concurrent_attaches_keep_every_entry(tmp_path: Path) -> None:
    layout, ref, env, subject = _setup(tmp_path)
    count = 8
    for number in range(count):
        (tmp_path / f"sig-{number}.txt").write_text(f"signature {number}\n")
    processes = [
        subprocess.Popen([sys.executable, "-m", "ci_oras", "attach", f"{ref}:v1", f"sig-{number}.txt",
                          "--artifact-type", SIGNATURE, "-O", "json"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for number in range(count)
    ]
    digests = set()
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        digests.add(json.loads(stdout)["digest"])
    assert len(digests) == count

    entries = index_entries(layout)
    assert sorted(e["digest"] for e in entries if REF_NAME not in e.get("annotations", {})) == sorted(digests)
    assert [e["digest"] for e in entries if e.get("annotations", {}).get(REF_NAME) == "v1"] == [subject]
    assert not list((layout).glob(".index.json.*.tmp")), "no temporary index files left behind"
    found = expect(invoke_cli("discover", f"{ref}:v1", "-O", "json", env=env)).json()
    assert {n["digest"] for n in found["referrers"]} == digests
