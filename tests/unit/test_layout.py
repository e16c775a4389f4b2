"""OCILayout against real directories: blobs, manifests, tags, index.json conventions and concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ci_oras.errors import IntegrityError, NotFoundError, UsageError
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import ANNOTATION_REF_NAME, EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.manifest import Manifest, build_image_manifest, build_index
from ci_oras.store.layout import OCILayout
from ci_oras.store.protocols import Target

REPO_ROOT = Path(__file__).resolve().parents[2]


def blob(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type=media_type, digest=digest_bytes(data), size=len(data))


def artifact(note: str, *, subject: Descriptor | None = None) -> Manifest:
    return build_image_manifest(
        artifact_type="application/vnd.example+type",
        config=EMPTY_DESCRIPTOR,
        layers=[],
        subject=subject,
        annotations={"note": note},
    )


def index_doc(root: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((root / "index.json").read_bytes())
    return doc


def entries_for(root: Path, digest: str) -> list[dict[str, Any]]:
    return [entry for entry in index_doc(root)["manifests"] if entry["digest"] == digest]


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    return OCILayout(tmp_path / "layout", create=True)


def as_target(store: OCILayout) -> Target:
    """Type-checks that OCILayout satisfies the Target protocol (mypy) and is usable through it."""
    return store


# -- creation ------------------------------------------------------------------------------------------------------


def test_create_writes_the_image_layout_files(tmp_path: Path) -> None:
    root = tmp_path / "new"
    store = OCILayout(root, create=True)
    assert json.loads((root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    assert index_doc(root) == {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}
    assert (root / "blobs").is_dir()
    assert store.name == f"oci:{root}"
    assert as_target(store).name == store.name
    store.close()


def test_create_reopens_an_existing_layout_without_losing_entries(layout: OCILayout) -> None:
    manifest = artifact("one")
    layout.push_manifest(manifest, "v1")
    again = OCILayout(layout.root, create=True)
    assert again.tags() == ["v1"]


def test_create_refuses_a_non_empty_directory_that_is_not_a_layout(tmp_path: Path) -> None:
    (tmp_path / "src.py").write_text("print()\n")
    with pytest.raises(UsageError, match="not empty"):
        OCILayout(tmp_path, create=True)
    assert not (tmp_path / "index.json").exists()


def test_open_without_create_requires_a_layout(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        OCILayout(tmp_path / "missing")
    assert info.value.hint
    assert not (tmp_path / "missing").exists()


# -- blobs ---------------------------------------------------------------------------------------------------------


def test_blob_round_trip_streams_in_chunks(layout: OCILayout) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    desc = blob(data)
    assert not layout.exists(desc)
    layout.push_blob(desc, (data[i:i + 65536] for i in range(0, len(data), 65536)))
    assert layout.exists(desc)
    assert layout.blob_path(desc.digest) == layout.root / "blobs" / "sha256" / desc.digest.split(":")[1]
    chunks = list(layout.fetch(desc))
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= 1024 * 1024


def test_pushing_an_existing_blob_again_is_harmless(layout: OCILayout) -> None:
    desc = blob(b"same")
    layout.push_blob(desc, [b"same"])
    layout.push_blob(desc, [b"sa", b"me"])
    assert b"".join(layout.fetch(desc)) == b"same"
    assert [p.name for p in layout.blob_path(desc.digest).parent.iterdir()] == [desc.digest.split(":")[1]]


@pytest.mark.parametrize("payload", [b"tampered", b"longer than declared!", b"sho"])
def test_push_blob_with_wrong_content_leaves_nothing(layout: OCILayout, payload: bytes) -> None:
    desc = blob(b"expected content")
    desc = Descriptor(media_type=desc.media_type, digest=desc.digest, size=len(b"expected content"))
    with pytest.raises(IntegrityError):
        layout.push_blob(desc, [payload])
    assert not layout.exists(desc)
    assert list(layout.blob_path(desc.digest).parent.iterdir()) == []


def test_fetch_of_a_corrupt_blob_raises_integrity_error_at_the_end(layout: OCILayout) -> None:
    desc = blob(b"original bytes")
    layout.push_blob(desc, [b"original bytes"])
    layout.blob_path(desc.digest).write_bytes(b"modified bytes")  # same size, different digest
    with pytest.raises(IntegrityError, match="digest mismatch"):
        b"".join(layout.fetch(desc))


def test_fetch_of_a_missing_blob_is_not_found_immediately(layout: OCILayout) -> None:
    with pytest.raises(NotFoundError):
        layout.fetch(blob(b"nope"))


def test_exists_checks_the_size(layout: OCILayout) -> None:
    desc = blob(b"12345")
    layout.push_blob(desc, [b"12345"])
    assert not layout.exists(Descriptor(desc.media_type, desc.digest, 4))


# -- manifests, tags and index.json ------------------------------------------------------------------------------


def test_push_manifest_with_tag_resolves_by_tag_and_digest(layout: OCILayout) -> None:
    manifest = artifact("tagged")
    layout.push_manifest(manifest, "v1")
    by_tag = layout.resolve("v1")
    assert (by_tag.media_type, by_tag.digest, by_tag.size) == (
        mediatypes.OCI_MANIFEST, manifest.digest, len(manifest.raw))
    assert by_tag.artifact_type == "application/vnd.example+type"
    assert layout.resolve(manifest.digest).digest == manifest.digest
    fetched = layout.fetch_manifest("v1")
    assert fetched.raw == manifest.raw and fetched.digest == manifest.digest
    assert layout.fetch_manifest(manifest.digest).annotations == {"note": "tagged"}
    assert entries_for(layout.root, manifest.digest) == [{
        "mediaType": mediatypes.OCI_MANIFEST,
        "digest": manifest.digest,
        "size": len(manifest.raw),
        "annotations": {ANNOTATION_REF_NAME: "v1"},
        "artifactType": "application/vnd.example+type",
    }]


def test_untagged_manifest_is_listed_exactly_once(layout: OCILayout) -> None:
    subject = artifact("subject")
    layout.push_manifest(subject, "v1")
    referrer = artifact("sbom", subject=subject.descriptor)
    layout.push_manifest(referrer)
    layout.push_manifest(referrer)
    entries = entries_for(layout.root, referrer.digest)
    assert len(entries) == 1 and "annotations" not in entries[0]
    listed = {desc.digest: desc for desc in layout.list_manifests()}
    assert set(listed) == {subject.digest, referrer.digest}
    assert listed[subject.digest].annotations == {ANNOTATION_REF_NAME: "v1"}
    assert layout.tags() == ["v1"]
    assert layout.fetch_manifest(referrer.digest).subject == subject.descriptor


def test_pushing_a_tagged_manifest_without_tag_adds_no_untagged_entry(layout: OCILayout) -> None:
    manifest = artifact("x")
    layout.push_manifest(manifest, "v1")
    layout.push_manifest(manifest)
    assert [e.get("annotations") for e in entries_for(layout.root, manifest.digest)] == [
        {ANNOTATION_REF_NAME: "v1"}]


def test_tagging_an_untagged_manifest_replaces_its_untagged_entry(layout: OCILayout) -> None:
    manifest = artifact("x")
    layout.push_manifest(manifest)
    layout.tag(manifest, "v1")
    layout.tag(manifest, "latest")
    names = [e["annotations"][ANNOTATION_REF_NAME] for e in entries_for(layout.root, manifest.digest)]
    assert names == ["v1", "latest"]
    assert layout.tags() == ["latest", "v1"]


def test_tag_move_keeps_the_old_manifest_listed_untagged(layout: OCILayout) -> None:
    old, new = artifact("old"), artifact("new")
    layout.push_manifest(old, "v1")
    layout.push_manifest(new, "v1")
    assert layout.resolve("v1").digest == new.digest
    old_entries = entries_for(layout.root, old.digest)
    assert len(old_entries) == 1 and "annotations" not in old_entries[0]
    assert old.digest in {d.digest for d in layout.list_manifests()}
    assert layout.tags() == ["v1"]


def test_tag_move_does_not_add_untagged_entry_when_old_manifest_keeps_another_tag(layout: OCILayout) -> None:
    old, new = artifact("old"), artifact("new")
    layout.push_manifest(old, "v1")
    layout.tag(old, "stable")
    layout.tag(new, "v1")
    assert [e["annotations"][ANNOTATION_REF_NAME] for e in entries_for(layout.root, old.digest)] == ["stable"]


def test_tag_stores_the_manifest_bytes_when_missing(layout: OCILayout) -> None:
    manifest = artifact("x")
    layout.tag(manifest, "v2")
    assert layout.fetch_manifest("v2").raw == manifest.raw


def test_resolve_unknown_tag_names_tag_and_layout(layout: OCILayout) -> None:
    with pytest.raises(NotFoundError) as info:
        layout.resolve("nope")
    assert "nope" in str(info.value) and layout.name in str(info.value)


def test_resolve_digest_of_an_unlisted_manifest_blob(layout: OCILayout) -> None:
    manifest = artifact("only a blob")
    desc = Descriptor(manifest.media_type, manifest.digest, len(manifest.raw))
    layout.push_blob(desc, [manifest.raw])
    resolved = layout.resolve(manifest.digest)
    assert (resolved.media_type, resolved.size, resolved.artifact_type) == (
        mediatypes.OCI_MANIFEST, len(manifest.raw), "application/vnd.example+type")
    with pytest.raises(NotFoundError):
        layout.resolve(digest_bytes(b"absent"))


def test_fetch_manifest_detects_a_corrupt_manifest_blob(layout: OCILayout) -> None:
    manifest = artifact("abc")
    layout.push_manifest(manifest, "v1")
    path = layout.blob_path(manifest.digest)
    path.write_bytes(manifest.raw.replace(b"abc", b"abd"))
    with pytest.raises(IntegrityError):
        layout.fetch_manifest("v1")


def test_delete_removes_every_entry_and_the_blob_but_not_layers(layout: OCILayout) -> None:
    layer_data = b"layer"
    layer = blob(layer_data)
    layout.push_blob(layer, [layer_data])
    manifest = build_image_manifest(artifact_type=None, config=EMPTY_DESCRIPTOR, layers=[layer])
    layout.push_manifest(manifest, "v1")
    layout.tag(manifest, "v2")
    keep = artifact("keep")
    layout.push_manifest(keep, "keep")
    layout.delete(manifest.descriptor)
    assert entries_for(layout.root, manifest.digest) == []
    assert not layout.blob_path(manifest.digest).exists()
    assert layout.exists(layer)
    assert layout.tags() == ["keep"]
    with pytest.raises(NotFoundError):
        layout.delete(manifest.descriptor)


def test_index_manifests_round_trip(layout: OCILayout) -> None:
    child = artifact("child")
    layout.push_manifest(child)
    index = build_index([child.descriptor])
    layout.push_manifest(index, "multi")
    assert layout.resolve("multi").media_type == mediatypes.OCI_INDEX
    assert layout.fetch_manifest("multi").manifests[0].digest == child.digest


# -- index.json written by other tools ---------------------------------------------------------------------------


def test_unknown_fields_and_malformed_entries_are_preserved(layout: OCILayout) -> None:
    foreign = artifact("foreign")
    layout.push_manifest(foreign)
    doc = index_doc(layout.root)
    doc["annotations"] = {"com.example.tool": "yes"}
    doc["x-extra"] = [1, 2]
    doc["manifests"][0]["annotations"] = {"io.containerd.image.name": "docker.io/x:1"}
    doc["manifests"][0]["x-field"] = {"keep": True}
    doc["manifests"].append({"mediaType": mediatypes.OCI_MANIFEST, "digest": "not-a-digest", "size": 3})
    doc["manifests"].append("garbage")
    (layout.root / "index.json").write_text(json.dumps(doc))

    assert [d.digest for d in layout.list_manifests()] == [foreign.digest]
    layout.tag(artifact("mine"), "v1")
    after = index_doc(layout.root)
    assert after["annotations"] == {"com.example.tool": "yes"} and after["x-extra"] == [1, 2]
    assert after["manifests"][0]["x-field"] == {"keep": True}
    assert after["manifests"][0]["annotations"] == {"io.containerd.image.name": "docker.io/x:1"}
    assert "garbage" in after["manifests"]
    assert len(after["manifests"]) == 4


def test_tag_move_keeps_other_annotations_of_the_displaced_entry(layout: OCILayout) -> None:
    old = artifact("old")
    layout.push_manifest(old, "v1")
    doc = index_doc(layout.root)
    doc["manifests"][0]["annotations"]["com.example"] = "kept"
    (layout.root / "index.json").write_text(json.dumps(doc))
    layout.tag(artifact("new"), "v1")
    assert entries_for(layout.root, old.digest)[0]["annotations"] == {"com.example": "kept"}


def test_entries_with_odd_optional_fields_still_resolve(layout: OCILayout) -> None:
    manifest = artifact("odd")
    layout.push_manifest(manifest, "v1")
    doc = index_doc(layout.root)
    doc["manifests"][0]["platform"] = "linux/amd64"
    doc["manifests"][0]["annotations"]["count"] = 3
    (layout.root / "index.json").write_text(json.dumps(doc))
    assert layout.resolve("v1").digest == manifest.digest


def test_corrupt_index_json_is_a_usage_error(layout: OCILayout) -> None:
    (layout.root / "index.json").write_text("{not json")
    with pytest.raises(UsageError, match="corrupt"):
        layout.tags()
    with pytest.raises(UsageError, match="corrupt"):
        layout.push_manifest(artifact("x"), "v1")


def test_missing_index_json_reads_as_empty(layout: OCILayout) -> None:
    (layout.root / "index.json").unlink()
    assert layout.tags() == []
    layout.push_manifest(artifact("x"), "v1")
    assert layout.tags() == ["v1"]


# -- two processes, one layout -------------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys
    from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR
    from ci_oras.oci.manifest import build_image_manifest
    from ci_oras.store.layout import OCILayout

    path, worker = sys.argv[1], sys.argv[2]
    store = OCILayout(path, create=True)
    for n in range(25):
        manifest = build_image_manifest(
            artifact_type="application/vnd.example+type",
            config=EMPTY_DESCRIPTOR,
            layers=[],
            annotations={"worker": worker, "n": str(n)},
        )
        store.push_manifest(manifest, f"w{worker}-{n}" if n % 2 else None)
    """
)


def test_concurrent_writers_lose_no_entries(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(worker)], cwd=REPO_ROOT, env=env,
                         stderr=subprocess.PIPE)
        for worker in range(4)
    ]
    for process in workers:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
    store = OCILayout(root)
    listed = store.list_manifests()
    assert len(listed) == 100
    assert len({desc.digest for desc in listed}) == 100
    assert len(store.tags()) == 4 * 12
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


def test_resolve_by_digest_reports_no_tag(layout: OCILayout) -> None:
    manifest = artifact("x")
    layout.push_manifest(manifest, "v1")
    assert layout.resolve(manifest.digest).annotations == {}
    assert layout.resolve("v1").annotations == {ANNOTATION_REF_NAME: "v1"}


def test_create_completes_an_interrupted_creation(tmp_path: Path) -> None:
    root = tmp_path / "half"
    (root / "blobs").mkdir(parents=True)
    (root / "index.json").write_text('{"schemaVersion":2,"manifests":[],"x-kept":1}')
    store = OCILayout(root, create=True)
    assert (root / "oci-layout").is_file()
    assert index_doc(root)["x-kept"] == 1
    assert store.tags() == []


def test_unwritable_blob_directory_is_a_usage_error(layout: OCILayout) -> None:
    desc = blob(b"data")
    (layout.root / "blobs" / "sha256").write_bytes(b"a file where a directory belongs")
    with pytest.raises(UsageError, match="cannot"):
        layout.push_blob(desc, [b"data"])
