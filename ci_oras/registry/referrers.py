"""Referrers on a registry: the OCI 1.1 referrers API, and the tag-schema fallback, safe under concurrent writers.

Listing tries ``GET /v2/<name>/referrers/<digest>`` first. Only a 200 with an image-index content type proves
the API; a plain 404 (not ``NAME_UNKNOWN``) or anything that is not an index (some registries answer HTML)
means "no API", and the answer is remembered per repository for the rest of the run. Without the API the
referrers live in an image index tagged ``sha256-<hex>`` (the subject's digest with ``:`` replaced); a tag
that is not an index, or that resolves to the subject itself (a known registry bug), is ignored. A listing
that is an index but malformed (an entry that is not a descriptor, ``"manifests": 5``) is an integrity
error naming the subject and the field (``oci/referrers.py``), never read as "no referrers".

Making a referrer discoverable after its manifest is pushed is the delicate part:

- API path (the registry answered ``OCI-Subject``): read the list back; some registries drop list updates
  under concurrent pushes (the manifest is stored but not listed), so re-PUT what is missing until it is
  listed, backing off by a multiple of the round trip just measured.
- Tag schema: read-merge-write the fallback index, then watch it. The waits are sized from round trips this
  call measured, never from a constant.

The race the tag-schema watch closes. Registries ignore ``If-Match`` (distribution does), so a writer B that
read the index before our write was applied can still overwrite it with its own merge, which lacks our entry.
B's write lands within B's *read-to-write gap* G after its read was served. Our write was applied by the time
its answer reached us (t). So every such stale write lands before t + G, and the watch reads the index again
no earlier than t + W, with W >= G:

- the index is still exactly what we wrote (same digest): no stale write landed, and every read served since
  t saw our entry; every writer writes what it read plus what it has seen, so every later write keeps our
  entry by induction. The entry is safe for good: done.
- the index changed but lists our entry: someone wrote after us (keeping it). Their write may itself be
  stale for others, so the new content is watched the same way: read again W after we first saw it.
- our entry is missing: merge with a fresh read and write again (then watch again). Entries seen during
  the call are written back too, so whoever writes last repairs what an earlier stale write dropped.

W is ``SettleOptions.factor`` times the slowest read-to-write cycle measured in this call (from sending our
read of the index to the answer to the write based on it; each later read counts as twice its round trip; a
read the transport retried counts from its answering attempt). Other writers run the same cycle against the
same registry, so their G is of that size; the factor is the margin for a writer slower than us (3 lost one
referrer of 20 once, with 20 writers on two cores shared with a second test process; 5 is the default). On
loopback W is milliseconds; 100 ms from the registry it is over half a second; on a loaded machine it grows
with the cycles measured there.

Reads inside a window. Only a read sent a whole window after the anchor can confirm; reads before that only
look, so they change nothing above (a change they see is anchored earlier, which the argument allows: the new
content was in place from then on). They make a lost entry come back sooner: a stale write by a writer as fast
as us lands about one cycle after our write, so the first window is read once after two cycles, and once the
call has seen another writer (the index changed under it, or lost our entry), every window is read every
cycle. Without another writer that is one read more than a single check (an attach makes 10 requests); among
20 parallel attaches, the one overwritten early no longer waits a whole window to notice.

The window it leaves: a writer whose read-to-write gap exceeds W (a job much farther from the registry than
this one, or one stopped between its read and its write) can overwrite our entry after we stopped watching;
then only a writer still watching that has seen the entry puts it back. Also not covered: a registry whose
tag reads lag its writes by more than W, and a write reproducing exactly the bytes we wrote (the same entries
in the same order) between our write and our check. A registry that honours ``If-Match`` closes the race
outright: every write carries the ETag it merged from, and a 412 sends the writer back to merge.

Replaced indexes. distribution keeps an index whose tag moved on as an untagged manifest, so each update
would leave one behind. Once the watch confirmed our write, the indexes we read and replaced are deleted by
digest, when the registry allows deletes (the first refusal turns this off for the repository). Only those
that lacked one of our entries: by the argument above no later write can recreate them, so the tag cannot
point at them again. Never an empty index (one is shared by every subject without referrers) nor anything
that is not a real referrers index of the subject, nor one whose entries are not shaped like a listing (an
image index someone tagged ``sha256-<hex>`` may bear release tags too: see ``listing_shaped``). Another tag
on the same index is not looked for (that would cost a tag listing and a request per tag): its entries are
referrers of this one subject, which only this subject's tag names.

Failure to get listed ends in an exit-5 error: reporting success for a referrer nobody can discover would
let a deployment gate pass or fail on a lie.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol, overload

from ci_oras.errors import MalformedError, RegistryError, UsageError
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import MalformedEntry, Manifest, build_index, parse_manifest
from ci_oras.oci.referrers import UNCHANGED, Unchanged, complete_listing, fallback_tag, filter_by_type

if TYPE_CHECKING:
    import httpx

    from ci_oras.registry.client import RegistryClient


class ReferrersMode(str, Enum):
    """``--referrers``: detect (auto), or force the API or the tag schema."""

    auto = "auto"
    api = "api"
    tag = "tag"


class ManifestStore(Protocol):
    """What the referrers logic needs from the repository it belongs to (``store/registry.py``)."""

    def get_manifest_if_exists(self, reference: str) -> tuple[Manifest, str | None, float] | None:
        """The manifest at ``reference``, its ETag and the seconds the answering attempt took (a retried
        request's waits excluded), or None when absent. An index is parsed as a listing: its malformed
        entries are in ``Manifest.malformed``, not an error (the caller reports them)."""

    def get_manifest_if_changed(self, reference: str, etag: str
                                ) -> tuple[Manifest, str | None, float] | Unchanged | None:
        """As ``get_manifest_if_exists``, unless the registry says the answer ``etag`` names still holds."""

    def put_manifest(self, manifest: Manifest, reference: str, headers: dict[str, str] | None = None,
                     ok: tuple[int, ...] = (200, 201)) -> httpx.Response:
        """PUT the exact bytes; returns the (closed) response for its headers and status."""

    def exists(self, desc: Descriptor) -> bool:
        """HEAD: whether the manifest is (still) stored."""

    def delete_if_present(self, digest: str) -> bool:
        """DELETE a manifest by digest; False when it was already gone."""


@dataclass
class SettleOptions:
    """How a tag-schema writer watches the index after writing it (see the module docstring).

    No duration here is waited for as such: ``factor`` scales the read-to-write cycle measured in the call
    into the watch window (the margin for another writer slower than us), ``limit`` bounds the whole call and
    ``max_writes`` the index writes, so a registry that keeps dropping the update ends in an error.
    """

    factor: float = 5.0
    limit: float = 60.0
    max_writes: int = 30
    #: False: read the index back once right after the write, and stop when it lists our entries. For a
    #: caller that checks every listing again before it relies on it (``release copy``, whose ``release
    #: commit`` reads each planned subject's listing before any tag moves): the window is then that check's.
    watch: bool = True


@dataclass
class _Fallback:
    manifests: list[Descriptor] = field(default_factory=list)
    etag: str | None = None
    exists: bool = False
    digest: str | None = None
    #: Seconds the answering attempt of the read took; None when unknown (absent: nothing was retried).
    elapsed: float | None = None


class RegistryReferrers:
    """Referrers of one repository on one registry."""

    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        store: ManifestStore,
        pull_scopes: tuple[str, ...],
        *,
        mode: ReferrersMode = ReferrersMode.auto,
        settle: SettleOptions | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.repository = repository
        self.store = store
        self.pull_scopes = pull_scopes
        self.mode = mode
        self.settle = settle or SettleOptions()
        self._sleep = sleep
        self._clock = clock
        #: Requests made, by purpose; benchmarks and tests read it.
        self.stats: dict[str, int] = {}
        #: The watch windows used (seconds), in order: the measured quantity tests and benchmarks look at.
        self.windows: list[float] = []
        #: False once the registry refused to delete a replaced index: not asked again in this run.
        self._cleanup = True
        #: Subject digest -> what names the last listing read of it, for a conditional read next time:
        #: ``api:<ETag>`` (a one-page API answer) or ``tag:<ETag>`` (a fallback index).
        self.validators: dict[str, str] = {}

    # -- API detection, remembered per repository ------------------------------------------------------------

    @property
    def api_supported(self) -> bool | None:
        return self.client.referrers_api.get(self.repository)

    def _remember(self, supported: bool) -> None:
        self.client.referrers_api[self.repository] = supported

    def assume(self, supported: bool) -> None:
        """Take ``supported`` without probing, unless this repository's answer is already known."""
        self.client.referrers_api.setdefault(self.repository, supported)

    @property
    def tag_schema(self) -> bool:
        """Whether listings are known to be read from the ``sha256-<hex>`` tags (forced, or the probe found no
        API); False while the probe has not answered."""
        return not self._use_api()

    def _use_api(self) -> bool:
        if self.mode is ReferrersMode.tag:
            return False
        if self.mode is ReferrersMode.api:
            return True
        return self.api_supported is not False

    # -- listing ---------------------------------------------------------------------------------------------

    def list_referrers(self, subject_digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Every referrer of ``subject_digest`` (of ``artifact_type`` when given)."""
        return self._list(subject_digest, artifact_type, None)

    def list_referrers_if_changed(self, subject_digest: str, validator: str) -> list[Descriptor] | Unchanged:
        """Every referrer of ``subject_digest``, or UNCHANGED when the registry says the listing ``validator``
        names (from :attr:`validators`) still holds: the same requests, without the listing's body."""
        return self._list(subject_digest, None, validator)

    @overload
    def _list(self, subject_digest: str, artifact_type: str | None, validator: None) -> list[Descriptor]: ...

    @overload
    def _list(self, subject_digest: str, artifact_type: str | None,
              validator: str) -> list[Descriptor] | Unchanged: ...

    def _list(self, subject_digest: str, artifact_type: str | None,
              validator: str | None) -> list[Descriptor] | Unchanged:
        """The listing; UNCHANGED only when asked with a ``validator`` (nothing to compare with otherwise)."""
        if self.mode is ReferrersMode.auto and self.api_supported is None:
            # The first listing in a repository probes the API; parallel listings (discover lists a level
            # at once) wait for its answer instead of each probing.
            with self.client.probe_lock(self.repository):
                if self.api_supported is None:
                    listed = self._list_api(subject_digest, artifact_type, validator)
                    if listed is not None:
                        return listed
        if self._use_api():
            listed = self._list_api(subject_digest, artifact_type, validator)
            if listed is not None:
                return listed
            if self.mode is ReferrersMode.api:
                raise RegistryError(
                    f"registry {self.client.host} does not serve the referrers API for {self.repository}",
                    hint="use --referrers tag (or auto) for this registry",
                )
        etag = validator[len("tag:"):] if validator and validator.startswith("tag:") else None
        fallback = self._read_fallback(subject_digest, etag)
        if isinstance(fallback, Unchanged):
            return fallback
        if fallback.etag and fallback.exists:
            self.validators[subject_digest] = f"tag:{fallback.etag}"
        return filter_by_type(fallback.manifests, artifact_type)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    @overload
    def _list_api(self, subject_digest: str, artifact_type: str | None) -> list[Descriptor] | None: ...

    @overload
    def _list_api(self, subject_digest: str, artifact_type: str | None,
                  validator: str | None) -> list[Descriptor] | Unchanged | None: ...

    def _list_api(self, subject_digest: str, artifact_type: str | None,
                  validator: str | None = None) -> list[Descriptor] | Unchanged | None:
        """The API's answer, following ``Link`` pages; None when this registry has no referrers API; UNCHANGED
        when ``validator`` names a one-page answer the registry says still holds."""
        from ci_oras.registry.client import registry_answer

        url: str | None = f"/v2/{self.repository}/referrers/{subject_digest}"
        # No server-side ``artifactType`` filter: registries compare it case-sensitively while artifact types
        # are case-insensitive, so the filter is applied here (the same one request either way).
        found: list[Descriptor] = []
        malformed: list[MalformedEntry] = []
        followed: set[str] = set()
        headers = {"Accept": mediatypes.OCI_INDEX}
        if validator and validator.startswith("api:"):
            headers["If-None-Match"] = validator[len("api:"):]
        pages = 0
        while url:
            self._count("referrers-api")
            response = self.client.request(
                "GET", url, scopes=self.pull_scopes, ok=(200, 304, 404) if pages == 0 else (200, 404),
                headers=headers if pages == 0 else {"Accept": mediatypes.OCI_INDEX},
                describe=f"list referrers of {subject_digest}",
            )
            pages += 1
            try:
                if response.status_code == 304:  # only ever asked for by a registry that has the API
                    self._remember(True)
                    return UNCHANGED
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
                if response.status_code == 404:
                    if "NAME_UNKNOWN" in registry_answer(response).codes:
                        return []  # the repository does not exist yet: nothing refers to anything
                    self._remember(False)
                    return None
                if content_type != mediatypes.OCI_INDEX:
                    self._remember(False)  # e.g. an HTML page answered with 200
                    return None
                # An image index answered: the API exists, and its answer is a listing to check, never to
                # mistake for "no API" (which would show an empty graph for a listing we could not read).
                self._remember(True)
                index = self._api_index(subject_digest, response.read())
            finally:
                response.close()
            found.extend(index.manifests)
            malformed.extend(index.malformed)
            url = self.client.next_page(response, f"list referrers of {subject_digest}", followed)
            etag = response.headers.get("ETag")
            if pages == 1 and not url and etag:  # one page: its ETag names the whole listing
                self.validators[subject_digest] = f"api:{etag}"
        complete_listing(subject_digest, self._where(), found, malformed)
        return filter_by_type(found, artifact_type)

    def _where(self) -> str:
        return f"{self.client.host}/{self.repository}"

    def _tag_where(self, subject_digest: str) -> str:
        return f"{self._where()} (tag {fallback_tag(subject_digest)})"

    def _api_index(self, subject_digest: str, raw: bytes) -> Manifest:
        """A page of the API's answer parsed as a listing: malformed entries kept apart, anything else about
        it that is wrong (not JSON, not an image index) refused naming the subject."""
        where = f"referrers listing of {subject_digest} in {self._where()}"
        try:
            index = parse_manifest(raw, mediatypes.OCI_INDEX, listing=True)
        except MalformedError as exc:
            raise MalformedError(f"{where}: {exc.problem}", problem=exc.problem, hint=exc.hint) from exc
        except UsageError as exc:
            raise MalformedError(f"{where}: {exc.message}", problem=exc.message) from exc
        if not index.is_index:
            problem = f'"mediaType" must be {mediatypes.OCI_INDEX}, not {index.media_type}'
            raise MalformedError(f"{where}: {problem}", problem=problem)
        return index

    @overload
    def _read_fallback(self, subject_digest: str) -> _Fallback: ...

    @overload
    def _read_fallback(self, subject_digest: str, etag: str | None) -> _Fallback | Unchanged: ...

    def _read_fallback(self, subject_digest: str, etag: str | None = None) -> _Fallback | Unchanged:
        self._count("fallback-get")
        tag = fallback_tag(subject_digest)
        got = self.store.get_manifest_if_exists(tag) if etag is None else self.store.get_manifest_if_changed(tag, etag)
        if isinstance(got, Unchanged):
            return got
        if got is None:
            return _Fallback()
        manifest, etag, elapsed = got
        if not manifest.is_index or manifest.digest == subject_digest:
            # Not a referrers index (or the registry resolved the tag to the subject itself): ignore it,
            # but note that the tag exists so a write replaces it.
            return _Fallback(exists=True, etag=etag, digest=manifest.digest, elapsed=elapsed)
        # Malformed entries end listing and writing alike: a merge would silently drop them.
        listed = complete_listing(subject_digest, self._tag_where(subject_digest), manifest.manifests,
                                  manifest.malformed)
        return _Fallback(listed, etag, True, manifest.digest, elapsed)

    # -- after a referrer is pushed -----------------------------------------------------------------------------

    def require_api(self, subject_digest: str) -> None:
        """With ``--referrers api``, refuse before pushing anything when the registry has no referrers API."""
        if self.mode is ReferrersMode.api and self.api_supported is None:
            self.list_referrers(subject_digest)

    def ensure_listed(self, manifest: Manifest, push_headers: dict[str, str]) -> None:
        """Make ``manifest`` (just pushed by digest) discoverable from its subject, or raise RegistryError."""
        if manifest.subject is not None:
            confirmed = push_headers.get("oci-subject") == manifest.subject.digest
            self.ensure_all_listed(manifest.subject.digest, [manifest], confirmed_by_registry=confirmed)

    def ensure_all_listed(self, subject_digest: str, manifests: list[Manifest], *,
                          confirmed_by_registry: bool | None) -> None:
        """Make every manifest (all referrers of one subject, already pushed) discoverable, in one index write.

        ``confirmed_by_registry``: True when every push answered ``OCI-Subject`` for this subject, False when
        one did not (the spec then says to use the tag schema), None when nothing was pushed now (a re-run):
        then the API is probed as for a listing. A promotion passes all referrers of a subject at once, so a
        tag-schema index is written once, not once per referrer.
        """
        if not manifests:
            return
        if self.mode is ReferrersMode.tag:
            self._ensure_in_fallback(subject_digest, manifests)
            return
        unknown = confirmed_by_registry is None and self.api_supported is not False
        if confirmed_by_registry or unknown or self.mode is ReferrersMode.api:
            if self._ensure_listed_by_api(subject_digest, manifests):
                return
        self._ensure_in_fallback(subject_digest, manifests)

    def _ensure_listed_by_api(self, subject_digest: str, manifests: list[Manifest]) -> bool:
        """Read the list back, re-PUTting what is missing until listed; False when there is no API after all."""
        types = {m.effective_artifact_type for m in manifests}
        wanted = types.pop() if len(types) == 1 else None
        for attempt in range(1, self.settle.max_writes + 1):
            sent = self._clock()
            listed = self._list_api(subject_digest, wanted)
            round_trip = self._clock() - sent
            if listed is None:
                if self.mode is ReferrersMode.api:
                    raise RegistryError(
                        f"registry {self.client.host} accepted the referrer but serves no referrers API",
                        hint="use --referrers tag (or auto) for this registry",
                    )
                return False
            present = {d.digest for d in listed}
            missing = [m for m in manifests if m.digest not in present]
            if not missing:
                return True
            self._sleep(_backoff(round_trip, attempt))
            for manifest in missing:
                self._count("manifest-reput")
                self.store.put_manifest(manifest, manifest.digest)
        raise self._not_discoverable(manifests[0], subject_digest)

    def _timed_read(self, subject_digest: str) -> tuple[_Fallback, float, float]:
        """The fallback index, with the times the read was sent and answered (the watch's measurements).

        A read the transport retried (distribution answers 500 to a tag read racing a write) counts from its
        answering attempt: another writer's read-to-write gap starts when its read is served, so our back-off
        before that is no measure of it.
        """
        sent = self._clock()
        current = self._read_fallback(subject_digest)
        received = self._clock()
        if current.elapsed is not None:
            sent = max(sent, received - current.elapsed)
        return current, sent, received

    def _next_read(self, anchored_at: float, cycle: float, contended: bool, *, probe: bool) -> float:
        """When to read the index next while a window runs: at its end, or sooner to see a lost entry sooner
        (module docstring, "Reads inside a window"); ``probe``: the first window after our first write."""
        end = anchored_at + self.settle.factor * cycle
        if contended:
            return min(end, self._clock() + cycle)
        if probe:
            return min(end, anchored_at + 2 * cycle)
        return end

    def _sleep_until(self, moment: float) -> None:
        """Sleep until ``moment`` on the clock the watch measures with (a sleep may end a little early)."""
        while (delay := moment - self._clock()) > 0:
            self._sleep(delay)

    def _ensure_in_fallback(self, subject_digest: str, manifests: list[Manifest]) -> None:
        """Read-merge-write the subject's index, then watch it until our entries are safe (module docstring)."""
        #: Our entries and every entry seen in the index during this call. A writer that read before someone
        #: else's write can drop entries; whoever saw them puts them back, so they survive their owner. An
        #: entry whose manifest has been deleted meanwhile is let go (one HEAD, only when it went missing).
        known: dict[str, Descriptor] = {m.digest: m.descriptor for m in manifests}
        ours = set(known)
        writes = 0
        backed_off = False
        #: The slowest read-to-write cycle measured so far; the window is a multiple of it.
        cycle = 0.0
        #: The index content being watched and the moment it was known to be in place.
        anchor: str | None = None
        anchored_at = 0.0
        #: Indexes we overwrote while they lacked one of our entries: deleted once our write is confirmed.
        replaced: list[str] = []
        #: Another writer showed up in this call: windows are then read every cycle (module docstring).
        contended = False
        current, sent, received = self._timed_read(subject_digest)
        started = sent
        while True:
            for desc in current.manifests:
                known.setdefault(desc.digest, desc)
            if _lists_all(current, known):
                if not writes:
                    return  # already listed (a re-run): we changed nothing, so there is nothing to watch
                if not self.settle.watch:
                    return  # listed after our write; unwatched, so the replaced indexes stay (garbage, unlisted)
                window = self.settle.factor * cycle
                if current.digest == anchor and sent >= anchored_at + window:
                    self.windows.append(window)
                    break  # unchanged for a whole window after it was in place: every stale write has landed
                # A read slower than the cycles so far means a slower registry: later windows grow with it.
                cycle = max(cycle, 2 * (received - sent))
                if current.digest != anchor:
                    anchor, anchored_at = current.digest, received  # someone wrote after us: watch theirs
                    contended = True
                if received - started >= self.settle.limit:
                    return  # listed, but not watched for a whole window: leave the replaced indexes alone
                self._sleep_until(self._next_read(anchored_at, cycle, contended, probe=False))
                current, sent, received = self._timed_read(subject_digest)
                continue
            if writes >= self.settle.max_writes or received - started >= self.settle.limit:
                raise self._not_discoverable(manifests[0], subject_digest)
            listed = {d.digest for d in current.manifests}
            missing = [d for d in known.values() if d.digest not in listed]
            gone = [d.digest for d in missing if d.digest not in ours and not self.store.exists(d)]
            for digest in gone:  # deleted meanwhile (ci-oras delete): an entry must not outlive its manifest
                del known[digest]
            if gone and _lists_all(current, known):
                continue
            contended = contended or writes > 0  # our write was overwritten
            if writes and not backed_off:
                # Our write was overwritten: back off by a few measured cycles (spreads colliding jobs apart),
                # then merge with a fresh read. Never sleep between a read and the write based on it: that
                # widens the window for overwriting others' entries.
                self._sleep(_backoff(cycle, writes))
                backed_off = True
                current, sent, received = self._timed_read(subject_digest)
                continue
            backed_off = False
            writes += 1
            written = self._write_fallback(subject_digest, current, [*current.manifests, *(
                d for d in missing if d.digest in known)])
            anchor, anchored_at = written.digest, self._clock()
            cycle = max(cycle, anchored_at - sent)
            if current.digest and current.digest != subject_digest and current.manifests and not ours <= listed \
                    and listing_shaped(current.manifests):
                replaced.append(current.digest)
            if self.settle.watch:
                self._sleep_until(self._next_read(anchored_at, cycle, contended, probe=writes == 1))
            current, sent, received = self._timed_read(subject_digest)
        self._delete_replaced([digest for digest in replaced if digest != current.digest])

    def _delete_replaced(self, digests: list[str]) -> None:
        """Delete indexes our confirmed write replaced (module docstring); best effort, never an error.

        A registry that refuses (deletes disabled, no delete permission) is not asked again in this run: the
        leftovers are garbage, not a fault of the attach.
        """
        from ci_oras.errors import CiOrasError

        for digest in dict.fromkeys(digests):
            if not self._cleanup:
                return
            self._count("fallback-cleanup")
            try:
                self.store.delete_if_present(digest)
            except CiOrasError:
                self._cleanup = False

    def _write_fallback(self, subject_digest: str, current: _Fallback, manifests: list[Descriptor]) -> Manifest:
        index = build_index(manifests)
        # Conditional headers cost nothing and protect us on registries that honour them; a 412 only means
        # someone else wrote first, and the caller's loop re-reads and merges again.
        headers = {"If-Match": current.etag} if current.exists and current.etag else (
            {} if current.exists else {"If-None-Match": "*"})
        self._count("fallback-put")
        self.store.put_manifest(index, fallback_tag(subject_digest), headers=headers, ok=(200, 201, 412))
        return index

    def _not_discoverable(self, manifest: Manifest, subject_digest: str) -> RegistryError:
        return RegistryError(
            f"referrer {manifest.digest} was pushed to {self.client.host}/{self.repository} but is not listed "
            f"as a referrer of {subject_digest}",
            hint="the registry kept dropping the referrers update; retry the attach",
        )

    # -- after a referrer or a subject is deleted ------------------------------------------------------------

    def _keeps_fallback(self) -> bool:
        """Whether the client maintains the tag-schema index here: not where the registry lists referrers.

        In ``auto`` mode before any listing the answer is unknown; then the fallback tag is simply read (one
        request, the same as a probe) and an index found there is kept consistent.
        """
        if self.mode is ReferrersMode.api:
            return False
        return self.mode is ReferrersMode.tag or self.api_supported is not True

    def real_fallback_index(self, subject_digest: str) -> tuple[Manifest, str | None] | None:
        """The subject's ``sha256-<hex>`` index and its ETag, when the client keeps one and it is a real index
        (not some other manifest, not the subject itself resolved through the dash-tag bug)."""
        if not self._keeps_fallback():
            return None
        self._count("fallback-get")
        got = self.store.get_manifest_if_exists(fallback_tag(subject_digest))
        if got is None or not got[0].is_index or got[0].digest == subject_digest:
            return None
        complete_listing(subject_digest, self._tag_where(subject_digest), got[0].manifests, got[0].malformed)
        return got[0], got[1]

    def forget_in_fallback(self, subject_digest: str, referrer_digest: str,
                           delete_manifest: Callable[[str], bool]) -> bool:
        """Remove a deleted referrer from the subject's fallback index; True when the index changed.

        The index is read back after every change: a concurrent writer may have re-added the entry (writers
        keep entries they saw, see ``_ensure_in_fallback``). An index that would become empty is deleted by
        its digest instead (distribution removes the tag with it); a concurrent writer that already replaced
        it has moved the tag to another digest, so its index survives our delete. The indexes our rewrites
        replaced are deleted once the entry stayed out for a window.

        Anyone who can push can write that tag, so an index whose entries are not shaped like a referrers
        listing (see ``listing_shaped``: an image index, which may bear release tags too) is never deleted by
        digest, which would take its other tags with it: the tag moves off it instead.
        """
        changed = False
        cycle = 0.0  # the slowest read-to-write cycle measured here, as in _ensure_in_fallback
        replaced: list[str] = []
        for _ in range(self.settle.max_writes):
            sent = self._clock()
            got = self.real_fallback_index(subject_digest)
            cycle = max(cycle, 2 * (self._clock() - sent))
            if got is None:
                return changed
            index, etag = got
            kept = [d for d in index.manifests if d.digest != referrer_digest]
            if len(kept) == len(index.manifests):
                # Our change held for a window: the indexes it replaced (which list the entry) are garbage.
                self._delete_replaced([digest for digest in replaced if digest != index.digest])
                return changed
            ours = listing_shaped(index.manifests)
            if kept or not ours:
                current = _Fallback(list(index.manifests), etag, True, index.digest)
                self._write_fallback(subject_digest, current, kept)
                if ours:
                    replaced.append(index.digest)
            else:
                self._count("fallback-delete")
                delete_manifest(index.digest)
            changed = True
            cycle = max(cycle, self._clock() - sent)
            # Read back once a writer that read before our change has had the time to write.
            self._sleep(self.settle.factor * cycle)
        raise RegistryError(f"could not update the referrers index of {subject_digest} on {self.client.host}",
                            hint="other writers kept changing it; retry")

    def drop_fallback(self, subject_digest: str, delete_manifest: Callable[[str], bool]) -> bool:
        """Delete the fallback index of a deleted subject (by digest); True when there was one."""
        got = self.real_fallback_index(subject_digest)
        if got is None:
            return False
        self._count("fallback-delete")
        return delete_manifest(got[0].digest)


def listing_shaped(entries: Sequence[Descriptor]) -> bool:
    """Whether an index's entries look like a referrers listing: each with the ``artifactType`` the spec
    requires there, none with a ``platform`` (which image indexes carry). Only such an index we replaced or
    emptied is deleted by digest: deleting an image index someone tagged ``sha256-<hex>`` would take its
    release tags with it."""
    return all(d.artifact_type and d.platform is None for d in entries)


def _lists_all(current: _Fallback, known: dict[str, Descriptor]) -> bool:
    listed = {d.digest for d in current.manifests}
    return all(digest in listed for digest in known)


def _backoff(unit: float, attempt: int) -> float:
    """Full jitter over a measured ``unit`` (a round trip or cycle), doubling per attempt: spreads parallel CI
    jobs apart at the pace of the registry they talk to."""
    return random.uniform(0, unit * 2 ** min(attempt, 5))

