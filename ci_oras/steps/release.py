"""``release plan``, ``copy`` and ``commit``: a release file resolved into a plan (``ci_oras.release.plan``)
against the registries, each shard of it copied, and the tags moved once every graph is complete.

Planning takes each image on its own: its source read by digest from here on, its graph walked with
``promote``'s copy in dry-run mode against the destination (what a copy would still move), and its
requirements checked with ``verify``'s search on that graph (the same rules: nothing counts that was not
fetched and confirmed), ``concurrency`` images at a time. A copy moves its shard's graphs by digest and no
tag; the commit checks every planned graph at its destination before it moves any tag (``commit_release``).
"""

from __future__ import annotations

import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ci_oras.graph.copy import CopyOptions, CopyStats, copy_graph
from ci_oras.graph.fanout import SharedSource
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.oci.reference import Reference, RegistryReference
from ci_oras.release.plan import Estimate, GateResult, Pinned, Plan, PlannedGraph, PlannedImage, balance, expand
from ci_oras.release.plan import source_key
from ci_oras.release.spec import ReleaseFile
from ci_oras.requirements import Requirement
from ci_oras.store.protocols import ByteStream, GraphStorage, ReadOnlyTarget, ReferrersApiVerdict, Tagger, TagLister
from ci_oras.steps.common import mount_source

_T = TypeVar("_T")
#: Requests each image's dry-run walk keeps in flight (images are planned ``concurrency`` at a time as well).
_WALK_CONCURRENCY = 4


class SourceTarget(ReadOnlyTarget, TagLister, Protocol):
    """A release's source: read, and its tags listed for tag patterns."""


#: The requirements an image misses (their specs), checked on the source: the command hands in verify's search.
Gate = Callable[[ReadOnlyTarget, str, str, tuple[Requirement, ...]], tuple[str, ...]]


class DestinationTarget(ReadOnlyTarget, GraphStorage, Tagger, Protocol):
    """A release's destination: read by the plan's dry run and the commit, written by the copy and the commit."""


@dataclass(frozen=True)
class Openers:
    """Open the release's repositories; the command decides which credentials each side gets."""

    source: Callable[[Reference], SourceTarget]
    destination: Callable[[Reference], DestinationTarget]


@dataclass(frozen=True)
class PlanOptions:
    shards: int = 1
    concurrency: int = 4


def plan_release(release: ReleaseFile, openers: Openers, gate: Gate, options: PlanOptions) -> Plan:
    """``gate(target, digest, shown, requirements)`` returns the requirements the image misses."""
    opened = _Opened(openers)
    pinned = expand(release, lambda repository: opened.source(repository).tags())
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="ci-oras-plan") as pool:
        planned = list(pool.map(lambda image: _plan_image(image, opened, gate), pinned))
    images, used = balance(planned, options.shards)
    return Plan(release.name, images, options.shards, used)


def _plan_image(image: Pinned, opened: _Opened, gate: Gate) -> PlannedImage:
    from ci_oras.steps.common import resolve_subject

    entry = image.entry
    source = opened.source(image.source)
    reference = image.source.reference
    assert reference is not None  # the release file names every source by tag or digest
    shown = str(image.source)
    root = source.fetch_manifest(reference)
    if entry.filters.platform is not None:
        child = resolve_subject(source, reference, shown, entry.filters.platform, purpose="release")
        root = source.fetch_manifest(child.digest)
    copy = CopyOptions(artifact_types=entry.filters.artifact_types,
                       exclude_artifact_types=entry.filters.exclude_artifact_types,
                       concurrency=_WALK_CONCURRENCY, dry_run=True)
    graph, stats, _there = copy_graph(source, opened.destination(entry.destination), root, copy,
                                      mount_source(image.source, entry.destination))
    # The gate counts only what the copy will take along: a referrer the filters leave out cannot satisfy it.
    within = _WithinGraph(source, frozenset(graph.manifests))
    missing = gate(within, root.digest, shown, entry.requirements) if entry.requirements else ()
    return PlannedImage(
        id=image.id,
        source=image.source.repository_name,
        source_tag=image.source_tag,
        digest=root.digest,
        media_type=root.media_type,
        destination=entry.destination.repository_name,
        tags=image.tags,
        filters=entry.filters,
        gate=GateResult(tuple(requirement.spec for requirement in entry.requirements), missing),
        graph=PlannedGraph(tuple(manifest.descriptor.plain() for manifest in graph.manifests.values()),
                           {subject: tuple(listed)
                                                    for subject, listed in graph.referrers.items()}),
        estimate=Estimate(bytes=stats.bytes_copied, blobs=stats.blobs_copied, manifests=stats.manifests_copied),
    )


class _WithinGraph:
    """The source as the copy leaves it at the destination: listings hold only the planned manifests."""

    def __init__(self, source: ReadOnlyTarget, planned: frozenset[str]) -> None:
        self._source = source
        self._planned = planned

    def fetch(self, desc: Descriptor) -> ByteStream:
        return self._source.fetch(desc)

    def fetch_manifest(self, reference: str) -> Manifest:
        return self._source.fetch_manifest(reference)

    def resolve(self, reference: str) -> Descriptor:
        return self._source.resolve(reference)

    def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
        return [desc for desc in self._source.referrers(subject, artifact_type) if desc.digest in self._planned]


class _Opened:
    """Each repository opened once for the whole plan, whichever thread asks first."""

    def __init__(self, openers: Openers) -> None:
        self._openers = openers
        self._lock = threading.Lock()
        self._sources: dict[str, SourceTarget] = {}
        self._destinations: dict[str, DestinationTarget] = {}

    def source(self, reference: Reference) -> SourceTarget:
        return self._once(self._sources, reference, self._openers.source)

    def destination(self, reference: Reference) -> DestinationTarget:
        return self._once(self._destinations, reference, self._openers.destination)

    def _once(self, opened: dict[str, _T], reference: Reference, open_one: Callable[[Reference], _T]) -> _T:
        key = reference.repository_name
        with self._lock:
            if key not in opened:
                opened[key] = open_one(reference.with_tags(()))
            return opened[key]


@dataclass(frozen=True)
class CopiedImage:
    image: PlannedImage
    stats: CopyStats

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        return {"id": self.image.id, "digest": self.image.digest, "destination": self.image.destination,
                "copied": {"manifests": s.manifests_copied, "blobs": s.blobs_copied},
                "mounted": s.blobs_mounted, "skipped": {"manifests": s.manifests_skipped, "blobs": s.blobs_skipped},
                "bytes": s.bytes_copied}


@dataclass(frozen=True)
class ShardCopy:
    release: str
    shard: int
    images: tuple[CopiedImage, ...]

    def document(self) -> dict[str, Any]:
        return {"schema": "ci-oras/release-copy/v1", "release": self.release, "shard": self.shard,
                "images": [image.to_dict() for image in self.images],
                "bytes": sum(image.stats.bytes_copied for image in self.images)}


def copy_shard(plan: Plan, shard: int, openers: Openers, references: Callable[[str], Reference],
               concurrency: int, images_at_once: int = 8) -> ShardCopy:
    """Copy every graph of ``shard`` by digest, moving no tag, ``images_at_once`` images side by side (each
    with ``concurrency`` requests in flight at its destination). What the destination already has is skipped,
    so a re-run after a kill copies only what is missing."""
    from ci_oras.errors import UsageError, VerificationFailed

    if not plan.ok:
        raise VerificationFailed(f"the plan of release {plan.release} failed its gate ({', '.join(plan.failed)})",
                                 hint="attach what is missing and plan again; release copy moves no image of it")
    if shard not in plan.shards:
        raise UsageError(f"--shard {shard} is not in the plan (its shards: {', '.join(map(str, plan.shards))})",
                         hint="run one copy job per shard of the plan's matrix")
    opened = _Opened(openers)
    mine = [image for image in plan.images if image.shard == shard]
    fanned = {key for key, count in Counter(source_key(image) for image in mine).items() if count > 1}
    shared: dict[tuple[str, str], ReadOnlyTarget] = {}
    lock = threading.Lock()

    with tempfile.TemporaryDirectory(prefix="ci-oras-release-") as spool:
        def source_of(image: PlannedImage, reference: Reference) -> ReadOnlyTarget:
            """One source target per image, or one ``SharedSource`` for the images of one source going to
            several destinations (``plan.balance`` puts them in one shard): each blob is then read once."""
            key = source_key(image)
            if key not in fanned:
                return opened.source(reference)
            with lock:
                if key not in shared:
                    directory = Path(spool) / str(len(shared))
                    directory.mkdir()
                    shared[key] = SharedSource(opened.source(reference), directory)
                return shared[key]

        def copy_one(image: PlannedImage) -> CopiedImage:
            source_reference = references(image.source)
            destination_reference = references(image.destination)
            source = source_of(image, source_reference)
            root = source.fetch_manifest(image.digest)
            options = CopyOptions(artifact_types=image.filters.artifact_types,
                                  exclude_artifact_types=image.filters.exclude_artifact_types, concurrency=concurrency)
            _graph, stats, _there = copy_graph(source, opened.destination(destination_reference), root, options,
                                               mount_source(source_reference, destination_reference))
            return CopiedImage(image, stats)

        with ThreadPoolExecutor(max_workers=max(1, images_at_once), thread_name_prefix="ci-oras-release") as pool:
            copied = tuple(pool.map(copy_one, mine))
    return ShardCopy(plan.release, shard, copied)


@dataclass(frozen=True)
class CommittedImage:
    image: PlannedImage
    #: Planned manifests the destination lacks, or does not list under their subject; the image is incomplete.
    missing: tuple[str, ...]
    tags_written: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.image.id, "digest": self.image.digest, "destination": self.image.destination,
                "complete": not self.missing, "missing": list(self.missing), "tags": list(self.image.tags),
                "tagsWritten": list(self.tags_written)}


@dataclass(frozen=True)
class ReleaseCommit:
    release: str
    images: tuple[CommittedImage, ...]

    @property
    def ok(self) -> bool:
        return all(not image.missing for image in self.images)

    @property
    def incomplete(self) -> tuple[CommittedImage, ...]:
        return tuple(image for image in self.images if image.missing)

    def document(self) -> dict[str, Any]:
        return {"schema": "ci-oras/release-commit/v1", "release": self.release, "ok": self.ok,
                "incomplete": [image.image.id for image in self.incomplete],
                "tagsWritten": sum(len(image.tags_written) for image in self.images),
                "images": [image.to_dict() for image in self.images]}


def commit_release(plan: Plan, openers: Openers, references: Callable[[str], Reference],
                   concurrency: int) -> ReleaseCommit:
    """Check that every planned graph is complete at its destination, then move the tags; any graph
    incomplete, and no tag moves.

    The check reads, per image, the root by digest and one listing per planned subject: a manifest is pushed
    only after its blobs and its children, and a referrer is listed only after it is stored, so a root that
    is there with every planned referrer listed is a complete graph. The tags go last, all at once
    (``concurrency`` PUTs in flight): the window in which some tags of the release have moved and others not
    yet is one round of PUTs. A commit killed in it leaves each moved tag on a complete graph, and a re-run
    moves the rest.
    """
    from ci_oras.errors import VerificationFailed

    if not plan.ok:
        raise VerificationFailed(f"the plan of release {plan.release} failed its gate ({', '.join(plan.failed)})",
                                 hint="attach what is missing and plan again; release commit moves no tag of it")
    destinations = {image.destination: openers.destination(references(image.destination)) for image in plan.images}
    checked: dict[str, tuple[Manifest | None, tuple[str, ...]]] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="ci-oras-commit") as pool:
        for group in _by_registry(plan.images, references):
            # The first repository of a registry learns whether it serves the referrers API; the others take
            # its answer instead of probing each (one request per image fewer). A wrong answer would only
            # show a listing as missing: the commit then refuses, it never tags an incomplete graph.
            first = next((image for image in group if image.graph.referrers), group[0])  # one that lists
            rest = [image for image in group if image is not first]
            checked[first.id] = _check(first, destinations[first.destination])
            learned = destinations[first.destination]
            verdict = learned.referrers_api() if isinstance(learned, ReferrersApiVerdict) else None
            for image in rest:
                target = destinations[image.destination]
                if verdict is not None and isinstance(target, ReferrersApiVerdict):
                    target.assume_referrers_api(verdict)
            for image, result in zip(rest, pool.map(lambda image: _check(image, destinations[image.destination]),
                                                    rest)):
                checked[image.id] = result
        if any(missing for _root, missing in checked.values()):
            return ReleaseCommit(plan.release, tuple(CommittedImage(image, checked[image.id][1])
                                                     for image in plan.images))
        moves = [(image, checked[image.id][0], tag) for image in plan.images for tag in image.tags]
        list(pool.map(lambda move: destinations[move[0].destination].tag(move[1], move[2]) if move[1] else None,
                      moves))
    return ReleaseCommit(plan.release, tuple(CommittedImage(image, (), image.tags) for image in plan.images))


def _by_registry(images: Sequence[PlannedImage], references: Callable[[str], Reference]) -> list[list[PlannedImage]]:
    """The images grouped by the registry (or layout) their destination is on, in plan order."""
    groups: dict[str, list[PlannedImage]] = {}
    for image in images:
        reference = references(image.destination)
        key = reference.registry if isinstance(reference, RegistryReference) else reference.repository_name
        groups.setdefault(key, []).append(image)
    return list(groups.values())


def _check(image: PlannedImage, destination: DestinationTarget) -> tuple[Manifest | None, tuple[str, ...]]:
    from ci_oras.errors import NotFoundError

    try:
        root = destination.fetch_manifest(image.digest)
    except NotFoundError:
        return None, tuple(desc.digest for desc in image.graph.manifests)
    missing: list[str] = []
    for subject, listed in image.graph.referrers.items():
        found = {desc.digest for desc in destination.referrers(image.graph.manifest(subject))}
        missing.extend(digest for digest in listed if digest not in found)
    return root, tuple(missing)

