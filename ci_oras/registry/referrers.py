"""Referrers on a registry: the OCI 1.1 referrers API, and the tag-schema fallback, safe under concurrent writers.

Listing tries ``GET /v2/<name>/referrers/<digest>`` first. Only a 200 with an image-index content type proves
the API; a plain 404 (not ``NAME_UNKNOWN``) or anything that is not an index (some registries answer HTML)
means "no API", and the answer is remembered per repository for the rest of the run. Without the API the
referrers live in an image index tagged ``sha256-<hex>`` (the subject's digest with ``:`` replaced); a tag
that is not an index, or that resolves to the subject itself (a known registry bug), is ignored.

Making a referrer discoverable after its manifest is pushed is the delicate part:

- API path (the registry answered ``OCI-Subject``): read the list back; some registries drop list updates
  under concurrent pushes, so re-PUT the manifest until it is listed.
- Tag schema: read-merge-write the fallback index, then read it back until our entry is there. Registries
  ignore ``If-Match`` (distribution does), so a writer that read the index before our write can still
  overwrite it after we checked. We therefore keep watching until the index has stayed unchanged, with our
  entry, for a few spaced reads; every writer re-adds the entries it has seen, so whoever writes last also
  repairs what an earlier stale write dropped.

Failure to get listed ends in an exit-5 error: reporting success for a referrer nobody can discover would
let a deployment gate pass or fail on a lie.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from ci_oras.errors import RegistryError
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import Manifest, build_index, parse_manifest
from ci_oras.oci.referrers import fallback_tag, filter_by_type

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

    def get_manifest_if_exists(self, reference: str) -> tuple[Manifest, str | None] | None:
        """The manifest at ``reference`` and its ETag, or None when absent."""

    def put_manifest(self, manifest: Manifest, reference: str, headers: dict[str, str] | None = None,
                     ok: tuple[int, ...] = (200, 201)) -> httpx.Response:
        """PUT the exact bytes; returns the (closed) response for its headers and status."""

    def exists(self, desc: Descriptor) -> bool:
        """HEAD: whether the manifest is (still) stored."""


@dataclass
class SettleOptions:
    """How the tag-schema writer watches its entry after writing; tests may shorten the interval.

    Done when ``quiet_checks`` further reads, ``interval`` seconds apart, find the index unchanged with our
    entry (a count, not a duration, so the request sequence is deterministic). ``limit`` bounds the whole wait.
    """

    quiet_checks: int = 2
    interval: float = 0.5
    limit: float = 60.0
    max_writes: int = 30


@dataclass
class _Fallback:
    manifests: list[Descriptor] = field(default_factory=list)
    etag: str | None = None
    exists: bool = False
    digest: str | None = None


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
    ) -> None:
        self.client = client
        self.repository = repository
        self.store = store
        self.pull_scopes = pull_scopes
        self.mode = mode
        self.settle = settle or SettleOptions()
        self._sleep = sleep
        #: Requests made, by purpose; benchmarks and tests read it.
        self.stats: dict[str, int] = {}

    # -- API detection, remembered per repository ------------------------------------------------------------

    @property
    def api_supported(self) -> bool | None:
        return self.client.referrers_api.get(self.repository)

    def _remember(self, supported: bool) -> None:
        self.client.referrers_api[self.repository] = supported

    def _use_api(self) -> bool:
        if self.mode is ReferrersMode.tag:
            return False
        if self.mode is ReferrersMode.api:
            return True
        return self.api_supported is not False

    # -- listing ---------------------------------------------------------------------------------------------

    def list_referrers(self, subject_digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Every referrer of ``subject_digest`` (of ``artifact_type`` when given)."""
        if self.mode is ReferrersMode.auto and self.api_supported is None:
            # The first listing in a repository probes the API; parallel listings (discover lists a level
            # at once) wait for its answer instead of each probing.
            with self.client.probe_lock(self.repository):
                if self.api_supported is None:
                    listed = self._list_api(subject_digest, artifact_type)
                    if listed is not None:
                        return listed
        if self._use_api():
            listed = self._list_api(subject_digest, artifact_type)
            if listed is not None:
                return listed
            if self.mode is ReferrersMode.api:
                raise RegistryError(
                    f"registry {self.client.host} does not serve the referrers API for {self.repository}",
                    hint="use --referrers tag (or auto) for this registry",
                )
        return filter_by_type(self._read_fallback(subject_digest).manifests, artifact_type)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _list_api(self, subject_digest: str, artifact_type: str | None) -> list[Descriptor] | None:
        """The API's answer, following ``Link`` pages; None when this registry has no referrers API."""
        from ci_oras.registry.client import registry_error_detail

        url: str | None = f"/v2/{self.repository}/referrers/{subject_digest}"
        params = {"artifactType": artifact_type} if artifact_type else None
        found: list[Descriptor] = []
        filtered_by_server = False
        while url:
            self._count("referrers-api")
            response = self.client.request(
                "GET", url, scopes=self.pull_scopes, params=params, ok=(200, 404),
                headers={"Accept": mediatypes.OCI_INDEX}, describe=f"list referrers of {subject_digest}",
            )
            try:
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
                if response.status_code == 404:
                    code, _ = registry_error_detail(response)
                    if code == "NAME_UNKNOWN":
                        return []  # the repository does not exist yet: nothing refers to anything
                    self._remember(False)
                    return None
                if content_type != mediatypes.OCI_INDEX:
                    self._remember(False)  # e.g. an HTML page answered with 200
                    return None
                try:
                    index = parse_manifest(response.read(), mediatypes.OCI_INDEX)
                except Exception:
                    self._remember(False)
                    return None
            finally:
                response.close()
            self._remember(True)
            applied = response.headers.get("OCI-Filters-Applied", "")
            filtered_by_server = filtered_by_server or "artifactType" in [p.strip() for p in applied.split(",")]
            found.extend(index.manifests)
            url = self.client.next_page(response, f"list referrers of {subject_digest}")
            params = None
        return found if filtered_by_server else filter_by_type(found, artifact_type)

    def _read_fallback(self, subject_digest: str) -> _Fallback:
        self._count("fallback-get")
        got = self.store.get_manifest_if_exists(fallback_tag(subject_digest))
        if got is None:
            return _Fallback()
        manifest, etag = got
        if not manifest.is_index or manifest.digest == subject_digest:
            # Not a referrers index (or the registry resolved the tag to the subject itself): ignore it,
            # but note that the tag exists so a write replaces it.
            return _Fallback(exists=True, etag=etag, digest=manifest.digest)
        return _Fallback(list(manifest.manifests), etag, True, manifest.digest)

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
            listed = self._list_api(subject_digest, wanted)
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
            self._sleep(_jitter(attempt))
            for manifest in missing:
                self._count("manifest-reput")
                self.store.put_manifest(manifest, manifest.digest)
        raise self._not_discoverable(manifests[0], subject_digest)

    def _ensure_in_fallback(self, subject_digest: str, manifests: list[Manifest]) -> None:
        #: Our entries and every entry seen in the index during this call. A writer that read before someone
        #: else's write can drop entries; whoever saw them puts them back, so they survive their owner. An
        #: entry whose manifest has been deleted meanwhile is let go (one HEAD, only when it went missing).
        known: dict[str, Descriptor] = {m.digest: m.descriptor for m in manifests}
        ours = set(known)
        writes = 0
        started = time.monotonic()
        unchanged = 0
        last_digest: str | None = None
        while True:
            current = self._read_fallback(subject_digest)
            if writes and not _lists_all(current, known):
                # Our write was overwritten: back off, then merge with a fresh read. Never sleep between a
                # read and the write based on it: that widens the window for overwriting others' entries.
                self._sleep(_jitter(writes))
                current = self._read_fallback(subject_digest)
            for desc in current.manifests:
                known.setdefault(desc.digest, desc)
            now = time.monotonic()
            if _lists_all(current, known):
                if not writes:
                    return  # already listed (a re-run): we changed nothing, so there is nothing to watch
                # Count reads that find the index as we last saw it; any change starts the count again.
                unchanged = unchanged + 1 if current.digest == last_digest else 0
                last_digest = current.digest
                if unchanged >= self.settle.quiet_checks or now - started >= self.settle.limit:
                    return
                self._sleep(self.settle.interval * random.uniform(0.8, 1.2))
                continue
            unchanged = 0
            last_digest = None
            if writes >= self.settle.max_writes or now - started >= self.settle.limit:
                raise self._not_discoverable(manifests[0], subject_digest)
            listed = {d.digest for d in current.manifests}
            missing = [d for d in known.values() if d.digest not in listed]
            gone = [d.digest for d in missing if d.digest not in ours and not self.store.exists(d)]
            for digest in gone:  # deleted meanwhile (ci-oras delete): an entry must not outlive its manifest
                del known[digest]
            if gone and _lists_all(current, known):
                continue
            writes += 1
            self._write_fallback(subject_digest, current, [*current.manifests, *(d for d in missing
                                                                                  if d.digest in known)])

    def _write_fallback(self, subject_digest: str, current: _Fallback, manifests: list[Descriptor]) -> None:
        index = build_index(manifests)
        # Conditional headers cost nothing and protect us on registries that honour them; a 412 only means
        # someone else wrote first, and the caller's loop re-reads and merges again.
        headers = {"If-Match": current.etag} if current.exists and current.etag else (
            {} if current.exists else {"If-None-Match": "*"})
        self._count("fallback-put")
        self.store.put_manifest(index, fallback_tag(subject_digest), headers=headers, ok=(200, 201, 412))

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
        return got

    def forget_in_fallback(self, subject_digest: str, referrer_digest: str,
                           delete_manifest: Callable[[str], bool]) -> bool:
        """Remove a deleted referrer from the subject's fallback index; True when the index changed.

        The index is read back after every change: a concurrent writer may have re-added the entry (writers
        keep entries they saw, see ``_ensure_in_fallback``). An index that would become empty is deleted by
        its digest instead (distribution removes the tag with it); a concurrent writer that already replaced
        it has moved the tag to another digest, so its index survives our delete.
        """
        changed = False
        for attempt in range(1, self.settle.max_writes + 1):
            got = self.real_fallback_index(subject_digest)
            if got is None:
                return changed
            index, etag = got
            kept = [d for d in index.manifests if d.digest != referrer_digest]
            if len(kept) == len(index.manifests):
                return changed
            if kept:
                current = _Fallback(list(index.manifests), etag, True, index.digest)
                self._write_fallback(subject_digest, current, kept)
            else:
                self._count("fallback-delete")
                delete_manifest(index.digest)
            changed = True
            self._sleep(_jitter(attempt) / 4)
        raise RegistryError(f"could not update the referrers index of {subject_digest} on {self.client.host}",
                            hint="other writers kept changing it; retry")

    def drop_fallback(self, subject_digest: str, delete_manifest: Callable[[str], bool]) -> bool:
        """Delete the fallback index of a deleted subject (by digest); True when there was one."""
        got = self.real_fallback_index(subject_digest)
        if got is None:
            return False
        self._count("fallback-delete")
        return delete_manifest(got[0].digest)


def _lists_all(current: _Fallback, known: dict[str, Descriptor]) -> bool:
    listed = {d.digest for d in current.manifests}
    return all(digest in listed for digest in known)


def _jitter(attempt: int) -> float:
    """Full jitter, growing with the attempt: spreads parallel CI jobs apart."""
    return random.uniform(0.05, min(2.0, 0.1 * 2 ** min(attempt, 5)))

