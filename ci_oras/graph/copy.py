"""Copy a manifest with its whole graph — index children, referrers, referrers of referrers — between targets.

The order is what keeps a destination consistent even if the process is killed at any moment. Everything
runs in one pass, each step as soon as what it depends on is done (a dependency-counting scheduler, no
phases and no level barriers), so the pools stay full from the first request to the last:

1. the walk of the source is a work queue (``ci_oras.graph.walk``, which ``discover`` walks with too): a
   node's referrers are listed, and its children and listed referrers fetched, as soon as the node itself
   is known;
2. each manifest found is HEADed at the destination as soon as it is known — a referrer only once its subject
   is found there (every copy made by this tool stores a subject before its referrers; if one is there
   anyway, its PUT writes the same bytes again), the referrers of a missing subject are missing without
   a request;
3. for a missing manifest its blobs are copied (mounted when both are repositories on one registry, else
   streamed source → destination; a small one sent without asking first, see ``SmallUploads``), and it is
   PUT once its blobs, its children and its subject are stored; a subject's referrers list is updated once
   (one write per subject, in parallel across subjects) as soon as the subject and all its referrers are
   stored;
4. the destination tags point at the root **last** (the caller does it after this module returns), so a tag
   never names an incomplete graph.

Everything already at the destination is skipped after a HEAD (a present manifest's blobs without one),
so re-running a finished copy writes nothing. A task is submitted only once everything it depends on is
done, so a worker never waits for another worker (the bounded pool cannot deadlock); the first error stops
what is not yet started, waits for what is running and is raised — and the tags are then never written.

A listed referrer is copied only when the manifest the walk fetches for it anyway confirms the listing
(``ci_oras.graph.listing``: it exists, has the listed digest and type, and names the node it was listed under
as its subject); the others are skipped and kept in ``Graph.rejected``. So a forged ``sha256-<hex>`` index
copies nothing foreign, and a loop (a subject listed below its own referrer) cannot make the root anyone's
referrer — which used to leave every manifest out of the push order.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ci_oras.graph.listing import Rejected
from ci_oras.graph.walk import ReferrersWalk, Tasks
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.oci.mediatypes import normalize_media_type
from ci_oras.store.protocols import Fetcher, GraphStorage, Mounter, Pusher, ReadOnlyTarget, ReferrerPusher

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
    """The source graph: manifests by digest, in the order a level-by-level walk meets them (root first)."""

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


def _graph(walk: ReferrersWalk, root: Manifest, listed: bool) -> Graph:
    """The graph in the order a walk level by level meets it, whatever order the answers came in: the root,
    then per node its index children and its accepted referrers, in listing order (``listed``: the walk
    listed referrers)."""
    graph = Graph(root=root, manifests={root.digest: root})
    queue = [root]
    for manifest in queue:  # grows while it is read
        below = [child.digest for child in manifest.manifests] if manifest.is_index else []
        for verdict in walk.listing(manifest.digest) if listed else ():
            if isinstance(verdict, Rejected):
                graph.rejected.append(verdict)
            elif verdict.digest not in graph.subject_of:
                graph.subject_of[verdict.digest] = manifest.digest
                graph.referrers.setdefault(manifest.digest, []).append(verdict.digest)
                below.append(verdict.digest)
        for digest in below:
            if digest not in graph.manifests:
                graph.manifests[digest] = walk.manifest(digest)
                queue.append(graph.manifests[digest])
    return graph


def _selected(desc: Descriptor, options: CopyOptions, top_level: bool) -> bool:
    """By the listed type, case-insensitively (an entry listed with a wrong type is rejected when checked)."""
    kind = normalize_media_type(desc.artifact_type) if desc.artifact_type else None
    if kind in {normalize_media_type(t) for t in options.exclude_artifact_types}:
        return False
    selected = {normalize_media_type(t) for t in options.artifact_types}
    return not (top_level and selected and kind not in selected)


class _SourceBlob:
    """A re-iterable source stream: each iteration fetches again, so a failed upload can be retried."""

    def __init__(self, source: Fetcher, desc: Descriptor) -> None:
        self.source = source
        self.desc = desc

    def __iter__(self) -> Iterator[bytes]:
        return self.source.fetch(self.desc)


@runtime_checkable
class SmallUploads(Protocol):
    """A store where sending a small blob again costs less than asking whether it is there.

    For a remote registry a HEAD is a round trip; a blob of a few hundred KiB goes out in about as long, and
    the upload is needed anyway whenever the HEAD would have said "missing" (always, into a new repository).
    A local layout answers a HEAD with a ``stat``: it does not implement this.
    """

    #: Blobs up to this size are uploaded without a HEAD first (a content-addressed PUT is idempotent).
    small_upload_bytes: int


_Step = tuple[str, str]


class _Plan:
    """Dependency counting: a step is submitted once every need it names is met.

    A need is met when the step of that name finished, or is declared met (a manifest the destination already
    has). Steps are added while others run — the walk is still finding the graph — so a need may name a step
    not planned yet; it is then waited for, and planned later or declared met. The graph is a DAG (children,
    subjects and blobs are named by digest, so none can name its own ancestor): every step runs, and one left
    over at the end would be a bug, reported as one rather than hanging.
    """

    def __init__(self, tasks: Tasks) -> None:
        self.tasks = tasks
        self.lock = threading.Lock()
        self.steps: dict[_Step, tuple[str, Callable[..., None], tuple[Any, ...]]] = {}
        self.met: set[_Step] = set()
        self.waiting: dict[_Step, list[_Step]] = {}
        self.left: dict[_Step, int] = {}

    def add(self, step: _Step, action: Callable[..., None], *args: Any, needs: Collection[_Step] = (),
            pool: str = "write") -> bool:
        """Plan ``step`` (False when it already is); it runs on ``pool`` as soon as every one of ``needs`` is met."""
        with self.lock:
            if step in self.steps or step in self.met:
                return False
            self.steps[step] = (pool, action, args)
            missing = {need for need in needs if need not in self.met and need != step}
            self.left[step] = len(missing)
            for need in missing:
                self.waiting.setdefault(need, []).append(step)
        if not missing:
            self.tasks.submit(pool, self._do, step)
        return True

    def meet(self, need: _Step) -> None:
        """``need`` is met: start what was waiting only for it."""
        ready = []
        with self.lock:
            self.met.add(need)
            for step in self.waiting.pop(need, []):
                self.left[step] -= 1
                if not self.left[step]:
                    ready.append(step)
        for step in ready:
            self.tasks.submit(self.steps[step][0], self._do, step)

    def _do(self, step: _Step) -> None:
        _pool, action, args = self.steps[step]
        action(*args)
        self.meet(step)

    def check_finished(self) -> None:
        left = [step for step in self.steps if step not in self.met]
        if left:
            raise AssertionError(f"copy plan left {len(left)} steps unscheduled (a cycle): {left[:3]}")


class _Copy:
    """The destination side, fed by the walk as it finds the graph (see the module docstring).

    Each manifest is either found at the destination (a HEAD) or known to be missing, and then its blobs,
    its PUT and, for a subject, the update of its referrers list are planned with what they need. A
    referrer's presence is decided only after its subject's: asked with a HEAD when the subject is there,
    taken as missing when it is not. ``discovering`` counts walk and HEAD tasks still running: when it drops
    to zero the whole plan is known, and ``on_plan`` is told its size.
    """

    def __init__(self, source: ReadOnlyTarget, destination: GraphStorage, options: CopyOptions, tasks: Tasks,
                 mount_from: str | None, on_plan: Callable[[int, int], None]) -> None:
        self.destination = destination
        self.options = options
        self.tasks = tasks
        self.plan = _Plan(tasks)
        self.stats = CopyStats()
        self.blobs = _BlobCopier(source, destination, options, self.stats, mount_from)
        self.on_plan = on_plan
        self.lock = threading.Lock()
        #: manifest digest → whether the destination had it before this copy
        self.present: dict[str, bool] = {}
        self.subject_of: dict[str, str] = {}
        #: subject digest → referrers waiting to learn whether the subject is there
        self.deferred: dict[str, list[Manifest]] = {}
        self.planned_blobs: dict[str, int] = {}
        self.pushes = 0
        self.discovering = 0

    # -- the walk's side: counted, so the end of discovery is known

    def discovery(self, pool: str, task: Callable[..., None], *args: Any) -> None:
        with self.lock:
            self.discovering += 1
        self.tasks.submit(pool, self._discover, task, args)

    def _discover(self, task: Callable[..., None], args: tuple[Any, ...]) -> None:
        task(*args)
        with self.lock:
            self.discovering -= 1
            finished = not self.discovering
            count, size = len(self.planned_blobs), sum(self.planned_blobs.values())
        if finished:
            self.on_plan(count, size)

    def known(self, manifest: Manifest, subject: str | None) -> None:
        """A node of the graph was found (``subject``: listed under it, or None: the root, an index child)."""
        if subject is None:
            self.discovery("write", self._head, manifest)
            return
        with self.lock:
            self.subject_of[manifest.digest] = subject
            there = self.present.get(subject)
            if there is None:
                self.deferred.setdefault(subject, []).append(manifest)
                return
        if there:
            self.discovery("write", self._head, manifest)
        else:
            self._found(manifest, False)

    def listed(self, subject: Manifest, referrers: list[Manifest]) -> None:
        """``subject``'s referrers are all known: its list update waits for them and for the subject."""
        if not referrers:
            return
        needs = [("manifest", subject.digest), ("check", "referrers")] + [("manifest", m.digest) for m in referrers]
        self.plan.add(("check", "referrers"), self._check_referrers, subject.descriptor)
        self.plan.add(("list", subject.digest), _list_referrers, self.destination, subject, referrers, self.options,
                      needs=needs, pool="list")

    # -- destination

    def _head(self, manifest: Manifest) -> None:
        self._found(manifest, self.destination.exists(manifest.descriptor))

    def _found(self, manifest: Manifest, there: bool) -> None:
        """Whether ``manifest`` was at the destination is known: meet it or plan its copy; then its referrers."""
        with self.lock:
            self.present[manifest.digest] = there
            waiting = self.deferred.pop(manifest.digest, [])
        if there:
            self.plan.meet(("manifest", manifest.digest))
        else:
            self._plan_push(manifest)
        for referrer in waiting:
            if there:
                self.discovery("write", self._head, referrer)
            else:
                self._found(referrer, False)

    def _plan_push(self, manifest: Manifest) -> None:
        needs: list[_Step] = []
        if manifest.is_index:
            needs += [("manifest", child.digest) for child in manifest.manifests]
        else:
            for blob in manifest.children():
                needs.append(("blob", blob.digest))
                with self.lock:
                    self.planned_blobs.setdefault(blob.digest, blob.size)
                self.plan.add(("blob", blob.digest), self.blobs.copy, blob)
        subject = self.subject_of.get(manifest.digest)
        if subject is not None:
            needs += [("manifest", subject), ("check", "referrers")]
            if manifest.subject is not None:
                self.plan.add(("check", "referrers"), self._check_referrers, manifest.subject)
        with self.lock:
            self.pushes += 1
        self.plan.add(("manifest", manifest.digest), _push_manifest, self.destination, manifest, self.options,
                      needs=needs)

    def _check_referrers(self, subject: Descriptor) -> None:
        """An empty list update stores nothing but lets the store refuse first (``--referrers api`` on a
        registry without the API), before any referrer is stored that it could not list."""
        if not self.options.dry_run:
            self.destination.push_referrers(subject, [], stored=())


def copy_graph(source: ReadOnlyTarget, destination: GraphStorage, root: Manifest, options: CopyOptions,
               mount_from: str | None, on_plan: Callable[[int, int], None] | None = None
               ) -> tuple[Graph, CopyStats, bool]:
    """Walk the source graph and copy what the destination lacks, in one pass; the tags are the caller's.

    ``artifact_types`` selects the referrers of the root (and of an index root's children); what refers to a
    selected referrer comes along (an SBOM keeps its signature). ``exclude_artifact_types`` applies at every
    depth. Returns the graph, what was done, and whether the root was at the destination before.
    ``on_plan(blobs, bytes)`` is called (from a worker) once the walk is over and every blob to copy is known.

    Three pools: ``read`` for the walk of the source (reads are cheap for a registry: twice ``concurrency``);
    ``write`` for the copies, so the destination never sees more than ``concurrency`` blob and manifest
    requests at once whatever the walk does; ``list`` for the referrers-list updates, which spend most of
    their time waiting out their watch (a registry that ignores ``If-Match`` gives no other way to know an
    update survived) and must not hold up the copies meanwhile. A graph of 51 subjects 20 ms away took 5 s
    with the updates on the copy pool, 3.2 s with twice ``concurrency`` of them at once, 2.0 s with four times:
    their requests are few (a read, a write, the read-backs), so four times it is; they come on top of the
    copies' ``concurrency``.
    """
    concurrency = options.concurrency
    tasks = Tasks({"read": (2 * concurrency, "ci-oras-walk"), "write": (concurrency, "ci-oras-copy"),
                   "list": (4 * concurrency, "ci-oras-list")})
    copy = _Copy(source, destination, options, tasks, mount_from, on_plan or (lambda _count, _size: None))
    top_level = {root.digest, *(child.digest for child in root.manifests if root.is_index)}

    def known(_node: Descriptor, manifest: Manifest | None, subject: str | None) -> None:
        assert manifest is not None  # with ``check`` and ``children`` every node is fetched before it is known
        copy.known(manifest, subject)

    def listed(subject: str, referrers: list[Descriptor]) -> None:
        copy.listed(walk.manifest(subject), [walk.manifest(desc.digest) for desc in referrers])

    walk = ReferrersWalk(source, functools.partial(copy.discovery, "read"),
                         select=lambda subject, desc: _selected(desc, options, subject in top_level),
                         check=True, depth=None if options.referrers else 0, children=True,
                         on_known=known, on_listed=listed)
    copy.discovery("read", walk.add, root.descriptor, 0, root)
    tasks.wait()
    copy.plan.check_finished()
    graph = _graph(walk, root, options.referrers)
    stats = copy.stats
    skipped = sum(1 for there in copy.present.values() if there)
    stats.add(manifests_copied=copy.pushes, manifests_skipped=skipped, referrers=len(graph.subject_of),
              blobs_skipped=len(graph.blobs()) - len(copy.planned_blobs))
    return graph, stats, copy.present.get(root.digest, False)


class _BlobCopier:
    def __init__(self, source: Fetcher, destination: GraphStorage, options: CopyOptions, stats: CopyStats,
                 mount_from: str | None) -> None:
        self.source = source
        self.destination = destination
        self.options = options
        self.stats = stats
        self.mount_from = mount_from if isinstance(destination, Mounter) else None
        self.small = destination.small_upload_bytes if isinstance(destination, SmallUploads) else -1

    def copy(self, desc: Descriptor) -> None:
        """Mount it when on the same registry, else HEAD the destination (unless small) and stream it across.

        A mount is asked without a HEAD first: it succeeds whether or not the destination already has the
        blob, so the HEAD would only add a round trip. A refused mount falls back to the upload.
        """
        destination = self.destination
        if not self.options.dry_run and self.mount_from is not None and isinstance(destination, Mounter) \
                and destination.mount(desc, self.mount_from):
            self.stats.add(blobs_mounted=1)
            _report(self.options, "mount", desc.size)
            return
        if desc.size > self.small and destination.exists(desc):
            self.stats.add(blobs_skipped=1)
            _report(self.options, "skip-blob", desc.size)
            return
        if not self.options.dry_run:
            destination.push_blob(desc, _SourceBlob(self.source, desc))
        self.stats.add(blobs_copied=1, bytes_copied=desc.size)
        _report(self.options, "blob", desc.size)


def _push_manifest(destination: Pusher, manifest: Manifest, options: CopyOptions) -> None:
    """Store one manifest by digest (a referrer is listed afterwards, once per subject)."""
    if not options.dry_run:
        destination.push_manifest(manifest)
    _report(options, "manifest", len(manifest.raw))


def _list_referrers(destination: ReferrerPusher, subject: Manifest, referrers: list[Manifest],
                    options: CopyOptions) -> None:
    """One list update per subject, even when every referrer was already there (a re-run, or a copy killed
    before its index write): the store reads the list and writes only what is missing. Every referrer is
    stored by now, so the update stores none again."""
    if not options.dry_run:
        destination.push_referrers(subject.descriptor, referrers, stored={m.digest for m in referrers})


def _report(options: CopyOptions, what: str, size: int) -> None:
    if options.progress is not None:
        options.progress(what, size)
