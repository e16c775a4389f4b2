"""Delete a manifest together with the referrers graph below it: referrers first, deepest level first.

The order is chosen so that an interrupted delete leaves a state a re-run can finish, and never a listed
referrer whose manifest is gone:

1. Levels of the graph from the deepest up (a signature of an SBOM goes before the SBOM). Before a manifest is
   deleted, the referrers index the client keeps for it (the tag schema's ``sha256-<hex>``) is deleted: its
   referrers are all gone by then, and while the manifest still exists a re-run can still find it.
2. If the root is itself a referrer, its entry is removed from its subject's referrers index *before* the root
   is deleted: the subject survives, and a crash in between leaves an unlisted manifest (garbage) rather than a
   listed signature that no longer exists (a gate could pass on it).
3. The root.
4. For an index root, its child manifests, after the index: deleting a child first would leave the tag on a
   broken image, and some registries refuse to delete a manifest an index still refers to.

Only the root's subject is ever rewritten: every other subject in the graph is about to be deleted, so its
index is deleted, not updated (fewest requests). A node discovered twice is deleted once. A manifest that is
already gone (404) counts as done, so re-running a half-finished delete succeeds.

The tree comes from ``discover`` with ``check_listings``: only referrers whose manifests name their node as
subject are in it, so nothing a forged or looping listing names is deleted. A node's referrers index is
deleted only when everything it lists is a referrer of that node (or already gone): an index that lists some
other existing manifest may be another image's index reached through a forged ``sha256-<hex>`` tag, and
deleting it by digest would delete that image and its tags; it is left in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ci_oras.errors import NotFoundError
from ci_oras.graph.discover import Node
from ci_oras.oci.descriptor import Descriptor
from ci_oras.store.protocols import GraphEraser


@dataclass(frozen=True)
class DeleteManifest:
    """Delete one manifest; ``subject`` is the digest it refers to in the graph (for reporting)."""

    descriptor: Descriptor
    subject: str | None = None


@dataclass(frozen=True)
class DropIndex:
    """Delete the referrers index the client keeps for ``subject`` (its referrers are gone)."""

    subject: Descriptor


@dataclass(frozen=True)
class ForgetReferrer:
    """Remove ``referrer`` from the referrers index of ``subject``, which survives."""

    subject: Descriptor
    referrer: str


Action = DeleteManifest | DropIndex | ForgetReferrer


@dataclass
class DeleteOutcome:
    """What was (or, in a dry run, would be) done, in order."""

    deleted: list[DeleteManifest] = field(default_factory=list)
    #: Manifests the plan named that were already gone (404): counted as done.
    already_deleted: list[DeleteManifest] = field(default_factory=list)
    #: Subjects whose referrers index was deleted.
    indexes_deleted: list[Descriptor] = field(default_factory=list)
    #: Subjects whose referrers index was updated (an entry removed; deleted when it became empty).
    indexes_updated: list[Descriptor] = field(default_factory=list)


def plan_graph_deletion(root: Node, root_subject: Descriptor | None = None) -> list[Action]:
    """The actions that delete everything in ``root``'s graph, in a safe order (see the module docstring).

    ``root_subject``: the root's own ``subject`` when the root is a referrer; it survives, so the root is
    removed from its referrers index.
    """
    levels: list[list[tuple[Node, Node | None]]] = []
    children = {id(child) for child in root.children}
    seen = {root.descriptor.digest}
    frontier: list[tuple[Node, Node | None]] = [(root, None)]
    while frontier:
        below: list[tuple[Node, Node | None]] = []
        for node, _subject in frontier:
            for member in [*node.children, *node.referrers]:
                if member.repeated or member.descriptor.digest in seen:
                    continue  # shown elsewhere in the graph: deleted there, once
                seen.add(member.descriptor.digest)
                below.append((member, node))
        if below:
            levels.append(below)
        frontier = below

    actions: list[Action] = []
    for level in reversed(levels):
        for node, subject in level:
            if owns_index(node):
                actions.append(DropIndex(node.descriptor))
            if id(node) not in children:
                actions.append(DeleteManifest(node.descriptor, subject.descriptor.digest if subject else None))
    actions.extend(plan_single_deletion(root.descriptor, root_subject, has_referrers=owns_index(root)))
    planned = {id(node) for level in levels for node, _subject in level}  # first occurrences only
    actions.extend(DeleteManifest(child.descriptor) for child in root.children if id(child) in planned)
    return actions


def owns_index(node: Node) -> bool:
    """Whether ``node``'s referrers index is safe to delete with it: it lists something, and only referrers of
    the node (checked) or manifests that are gone."""
    return bool(node.referrers or node.rejected) and not any(r.reason.foreign for r in node.rejected)


def plan_single_deletion(desc: Descriptor, subject: Descriptor | None, *, has_referrers: bool = False) -> list[Action]:
    """Delete one manifest: drop its own (emptied) referrers index when ``has_referrers``, unlist it from its
    surviving ``subject``, then delete it."""
    actions: list[Action] = []
    if has_referrers:
        actions.append(DropIndex(desc))
    if subject is not None:
        actions.append(ForgetReferrer(subject, desc.digest))
    actions.append(DeleteManifest(desc, subject.digest if subject else None))
    return actions


def run_deletion(target: GraphEraser, actions: list[Action], *, dry_run: bool = False) -> DeleteOutcome:
    """Carry out ``actions`` in order; with ``dry_run`` only read what is needed to report the same outcome.

    A dry run reports every planned manifest as deleted (it does not check which are already gone) and an
    index as deleted or updated when the store has one for that subject.
    """
    outcome = DeleteOutcome()
    for action in actions:
        if isinstance(action, DeleteManifest):
            if dry_run:
                outcome.deleted.append(action)
                continue
            try:
                target.delete(action.descriptor)
            except NotFoundError:
                outcome.already_deleted.append(action)
            else:
                outcome.deleted.append(action)
        elif isinstance(action, DropIndex):
            changed = (target.referrers_index(action.subject) is not None if dry_run
                       else target.drop_referrers_index(action.subject))
            if changed:
                outcome.indexes_deleted.append(action.subject)
        else:
            changed = (target.referrers_index(action.subject) is not None if dry_run
                       else target.forget_referrer(action.subject, action.referrer))
            if changed:
                outcome.indexes_updated.append(action.subject)
    return outcome
