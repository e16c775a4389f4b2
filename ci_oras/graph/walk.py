"""Walk the referrers graph as a work queue: every node is listed as soon as it is known.

A walk level by level (list every node of a level, wait for the slowest answer, then the next level) leaves
its pool idle at the end of each level and keeps the levels apart, and a check of the listed manifests adds a
second wait per level. Here a node's referrers are listed, and each listed entry's manifest is fetched (with
``check``), as soon as the node is known, so the pool stays full across siblings and depths from the first
request to the last. A task never waits for another: an entry whose manifest another task is fetching is
judged by that task when the answer comes. So a bounded pool cannot deadlock; the first error stops what is
not started yet and is raised by ``Tasks.wait`` (see ``Tasks``).

Nothing found depends on timing: a digest's listing (the referrers of that digest, filtered by ``select``,
each entry judged against its manifest with ``check``) is the same whichever path reached it first, so the
walk lists every digest at most once and records its listing, and the callers build their result from the
recorded listings afterwards, in the breadth-first, listing order a walk level by level would have met them
in (``listing``). The depth limit is kept the same way: a node is listed when some path from a start node
reaches it in fewer than ``depth`` referrer steps. A node first reached by a long path and later by a shorter
one takes its referrers along to their shorter depth; so a node is listed exactly when a walk level by level
would list it, however the answers interleave.

Fewer listings on the tag schema. There a node's listing is the index its ``sha256-<hex>`` tag names, and a
leaf has none: its listing is a GET answered 404. One tag list shows which tags exist, so once a walk has
``PRUNE_AFTER`` nodes to list (start nodes, and the new nodes the listings so far named, within the depth
limit) it asks the store once for the subjects that have a listing at all (``ListedSubjects``), and from then
on a node not among them gets the empty listing without a request; the nodes reached while the answer is
awaited wait for it (parked, not a task waiting), and a store that cannot tell (the referrers API, a layout,
a tag list that could not be read) leaves every node listed as before. Below ``PRUNE_AFTER`` nodes nothing
changes: the tag list grows with the whole repository, the graph may be three nodes. The answer is held by
this walk only, a snapshot like every listing it read: a listing written after it was read is not seen in
this walk, as one written after its node was listed is not, and the next walk (``verify --wait``'s next
check included) reads everything again. It only ever says that a listing is absent: what a listing that
exists names is judged as ever.

A listing is held once, as the store returned it (filtered when ``select`` leaves entries out; with ``check``
a verdict per entry beside it); per node the walk keeps its depth, its listing and what it accepted of it.
With ``check``, the first malformed entry met ends the walk: which one, when several are, depends on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from ci_oras.graph.listing import Fetched, Reason, Rejected, fetch_listed, judge, self_reference
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.store.protocols import ListedSubjects, ReadOnlyTarget

#: A listed entry once looked at: the accepted descriptor (the manifest's own with ``check``), or why not.
Verdict = Descriptor | Rejected

#: Nodes to list in one walk from which the store is asked which subjects have a listing at all (module
#: docstring). On docker-registry one tag list of a repository with 10,000 tags took as long as nine GETs of
#: an absent tag (11.5 ms against 1.2 ms, loopback) and one round trip farther away; 32 leaves take four
#: rounds of the default pool of eight. The store may spend at most as many requests (tag-list pages) as there
#: are nodes to list then.
PRUNE_AFTER = 32


class Tasks:
    """Bounded pools whose tasks may submit more tasks; the first error stops the rest.

    ``pools`` maps each pool's name to its size and the name its threads get. ``wait`` returns when every
    submitted task has finished, or raises the first error once the tasks already running have finished
    (queued ones are cancelled): nothing keeps working after a failure is reported, and no worker thread
    prints a traceback of its own.
    """

    def __init__(self, pools: dict[str, tuple[int, str]]) -> None:
        self._pools = {name: ThreadPoolExecutor(max_workers=max(1, size), thread_name_prefix=threads)
                       for name, (size, threads) in pools.items()}
        self._changed = threading.Condition()
        self._running = 0
        self._error: BaseException | None = None

    def submit(self, pool: str, task: Callable[..., None], *args: Any) -> None:
        with self._changed:
            if self._error is not None:
                return
            self._running += 1
        self._pools[pool].submit(self._run, task, args)

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
                if not self._running or self._error is not None:  # all the waiting thread waits for
                    self._changed.notify_all()

    def wait(self) -> None:
        try:
            with self._changed:
                while self._running and self._error is None:
                    self._changed.wait()
        finally:
            for pool in self._pools.values():
                pool.shutdown(wait=True, cancel_futures=True)
        if self._error is not None:
            raise self._error


class _Listing:
    """One node's listing: its entries, and with ``check`` their verdicts as they come."""

    __slots__ = ("entries", "verdicts", "accepted", "left")

    def __init__(self, entries: Sequence[Descriptor], verdicts: list[Verdict | None] | None,
                 accepted: list[Descriptor]) -> None:
        self.entries = entries
        #: By position in ``entries``; None without ``check`` (every entry is accepted as listed).
        self.verdicts = verdicts
        #: The entries accepted so far, in the order they were judged.
        self.accepted = accepted
        #: Entries not judged yet, plus one while the listing task is still handing them out.
        self.left = 0 if verdicts is None else len(entries) + 1


#: A node reached: its descriptor, depth, manifest (when fetched already) and the subject it was listed under.
_Reached = tuple[Descriptor, int, Manifest | None, str | None]


class ReferrersWalk:
    """One walk below the start nodes given to ``add``; its tasks go to ``submit(task, *args)``.

    - ``select(subject digest, listed entry)``: which entries of a listing are followed (None: all);
    - ``check``: each selected entry's manifest is fetched (once per digest in the walk) and judged against
      the node it was listed under (``ci_oras.graph.listing``); an accepted entry is described by its
      manifest, a rejected one is kept in the listing as a ``Rejected``, a malformed one ends the walk with
      ``refusal()``: acting on the rest of a malformed graph would be guessing;
    - ``depth``: list only nodes fewer than this many referrer steps from a start node (None: all; 0: none);
    - ``children``: an index's child manifests are nodes too, at the index's depth, fetched as they are
      (the index named them by digest, and it was verified);
    - ``on_known(node, manifest, subject)``: called once per node, when it is first known (with its manifest
      when it was fetched: always with ``check``, ``children`` or a start node given one);
    - ``on_listed(subject, accepted)``: called once per listed node when every entry is judged, with the
      accepted ones in listing order (each digest once), after ``on_known`` of each of them.
    """

    def __init__(self, target: ReadOnlyTarget, submit: Callable[..., None], *,
                 select: Callable[[str, Descriptor], bool] | None = None, check: bool = False,
                 depth: int | None = None, children: bool = False,
                 on_known: Callable[[Descriptor, Manifest | None, str | None], None] | None = None,
                 on_listed: Callable[[str, list[Descriptor]], None] | None = None) -> None:
        self.target = target
        self.submit = submit
        self.select = select
        self.check = check
        self.depth = depth
        self.children = children
        self.on_known = on_known
        self.on_listed = on_listed
        self._lock = threading.Lock()
        #: digest → the fewest referrer steps from a start node found so far
        self._depth: dict[str, int] = {}
        #: index children being fetched → their depth (a node once fetched)
        self._pending_children: dict[str, int] = {}
        self._started: set[str] = set()
        self._listings: dict[str, _Listing] = {}
        #: every listed digest fetched so far (or found unfit), and the manifests given: fetched once per walk
        self.fetched: dict[str, Fetched] = {}
        #: listed digests being fetched → the entries waiting for that answer (subject, position, entry)
        self._waiting: dict[str, list[tuple[str, int, Descriptor]]] = {}
        #: The store that can tell which subjects have a listing, until it is asked (module docstring).
        self._lister: ListedSubjects | None = target if isinstance(target, ListedSubjects) else None
        #: Nodes to list counted so far, while the store has not been asked.
        self._planned = 0
        #: Nodes whose listing waits for the store's answer; None when no answer is awaited.
        self._parked: list[Descriptor] | None = None
        #: The store's answer: the subjects that have a listing; None (not asked, or it could not tell): all.
        self._with_listing: Container[str] | None = None

    def add(self, node: Descriptor, depth: int = 0, manifest: Manifest | None = None) -> None:
        """A start node (``depth`` 0), with its manifest when the caller fetched it."""
        if self._lists_at(depth):
            self._plan(1)
        self._reach([(node, depth, manifest, None)])

    def listing(self, digest: str) -> Sequence[Verdict]:
        """The listing of a node the walk listed (after ``Tasks.wait``): its selected entries in listing order,
        each accepted as listed (without ``check``) or judged."""
        listing = self._listings[digest]
        if listing.verdicts is None:
            return listing.entries
        return cast("list[Verdict]", listing.verdicts)  # every position is filled once the walk is over

    def manifest(self, digest: str) -> Manifest:
        """The manifest of a node the walk fetched (with ``check`` or ``children``) or was given."""
        fetched = self.fetched[digest]
        assert isinstance(fetched, Manifest), digest  # a node is accepted only with its manifest
        return fetched

    def _reach(self, reached: list[_Reached]) -> None:
        """Nodes reached: a new one is told to ``on_known`` and listed (within the depth limit); one reached
        in fewer steps than before takes what it leads to (accepted referrers, index children) along."""
        while reached:
            node, depth, manifest, subject = reached.pop()
            fetch: list[Descriptor] = []
            with self._lock:
                known = self._depth.get(node.digest)
                depth = min(depth, self._pending_children.pop(node.digest, depth))
                if known is not None and known <= depth:
                    continue
                self._depth[node.digest] = depth
                if manifest is not None:
                    self.fetched.setdefault(node.digest, manifest)
                start = node.digest not in self._started and self._lists_at(depth)
                if start:
                    self._started.add(node.digest)
                listing = self._listings.get(node.digest)
                if listing is not None:
                    reached.extend((referrer, depth + 1, None, node.digest) for referrer in listing.accepted)
                index = self.fetched.get(node.digest)
                if self.children and isinstance(index, Manifest) and index.is_index:
                    for child in index.manifests:
                        if child.digest in self._depth:
                            reached.append((child, depth, None, None))
                        elif child.digest in self._pending_children:
                            self._pending_children[child.digest] = min(depth, self._pending_children[child.digest])
                        else:
                            self._pending_children[child.digest] = depth
                            fetch.append(child)
            if known is None and self.on_known is not None:
                self.on_known(node, manifest, subject)
            if fetch and self._lists_at(depth):
                self._plan(len(fetch))
            for child in fetch:
                self.submit(self._fetch_child, child)
            if start:
                self.submit(self._list, node)

    def _fetch_child(self, child: Descriptor) -> None:
        manifest = self.target.fetch_manifest(child.digest)
        with self._lock:  # ``_reach`` takes the pending depth, which may have shrunk meanwhile
            depth = self._pending_children.get(child.digest, self._depth.get(child.digest, 0))
        self._reach([(manifest.descriptor, depth, manifest, None)])

    def _lists_at(self, depth: int) -> bool:
        """Whether a node this many referrer steps from a start node is listed."""
        return self.depth is None or depth < self.depth

    def _plan(self, nodes: int) -> None:
        """``nodes`` more nodes to list: once they make ``PRUNE_AFTER``, the store is asked which subjects have
        a listing (once per walk), and the listings that start meanwhile are parked until it answers."""
        with self._lock:
            if self._lister is None or self._parked is not None:
                return
            self._planned += nodes
            if self._planned < PRUNE_AFTER:
                return
            lister, self._lister, self._parked = self._lister, None, []
            budget = self._planned
        self.submit(self._ask_listed, lister, budget)

    def _ask_listed(self, lister: ListedSubjects, budget: int) -> None:
        with_listing = lister.listed_subjects(budget)
        with self._lock:
            self._with_listing = with_listing
            parked, self._parked = self._parked or [], None
        for node in parked:
            self.submit(self._list, node)

    def _list(self, node: Descriptor) -> None:
        with self._lock:
            if self._parked is not None:
                self._parked.append(node)
                return
            absent = self._with_listing is not None and node.digest not in self._with_listing
        listed = [] if absent else self.target.referrers(node)
        subject = node.digest
        entries = listed if self.select is None else [desc for desc in listed if self.select(subject, desc)]
        with self._lock:  # the entries not known yet are nodes to list, unless the depth limit stops there
            counting = self._lister is not None and self._lists_at(self._depth[subject] + 1)
            new = len({desc.digest for desc in entries} - self._depth.keys()) if counting else 0
        if new:
            self._plan(new)
        if not self.check:
            listing = _Listing(entries, None, entries)
            with self._lock:
                self._listings[subject] = listing
                depth = self._depth[subject]
            self._reach([(desc, depth + 1, None, subject) for desc in reversed(entries)])
            self._done(subject)
            return
        listing = _Listing(entries, [None] * len(entries), [])
        with self._lock:
            self._listings[subject] = listing
        for position, desc in enumerate(entries):
            self._entry(subject, position, desc)
        self._judged(subject, listing)

    def _entry(self, subject: str, position: int, desc: Descriptor) -> None:
        """A listed entry: judged against its manifest, fetched once per digest however often it is listed."""
        rejected = self_reference(subject, desc)
        if rejected is not None:
            self._verdict(subject, position, rejected, None)
            return
        with self._lock:
            answer = self.fetched.get(desc.digest)
            first = answer is None and desc.digest not in self._waiting
            if answer is None:
                self._waiting.setdefault(desc.digest, []).append((subject, position, desc))
        if answer is not None:
            self._judge(subject, position, desc, answer)
        elif first:
            self.submit(self._fetch_listed, subject, desc)

    def _fetch_listed(self, subject: str, desc: Descriptor) -> None:
        answer = fetch_listed(self.target, subject, desc)
        with self._lock:
            answer = self.fetched.setdefault(desc.digest, answer)
            waiters = self._waiting.pop(desc.digest, [])
        for waiting_subject, position, listed in waiters:
            self._judge(waiting_subject, position, listed, answer)

    def _judge(self, subject: str, position: int, desc: Descriptor, answer: Fetched) -> None:
        verdict = judge(subject, desc, answer)
        if isinstance(verdict, Rejected) and verdict.reason is Reason.malformed:
            raise verdict.refusal()
        self._verdict(subject, position, verdict, answer if isinstance(answer, Manifest) else None)

    def _verdict(self, subject: str, position: int, verdict: Verdict, manifest: Manifest | None) -> None:
        with self._lock:
            listing = self._listings[subject]
            assert listing.verdicts is not None
            listing.verdicts[position] = verdict
            if isinstance(verdict, Descriptor):
                listing.accepted.append(verdict)
            depth = self._depth[subject]
        if isinstance(verdict, Descriptor):
            self._reach([(verdict, depth + 1, manifest, subject)])
        self._judged(subject, listing)

    def _judged(self, subject: str, listing: _Listing) -> None:
        """One entry of ``subject``'s listing is judged (or the listing task handed out the last one)."""
        with self._lock:
            listing.left -= 1
            done = not listing.left
        if done:
            self._done(subject)

    def _done(self, subject: str) -> None:
        if self.on_listed is None:
            return
        seen: set[str] = set()
        accepted: list[Descriptor] = []
        for verdict in self.listing(subject):
            if isinstance(verdict, Descriptor) and verdict.digest not in seen:
                seen.add(verdict.digest)
                accepted.append(verdict)
        self.on_listed(subject, accepted)
