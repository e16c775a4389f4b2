"""Requirement chains matched against the referrers graph: the walk behind ``verify``.

A chain (``sbom>signature``) is matched level by level from its start node: every node some chain still has
to look below is listed **once** per check, whatever the number of chains that need it, and the nodes of a
level are listed in parallel on a bounded pool (as ``discover`` does). A listed referrer that could match is
counted only once its manifest confirms the listing (``ci_oras.graph.listing``), unless ``trust_listing``;
a chain descends only into accepted referrers matching its current element. Speaks only to the store
protocols, like the rest of ``graph``.

With a :class:`~ci_oras.graph.signatures.SignatureCheck`, an accepted referrer that a configured policy
handles (a Notary Project signature) and that a chain element could match is also judged (its envelope
fetched and evaluated, in parallel like the manifest checks) and counts — as a match and as a node to descend
into — only when its outcome counts. Without one, nothing is judged and the walk is as it always was.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ci_oras.graph.listing import Fetched, Rejected, check_entries, malformed_entry, self_reference
from ci_oras.graph.signatures import SignatureCheck, examine_signature
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.oci.referrers import MalformedListing
from ci_oras.requirements import Matcher
from ci_oras.store.protocols import Target

if TYPE_CHECKING:
    from ci_oras.signing.policy import SignatureOutcome

#: One requirement's elements, outermost first (``sbom>signature``: the SBOM matcher, then the signature's).
Chain = tuple[Matcher, ...]


class ChainMatch:
    """One check: list what the chains need level by level, check the listed referrers that could match,
    then read the answers (:meth:`paths`) off the accepted ones."""

    def __init__(self, target: Target, concurrency: int, trust_listing: bool,
                 signatures: SignatureCheck | None = None) -> None:
        self.target = target
        self.concurrency = max(1, concurrency)
        self.trust_listing = trust_listing
        self.signatures = signatures
        #: (node digest, signature digest) → the signature's outcome, each judged once per check
        self.outcomes: dict[tuple[str, str], SignatureOutcome] = {}
        #: digest → the referrers listed under it (unfiltered, each digest once)
        self.listed: dict[str, list[Descriptor]] = {}
        #: (node digest, listed digest) → the accepted descriptor (the manifest's), or why it was rejected
        self.verdicts: dict[tuple[str, str], Descriptor | Rejected] = {}
        #: listed digest → its manifest (or why there is none): one fetch per digest per check
        self.fetched: dict[str, Fetched] = {}
        #: listing entries that are not descriptors, as rejections
        self.malformed: list[Rejected] = []
        self.listings = 0
        self._lock = threading.Lock()

    def run(self, starts: Sequence[tuple[Descriptor, Chain]]) -> None:
        """Walk below each start node as far as its chain needs; every node is listed once."""
        frontier: dict[str, tuple[Descriptor, set[Chain]]] = {}
        for start, chain in starts:
            frontier.setdefault(start.digest, (start, set()))[1].add(chain)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="ci-oras-verify") as pool:
            while frontier:
                nodes = list(frontier.values())
                listings = list(pool.map(lambda node: self._list(node[0]), nodes))
                self._check(pool, [(desc.digest, referrer) for (desc, chains), listed in zip(nodes, listings)
                                   for referrer in listed if any(c[0].may_match(referrer.artifact_type)
                                                                 for c in chains)])
                self._judge(pool, nodes)
                next_frontier: dict[str, tuple[Descriptor, set[Chain]]] = {}
                for desc, chains in nodes:
                    for chain in chains:
                        if len(chain) == 1:
                            continue
                        for referrer in self._accepted(desc.digest):
                            if _matches(chain[0], referrer):
                                next_frontier.setdefault(referrer.digest, (referrer, set()))[1].add(chain[1:])
                frontier = next_frontier

    def _list(self, desc: Descriptor) -> list[Descriptor]:
        with self._lock:
            cached = self.listed.get(desc.digest)
        if cached is not None:
            return cached
        malformed: list[Rejected] = []
        try:
            listed = _unique(self.target.referrers(desc.plain()))
        except MalformedListing as exc:
            # Entries that are not descriptors are rejected referrers, reported and never counted; the
            # well-formed rest is checked as usual. (A listing that is not a listing at all ends the check.)
            listed = _unique(exc.listed)
            malformed = [malformed_entry(desc.digest, entry) for entry in exc.entries]
        with self._lock:
            self.listed[desc.digest] = listed
            self.malformed.extend(malformed)
            self.listings += 1
        return listed

    def _check(self, pool: ThreadPoolExecutor, entries: list[tuple[str, Descriptor]]) -> None:
        """Give every (node, listed referrer) pair not judged yet its verdict."""
        unique = {(node, desc.digest): (node, desc) for node, desc in entries}
        fresh = [pair for key, pair in unique.items() if key not in self.verdicts]
        if self.trust_listing:
            verdicts: list[Descriptor | Rejected] = [self_reference(node, d) or d for node, d in fresh]
        else:
            verdicts = check_entries(self.target, pool, fresh, self.fetched)
        for (node, desc), verdict in zip(fresh, verdicts):
            self.verdicts[(node, desc.digest)] = verdict

    def _judge(self, pool: ThreadPoolExecutor, nodes: list[tuple[Descriptor, set[Chain]]]) -> None:
        """Judge every accepted signature below ``nodes`` that a chain could count and that is not judged yet."""
        check = self.signatures
        if check is None:
            return
        work: list[tuple[Descriptor, Manifest]] = []
        for desc, chains in nodes:
            for referrer in self._accepted(desc.digest, judged_only=False):
                key = (desc.digest, referrer.digest)
                manifest = self.fetched.get(referrer.digest)
                if (key in self.outcomes or not isinstance(manifest, Manifest) or not check.handles(
                        referrer.artifact_type) or not any(_matches(chain[0], referrer) for chain in chains)):
                    continue
                work.append((desc, manifest))
        outcomes = list(pool.map(lambda item: examine_signature(self.target, item[1], item[0], check.policies,
                                                                check.scope), work))
        for (desc, manifest), outcome in zip(work, outcomes):
            if outcome is not None:
                self.outcomes[(desc.digest, manifest.digest)] = outcome

    def _accepted(self, digest: str, judged_only: bool = True) -> list[Descriptor]:
        """The referrers listed under ``digest`` that were checked and accepted, in listing order; with
        ``judged_only``, a signature whose outcome does not count is left out (it was judged and refused)."""
        accepted: list[Descriptor] = []
        for listed in self.listed.get(digest, []):
            verdict = self.verdicts.get((digest, listed.digest))
            if verdict is None or isinstance(verdict, Rejected):
                continue
            outcome = self.outcomes.get((digest, verdict.digest))
            if judged_only and self.signatures is not None and self.signatures.handles(verdict.artifact_type) \
                    and (outcome is None or not outcome.counts):
                continue
            accepted.append(verdict)
        return accepted

    def signature_outcomes(self) -> list[tuple[str, SignatureOutcome]]:
        """Every signature judged in this check with the node it signs, in the order judged."""
        return [(node, outcome) for (node, _), outcome in self.outcomes.items()]

    def rejected(self) -> list[Rejected]:
        return [*self.malformed, *(verdict for verdict in self.verdicts.values() if isinstance(verdict, Rejected))]

    def paths(self, digest: str, chain: Chain) -> list[tuple[str, ...]]:
        """Every path of accepted referrers below ``digest`` matching ``chain``, element by element."""
        out: list[tuple[str, ...]] = []
        for referrer in self._accepted(digest):
            if not _matches(chain[0], referrer):
                continue
            if len(chain) == 1:
                out.append((referrer.digest,))
            else:
                out.extend((referrer.digest, *rest) for rest in self.paths(referrer.digest, chain[1:]))
        return out


def _matches(matcher: Matcher, desc: Descriptor) -> bool:
    return matcher.matches(desc.artifact_type, desc.annotations)


def _unique(listed: list[Descriptor]) -> list[Descriptor]:
    seen: set[str] = set()
    out: list[Descriptor] = []
    for desc in listed:
        if desc.digest not in seen:
            seen.add(desc.digest)
            out.append(desc)
    return out

