"""Check what a referrers listing claims against the listed manifests themselves.

A referrers listing — the registry's API or the tag schema's ``sha256-<hex>`` index — is a claim: anyone who
can push to a repository can write a fallback index naming any manifest, and a listed manifest may have been
deleted (garbage collection deletes untagged referrers). Acting on the claim unchecked lets ``delete --graph``
delete an unrelated image, ``verify`` count a signature that is not there or was made for another image, and a
loop (a subject listed below its own referrer) confuse a graph walk.

So before ``verify`` counts, ``promote`` copies or ``delete --graph`` deletes a listed referrer, its manifest is
fetched by the listed digest and must

- exist (a manifest that is gone is rejected, not counted);
- have exactly the listed digest (hashed here with the listed algorithm, whatever the store checked);
- name the node it was listed under as its ``subject`` — which also rejects a node listed under itself and
  every loop, since no manifest can name a manifest that names it;
- have the listed ``artifactType`` (compared case-insensitively; a listing that omits it claims nothing).

What is accepted is then described by the manifest, not by the listing (type and annotations included), so
nothing downstream reads a claim. The checks are pure functions over a fetched manifest; the fetching is done
by the callers on their worker pools, one manifest GET per distinct listed digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ci_oras.errors import IntegrityError, MalformedError, NotFoundError, UsageError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import Digest, digest_bytes
from ci_oras.oci.manifest import MalformedEntry, Manifest
from ci_oras.oci.mediatypes import same_type
from ci_oras.store.protocols import ManifestFetcher


class Reason(str, Enum):
    """Why a listed entry was rejected (the ``reason`` of the JSON documents)."""

    not_found = "not-found"
    digest_mismatch = "digest-mismatch"
    invalid_manifest = "invalid-manifest"
    self_reference = "self-reference"
    subject_mismatch = "subject-mismatch"
    artifact_type_mismatch = "artifact-type-mismatch"
    #: The listed manifest, or the listing entry itself, is not shaped as the spec says (a field of the
    #: wrong type, missing, not JSON): reported by ``verify``, refused (exit 6) by what would act on it.
    malformed = "malformed"

    @property
    def foreign(self) -> bool:
        """The entry is some other existing content, not a referrer of the node it was listed under (or
        cannot be told apart from one): a listing naming it may be another image's index, never to be
        deleted. A referrer that is gone, or one listed with the wrong type, is still ours."""
        return self not in (Reason.not_found, Reason.artifact_type_mismatch)


@dataclass(frozen=True)
class Rejected:
    """A listed entry that failed a check: skipped, and reported."""

    subject: str
    listed: Descriptor
    reason: Reason
    message: str
    #: For a malformed manifest, the error it raised (naming the manifest, where it came from and the field):
    #: what a step that refuses the graph says. Not part of the JSON documents.
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"digest": self.listed.digest, "mediaType": self.listed.media_type}
        if self.listed.artifact_type:
            entry["artifactType"] = self.listed.artifact_type
        entry.update(subject=self.subject, reason=self.reason.value, message=self.message)
        return entry

    def __str__(self) -> str:
        return f"{self.listed.digest or 'an entry'} listed under {self.subject}: {self.message}"

    def refusal(self) -> MalformedError:
        """The error a step that would act on this entry ends with (promote, delete --graph)."""
        message = f"{self.error} (listed under {self.subject})" if self.error else str(self)
        return MalformedError(message, problem=self.message,
                              hint="the referrers graph is malformed; fix or delete the malformed referrer first")


def malformed_entry(subject: str, entry: MalformedEntry) -> Rejected:
    """A listing entry that is not a descriptor, as a rejection: described by what it claims where readable
    (an unreadable digest is reported empty)."""
    digest = entry.digest or ""
    try:
        Digest.parse(digest)
    except UsageError:
        digest = ""
    listed = Descriptor(media_type=entry.media_type or "", digest=digest, size=0, artifact_type=entry.artifact_type)
    return Rejected(subject, listed, Reason.malformed, f"malformed listing entry: {entry.problem}")


#: What fetching a listed digest gave: the manifest, or why there is none to check.
Fetched = Manifest | Rejected


def fetch_listed(target: ManifestFetcher, subject: str, listed: Descriptor) -> Fetched:
    """GET the manifest a listing names, by the listed digest. Only the answers that say "this entry is not
    what it claims" become a rejection; auth and registry failures propagate (exit 4/5), a gate must not pass
    or fail on a network error."""
    try:
        manifest = target.fetch_manifest(listed.digest)
    except NotFoundError:
        return Rejected(subject, listed, Reason.not_found, "listed but not found (deleted or garbage-collected)")
    except MalformedError as exc:
        return Rejected(subject, listed, Reason.malformed, f"malformed manifest: {exc.problem}", exc.message)
    except IntegrityError:
        return Rejected(subject, listed, Reason.digest_mismatch, "the manifest does not match the listed digest")
    except UsageError as exc:
        return Rejected(subject, listed, Reason.invalid_manifest, f"not a manifest ({exc.message})")
    return manifest


def self_reference(subject: str, listed: Descriptor) -> Rejected | None:
    """A node listed under itself: rejected without a fetch (no manifest can be its own subject)."""
    if listed.digest == subject:
        return Rejected(subject, listed, Reason.self_reference, "listed as a referrer of itself")
    return None


def judge(subject: str, listed: Descriptor, fetched: Fetched) -> Descriptor | Rejected:
    """The descriptor of an accepted entry (described by its manifest), or why it is rejected."""
    if isinstance(fetched, Rejected):
        return Rejected(subject, listed, fetched.reason, fetched.message, fetched.error)
    rejected = self_reference(subject, listed)
    if rejected is not None:
        return rejected
    try:
        algorithm = Digest.parse(listed.digest).algorithm
    except UsageError:
        return Rejected(subject, listed, Reason.digest_mismatch, "the listed digest is not a valid digest")
    actual = digest_bytes(fetched.raw, algorithm)
    if actual != listed.digest:
        return Rejected(subject, listed, Reason.digest_mismatch, f"the manifest's digest is {actual}")
    if fetched.subject is None:
        return Rejected(subject, listed, Reason.subject_mismatch, "not a referrer: the manifest has no subject")
    if fetched.subject.digest != subject:
        return Rejected(subject, listed, Reason.subject_mismatch,
                        f"the manifest's subject is {fetched.subject.digest}")
    actual_type = fetched.effective_artifact_type
    if listed.artifact_type and not same_type(listed.artifact_type, actual_type):
        return Rejected(subject, listed, Reason.artifact_type_mismatch,
                        f"the manifest's artifactType is {actual_type or 'not set'}")
    return Descriptor(media_type=fetched.media_type, digest=listed.digest, size=len(fetched.raw),
                      annotations=dict(fetched.annotations), artifact_type=actual_type)


def check_entries(target: ManifestFetcher, pool: Executor, entries: Sequence[tuple[str, Descriptor]],
                  fetched: dict[str, Fetched]) -> list[Descriptor | Rejected]:
    """Judge (subject digest, listed descriptor) pairs; each distinct digest not in ``fetched`` is fetched once,
    in parallel on ``pool``, and added to ``fetched`` (the caller's cache, so a digest met again later in the
    same walk — a loop, a shared referrer, a node at the next level — costs no request)."""
    wanted = list(dict.fromkeys(desc.digest for subject, desc in entries
                                if desc.digest not in fetched and self_reference(subject, desc) is None))
    listed = {desc.digest: (subject, desc) for subject, desc in entries}
    for digest, answer in zip(wanted, pool.map(lambda d: fetch_listed(target, *listed[d]), wanted)):
        fetched[digest] = answer
    return [self_reference(subject, desc) or judge(subject, desc, fetched[desc.digest])
            for subject, desc in entries]
