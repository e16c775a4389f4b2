"""``delete``: remove a manifest (by digest, so every tag on it goes too, as registries do), or its whole graph.

Without ``graph`` one manifest is deleted. If it is a referrer, it is first removed from its subject's referrers
index where the client keeps one (the tag schema), so ``discover`` and ``verify`` stop listing it. If it has
referrers itself they are left in place, still listed under its digest, and reported as orphaned: deleting
them too is a deliberate ``--graph`` (which finds them again by digest, even after the manifest is gone).

With ``graph`` every referrer below the manifest (and, for an index, its child manifests and their referrers)
is deleted as well, in the order ``ci_oras.graph.delete`` explains. Only what a listing names *and* its
manifest confirms (it exists, has the listed digest and type, and names the node as its subject) is deleted;
every other listed entry is skipped and reported as rejected, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ci_oras.errors import NotFoundError, RegistryError
from ci_oras.graph.delete import (
    DeleteManifest,
    DeleteOutcome,
    plan_graph_deletion,
    plan_single_deletion,
    run_deletion,
)
from ci_oras.graph.discover import DEFAULT_CONCURRENCY, DiscoverOptions, Node, discover
from ci_oras.graph.listing import Rejected
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import is_digest
from ci_oras.oci.referrers import fallback_tag
from ci_oras.store.protocols import GraphEraser, ReadOnlyTarget


class Deletable(ReadOnlyTarget, GraphEraser, Protocol):
    """What ``delete`` uses: it reads the manifest and, with ``graph``, the graph below it, then deletes; it
    never stores content or moves a tag."""


@dataclass(frozen=True)
class DeleteOptions:
    graph: bool = False
    dry_run: bool = False
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass(frozen=True)
class DeleteResult:
    """What ``delete`` did (or, with ``dry_run``, would do)."""

    reference: str
    root: Descriptor
    outcome: DeleteOutcome
    dry_run: bool = False
    #: Referrers of a manifest deleted without ``graph``: left in place, their subject is gone.
    orphaned: tuple[Descriptor, ...] = ()
    #: The discovered graph (with ``graph``), for showing a dry run as a tree.
    tree: Node | None = None

    @property
    def rejected(self) -> list[Rejected]:
        """Listed entries the checks rejected (with ``graph``): not deleted, and not walked below."""
        if self.tree is None:
            return []
        nodes = [self.tree, *(node for _depth, node, _subject in self.tree.walk())]
        return [rejected for node in nodes for rejected in node.rejected]

    @property
    def digest(self) -> str:
        return self.root.digest

    def tree_order(self) -> list[tuple[int, DeleteManifest]]:
        """The manifests deleted (or already gone) with their depth, root first, as ``discover`` shows them."""
        planned = {a.descriptor.digest: a for a in [*self.outcome.deleted, *self.outcome.already_deleted]}
        walked: list[tuple[int, Node]] = []
        if self.tree is not None:
            walked = [(0, self.tree)] + [(depth, node) for depth, node, _subject in self.tree.walk()]
        ordered: list[tuple[int, DeleteManifest]] = []
        for depth, node in walked:
            action = planned.pop(node.descriptor.digest, None)
            if action is not None:
                ordered.append((depth, action))
        ordered.extend((0, action) for action in planned.values())
        return ordered

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": "ci-oras/delete/v1",
            "reference": self.reference,
            "digest": self.root.digest,
            "deleted": [_entry(action) for action in self.outcome.deleted],
            "alreadyDeleted": [_entry(action) for action in self.outcome.already_deleted],
            "indexesDeleted": [_index_entry(subject) for subject in self.outcome.indexes_deleted],
            "indexesUpdated": [_index_entry(subject) for subject in self.outcome.indexes_updated],
            "orphanedReferrers": [_referrer_entry(desc) for desc in self.orphaned],
            "rejected": [rejected.to_dict() for rejected in self.rejected],
            "dryRun": self.dry_run,
        }
        return doc


def delete(target: Deletable, repository: str, reference: str, shown: str,
           options: DeleteOptions = DeleteOptions()) -> DeleteResult:
    """Delete ``reference`` (a tag or digest in ``target``); ``repository`` names graph nodes.

    With ``graph`` and a digest reference, a manifest that is already gone still has its referrers (and their
    indexes) deleted: that is how a half-finished graph delete, or the referrers a plain delete left behind,
    are cleaned up.
    """
    subject: Descriptor | None = None
    try:
        manifest = target.fetch_manifest(reference)
    except NotFoundError:
        if not (options.graph and is_digest(reference)):
            raise
        root = Descriptor(media_type=mediatypes.OCI_MANIFEST, digest=reference, size=0)
    else:
        root = Descriptor(media_type=manifest.media_type, digest=manifest.digest, size=len(manifest.raw),
                          artifact_type=manifest.effective_artifact_type)
        subject = manifest.subject
    if options.graph:
        tree = discover(target, repository, root,
                        DiscoverOptions(include_children=True, concurrency=options.concurrency,
                                        check_listings=True))
        outcome = run_deletion(target, plan_graph_deletion(tree, subject), dry_run=options.dry_run)
        return DeleteResult(shown, root, outcome, options.dry_run, tree=tree)
    try:
        orphaned = tuple(target.referrers(root))
    except (RegistryError, NotFoundError):
        orphaned = ()  # only a warning depends on it: never fail the delete over it
    outcome = run_deletion(target, plan_single_deletion(root, subject), dry_run=options.dry_run)
    return DeleteResult(shown, root, outcome, options.dry_run, orphaned=orphaned)


def _entry(action: DeleteManifest) -> dict[str, Any]:
    """Backward compatible with the first ``deleted`` shape (digest, mediaType), plus what it was."""
    entry: dict[str, Any] = {"digest": action.descriptor.digest, "mediaType": action.descriptor.media_type}
    if action.descriptor.artifact_type:
        entry["artifactType"] = action.descriptor.artifact_type
    if action.subject:
        entry["subject"] = action.subject
    return entry


def _index_entry(subject: Descriptor) -> dict[str, Any]:
    return {"subject": subject.digest, "tag": fallback_tag(subject.digest)}


def _referrer_entry(desc: Descriptor) -> dict[str, Any]:
    entry: dict[str, Any] = {"digest": desc.digest, "mediaType": desc.media_type}
    if desc.artifact_type:
        entry["artifactType"] = desc.artifact_type
    return entry

