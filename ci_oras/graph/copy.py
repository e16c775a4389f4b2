"""Copy a manifest with its whole graph — index children, referrers, referrers of referrers — between targets.

The order is what keeps a destination consistent even if the process is killed at any moment:

1. walk the source graph (manifests are small: fetched once, level by level, in parallel);
2. HEAD every manifest at the destination; copy the blobs of the missing ones, in parallel, streamed
   source → destination (or mounted, without a HEAD first, when both are repositories on one registry);
3. push manifests one at a time, children before their index and every subject before its referrers
   (strict registries refuse a referrer whose subject is unknown), then make each subject's referrers
   discoverable with one list update per subject;
4. point the destination tags at the root **last**, so a tag never names an incomplete graph.

Everything already at the destination is skipped after a HEAD (a present manifest's blobs without one),
so re-running a finished copy writes nothing. A worker never waits for another worker (the pool cannot
deadlock).

A listed referrer is copied only when the manifest the walk fetches for it anyway confirms the listing
(``ci_oras.graph.listing``: it exists, has the listed digest and type, and names the node it was listed under
as its subject); the others are skipped and kept in ``Graph.rejected``. So a forged ``sha256-<hex>`` index
copies nothing foreign, and a loop (a subject listed below its own referrer) cannot make the root anyone's
referrer — which used to leave every manifest out of the push order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ci_oras.graph.listing import Fetched, Rejected, check_entries
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.oci.mediatypes import normalize_media_type
from ci_oras.store.protocols import Mounter, Target

DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class CopyOptions:
    referrers: bool = True
    artifact_types: Sequence[str] = ()  # only referrers of these types (and what refers to them)
    exclude_artifact_types: Sequence[str] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    dry_run: bool = False
    #: Called from worker threads with (what happened, bytes): "blob", "mount", "skip-blob", "manifest", …
    progress: Callable[[str, int], None] | None = None


@dataclass
class CopyStats:
    manifests_copied: int = 0
    manifests_skipped: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0
    referrers: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass
class Graph:
    """The source graph: manifests by digest, in an order where dependencies come first."""

    root: Manifest
    manifests: dict[str, Manifest] = field(default_factory=dict)
    #: subject digest → its referrers' digests (only the ones selected for copying)
    referrers: dict[str, list[str]] = field(default_factory=dict)
    #: referrer digest → subject digest
    subject_of: dict[str, str] = field(default_factory=dict)
    #: Listed referrers whose manifests did not confirm the listing: not copied, not walked below.
    rejected: list[Rejected] = field(default_factory=list)

    def blobs(self, without: Collection[str] = ()) -> list[Descriptor]:
        """The distinct blobs of the graph's manifests, leaving out those of the manifests in ``without``."""
        seen: dict[str, Descriptor] = {}
        for manifest in self.manifests.values():
            if not manifest.is_index and manifest.digest not in without:
                for blob in manifest.children():
                    seen.setdefault(blob.digest, blob)
        return list(seen.values())

    def push_order(self) -> list[Manifest]:
        """Depth-first, dependencies first: an index's children before it, a subject before its referrers."""
        ordered: list[Manifest] = []
        done: set[str] = set()
        visiting: set[str] = set()

        def visit(digest: str) -> None:
            if digest in done or digest in visiting or digest not in self.manifests:
                return
            visiting.add(digest)
            manifest = self.manifests[digest]
            if manifest.is_index:
                for child in manifest.manifests:
                    visit(child.digest)
            if digest in self.subject_of:
                visit(self.subject_of[digest])
            visiting.discard(digest)
            done.add(digest)
            ordered.append(manifest)
            for referrer in self.referrers.get(digest, []):
                visit(referrer)

        visit(self.root.digest)
        for digest in list(self.manifests):
            visit(digest)
        return ordered


def walk(source: Target, root: Manifest, options: CopyOptions) -> Graph:
    """Fetch every manifest of the graph below ``root`` once; per level, listings then fetches in parallel.

    ``artifact_types`` selects the referrers of the root (and of an index root's children); what refers to a
    selected referrer comes along (an SBOM keeps its signature). ``exclude_artifact_types`` applies at every
    depth.
    """
    graph = Graph(root=root, manifests={root.digest: root})
    top_level = {root.digest}
    if root.is_index:
        top_level.update(child.digest for child in root.manifests)
    frontier = [root]
    #: every digest fetched so far (or found unfit): a manifest listed again costs no request
    fetched: dict[str, Fetched] = {root.digest: root}
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency * 2), thread_name_prefix="ci-oras-walk") as pool:
        while frontier:
            listings = list(pool.map(lambda m: _referrers_of(source, m, options, m.digest in top_level), frontier))
            # An index's children are named by the (verified) index itself: fetched as they are, alongside the
            # listed referrers, which are fetched to be checked.
            children = {child.digest for manifest in frontier if manifest.is_index
                        for child in manifest.manifests if child.digest not in graph.manifests}
            pending = [pool.submit(source.fetch_manifest, digest) for digest in children]
            entries = [(manifest.digest, desc) for manifest, referrers in zip(frontier, listings)
                       for desc in referrers]
            verdicts = check_entries(source, pool, entries, fetched)
            frontier = []
            for future in pending:
                _add(graph, future.result(), frontier)
            for (subject, _listed), verdict in zip(entries, verdicts):
                if isinstance(verdict, Rejected):
                    graph.rejected.append(verdict)
                    continue
                referrer = fetched[verdict.digest]
                assert isinstance(referrer, Manifest)  # accepted: its manifest was fetched
                _add(graph, referrer, frontier)
                if referrer.digest not in graph.subject_of:
                    graph.subject_of[referrer.digest] = subject
                    graph.referrers.setdefault(subject, []).append(referrer.digest)
    return graph


def _add(graph: Graph, manifest: Manifest, frontier: list[Manifest]) -> None:
    """A manifest met for the first time joins the graph and the next level of the walk."""
    if manifest.digest not in graph.manifests:
        graph.manifests[manifest.digest] = manifest
        frontier.append(manifest)


def _referrers_of(source: Target, manifest: Manifest, options: CopyOptions, top_level: bool) -> list[Descriptor]:
    if not options.referrers:
        return []
    listed = source.referrers(manifest.descriptor)
    return [desc for desc in listed if _selected(desc, options, top_level)]


def _selected(desc: Descriptor, options: CopyOptions, top_level: bool) -> bool:
    """By the listed type, case-insensitively (an entry listed with a wrong type is rejected when checked)."""
    kind = normalize_media_type(desc.artifact_type) if desc.artifact_type else None
    if kind in {normalize_media_type(t) for t in options.exclude_artifact_types}:
        return False
    selected = {normalize_media_type(t) for t in options.artifact_types}
    return not (top_level and selected and kind not in selected)


class _SourceBlob:
    """A re-iterable source stream: each iteration fetches again, so a failed upload can be retried."""

    def __init__(self, source: Target, desc: Descriptor) -> None:
        self.source = source
        self.desc = desc

    def __iter__(self) -> Iterator[bytes]:
        return self.source.fetch(self.desc)


def present_manifests(destination: Target, graph: Graph, options: CopyOptions) -> set[str]:
    """The graph's manifests the destination already has (one HEAD each, in parallel).

    Asked before any blob is copied: a manifest is stored only after its blobs (by this copy, and a registry
    refuses a manifest whose blobs it lacks), so the blobs of a present manifest need no request at all and a
    re-run of a finished copy only reads manifests.
    """
    order = list(graph.manifests.values())
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="ci-oras-head") as pool:
        exists = list(pool.map(lambda m: destination.exists(m.descriptor), order))
    return {m.digest for m, e in zip(order, exists) if e}


def copy_blobs(source: Target, destination: Target, blobs: list[Descriptor], options: CopyOptions,
               stats: CopyStats, mount_from: str | None) -> None:
    """Each blob: mount it when on the same registry, else HEAD the destination and stream it across.

    A mount is asked without a HEAD first: it succeeds whether or not the destination already has the blob,
    so the HEAD would only add a round trip. A refused mount falls back to HEAD, then upload.
    """

    def copy_one(desc: Descriptor) -> None:
        if not options.dry_run and mount_from is not None and isinstance(destination, Mounter) \
                and destination.mount(desc, mount_from):
            stats.add(blobs_mounted=1)
            _report(options, "mount", desc.size)
            return
        if destination.exists(desc):
            stats.add(blobs_skipped=1)
            _report(options, "skip-blob", desc.size)
            return
        if options.dry_run:
            stats.add(blobs_copied=1, bytes_copied=desc.size)
            return
        destination.push_blob(desc, _SourceBlob(source, desc))
        stats.add(blobs_copied=1, bytes_copied=desc.size)
        _report(options, "blob", desc.size)

    with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="ci-oras-copy") as pool:
        # list() re-raises the first worker error; the pool finishes or cancels the rest on exit.
        list(pool.map(copy_one, blobs))


def copy_manifests(destination: Target, graph: Graph, options: CopyOptions, stats: CopyStats,
                   present: set[str] | None = None) -> None:
    """Children before their index, every subject before its referrers; referrers one level at a time.

    The subjects of one level are independent (each has its own referrers list), so their referrers are
    pushed and listed in parallel: on a tag-schema registry the watch after each index write then costs
    about a second per level of the graph, not per subject.
    """
    order = graph.push_order()
    if present is None:
        present = present_manifests(destination, graph, options)
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="ci-oras-push") as pool:
        pusher = _ManifestPusher(destination, graph, options, stats, present)
        level = [m for m in order if m.digest not in graph.subject_of]
        for manifest in level:
            pusher.push_plain(manifest)
        while level:
            subjects = [m for m in level if graph.referrers.get(m.digest)]
            for subject in subjects:  # index referrers need their children first; sequential and rare
                for referrer in pusher.referrers_of(subject):
                    for child in referrer.manifests if referrer.is_index else ():
                        if child.digest in graph.manifests:
                            pusher.push_plain(graph.manifests[child.digest])
            # Every referrer of the level is stored first, each PUT its own task (referrers depend only on
            # their subject, pushed in an earlier level), then one list update per subject: the pool stays
            # full in both phases instead of one thread PUTting a subject's referrers one by one.
            batches = [pusher.claim_referrers_of(subject) for subject in subjects]
            if subjects and not options.dry_run:
                # An empty list update stores nothing but lets the store refuse first (``--referrers api``
                # on a registry without the API), before any referrer is stored that it could not list.
                destination.push_referrers(subjects[0].descriptor, [], stored=())
            list(pool.map(pusher.store_referrer, [m for batch in batches for m in batch]))
            list(pool.map(pusher.list_referrers, subjects, batches))
            level = [referrer for batch in batches for referrer in batch]


class _ManifestPusher:
    def __init__(self, destination: Target, graph: Graph, options: CopyOptions, stats: CopyStats,
                 present: set[str]) -> None:
        self.destination = destination
        self.graph = graph
        self.options = options
        self.stats = stats
        self.present = present
        self.done: set[str] = set()
        #: referrers stored by this copy (listed afterwards, so the list update does not store them again)
        self.stored: set[str] = set()
        self._lock = threading.Lock()

    def referrers_of(self, subject: Manifest) -> list[Manifest]:
        return [self.graph.manifests[d] for d in self.graph.referrers.get(subject.digest, [])]

    def push_plain(self, manifest: Manifest) -> None:
        with self._lock:
            if manifest.digest in self.done:
                return
            self.done.add(manifest.digest)
        if manifest.digest in self.present:
            self.stats.add(manifests_skipped=1)
            return
        if not self.options.dry_run:
            self.destination.push_manifest(manifest)
        self.stats.add(manifests_copied=1)
        _report(self.options, "manifest", len(manifest.raw))

    def claim_referrers_of(self, subject: Manifest) -> list[Manifest]:
        """The subject's referrers not yet handled (the next level's subjects); each is claimed once."""
        with self._lock:
            referrers = [m for m in self.referrers_of(subject) if m.digest not in self.done]
            self.done.update(m.digest for m in referrers)
        copied = sum(1 for m in referrers if m.digest not in self.present)
        self.stats.add(manifests_copied=copied, manifests_skipped=len(referrers) - copied,
                       referrers=len(referrers))
        return referrers

    def store_referrer(self, manifest: Manifest) -> None:
        """Store one referrer manifest (not yet listed: ``list_referrers`` does that once per subject)."""
        if manifest.digest in self.present:
            return
        if not self.options.dry_run:
            self.destination.push_manifest(manifest)
        with self._lock:
            self.stored.add(manifest.digest)
        _report(self.options, "manifest", len(manifest.raw))

    def list_referrers(self, subject: Manifest, referrers: list[Manifest]) -> None:
        """One list update per subject, even when every referrer was already there (a re-run, or a copy
        killed before its index write): the store reads the list and writes only what is missing."""
        if referrers and not self.options.dry_run:
            with self._lock:
                stored = self.present | self.stored
            self.destination.push_referrers(subject.descriptor, referrers, stored=stored)


def _report(options: CopyOptions, what: str, size: int) -> None:
    if options.progress is not None:
        options.progress(what, size)
