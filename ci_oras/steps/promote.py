"""``promote``: copy an image or artifact with its whole graph to another repository, registry or layout.

Only referrers whose manifests confirm their listing are copied (``ci_oras.graph.copy``); the rest are
reported as rejected, with the reason, in the result document.

To several destinations at once (``promote_fan_out``) the copies run side by side over one
``SharedSource``, which reads each source blob once; no destination is tagged until every copy is complete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from ci_oras.errors import UsageError
from ci_oras.graph.copy import CopyOptions, CopyStats, copy_graph
from ci_oras.graph.listing import Rejected
from ci_oras.oci.manifest import Manifest
from ci_oras.oci.reference import Reference, parse_reference
from ci_oras.store.protocols import GraphStorage, ReadOnlyTarget, Resolver, Tagger


@dataclass(frozen=True)
class PromoteResult:
    source: str
    destination: str
    digest: str
    media_type: str
    tags: tuple[str, ...]
    tags_written: tuple[str, ...]
    stats: CopyStats
    dry_run: bool
    #: Listed referrers whose manifests did not confirm the listing: not copied.
    rejected: tuple[Rejected, ...] = ()

    def document(self) -> dict[str, Any]:
        s = self.stats
        return {
            "schema": "ci-oras/promote/v1",
            "source": self.source,
            "destination": self.destination,
            "reference": self.destination,
            "digest": self.digest,
            "mediaType": self.media_type,
            "tags": list(self.tags),
            "tagsWritten": list(self.tags_written),
            "copied": {"manifests": s.manifests_copied, "blobs": s.blobs_copied},
            "mounted": s.blobs_mounted,
            "skipped": {"manifests": s.manifests_skipped, "blobs": s.blobs_skipped},
            "bytes": s.bytes_copied,
            "referrers": s.referrers,
            "rejected": [rejected.to_dict() for rejected in self.rejected],
            "dryRun": self.dry_run,
        }


class Destination(GraphStorage, Resolver, Tagger, Protocol):
    """What a promotion writes with: the copy's ``GraphStorage``, and the tags pointed at the root last (a tag
    already on it is resolved first and left alone)."""


_T_co = TypeVar("_T_co", covariant=True)


@dataclass(frozen=True)
class Endpoint(Generic[_T_co]):
    """One side of a promotion: the open target, how to show it, and the tag or digest named. The source is
    only read (``Endpoint[ReadOnlyTarget]``); the destination is an ``Endpoint[Destination]``."""

    target: _T_co
    repository: str
    reference: str | None
    tags: tuple[str, ...] = ()
    digest: str | None = None
    #: Set when both sides are repositories on one registry: blobs are mounted from this repository.
    mount_from: str | None = None


def destination_reference(source: Reference, text: str) -> Reference:
    """DST without a tag or digest takes SRC's tag (as `oras cp` does); by digest, it gets no tag."""
    destination = parse_reference(text)
    if not destination.tags and not destination.digest and source.tags:
        destination = destination.with_tags(source.tags)
    if str(destination) == str(source):
        raise UsageError(f"source and destination are the same: {text}", hint="name another repository or tag")
    return destination


def promote(source: Endpoint[ReadOnlyTarget], destination: Endpoint[Destination], options: CopyOptions, *,
            platform: str | None = None,
            on_plan: Callable[[int, int], Callable[[str, int], None] | None] | None = None) -> PromoteResult:
    """``on_plan(blob count, bytes)`` may return a progress callback once the size of the copy is known."""
    root = _root(source, platform)
    _check_digest(destination, root)
    tags = destination.tags
    relay = _ProgressRelay()
    if on_plan is not None:
        options = replace(options, progress=relay.report)

    def planned(count: int, size: int) -> None:
        if on_plan is not None:
            relay.connect(on_plan(count, size))

    graph, stats, root_was_there = copy_graph(source.target, destination.target, root, options,
                                              destination.mount_from, planned)
    written = _point_tags(destination.target, root, tags, options.dry_run, root_was_there)
    return _result(source, destination, root, stats, written, options.dry_run, graph.rejected)


def _root(source: Endpoint[ReadOnlyTarget], platform: str | None) -> Manifest:
    """The manifest SRC names (its ``platform`` child of an index, when asked)."""
    from ci_oras.steps.common import resolve_subject

    if source.reference is None:
        raise UsageError(f"{source.repository} names no tag or digest", hint="promote REPO:TAG or REPO@DIGEST")
    root: Manifest = source.target.fetch_manifest(source.reference)
    if platform is not None:
        child = resolve_subject(source.target, source.reference, f"{source.repository}:{source.reference}", platform)
        root = source.target.fetch_manifest(child.digest)
    return root


def _check_digest(destination: Endpoint[Destination], root: Manifest) -> None:
    if destination.digest and destination.digest != root.digest:
        raise UsageError(f"destination digest {destination.digest} is not the source's {root.digest}",
                         hint="name the destination by tag (or leave the digest out)")


@dataclass(frozen=True)
class FanOutResult:
    """One source promoted to several destinations: each destination's result, and what was read from the
    source (each blob once, unless a stream broke off and was read again)."""

    results: tuple[PromoteResult, ...]
    blobs_read: int
    bytes_read: int

    def document(self) -> dict[str, Any]:
        """``promote``'s document: the first destination names ``destination``/``reference``/``tags``, the
        counts are totals over every destination, and ``destinations`` holds each one's own."""
        first = self.results[0].document()
        per_destination = [result.document() for result in self.results]
        for key in ("mounted", "bytes", "referrers"):
            first[key] = sum(document[key] for document in per_destination)
        for key in ("copied", "skipped"):
            first[key] = {part: sum(document[key][part] for document in per_destination)
                          for part in ("manifests", "blobs")}
        first["destinations"] = [
            {key: document[key] for key in ("destination", "tags", "tagsWritten", "copied", "mounted", "skipped",
                                            "bytes")} for document in per_destination]
        first["sourceBlobsRead"] = self.blobs_read
        first["sourceBytesRead"] = self.bytes_read
        return first


def promote_fan_out(source: Endpoint[ReadOnlyTarget], destinations: Sequence[Endpoint[Destination]],
                    options: CopyOptions, *, platform: str | None = None) -> FanOutResult:
    """Promote ``source`` to every destination, reading each source blob once (``graph/fanout.py``).

    The copies run side by side; the tags come after all of them, destination by destination, so when any
    copy fails no destination is tagged (each keeps whatever blobs and manifests arrived: a re-run skips them).
    """
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from ci_oras.graph.fanout import SharedSource

    root = _root(source, platform)
    for destination in destinations:
        _check_digest(destination, root)
    with tempfile.TemporaryDirectory(prefix="ci-oras-fanout-") as spool:
        shared = SharedSource(source.target, Path(spool))
        with ThreadPoolExecutor(max_workers=len(destinations), thread_name_prefix="ci-oras-fanout") as pool:
            copies = [pool.submit(copy_graph, shared, destination.target, root, options, destination.mount_from)
                      for destination in destinations]
            done = [copy.result() for copy in copies]  # the first failure, once every copy has ended
    results = []
    for destination, (graph, stats, root_was_there) in zip(destinations, done):
        written = _point_tags(destination.target, root, destination.tags, options.dry_run, root_was_there)
        results.append(_result(source, destination, root, stats, written, options.dry_run, graph.rejected))
    return FanOutResult(tuple(results), shared.blobs_read, shared.bytes_read)


def _result(source: Endpoint[ReadOnlyTarget], destination: Endpoint[Destination], root: Manifest, stats: CopyStats,
            written: tuple[str, ...], dry_run: bool, rejected: Sequence[Rejected]) -> PromoteResult:
    tags = destination.tags
    shown = f"{destination.repository}:{tags[0]}" if tags else f"{destination.repository}@{root.digest}"
    return PromoteResult(
        source=f"{source.repository}@{root.digest}", destination=shown, digest=root.digest,
        media_type=root.media_type, tags=tags, tags_written=written, stats=stats, dry_run=dry_run,
        rejected=tuple(rejected),
    )


class _ProgressRelay:
    """Progress events reach the callback ``on_plan`` returns, which exists only once the plan is known; the
    copy starts before that (while the walk still runs), so earlier events are kept and handed over then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callback: Callable[[str, int], None] | None = None
        self._early: list[tuple[str, int]] | None = []

    def report(self, what: str, size: int) -> None:
        with self._lock:
            if self._early is not None:
                self._early.append((what, size))
                return
            callback = self._callback
        if callback is not None:
            callback(what, size)

    def connect(self, callback: Callable[[str, int], None] | None) -> None:
        with self._lock:
            early, self._early, self._callback = self._early or [], None, callback
            if callback is not None:
                for what, size in early:  # under the lock: a later event cannot overtake these
                    callback(what, size)


def _point_tags(destination: Destination, root: Manifest, tags: tuple[str, ...], dry_run: bool,
                root_was_there: bool) -> tuple[str, ...]:
    """The last step: a tag that already names the root is left alone, so a re-run writes nothing. When the
    root was not at the destination before this copy, no tag can have named it: no need to ask."""
    from ci_oras.errors import NotFoundError

    written = []
    for tag in tags:
        try:
            if root_was_there and destination.resolve(tag).digest == root.digest:
                continue
        except NotFoundError:
            pass
        if not dry_run:
            destination.tag(root, tag)
        written.append(tag)
    return tuple(written)
