"""``verify``: the deployment gate — do the required referrers (SBOM, signature, signed SBOM, …) exist?

Evaluation (``ci_oras.graph.match``) asks the registry only what the requirements need:

- Each requirement is searched below its subject: the listed referrers that could match are its candidates,
  newest first by the listing's ``org.opencontainers.image.created`` where present, then in listing order.
  Candidates are checked until the requirement holds (``*N``: N that confirm), then the search stops; what
  was examined, and how many candidates were not needed, is in the result. Requirements and subjects are
  searched side by side, on at most ``concurrency`` requests in flight.
- Listings are never filtered by the registry: its ``artifactType`` filter compares exactly, while artifact
  types are case-insensitive. Matching is done here (one listing request either way), and every node is
  listed at most once per check, whatever the number of requirements asking.
- A listing is a claim. A candidate is counted only after its manifest is fetched (one GET) and confirms the
  listing: it exists, has the listed digest and type, and names the node it was listed under as its subject
  (``ci_oras.graph.listing``). It is then matched on the manifest's own type and annotations. What fails is
  reported as rejected, not counted, and the next candidate is tried. ``trust_listing`` skips the fetches (a
  node listed under itself is still rejected: that needs no request).
- A chain descends only from candidates that counted: ``sbom>signature`` lists the referrers of an SBOM that
  confirmed, never those of an unrelated report, and one signed SBOM is one path.

With ``wait``, unmet requirements are checked again every ``interval`` until they hold or the time is up
(registries that index referrers asynchronously list a fresh referrer only after a while). Each check opens a
fresh target and lists again, so nothing listed earlier is served from a cache (a listing the registry gave an
ETag for is asked for with ``If-None-Match``: a 304 says it is unchanged, without its body); what earlier
checks confirmed, rejected or judged is kept by digest (content does not change under a digest), so a later check fetches only
entries it has not met. Requirements already met are not asked again. The subject itself must exist at the
first check (NotFoundError, exit 3, otherwise).

With a trust policy (``signatures``), a Notary Project signature counts only when it verifies (or as the
policy's level says), at any level of a chain; every signature judged is reported with its outcome. The
policy is selected by the scope: ``REGISTRY/REPOSITORY`` for a registry reference, as notation does, and
``local/<directory name>`` for an OCI layout, as notation does for ``--oci-layout``.

``platform`` checks one child of an image index, ``all_platforms`` every child (buildx's attestation manifests,
``vnd.docker.reference.type`` or platform ``unknown/unknown``, are not platforms and are skipped); otherwise
the manifest REF names — an index included — is the subject.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_oras.errors import UsageError
from ci_oras.graph.listing import Rejected
from ci_oras.graph.match import ChainMatch, Memory, Search
from ci_oras.graph.signatures import SignatureCheck
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.oci.platform import pick_child
from ci_oras.oci.reference import LayoutReference, Reference
from ci_oras.requirements import Requirement
from ci_oras.store.protocols import ReadOnlyTarget

if TYPE_CHECKING:
    from ci_oras.signing.policy import SignatureOutcome

DEFAULT_INTERVAL = 5.0
#: Why candidates were left unexamined: the only reason the search stops before the last one.
UNEXAMINED_REASON = "the requirement held before they were needed"
DEFAULT_CONCURRENCY = 8
#: buildx stores provenance/SBOM attestations as extra index entries marked with this annotation.
ANNOTATION_DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"


@dataclass(frozen=True)
class VerifyOptions:
    requirements: tuple[Requirement, ...]
    platform: str | None = None
    all_platforms: bool = False
    wait: float = 0.0
    interval: float = DEFAULT_INTERVAL
    concurrency: int = DEFAULT_CONCURRENCY
    #: Count what the listings say without fetching the listed manifests (for users who accept the risk).
    trust_listing: bool = False
    #: Judge signatures with these policies; None counts a signature by its type alone, as before.
    signatures: SignatureCheck | None = None

    def __post_init__(self) -> None:
        """Checked when the options are made, so the command refuses them before it opens anything."""
        if not self.requirements:
            raise UsageError("verify needs at least one requirement",
                             hint="add --require SPEC, e.g. --require sbom --require 'sbom>signature'")
        if self.platform is not None and self.all_platforms:
            raise UsageError("--platform and --all-platforms are mutually exclusive",
                             hint="pick one platform, or check them all")
        if self.wait > 0 and self.interval <= 0:
            raise UsageError("--interval must be more than 0", hint="e.g. --interval 5s")
        if self.trust_listing and self.signatures is not None:
            raise UsageError("--trust-listing cannot be combined with a trust policy",
                             hint="leave out --trust-listing: a signature is judged from its fetched manifest")


@dataclass(frozen=True)
class Subject:
    """What the requirements are checked against: REF's manifest, or one platform child of it."""

    descriptor: Descriptor
    platform: str | None = None

    @property
    def digest(self) -> str:
        return self.descriptor.digest


@dataclass(frozen=True)
class RequirementResult:
    requirement: Requirement
    subject: Subject
    #: First-level referrers of the subject that satisfy the whole requirement (at most the count needed), in
    #: the order they were examined.
    found: tuple[str, ...] = ()
    #: The confirmed path of digests through each found referrer, first-level referrer first.
    paths: tuple[tuple[str, ...], ...] = ()
    #: Listed referrers of the subject that could match the requirement's first element.
    candidates: int = 0
    #: The candidates examined, in order; the rest were not needed once the requirement held.
    examined: tuple[str, ...] = ()

    @property
    def satisfied(self) -> bool:
        return len(self.found) >= self.requirement.count

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "spec": self.requirement.spec,
            "satisfied": self.satisfied,
            "found": list(self.found),
            "needed": self.requirement.count,
            "paths": [list(path) for path in self.paths],
            "subject": self.subject.digest,
            "candidates": self.candidates,
            "examined": list(self.examined),
        }
        if len(self.examined) < self.candidates:
            doc["unexamined"] = {"count": self.candidates - len(self.examined), "reason": UNEXAMINED_REASON}
        if self.subject.platform is not None:
            doc["platform"] = self.subject.platform
        return doc


@dataclass(frozen=True)
class JudgedSignature:
    """One signature examined under a trust policy, with the manifest it signs."""

    subject: str
    outcome: SignatureOutcome

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, **self.outcome.document()}


@dataclass(frozen=True)
class WaitStatus:
    """Handed to the progress hook after a check that left requirements unmet, before sleeping."""

    attempt: int
    elapsed: float
    remaining: float
    next_check: float
    unmet: tuple[RequirementResult, ...]


@dataclass(frozen=True)
class VerifyResult:
    reference: str
    root: Descriptor
    results: tuple[RequirementResult, ...]
    attempts: int
    waited: float
    #: Referrer listings made over all checks (each is one request, or one page chain, on a registry).
    listings: int
    #: Listed manifests fetched to check the listings, over all checks (one request each on a registry).
    fetches: int = 0
    #: Listings (of ``listings``) the registry said were unchanged since the previous check: read without a body.
    unchanged_listings: int = 0
    #: Listed entries that failed the checks (each once, in the order met), not counted.
    rejected: tuple[Rejected, ...] = ()
    trust_listing: bool = False
    #: Set with a trust policy: the scope that selected it and every signature judged (latest check's verdict).
    trust_scope: str | None = None
    signatures: tuple[JudgedSignature, ...] = ()
    #: Sigstore bundles that counted without being verified (no Sigstore identity policy was given).
    unverified_bundles: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(result.satisfied for result in self.results)

    @property
    def unmet(self) -> tuple[RequirementResult, ...]:
        return tuple(result for result in self.results if not result.satisfied)

    @property
    def missing(self) -> list[str]:
        """Specs unmet for at least one subject, each once, in the order they were required."""
        out: list[str] = []
        for result in self.unmet:
            if result.requirement.spec not in out:
                out.append(result.requirement.spec)
        return out

    def document(self) -> dict[str, Any]:
        return {
            "schema": "ci-oras/verify/v1",
            "reference": self.reference,
            "digest": self.root.digest,
            "mediaType": self.root.media_type,
            "ok": self.ok,
            "requirements": [result.to_dict() for result in self.results],
            "missing": self.missing,
            "attempts": self.attempts,
            "waited": round(self.waited, 3),
            "listings": self.listings,
            "fetches": self.fetches,
            "unchangedListings": self.unchanged_listings,
            "trustListing": self.trust_listing,
            "rejected": [rejected.to_dict() for rejected in self.rejected],
        } | ({} if self.trust_scope is None else {
            "trustScope": self.trust_scope,
            "signatures": [signature.to_dict() for signature in self.signatures],
        }) | ({"unverifiedBundles": list(self.unverified_bundles)} if self.unverified_bundles else {})


def verify(open_target: Callable[[], ReadOnlyTarget], reference: str, shown: str, options: VerifyOptions,
           *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
           progress: Callable[[WaitStatus], None] | None = None) -> VerifyResult:
    """Check ``options.requirements`` below the manifest at ``reference`` (``shown`` names it in errors)."""
    start = clock()
    deadline = start + options.wait
    target = open_target()
    root, subjects = _subjects(target, reference, shown, options)
    pending = [(subject, requirement) for subject in subjects for requirement in options.requirements]
    results: dict[tuple[str, Requirement], RequirementResult] = {}
    rejected: dict[tuple[str, str, str, str], Rejected] = {}
    judged: dict[tuple[str, str], JudgedSignature] = {}
    unverified: dict[str, None] = {}
    memory = Memory()  # what a check confirmed, rejected or judged stays so for the next one
    attempts = listings = fetches = unchanged = 0
    while True:
        attempts += 1
        evaluation = ChainMatch(target, options.concurrency, options.trust_listing, options.signatures, memory)
        searches = evaluation.run([(subject.descriptor, requirement.chain, requirement.count)
                                   for subject, requirement in pending])
        for (subject, requirement), search in zip(pending, searches):
            results[(subject.digest, requirement)] = _result(search, subject, requirement)
        listings += evaluation.listings
        unchanged += evaluation.unchanged
        fetches += evaluation.fetches
        for entry in evaluation.rejected():
            rejected.setdefault((entry.subject, entry.listed.digest, entry.reason.value, entry.message), entry)
        for node, outcome in evaluation.signature_outcomes():
            judged[(node, outcome.digest)] = JudgedSignature(node, outcome)
        unverified.update(dict.fromkeys(evaluation.unverified_bundles()))
        pending = [(s, r) for s, r in pending if not results[(s.digest, r)].satisfied]
        now = clock()
        if not pending or now >= deadline:
            break
        pause = min(options.interval, deadline - now)
        if progress is not None:
            progress(WaitStatus(attempts, now - start, deadline - now, pause,
                              tuple(results[(s.digest, r)] for s, r in pending)))
        sleep(pause)
        target = open_target()
    ordered = tuple(results[(s.digest, r)] for s in subjects for r in options.requirements)
    return VerifyResult(shown, root, ordered, attempts, clock() - start, listings, fetches, unchanged,
                        tuple(rejected.values()), options.trust_listing,
                        options.signatures.scope if options.signatures is not None else None,
                        tuple(judged.values()), tuple(unverified))


def gate_missing(target: ReadOnlyTarget, digest: str, shown: str,
                 requirements: tuple[Requirement, ...]) -> tuple[str, ...]:
    """The specs of ``requirements`` that ``digest`` misses on ``target``, checked once (no waiting), every
    candidate fetched and confirmed as ``verify`` does; for gates inside other steps (``release plan``)."""
    result = verify(lambda: target, digest, shown, VerifyOptions(requirements=requirements))
    return tuple(result.missing)


def trust_scope(reference: Reference) -> str:
    """The repository scope a trust policy statement is selected by: notation's ``registry/repository``;
    for an OCI layout, ``local/`` and the layout directory's name."""
    if isinstance(reference, LayoutReference):
        return f"local/{Path(reference.path).resolve().name}"
    return f"{reference.registry}/{reference.repository}"


def _subjects(target: ReadOnlyTarget, reference: str, shown: str, options: VerifyOptions) -> tuple[Descriptor,
                                                                                          list[Subject]]:
    if options.platform is None and not options.all_platforms:
        root = target.resolve(reference)
        return root, [Subject(root)]
    index = target.fetch_manifest(reference)
    flag = "--platform" if options.platform is not None else "--all-platforms"
    if not index.is_index:
        raise UsageError(f"{shown} is not an image index, so {flag} has no children to check",
                         hint=f"leave out {flag} to check the manifest itself")
    children = _platform_children(index)
    if options.platform is not None:
        return index.descriptor, [_pick(children, options.platform, shown)]
    if not children:
        raise UsageError(f"{shown} lists no platform manifests", hint="leave out --all-platforms to check the index")
    return index.descriptor, children


def _platform_children(index: Manifest) -> list[Subject]:
    children: list[Subject] = []
    seen: set[str] = set()
    for child in index.manifests:
        platform = child.platform
        if ANNOTATION_DOCKER_REFERENCE_TYPE in child.annotations or (
                platform is not None and platform.os == "unknown" and platform.architecture == "unknown"):
            continue
        if child.digest in seen:
            continue
        seen.add(child.digest)
        children.append(Subject(child, str(platform) if platform else None))
    return children


def _pick(children: list[Subject], platform: str, shown: str) -> Subject:
    chosen = pick_child([child.descriptor for child in children], platform, shown)
    return next(child for child in children if child.descriptor is chosen)


def _result(search: Search, subject: Subject, requirement: Requirement) -> RequirementResult:
    return RequirementResult(requirement, subject, search.found, search.paths, search.candidates, search.examined)
