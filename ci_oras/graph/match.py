"""Requirement chains matched against the referrers graph: the search behind ``verify``.

A gate runs before every release, and referrers pile up (every pipeline building on a base image attaches to
it), so the search asks for what a requirement needs and stops once it holds:

- **Candidates.** Below a node, the listed referrers whose type could match the chain's first element, in a
  stated order: newest first by the listing entry's ``org.opencontainers.image.created`` where present, then
  the rest in listing order. The order only decides what is looked at first; nothing counts because of it.
- **Confirmed before counted.** A candidate counts only once its manifest, fetched by the listed digest,
  confirms the listing (``ci_oras.graph.listing``) and matches on its own type and annotations; with a
  :class:`~ci_oras.graph.signatures.SignatureCheck`, a signature a policy handles counts only when it
  verifies. ``trust_listing`` counts the listing's claims without fetching. A forged entry first in the
  listing costs one request, then the next candidate is tried. A node listed under itself is never a
  candidate: it is rejected (and reported) without a request, examined or not.
- **Stop once it holds.** ``*N`` needs N candidates that confirm: at most as many checks as are still needed
  are in flight (and at most ``concurrency`` requests in all), so a requirement met by its first candidates
  never fetches the others, and what counts is always the first N confirmable candidates in that order.
- **Chains** descend only from confirmed candidates (``sbom>signature``: the signatures of an SBOM that
  counted), and one confirmed path below a candidate is enough for it.

Each node is listed at most once per check, whatever the number of requirements and subjects asking (they are
searched side by side). A :class:`Memory` carries what was confirmed, rejected or judged from one check of a
``--wait`` to the next, by digest: a later check lists again (the listing may have grown) but fetches only
entries it has not met. Speaks only to the store protocols, like the rest of ``graph``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, TypeVar

from ci_oras.graph.listing import Fetched, Rejected, fetch_listed, judge, malformed_entry, self_reference
from ci_oras.graph.signatures import SignatureCheck, examine_signature
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.oci.referrers import MalformedListing, Unchanged
from ci_oras.requirements import Matcher, is_sigstore_bundle
from ci_oras.store.protocols import ReadOnlyTarget, RevalidatingLister

if TYPE_CHECKING:
    from ci_oras.signing.policy import SignatureOutcome

#: One requirement's elements, outermost first (``sbom>signature``: the SBOM matcher, then the signature's).
Chain = tuple[Matcher, ...]
#: The listing annotation that orders candidates, newest first.
ANNOTATION_CREATED = "org.opencontainers.image.created"

_T = TypeVar("_T")
_K = TypeVar("_K", str, tuple[str, str])
#: RFC 3339 date-time (``2026-12-07T10:00:00.5Z``), read the same on every Python version.
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
                      r"(?:([Zz])|([+-])(\d{2}):(\d{2}))", re.ASCII)


@dataclass
class Memory:
    """What one check learnt that stays true for the next check of the same verify (content is immutable by
    digest): manifests fetched, each listed entry's verdict, each signature's outcome."""

    #: listed digest → its manifest, or why there is none
    fetched: dict[str, Fetched] = field(default_factory=dict)
    #: (node digest, listed digest, listed artifact type) → the accepted descriptor (the manifest's) or why not
    verdicts: dict[tuple[str, str, str], Descriptor | Rejected] = field(default_factory=dict)
    #: (node digest, signature digest) → its outcome; None: not a signature a policy here can judge
    outcomes: dict[tuple[str, str], SignatureOutcome | None] = field(default_factory=dict)
    #: node digest → its last listing and what names it, to ask the store whether it changed
    listings: dict[str, Listing] = field(default_factory=dict)


@dataclass(frozen=True)
class Listing:
    """A node's listing as read: its well-formed entries, the malformed ones, what names it for the store."""

    validator: str
    listed: list[Descriptor]
    malformed: list[Rejected]


@dataclass(frozen=True)
class Search:
    """One chain searched below one node in one check."""

    #: Confirmed paths of digests, first-level referrer first: one per counted candidate, in candidate order.
    paths: tuple[tuple[str, ...], ...]
    #: How many listed referrers could match the chain's first element.
    candidates: int
    #: The candidates examined (first level), in candidate order; the others were not needed.
    examined: tuple[str, ...]

    @property
    def found(self) -> tuple[str, ...]:
        return tuple(path[0] for path in self.paths)


class ChainMatch:
    """One check: search each (start node, chain, count) and keep what it met for the report."""

    def __init__(self, target: ReadOnlyTarget, concurrency: int, trust_listing: bool,
                 signatures: SignatureCheck | None = None, memory: Memory | None = None) -> None:
        self.target = target
        self.concurrency = max(1, concurrency)
        self.trust_listing = trust_listing
        self.signatures = signatures
        self.memory = memory if memory is not None else Memory()
        #: Requests in flight, whoever makes them (searches run side by side, chains nest).
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self._listed: dict[str, Future[list[Descriptor]]] = {}
        self._fetching: dict[str, Future[Fetched]] = {}
        self._judging: dict[tuple[str, str], Future[SignatureOutcome | None]] = {}
        #: Listing entries that are not descriptors, and entries that failed their checks, met in this check.
        self._rejected: dict[tuple[str, str, str, str], Rejected] = {}
        #: Signatures judged (or met judged) in this check, with the node they sign.
        self._judged: dict[tuple[str, str], SignatureOutcome] = {}
        #: Sigstore bundles that counted by their type alone (no policy here judges them), in the order met.
        self._unverified: dict[str, None] = {}
        self.listings = 0
        #: Listings the store said were unchanged since an earlier check (read without their body).
        self.unchanged = 0
        self.fetches = 0

    def run(self, starts: Sequence[tuple[Descriptor, Chain, int]]) -> list[Search]:
        """Search each start's chain for its count, side by side; one :class:`Search` per start, in order."""
        if len(starts) == 1:
            return [self.search(*starts[0])]
        with ThreadPoolExecutor(max_workers=min(len(starts), 32), thread_name_prefix="ci-oras-verify") as pool:
            return list(pool.map(lambda start: self.search(*start), starts))

    def search(self, node: Descriptor, chain: Chain, needed: int) -> Search:
        """The first ``needed`` candidates below ``node`` that confirm ``chain``, examining no more than that."""
        candidates: list[Descriptor] = []
        for listed in self._list(node):
            if not chain[0].may_match(listed.artifact_type):
                continue
            itself = self_reference(node.digest, listed)
            if itself is None:
                candidates.append(listed)
            else:  # never a candidate, and known without a request: reported whatever the search needs
                self._reject(itself)
        candidates = examination_order(candidates)
        results: dict[int, list[tuple[str, ...]]] = {}
        width = min(self.concurrency, needed)
        started = counted = 0
        if width == 1:
            while counted < needed and started < len(candidates):
                results[started] = self._examine(node, candidates[started], chain)
                counted += bool(results[started])
                started += 1
        else:
            with ThreadPoolExecutor(max_workers=width, thread_name_prefix="ci-oras-verify") as pool:
                running: dict[Future[list[tuple[str, ...]]], int] = {}
                while counted < needed:
                    # never more checks in flight than candidates still needed: none is fetched in vain
                    while counted + len(running) < needed and started < len(candidates):
                        running[pool.submit(self._examine, node, candidates[started], chain)] = started
                        started += 1
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        index = running.pop(future)
                        results[index] = future.result()
                        counted += bool(results[index])
        paths = tuple(paths[0] for _, paths in sorted(results.items()) if paths)
        return Search(paths, len(candidates), tuple(candidate.digest for candidate in candidates[:started]))

    # ---------------------------------------------------------------------------------------- one candidate

    def _examine(self, node: Descriptor, listed: Descriptor, chain: Chain) -> list[tuple[str, ...]]:
        """The confirmed path(s) through ``listed`` (at most one is looked for), or none."""
        verdict = self._verdict(node.digest, listed)
        if isinstance(verdict, Rejected):
            self._reject(verdict)
            return []
        check = self.signatures
        judged = check is not None and check.handles(verdict.artifact_type)
        # A Sigstore bundle's kind is in its signed statement: with a policy to verify it, the statement
        # decides (whatever the annotations claim, either way); otherwise the manifest's annotations do.
        kind_from_content = judged and is_sigstore_bundle(verdict.artifact_type)
        if not kind_from_content and not _matches(chain[0], verdict):
            return []
        if judged:
            assert check is not None
            outcome = self._judge(node, verdict, check)
            if outcome is None or not outcome.counts:
                return []
            if outcome.claims is not None and not chain[0].matches(verdict.artifact_type, outcome.claims):
                return []
        elif is_sigstore_bundle(verdict.artifact_type):
            with self._lock:
                self._unverified.setdefault(verdict.digest, None)
        if len(chain) == 1:
            return [(verdict.digest,)]
        below = self.search(verdict, chain[1:], 1)
        return [(verdict.digest, *path) for path in below.paths]

    def _verdict(self, node: str, listed: Descriptor) -> Descriptor | Rejected:
        key = (node, listed.digest, listed.artifact_type or "")
        with self._lock:
            known = self.memory.verdicts.get(key)
        if known is not None:
            return known
        verdict = listed if self.trust_listing else judge(node, listed, self._fetch(node, listed))
        with self._lock:
            self.memory.verdicts[key] = verdict
        return verdict

    def _fetch(self, node: str, listed: Descriptor) -> Fetched:
        """The manifest at the listed digest: one GET per digest over all checks."""
        with self._lock:
            known = self.memory.fetched.get(listed.digest)
        if known is not None:
            return known

        def fetch() -> Fetched:
            with self._slots:
                fetched = fetch_listed(self.target, node, listed)
            with self._lock:
                self.memory.fetched[listed.digest] = fetched
                self.fetches += 1
            return fetched

        return self._once(self._fetching, listed.digest, fetch)

    def _judge(self, node: Descriptor, accepted: Descriptor, check: SignatureCheck) -> SignatureOutcome | None:
        key = (node.digest, accepted.digest)
        with self._lock:
            known = key in self.memory.outcomes
            outcome = self.memory.outcomes.get(key)
        if not known:
            manifest = self.memory.fetched.get(accepted.digest)
            if not isinstance(manifest, Manifest):
                return None

            def evaluate() -> SignatureOutcome | None:
                with self._slots:
                    judged = examine_signature(self.target, manifest, node, check.policies, check.scope)
                with self._lock:
                    self.memory.outcomes[key] = judged
                return judged

            outcome = self._once(self._judging, key, evaluate)
        if outcome is not None:
            with self._lock:
                self._judged.setdefault(key, outcome)
        return outcome

    def _reject(self, rejected: Rejected) -> None:
        with self._lock:
            self._rejected.setdefault(_rejection_key(rejected), rejected)

    # ---------------------------------------------------------------------------------------------- listing

    def _list(self, node: Descriptor) -> list[Descriptor]:
        """The referrers listed under ``node`` (unfiltered, each digest once): one listing per node per check."""

        def listing() -> list[Descriptor]:
            malformed: list[Rejected] = []
            revalidating = self.target if isinstance(self.target, RevalidatingLister) else None
            known = self.memory.listings.get(node.digest) if revalidating is not None else None
            with self._slots:
                try:
                    if revalidating is not None and known is not None:
                        answer = revalidating.referrers_if_changed(node.plain(), known.validator)
                    else:
                        answer = self.target.referrers(node.plain())
                    unchanged = isinstance(answer, Unchanged)
                    if isinstance(answer, Unchanged):
                        assert known is not None
                        listed, malformed = known.listed, known.malformed
                    else:
                        listed = _unique(answer)
                except MalformedListing as exc:
                    # Entries that are not descriptors are rejected referrers, reported and never counted; the
                    # well-formed rest is searched as usual. (A listing that is not a listing ends the check.)
                    listed = _unique(exc.listed)
                    malformed = [malformed_entry(node.digest, entry) for entry in exc.entries]
                    unchanged = False
                validator = revalidating.listing_validator(node) if revalidating is not None else None
            with self._lock:
                self.listings += 1
                self.unchanged += unchanged
                if validator is not None:
                    self.memory.listings[node.digest] = Listing(validator, listed, malformed)
                elif not unchanged:
                    self.memory.listings.pop(node.digest, None)  # a listing nothing names: read it whole next time
                for entry in malformed:
                    self._rejected.setdefault(_rejection_key(entry), entry)
            return listed

        return self._once(self._listed, node.digest, listing)

    def _once(self, running: dict[_K, Future[_T]], key: _K, make: Callable[[], _T]) -> _T:
        """``make()``'s result for ``key``, computed by the first caller of this check; the others wait for it.
        The first caller computes in its own thread, so no pool slot is held while waiting."""
        with self._lock:
            future = running.get(key)
            owner = future is None
            if future is None:
                future = running[key] = Future()
        if not owner:
            return future.result()
        try:
            value = make()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(value)
        return value

    # ---------------------------------------------------------------------------------------------- report

    def rejected(self) -> list[Rejected]:
        """Entries met in this check that failed their checks (malformed listing entries first), each once."""
        with self._lock:
            return sorted(self._rejected.values(), key=lambda entry: entry.reason.value != "malformed")

    def unverified_bundles(self) -> list[str]:
        """Digests of the Sigstore bundles that counted in this check without being verified."""
        with self._lock:
            return list(self._unverified)

    def signature_outcomes(self) -> list[tuple[str, SignatureOutcome]]:
        """Every signature this check counted on or refused, with the node it signs, in the order judged."""
        with self._lock:
            return [(node, outcome) for (node, _), outcome in self._judged.items()]


def examination_order(candidates: list[Descriptor]) -> list[Descriptor]:
    """Newest first by the listing's ``org.opencontainers.image.created`` (RFC 3339) where present and
    readable, then the rest in listing order."""
    dated: list[tuple[float, int, Descriptor]] = []
    undated: list[Descriptor] = []
    for position, candidate in enumerate(candidates):
        created = _timestamp(candidate.annotations.get(ANNOTATION_CREATED))
        if created is None:
            undated.append(candidate)
        else:
            dated.append((-created, position, candidate))
    return [candidate for _, _, candidate in sorted(dated, key=lambda item: item[:2])] + undated


def _timestamp(text: object) -> float | None:
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zulu, sign, offset_hours, offset_minutes = match.groups()[6:]
    offset = timedelta(0) if zulu or sign is None else (1 if sign == "+" else -1) * timedelta(
        hours=int(offset_hours), minutes=int(offset_minutes))
    try:
        moment = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=timezone(offset))
    except ValueError:  # a 30 February, an offset past a day
        return None
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _rejection_key(rejected: Rejected) -> tuple[str, str, str, str]:
    return rejected.subject, rejected.listed.digest, rejected.reason.value, rejected.message


def _unique(listed: list[Descriptor]) -> list[Descriptor]:
    seen: set[str] = set()
    out: list[Descriptor] = []
    for desc in listed:
        if desc.digest not in seen:
            seen.add(desc.digest)
            out.append(desc)
    return out


def _matches(matcher: Matcher, desc: Descriptor) -> bool:
    return matcher.matches(desc.artifact_type, desc.annotations)
