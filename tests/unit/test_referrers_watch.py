"""The tag-schema watch (``registry/referrers.py``) on an injected clock: what it waits for, and the races.

A fake repository stands in for the registry: every request takes ``latency`` on the fake clock (half to
reach the registry, half back), and other writers' writes are scheduled at chosen moments on that clock.
So the window the watch waits is exactly computable from what it measured, and a stale write can be
placed inside or outside it without a single real sleep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from ci_oras.errors import RegistryError
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.digest import digest_bytes
from ci_oras.oci.manifest import Manifest, build_image_manifest, build_index
from ci_oras.oci.referrers import fallback_tag
from ci_oras.registry.referrers import RegistryReferrers, ReferrersMode, SettleOptions

SUBJECT_RAW = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "note": "subject"}).encode()
SUBJECT = Descriptor(media_type=mediatypes.OCI_MANIFEST, digest=digest_bytes(SUBJECT_RAW), size=len(SUBJECT_RAW))
TAG = fallback_tag(SUBJECT.digest)
FACTOR = SettleOptions().factor


def referrer(name: str, subject: Descriptor = SUBJECT) -> Manifest:
    return build_image_manifest(artifact_type="application/vnd.example", config=EMPTY_DESCRIPTOR, layers=[],
                                subject=subject, annotations={"name": name})


class Clock:
    """Monotonic time that moves only when a request is made or the code sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.due: list[tuple[float, Callable[[], None]]] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for entry in sorted(self.due, key=lambda e: e[0]):  # other writers' writes land when their time comes
            if entry[0] <= self.now:
                self.due.remove(entry)
                entry[1]()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def at(self, moment: float, action: Callable[[], None]) -> None:
        self.due.append((moment, action))


@dataclass
class Repository:
    """The ``ManifestStore`` the referrers code needs, on the fake clock; ``If-Match`` is ignored like
    distribution does, so concurrent writers overwrite each other."""

    clock: Clock
    latency: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)
    #: (time served, method, reference) of every request.
    log: list[tuple[float, str, str]] = field(default_factory=list)
    deletes_allowed: bool = True
    on_put: Callable[[str], None] | None = None
    #: Seconds the next read spends in the transport's retry back-off before its answering attempt.
    retry_wait: float = 0.0

    def _serve(self, method: str, reference: str) -> None:
        self.clock.advance(self.latency / 2)
        self.log.append((self.clock.now, method, reference))

    def _answer(self) -> None:
        self.clock.advance(self.latency / 2)

    def get_manifest_if_exists(self, reference: str) -> tuple[Manifest, str | None, float] | None:
        self.clock.advance(self.retry_wait)  # a 500 answered, the transport backed off, then:
        self.retry_wait = 0.0
        self._serve("GET", reference)
        digest = self.tags.get(reference, reference)
        found = self.manifests.get(digest)
        self._answer()
        return (found, f'"{found.digest}"', self.latency) if found else None

    def put_manifest(self, manifest: Manifest, reference: str, headers: dict[str, str] | None = None,
                     ok: tuple[int, ...] = (200, 201)) -> Any:
        self._serve("PUT", reference)
        self.store(manifest, reference)
        if self.on_put is not None:
            self.on_put(reference)
        self._answer()
        return SimpleNamespace(status_code=201, headers={})

    def exists(self, desc: Descriptor) -> bool:
        self._serve("HEAD", desc.digest)
        self._answer()
        return desc.digest in self.manifests

    def delete_if_present(self, digest: str) -> bool:
        self._serve("DELETE", digest)
        self._answer()
        if not self.deletes_allowed:
            raise RegistryError("operation not supported: delete (405)")
        for tag in [t for t, d in self.tags.items() if d == digest]:
            del self.tags[tag]
        return self.manifests.pop(digest, None) is not None

    def store(self, manifest: Manifest, reference: str) -> None:
        """Write directly (another writer, or seeding), at the current moment."""
        self.manifests[manifest.digest] = manifest
        if reference != manifest.digest:
            self.tags[reference] = manifest.digest

    def index(self) -> list[str]:
        found = self.manifests[self.tags[TAG]]
        return [d.digest for d in found.manifests]

    def calls(self) -> list[str]:
        return [method for _, method, _ in self.log]


def backend(repo: Repository, clock: Clock) -> RegistryReferrers:
    client: Any = SimpleNamespace(host="registry.test", referrers_api={})
    return RegistryReferrers(client, "app", repo, (), mode=ReferrersMode.tag, sleep=clock.sleep, clock=clock)


def attach(repo: Repository, clock: Clock, *manifests: Manifest) -> RegistryReferrers:
    referrers = backend(repo, clock)
    for manifest in manifests:
        repo.store(manifest, manifest.digest)
    referrers.ensure_all_listed(SUBJECT.digest, list(manifests), confirmed_by_registry=False)
    return referrers


@pytest.mark.parametrize("latency", [0.002, 0.1])
def test_one_read_a_measured_window_after_the_write_confirms_it(latency: float) -> None:
    clock = Clock()
    repo = Repository(clock, latency)
    ours = referrer("ours")

    referrers = attach(repo, clock, ours)

    # read, write, a look two cycles after the write (where a stale write would show), the confirming read
    assert repo.calls() == ["GET", "PUT", "GET", "GET"]
    assert repo.index() == [ours.digest]
    # The cycle (our read sent → our write answered) is two round trips; the window is FACTOR cycles, and the
    # confirming read is served that long after the write was answered.
    cycle = 2 * latency
    assert referrers.windows == [pytest.approx(FACTOR * cycle)]
    put_answered = repo.log[1][0] + latency / 2
    assert repo.log[2][0] - put_answered == pytest.approx(2 * cycle + latency / 2)
    assert repo.log[3][0] - put_answered == pytest.approx(FACTOR * cycle + latency / 2)


def test_unwatched_the_write_is_read_back_once_at_once_and_a_lost_entry_written_again() -> None:
    """``SettleOptions(watch=False)`` (release copy, whose commit reads every listing again): no window, no
    sleep; the read right after the write still catches a write that did not take, and merges again."""
    clock = Clock()
    repo = Repository(clock, 0.01)
    ours = referrer("ours")
    repo.store(ours, ours.digest)
    referrers = RegistryReferrers(SimpleNamespace(host="registry.test", referrers_api={}), "app", repo, (),
                                  mode=ReferrersMode.tag, sleep=clock.sleep, clock=clock,
                                  settle=SettleOptions(watch=False))
    referrers.ensure_all_listed(SUBJECT.digest, [ours], confirmed_by_registry=False)
    assert repo.calls() == ["GET", "PUT", "GET"] and repo.index() == [ours.digest]
    assert clock.sleeps == [] and referrers.windows == []

    # a stale write by another writer lands between our write and our read-back: our entry is merged back in
    clock, other = Clock(), referrer("other")
    repo = Repository(clock, 0.01)
    repo.store(ours, ours.digest)
    repo.on_put = lambda _reference: repo.store(build_index([other.descriptor]), TAG) if len(repo.log) == 2 else None
    referrers = RegistryReferrers(SimpleNamespace(host="registry.test", referrers_api={}), "app", repo, (),
                                  mode=ReferrersMode.tag, sleep=clock.sleep, clock=clock,
                                  settle=SettleOptions(watch=False))
    referrers.ensure_all_listed(SUBJECT.digest, [ours], confirmed_by_registry=False)
    assert sorted(repo.index()) == sorted([ours.digest, other.digest])


def test_the_window_stretches_with_the_latency_and_nothing_else() -> None:
    windows = []
    for latency in (0.0, 0.01, 0.1):
        clock = Clock()
        windows.append(attach(Repository(clock, latency), clock, referrer("ours")).windows[0])
        if latency == 0.0:
            assert clock.sleeps == [], "nothing measured, nothing waited: no fixed interval"
    assert windows[0] == 0.0 and windows[1] > 0
    assert windows[2] == pytest.approx(10 * windows[1]), "ten times the latency, ten times the window"


def test_a_read_the_transport_retried_counts_from_its_answering_attempt() -> None:
    """distribution answers 500 to a tag read racing a write; the back-off before the retry is ours, not the
    registry's, so it must not stretch the window (it would slow every job in a crowd)."""
    clock = Clock()
    latency = 0.01
    repo = Repository(clock, latency, retry_wait=0.4)
    other = referrer("other")
    repo.store(other, other.digest)
    repo.store(build_index([other.descriptor]), TAG)

    referrers = attach(repo, clock, referrer("ours"))

    assert referrers.windows == [pytest.approx(FACTOR * 2 * latency)]


def test_a_stale_write_inside_the_window_is_detected_and_merged() -> None:
    """Writer B read the index before our write and writes its merge (without our entry) after it."""
    clock = Clock()
    latency = 0.01
    repo = Repository(clock, latency)
    x, b, ours = referrer("x"), referrer("b"), referrer("ours")
    for manifest in (x, b):
        repo.store(manifest, manifest.digest)
    repo.store(build_index([x.descriptor]), TAG)
    stale = build_index([x.descriptor, b.descriptor])

    def schedule_stale(reference: str) -> None:
        if reference == TAG and not clock.due and repo.calls().count("PUT") == 1:
            # B is as fast as us: its write lands one read-to-write cycle (two round trips) after our write
            clock.at(clock.now + 2 * latency, lambda: repo.store(stale, TAG))

    repo.on_put = schedule_stale
    referrers = attach(repo, clock, ours)

    assert repo.index() == [x.digest, b.digest, ours.digest], "b's entry kept, ours put back"
    assert repo.calls().count("PUT") == 2
    assert len(referrers.windows) == 1
    # Seen at the look two cycles after our write, not a whole window later; put back after one fresh read.
    assert repo.calls()[:5] == ["GET", "PUT", "GET", "GET", "PUT"]
    put_answered = repo.log[1][0] + latency / 2
    assert repo.log[2][0] - put_answered == pytest.approx(2 * 2 * latency + latency / 2)


def test_once_another_writer_showed_up_each_window_is_read_every_cycle() -> None:
    """A stale write landing mid-window (a slower writer) is seen about a cycle later, not at the window's end.

    A wide window (factor 20) keeps the two apart whatever the random back-off before the repair draws."""
    clock = Clock()
    latency = 0.01
    cycle = 2 * latency
    repo = Repository(clock, latency)
    ours, c = referrer("ours"), referrer("c")
    repo.store(c, c.digest)
    repo.store(ours, ours.digest)
    writes: list[float] = []
    stale_lands: list[float] = []

    def others(reference: str) -> None:
        if reference != TAG:
            return
        writes.append(clock.now)
        if len(writes) == 1:  # c writes after us, keeping our entry: the call has met another writer
            clock.at(clock.now + latency, lambda: repo.store(build_index([ours.descriptor, c.descriptor]), TAG))
            stale_lands.append(clock.now + 10 * cycle)  # a slow writer's merge without ours, mid-window
            clock.at(stale_lands[0], lambda: repo.store(build_index([c.descriptor]), TAG))

    repo.on_put = others
    referrers = RegistryReferrers(SimpleNamespace(host="registry.test", referrers_api={}),  # type: ignore[arg-type]
                                  "app", repo, (), mode=ReferrersMode.tag, sleep=clock.sleep, clock=clock,
                                  settle=SettleOptions(factor=20))
    referrers.ensure_all_listed(SUBJECT.digest, [ours], confirmed_by_registry=False)

    assert repo.index() == [c.digest, ours.digest], "ours put back"
    assert len(writes) == 2
    # seen within a cycle and a read, then the back-off (at most two cycles) and a read before the write
    assert writes[1] - stale_lands[0] <= 3 * cycle + 3 * latency < 20 * cycle / 2


def test_a_later_write_that_keeps_our_entry_is_watched_for_a_window_too() -> None:
    clock = Clock()
    latency = 0.01
    repo = Repository(clock, latency)
    ours, c = referrer("ours"), referrer("c")
    repo.store(c, c.digest)

    def schedule_c(reference: str) -> None:
        if reference == TAG and not clock.due:
            clock.at(clock.now + latency, lambda: repo.store(build_index([ours.descriptor, c.descriptor]), TAG))

    repo.on_put = schedule_c
    attach(repo, clock, ours)

    # read, write, the look that finds c's write, reads until a window later it is unchanged: no rewrite
    assert repo.calls()[:3] == ["GET", "PUT", "GET"] and set(repo.calls()[3:]) == {"GET"}
    assert repo.index() == [ours.digest, c.digest]


def test_a_rerun_reads_once_and_writes_nothing() -> None:
    clock = Clock()
    repo = Repository(clock, 0.01)
    ours = referrer("ours")
    repo.store(build_index([ours.descriptor]), TAG)

    attach(repo, clock, ours)

    assert repo.calls() == ["GET"] and clock.sleeps == []


def test_the_replaced_index_is_deleted_once_the_write_is_confirmed() -> None:
    clock = Clock()
    repo = Repository(clock, 0.01)
    old, ours = referrer("old"), referrer("ours")
    repo.store(old, old.digest)
    previous = build_index([old.descriptor])
    repo.store(previous, TAG)

    referrers = attach(repo, clock, ours)

    assert repo.calls() == ["GET", "PUT", "GET", "GET", "DELETE"]
    assert repo.log[-1][2] == previous.digest and previous.digest not in repo.manifests
    assert repo.index() == [old.digest, ours.digest], "the tag stays on the new index"
    assert referrers.stats["fallback-cleanup"] == 1


def test_an_empty_index_is_never_deleted() -> None:
    """An empty index is byte-identical for every subject without referrers: other tags point at it."""
    clock = Clock()
    repo = Repository(clock, 0.01)
    empty = build_index([])
    repo.store(empty, TAG)
    repo.store(empty, "sha256-" + "0" * 64)

    attach(repo, clock, referrer("ours"))

    assert "DELETE" not in repo.calls() and empty.digest in repo.manifests


def test_a_tag_that_answers_the_subject_itself_is_never_deleted() -> None:
    """GitLab resolves a missing ``sha256-<hex>`` tag to the subject: that is the image, not an index."""
    clock = Clock()
    repo = Repository(clock, 0.01)
    subject = build_image_manifest(artifact_type=None, config=EMPTY_DESCRIPTOR, layers=[])
    repo.store(subject, subject.digest)
    repo.tags[fallback_tag(subject.digest)] = subject.digest
    ours = build_image_manifest(artifact_type="application/vnd.example", config=EMPTY_DESCRIPTOR, layers=[],
                                subject=subject.descriptor)
    repo.store(ours, ours.digest)

    backend(repo, clock).ensure_all_listed(subject.digest, [ours], confirmed_by_registry=False)

    assert "DELETE" not in repo.calls() and subject.digest in repo.manifests


def test_a_registry_that_refuses_deletes_is_asked_once_and_the_attach_succeeds() -> None:
    clock = Clock()
    repo = Repository(clock, 0.01, deletes_allowed=False)
    first, second = referrer("first"), referrer("second")
    repo.store(first, first.digest)
    repo.store(build_index([first.descriptor]), TAG)
    referrers = backend(repo, clock)

    for manifest in (second, referrer("third")):
        repo.store(manifest, manifest.digest)
        referrers.ensure_all_listed(SUBJECT.digest, [manifest], confirmed_by_registry=False)

    assert repo.calls().count("DELETE") == 1
    assert len(repo.index()) == 3


def test_an_entry_dropped_for_good_ends_in_an_error_not_a_false_success() -> None:
    clock = Clock()
    repo = Repository(clock, 0.01)
    ours = referrer("ours")
    repo.on_put = lambda reference: clock.at(clock.now, lambda: repo.tags.pop(TAG, None))  # every write lost

    with pytest.raises(RegistryError, match="not listed"):
        attach(repo, clock, ours)
    assert repo.calls().count("PUT") == SettleOptions().max_writes
