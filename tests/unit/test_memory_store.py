"""MemoryStore: the in-memory ``Target``, on its own and under the graph algorithms, copied to and from a real
OCI image layout on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.oci import CYCLONEDX, NOTARY, OCI_EMPTY_DIGEST, OCI_EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, compact
from harness.oci_layout import REF_NAME, write_blob

from ci_oras.errors import IntegrityError, NotFoundError, UsageError
from ci_oras.graph.copy import CopyOptions, copy_graph
from ci_oras.graph.discover import DiscoverOptions
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.manifest import Manifest, build_image_manifest, parse_manifest
from ci_oras.requirements import parse_requirements
from ci_oras.steps.discover import discover_graph
from ci_oras.steps.promote import Endpoint, promote
from ci_oras.steps.tags import list_tags
from ci_oras.steps.verify import VerifyOptions, verify
from ci_oras.store.layout import OCILayout
from ci_oras.store.memory import MemoryStore
from ci_oras.store.protocols import ByteStream, ReadOnlyTarget, Target

REPO_ROOT = Path(__file__).resolve().parents[2]


def blob(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type=media_type, digest=digest_bytes(data), size=len(data))


def referrer(artifact_type: str, subject: Descriptor, note: str = "") -> Manifest:
    return build_image_manifest(artifact_type=artifact_type, config=EMPTY_DESCRIPTOR, layers=[],
                                subject=subject.plain(), annotations={"note": note} if note else None)


def image() -> Manifest:
    return build_image_manifest(artifact_type="application/vnd.example.image", config=EMPTY_DESCRIPTOR,
                                layers=[blob(b"layer")])


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    memory = MemoryStore("memory:test")
    yield memory
    memory.close()


def as_target(store: MemoryStore) -> Target:
    """Used through the protocol every step takes (and mypy checks that it is one)."""
    return store


# -- blobs ---------------------------------------------------------------------------------------------------------


def test_a_blob_pushed_is_there_and_fetched_verified(store: MemoryStore) -> None:
    desc = blob(b"hello")
    assert not store.exists(desc)
    store.push_blob(desc, [b"hel", b"lo"])
    assert store.exists(desc)
    assert b"".join(as_target(store).fetch(desc)) == b"hello"
    assert not store.exists(Descriptor(desc.media_type, desc.digest, desc.size + 1))  # only with the right size


@pytest.mark.parametrize("chunks", [[b"hellO"], [b"hello", b"!"], [b"hell"]], ids=["digest", "longer", "shorter"])
def test_a_blob_that_does_not_match_its_descriptor_is_refused_and_not_stored(store: MemoryStore,
                                                                             chunks: list[bytes]) -> None:
    desc = blob(b"hello")
    with pytest.raises(IntegrityError):
        store.push_blob(desc, chunks)
    assert not store.exists(desc)
    with pytest.raises(NotFoundError, match=f"blob {desc.digest} not found in memory:test"):
        store.fetch(desc)


def test_an_invalid_digest_is_a_usage_error(store: MemoryStore) -> None:
    with pytest.raises(UsageError):
        store.push_blob(Descriptor("application/octet-stream", "sha256:nothex", 1), [b"x"])


def test_fetching_with_a_descriptor_of_another_size_fails_at_the_end(store: MemoryStore) -> None:
    desc = blob(b"hello")
    store.push_blob(desc, [b"hello"])
    with pytest.raises(IntegrityError):
        b"".join(store.fetch(Descriptor(desc.media_type, desc.digest, 4)))


# -- manifests and tags --------------------------------------------------------------------------------------------


def test_manifests_keep_their_exact_bytes_and_resolve_by_tag_and_digest(store: MemoryStore) -> None:
    raw = b'{ "schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "layers": [] }'  # not canonical
    manifest = parse_manifest(raw)
    store.push_manifest(manifest, "v1")
    by_tag, by_digest = store.resolve("v1"), store.resolve(manifest.digest)
    assert by_tag == by_digest == Descriptor(OCI_MANIFEST, digest_bytes(raw), len(raw))
    assert store.fetch_manifest("v1").raw == raw
    assert b"".join(store.fetch(by_tag)) == raw
    assert store.tags() == ["v1"]


def test_a_tag_moves_and_the_manifest_it_left_stays(store: MemoryStore) -> None:
    first, second = referrer("application/x.a", blob(b"s")), referrer("application/x.b", blob(b"s"))
    store.push_manifest(first, "latest")
    store.tag(second, "latest")  # stores it too
    store.push_manifest(second, "v2")
    assert store.resolve("latest").digest == second.digest
    assert store.fetch_manifest(first.digest).raw == first.raw
    assert list_tags(store, "memory").tags == ("latest", "v2")


def test_missing_tags_and_manifests_are_not_found(store: MemoryStore) -> None:
    with pytest.raises(NotFoundError, match="tag 'v1' not found in memory:test"):
        store.resolve("v1")
    with pytest.raises(NotFoundError, match="manifest sha256:"):
        store.fetch_manifest(image().digest)


@pytest.mark.parametrize("tag", ["", "v 1"])
def test_an_invalid_tag_is_a_usage_error_and_stores_nothing(store: MemoryStore, tag: str) -> None:
    with pytest.raises(UsageError, match="invalid tag"):
        store.push_manifest(image(), tag)
    assert not store.exists(image().descriptor)


def test_a_manifest_whose_bytes_are_not_its_digest_is_refused(store: MemoryStore) -> None:
    genuine = image()
    forged = Manifest(raw=genuine.raw + b" ", media_type=genuine.media_type, digest=genuine.digest)
    with pytest.raises(IntegrityError):
        store.push_manifest(forged, "v1")
    assert store.tags() == []


def test_a_manifest_pushed_as_a_blob_resolves_by_digest_but_is_not_listed(store: MemoryStore) -> None:
    subject = image()
    sbom = referrer(CYCLONEDX, subject.descriptor)
    store.push_manifest(subject)
    store.push_blob(sbom.descriptor, [sbom.raw])
    assert store.fetch_manifest(sbom.digest).subject == subject.descriptor.plain()
    assert store.referrers(subject.descriptor) == []  # listed only once stored as a manifest
    store.push_referrer(sbom)
    assert [d.digest for d in store.referrers(subject.descriptor)] == [sbom.digest]


# -- referrers and delete ------------------------------------------------------------------------------------------


def test_referrers_are_listed_from_the_stored_subjects_in_the_order_stored(store: MemoryStore) -> None:
    subject = image()
    store.push_manifest(subject, "v1")
    sbom, signature = referrer(CYCLONEDX, subject.descriptor), referrer(NOTARY, subject.descriptor)
    other = referrer(CYCLONEDX, blob(b"another subject"))
    store.push_referrers(subject.descriptor, [sbom, signature])
    store.push_referrer(other)
    listed = store.referrers(subject.descriptor)
    assert listed == [sbom.descriptor, signature.descriptor]
    assert listed[0].artifact_type == CYCLONEDX
    assert store.referrers(subject.descriptor, "Application/VND.CycloneDX+JSON") == [sbom.descriptor]
    assert store.referrers(sbom.descriptor) == []


def test_push_referrers_skips_what_the_caller_says_is_stored(store: MemoryStore) -> None:
    subject = image()
    sbom = referrer(CYCLONEDX, subject.descriptor)
    store.push_referrers(subject.descriptor, [sbom], stored={sbom.digest})
    assert store.referrers(subject.descriptor) == []


def test_delete_forgets_the_manifest_its_tags_and_its_listing(store: MemoryStore) -> None:
    subject = image()
    sbom = referrer(CYCLONEDX, subject.descriptor)
    store.push_manifest(subject, "v1")
    store.push_manifest(sbom, "sbom")
    store.delete(sbom.descriptor)
    assert store.tags() == ["v1"]
    assert store.referrers(subject.descriptor) == []
    assert not store.exists(sbom.descriptor)
    with pytest.raises(NotFoundError, match=f"manifest {sbom.digest} not found"):
        store.delete(sbom.descriptor)
    assert store.referrers_index(subject.descriptor) is None
    assert not store.forget_referrer(subject.descriptor, sbom.digest)
    assert not store.drop_referrers_index(subject.descriptor)


def test_concurrent_writers_lose_nothing(store: MemoryStore) -> None:
    subject = image()
    store.push_manifest(subject, "v1")
    made = [referrer(CYCLONEDX, subject.descriptor, f"n{n}") for n in range(64)]
    start = threading.Barrier(8)

    def write(part: list[Manifest]) -> None:
        start.wait()
        for manifest in part:
            store.push_referrer(manifest)
            store.push_manifest(manifest, manifest.annotations["note"])

    threads = [threading.Thread(target=write, args=(made[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {d.digest for d in store.referrers(subject.descriptor)} == {m.digest for m in made}
    assert len(store.tags()) == 65


# -- under the graph algorithms, with a real OCI image layout ------------------------------------------------------


@dataclass(frozen=True)
class SignedSbomLayout:
    """image (tag ``v1``) ← CycloneDX SBOM ← Notary signature of the SBOM, in an OCI layout on disk."""

    path: Path
    image: str
    sbom: str
    signature: str
    blobs: tuple[str, ...]  # every blob the three manifests name


def write_signed_sbom_layout(path: Path) -> SignedSbomLayout:
    """Written file by file, as another tool would (ORAS's conventions: referrers listed untagged in
    ``index.json``), so neither store under test wrote the content it reads."""
    (path / "blobs" / "sha256").mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer, sbom_doc, envelope = b"layer bytes", b'{"bomFormat":"CycloneDX"}', b'{"payload":"..."}'
    empty = write_blob(path, b"{}")
    assert empty == OCI_EMPTY_DIGEST

    def descriptor(media_type: str, data: bytes) -> dict[str, object]:
        return {"mediaType": media_type, "digest": write_blob(path, data), "size": len(data)}

    def artifact(artifact_type: str, payload: dict[str, object], subject: dict[str, object]) -> dict[str, object]:
        return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                "config": {"mediaType": OCI_EMPTY_JSON, "digest": OCI_EMPTY_DIGEST, "size": 2},
                "layers": [payload], "subject": subject}

    image_raw = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                         "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                         "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)]})
    image_desc = descriptor(OCI_MANIFEST, image_raw)
    sbom_raw = compact(artifact(CYCLONEDX, descriptor(CYCLONEDX, sbom_doc), image_desc))
    sbom_desc = descriptor(OCI_MANIFEST, sbom_raw)
    signature_raw = compact(artifact(NOTARY, descriptor("application/jose+json", envelope), sbom_desc))
    signature_desc = descriptor(OCI_MANIFEST, signature_raw)
    entries = [{**image_desc, "annotations": {REF_NAME: "v1"}},
               {**sbom_desc, "artifactType": CYCLONEDX}, {**signature_desc, "artifactType": NOTARY}]
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))
    blobs = tuple(digest_bytes(data) for data in (config, layer, b"{}", sbom_doc, envelope))
    return SignedSbomLayout(path, str(image_desc["digest"]), str(sbom_desc["digest"]),
                            str(signature_desc["digest"]), blobs)


class ReadOnly:
    """A store that can only be read: the read-only role and nothing else, so any write (or ``exists``) made
    through it fails with AttributeError."""

    def __init__(self, store: ReadOnlyTarget) -> None:
        self._store = store

    def fetch(self, desc: Descriptor) -> ByteStream:
        return self._store.fetch(desc)

    def fetch_manifest(self, reference: str) -> Manifest:
        return self._store.fetch_manifest(reference)

    def resolve(self, reference: str) -> Descriptor:
        return self._store.resolve(reference)

    def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
        return self._store.referrers(subject, artifact_type)


def test_a_graph_copied_from_a_layout_into_memory_and_back_is_byte_for_byte_the_same(tmp_path: Path) -> None:
    made = write_signed_sbom_layout(tmp_path / "source")
    source, memory = OCILayout(made.path), MemoryStore()
    root = source.fetch_manifest("v1")

    graph, stats, was_there = copy_graph(ReadOnly(source), memory, root, CopyOptions(), None)
    assert not was_there and graph.rejected == []
    assert (stats.manifests_copied, stats.blobs_copied, stats.referrers) == (3, 5, 2)
    for digest in (made.image, made.sbom, made.signature, *made.blobs):
        stored = (made.path / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        assert b"".join(memory.fetch(Descriptor("application/octet-stream", digest, len(stored)))) == stored
    assert [d.digest for d in memory.referrers(root.descriptor)] == [made.sbom]
    assert [d.artifact_type for d in memory.referrers(memory.resolve(made.sbom))] == [NOTARY]

    _graph, again, was_there = copy_graph(source, memory, root, CopyOptions(), None)
    assert was_there and (again.manifests_copied, again.blobs_copied) == (0, 0)  # a re-run writes nothing

    memory.tag(root, "v1")
    back = OCILayout(tmp_path / "back", create=True)
    _graph, stats, _ = copy_graph(ReadOnly(memory), back, memory.fetch_manifest("v1"), CopyOptions(), None)
    back.tag(root, "v1")
    assert (stats.manifests_copied, stats.blobs_copied) == (3, 5)
    for digest in (made.image, made.sbom, made.signature, *made.blobs):
        name = Path("blobs", "sha256", digest.removeprefix("sha256:"))
        assert (back.root / name).read_bytes() == (made.path / name).read_bytes()
    assert [d.digest for d in back.referrers(back.resolve("v1"))] == [made.sbom]
    assert [d.digest for d in back.referrers(back.resolve(made.sbom))] == [made.signature]


def test_promote_into_memory_writes_the_tag_last(tmp_path: Path) -> None:
    made = write_signed_sbom_layout(tmp_path / "source")
    memory = MemoryStore()
    result = promote(Endpoint(ReadOnly(OCILayout(made.path)), "oci:source", "v1"),
                     Endpoint(memory, "memory", "v1", ("v1", "stable")), CopyOptions())
    assert result.tags_written == ("v1", "stable")
    assert memory.tags() == ["stable", "v1"] and memory.resolve("stable").digest == made.image
    again = promote(Endpoint(OCILayout(made.path), "oci:source", "v1"),
                    Endpoint(memory, "memory", "v1", ("v1", "stable")), CopyOptions())
    assert again.tags_written == () and again.stats.manifests_copied == 0


def test_discover_and_verify_read_a_memory_store_through_the_read_only_role(tmp_path: Path) -> None:
    made = write_signed_sbom_layout(tmp_path / "source")
    memory = MemoryStore()
    source = OCILayout(made.path)
    copy_graph(source, memory, source.fetch_manifest("v1"), CopyOptions(), None)
    memory.tag(source.fetch_manifest("v1"), "v1")

    for check in (False, True):
        found = discover_graph(ReadOnly(memory), "memory", "v1", DiscoverOptions(check_listings=check))
        assert found.count == 2
        [sbom] = found.root.referrers
        assert (sbom.descriptor.digest, sbom.descriptor.artifact_type) == (made.sbom, CYCLONEDX)
        assert [r.descriptor.digest for r in sbom.referrers] == [made.signature]

    requirements = tuple(parse_requirements(["sbom>signature", "signature"]))
    result = verify(lambda: ReadOnly(memory), "v1", "memory:v1", VerifyOptions(requirements))
    assert [r.satisfied for r in result.results] == [True, False]  # the signature signs the SBOM, not the image
    assert result.results[0].paths == ((made.sbom, made.signature),)


def test_the_memory_store_imports_no_http_client() -> None:
    probe = ("import json, sys\nfrom ci_oras.store.memory import MemoryStore\nMemoryStore().tags()\n"
             "print(json.dumps(sorted(m for m in sys.modules\n"
             "                        if m.split('.')[0] in ('httpx', 'httpcore', 'ci_oras'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                          check=True)
    loaded = json.loads(done.stdout)
    assert "ci_oras.store.memory" in loaded
    others = [m for m in loaded if not m.startswith(("ci_oras.oci", "ci_oras.store"))]
    assert others == ["ci_oras", "ci_oras.errors"]
