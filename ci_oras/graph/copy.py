"""Copy a manifest with its whole graph — index children, referrers, referrers of referrers — between targets.

The order is what keeps a destination consistent even if the process is killed at any moment:

1. walk the source graph (manifests are small: each fetched once). The walk is a work queue: a node's
   referrers are listed, and its children and listed referrers fetched, as soon as the node itself is known,
   not when a whole level of the graph is;
2. HEAD the manifests at the destination, top down: a referrer is asked about only when its subject is there
   (every copy made by this tool stores a subject before its referrers; if one is there anyway, its PUT
   writes the same bytes again);
3. copy what is missing with one dependency-counting scheduler: a blob is copied (mounted when both are
   repositories on one registry, else streamed source → destination), a manifest PUT as soon as its blobs,
   its children and its subject are stored, a subject's referrers listed with one list update as soon as the
   subject and all those referrers are stored. Every phase keeps ``concurrency`` requests in flight;
4. point the destination tags at the root **last**, so a tag never names an incomplete graph.

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

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ci_oras.graph.listing import Fetched, Rejected, fetch_listed, judge, self_reference
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


class _Tasks:
    """A bounded pool whose tasks may submit more tasks; the first error stops the rest.

    ``wait`` returns when every submitted task has finished, or raises the first error once the tasks already
    running have finished (queued ones are cancelled): nothing keeps writing after a failure is reported.
    """

    def __init__(self, workers: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
        self._changed = threading.Condition()
        self._running = 0
        self._error: BaseException | None = None

    def submit(self, task: Callable[..., None], *args: Any) -> None:
        with self._changed:
            if self._error is not None:
                return
            self._running += 1
        self._pool.submit(self._run, task, args)

    def _run(self, task: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            if self._error is None:
                task(*args)
        except BaseException as exc:  # handed to the waiting thread, which raises it
            with self._changed:
                if self._error is None:
                    self._error = exc
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def wait(self) -> None:
        try:
            with self._changed:
                while self._running and self._error is None:
                    self._changed.wait()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._error is not None:
            raise self._error


#: Where a node was met: the path of (0 child | 1 referrer, position) steps from the root. Sorting by
#: (depth, path) gives the order a level-by-level walk would have met the nodes in, whatever order the
#: concurrent requests answered in, so the graph (and what is reported) does not depend on timing.
_Key = tuple[tuple[int, int], ...]


def _order(key: _Key) -> tuple[int, _Key]:
    return len(key), key


class _Walk:
    """The state of one walk; every field is guarded by ``lock`` (tasks run on several threads)."""

    def __init__(self, source: Target, root: Manifest, options: CopyOptions, tasks: _Tasks) -> None:
        self.source = source
        self.options = options
        self.tasks = tasks
        self.lock = threading.Lock()
        self.top_level = {root.digest}
        if root.is_index:
            self.top_level.update(child.digest for child in root.manifests)
        self.nodes: dict[str, tuple[_Key, Manifest]] = {root.digest: ((), root)}
        #: every digest fetched so far (or found unfit): a manifest listed again costs no request
        self.fetched: dict[str, Fetched] = {root.digest: root}
        #: listed digests being fetched → the entries waiting for that answer
        self.waiting: dict[str, list[tuple[str, Descriptor, _Key]]] = {}
        self.children_asked: set[str] = {root.digest}
        self.accepted: list[tuple[_Key, str, str]] = []
        self.rejected: list[tuple[_Key, Rejected]] = []

    def visit(self, manifest: Manifest, key: _Key) -> None:
        """A node is known: fetch its children and list its referrers now."""
        if manifest.is_index:
            for number, child in enumerate(manifest.manifests):
                with self.lock:
                    if child.digest in self.children_asked:
                        continue
                    self.children_asked.add(child.digest)
                self.tasks.submit(self.fetch_child, child.digest, key + ((0, number),))
        if not self.options.referrers:
            return
        listed = _referrers_of(self.source, manifest, self.options, manifest.digest in self.top_level)
        for number, desc in enumerate(listed):
            self.entry(manifest.digest, desc, key + ((1, number),))

    def fetch_child(self, digest: str, key: _Key) -> None:
        """An index's children are named by the (verified) index itself: fetched as they are."""
        manifest = self.source.fetch_manifest(digest)
        with self.lock:
            self.fetched.setdefault(digest, manifest)
            new = self._add(manifest, key)
        if new:
            self.visit(manifest, key)

    def entry(self, subject: str, desc: Descriptor, key: _Key) -> None:
        """A listed referrer: judged against its manifest, fetched once per digest however often listed."""
        rejected = self_reference(subject, desc)
        if rejected is not None:
            with self.lock:
                self.rejected.append((key, rejected))
            return
        with self.lock:
            answer = self.fetched.get(desc.digest)
            if answer is None:
                waiters = self.waiting.get(desc.digest)
                self.waiting.setdefault(desc.digest, []).append((subject, desc, key))
                if waiters is not None:
                    return  # being fetched: judged when the answer comes
        if answer is None:
            self.tasks.submit(self.fetch_listed, subject, desc)
        else:
            self.judge(subject, desc, key, answer)

    def fetch_listed(self, subject: str, desc: Descriptor) -> None:
        answer = fetch_listed(self.source, subject, desc)
        with self.lock:
            self.fetched[desc.digest] = answer
            waiters = self.waiting.pop(desc.digest, [])
        for waiting_subject, listed, key in waiters:
            self.judge(waiting_subject, listed, key, answer)

    def judge(self, subject: str, desc: Descriptor, key: _Key, answer: Fetched) -> None:
        verdict = judge(subject, desc, answer)
        if isinstance(verdict, Rejected):
            with self.lock:
                self.rejected.append((key, verdict))
            return
        assert isinstance(answer, Manifest)  # accepted: its manifest was fetched
        with self.lock:
            self.accepted.append((key, subject, answer.digest))
            new = self._add(answer, key)
        if new:
            self.tasks.submit(self.visit, answer, key)

    def _add(self, manifest: Manifest, key: _Key) -> bool:
        """Under ``lock``: a manifest met for the first time joins the graph (and is visited by the caller)."""
        known = self.nodes.get(manifest.digest)
        if known is None or _order(key) < _order(known[0]):
            self.nodes[manifest.digest] = (key, known[1] if known else manifest)
        return known is None

    def graph(self, root: Manifest) -> Graph:
        """The graph in walk order (see ``_Key``)."""
        graph = Graph(root=root)
        for _key, manifest in sorted(self.nodes.values(), key=lambda node: _order(node[0])):
            graph.manifests[manifest.digest] = manifest
        for _key, subject, referrer in sorted(self.accepted, key=lambda edge: _order(edge[0])):
            if referrer not in graph.subject_of:
                graph.subject_of[referrer] = subject
                graph.referrers.setdefault(subject, []).append(referrer)
        graph.rejected = [rejected for _key, rejected in sorted(self.rejected, key=lambda r: _order(r[0]))]
        return graph


def walk(source: Target, root: Manifest, options: CopyOptions) -> Graph:
    """Fetch every manifest of the graph below ``root`` once, as a work queue (see the module docstring).

    ``artifact_types`` selects the referrers of the root (and of an index root's children); what refers to a
    selected referrer comes along (an SBOM keeps its signature). ``exclude_artifact_types`` applies at every
    depth. Reads are cheap for a registry, so the walk runs twice ``concurrency`` requests at once.
    """
    tasks = _Tasks(options.concurrency * 2, "ci-oras-walk")
    state = _Walk(source, root, options, tasks)
    tasks.submit(state.visit, root, ())
    tasks.wait()
    return state.graph(root)


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


@runtime_checkable
class SmallUploads(Protocol):
    """A store where sending a small blob again costs less than asking whether it is there.

    For a remote registry a HEAD is a round trip; a blob of a few hundred KiB goes out in about as long, and
    the upload is needed anyway whenever the HEAD would have said "missing" (always, into a new repository).
    A local layout answers a HEAD with a ``stat``: it does not implement this.
    """

    #: Blobs up to this size are uploaded without a HEAD first (a content-addressed PUT is idempotent).
    small_upload_bytes: int


def present_manifests(destination: Target, graph: Graph, options: CopyOptions) -> set[str]:
    """The graph's manifests the destination already has: one HEAD each, top down, in parallel.

    Asked before any blob is copied: a manifest is stored only after its blobs (by this copy, and a registry
    refuses a manifest whose blobs it lacks), so the blobs of a present manifest need no request at all and a
    re-run of a finished copy only reads manifests. A referrer is asked about only once its subject is found:
    a copy stores the subject first, so the referrers of a missing subject are missing too (asking would cost
    a round trip each for nothing); one stored out of order by someone else is simply PUT again.
    """
    present: set[str] = set()
    lock = threading.Lock()
    tasks = _Tasks(options.concurrency, "ci-oras-head")

    def head(manifest: Manifest) -> None:
        if not destination.exists(manifest.descriptor):
            return
        with lock:
            present.add(manifest.digest)
        for referrer in graph.referrers.get(manifest.digest, []):
            tasks.submit(head, graph.manifests[referrer])

    for manifest in graph.manifests.values():
        if manifest.digest not in graph.subject_of:
            tasks.submit(head, manifest)
    tasks.wait()
    return present


def copy_graph(source: Target, destination: Target, graph: Graph, options: CopyOptions, stats: CopyStats,
               present: set[str], mount_from: str | None) -> None:
    """Copy every missing blob and manifest and list every subject's referrers, dependencies first.

    One scheduler for all of it: each step starts as soon as what it depends on is stored — a manifest after
    its blobs, its children and its subject; a subject's list update after the subject and all its referrers
    — so the pool stays full across what used to be phases (all blobs, then manifests level by level).
    Subjects are independent of each other: their list updates run in parallel.
    """
    blobs = graph.blobs(without=present)
    referrers = [(subject, [graph.manifests[d] for d in digests])
                 for subject, digests in graph.referrers.items() if digests]
    pushes = [m for m in graph.manifests.values() if m.digest not in present]
    stats.add(manifests_copied=len(pushes), manifests_skipped=len(graph.manifests) - len(pushes),
              referrers=len(graph.subject_of))
    if referrers and not options.dry_run:
        # An empty list update stores nothing but lets the store refuse first (``--referrers api`` on a
        # registry without the API), before any referrer is stored that it could not list.
        destination.push_referrers(graph.manifests[referrers[0][0]].descriptor, [], stored=())
    copier = _BlobCopier(source, destination, options, stats, mount_from)
    plan = _Plan(_Tasks(options.concurrency, "ci-oras-copy"))
    for blob in blobs:
        plan.add(("blob", blob.digest), copier.copy, blob)
    for manifest in pushes:
        kind = "manifest" if manifest.is_index else "blob"
        needs = [(kind, child.digest) for child in manifest.children()]
        subject = graph.subject_of.get(manifest.digest)
        needs += [("manifest", subject)] if subject else []
        plan.add(("manifest", manifest.digest), _push_manifest, destination, manifest, options, needs=needs)
    for subject, listed in referrers:
        needs = [("manifest", subject)] + [("manifest", m.digest) for m in listed]
        plan.add(("list", subject), _list_referrers, destination, graph.manifests[subject], listed, present,
                 options, needs=needs)
    plan.run()


_Step = tuple[str, str]


class _Plan:
    """Dependency counting: a step is submitted once every step it needs has finished.

    Needs on steps that are not in the plan (a blob or manifest already at the destination) are met from the
    start. The graph is a DAG (children, subjects and blobs are named by digest, so none can name its own
    ancestor), so every step runs; a cycle would be a bug and is reported as one rather than hanging.
    """

    def __init__(self, tasks: _Tasks) -> None:
        self.tasks = tasks
        self.steps: dict[_Step, tuple[Callable[..., None], tuple[Any, ...]]] = {}
        self.waits: dict[_Step, list[_Step]] = {}
        self.needs: dict[_Step, set[_Step]] = {}
        self.left: dict[_Step, int] = {}
        self.finished = 0
        self.lock = threading.Lock()

    def add(self, step: _Step, action: Callable[..., None], *args: Any, needs: Collection[_Step] = ()) -> None:
        self.steps[step] = (action, args)
        self.needs[step] = set(needs) - {step}

    def run(self) -> None:
        for step, needs in self.needs.items():
            real = [need for need in needs if need in self.steps]
            self.left[step] = len(real)
            for need in real:
                self.waits.setdefault(need, []).append(step)
        for step, count in list(self.left.items()):
            if count == 0:
                self.tasks.submit(self._do, step)
        self.tasks.wait()
        if self.finished != len(self.steps):
            raise AssertionError(f"copy plan left {len(self.steps) - self.finished} steps unscheduled (a cycle)")

    def _do(self, step: _Step) -> None:
        action, args = self.steps[step]
        action(*args)
        ready = []
        with self.lock:
            self.finished += 1
            for waiting in self.waits.get(step, ()):
                self.left[waiting] -= 1
                if self.left[waiting] == 0:
                    ready.append(waiting)
        for waiting in ready:
            self.tasks.submit(self._do, waiting)


class _BlobCopier:
    def __init__(self, source: Target, destination: Target, options: CopyOptions, stats: CopyStats,
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


def _push_manifest(destination: Target, manifest: Manifest, options: CopyOptions) -> None:
    """Store one manifest by digest (a referrer is listed afterwards, once per subject)."""
    if not options.dry_run:
        destination.push_manifest(manifest)
    _report(options, "manifest", len(manifest.raw))


def _list_referrers(destination: Target, subject: Manifest, referrers: list[Manifest], present: set[str],
                    options: CopyOptions) -> None:
    """One list update per subject, even when every referrer was already there (a re-run, or a copy killed
    before its index write): the store reads the list and writes only what is missing. Every referrer is
    stored by now, so the update stores none again."""
    if not options.dry_run:
        destination.push_referrers(subject.descriptor, referrers, stored={m.digest for m in referrers})


def _report(options: CopyOptions, what: str, size: int) -> None:
    if options.progress is not None:
        options.progress(what, size)
