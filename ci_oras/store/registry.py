"""A repository on a remote registry (distribution-spec v1.1), behind the store protocols.

Blobs stream in both directions and are verified while they pass; manifests are pushed as their exact bytes.
Uploads use POST then a single streamed PUT, or PATCH chunks above ``chunk_threshold`` (always continuing at the
newest ``Location``, which distribution changes after every chunk).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Collection, Container, Iterable, Iterator
from typing import TYPE_CHECKING

from ci_oras.errors import CiOrasError, IntegrityError, MalformedError, NotFoundError, RegistryError, UsageError
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.digest import digest_bytes, is_digest, mismatch
from ci_oras.oci.manifest import Manifest, parse_manifest
from ci_oras.oci.reference import RegistryReference
from ci_oras.oci.referrers import UNCHANGED, Unchanged, fallback_tag
from ci_oras.oci.shape import Fields, load_json
from ci_oras.registry.auth import repository_scope
from ci_oras.registry.referrers import RegistryReferrers, ReferrersMode, SettleOptions
from ci_oras.store.protocols import ByteStream
from ci_oras.store.digest_check import verified

if TYPE_CHECKING:
    import httpx

    from ci_oras.registry.client import RegistryClient

DEFAULT_CHUNK_THRESHOLD = 256 * 1024 * 1024
#: Manifest PUT answers that distribution gives transiently under concurrent writers (its link files race),
#: as well as for real: the referenced blobs are checked before the PUT is retried.
_RECHECK_CODES = frozenset({"DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"})
_FALLBACK_TAG_RE = re.compile(r"^sha(256|512)-[0-9a-f]{64,128}$")


class RegistryRepository:
    """``Target`` for ``REGISTRY/REPO``; thread-safe (one shared client)."""

    #: A copy uploads blobs up to this size without asking first (``ci_oras.graph.copy.SmallUploads``): at
    #: 100 Mbit/s, 256 KiB goes out in about the 20 ms a HEAD to a registry in the same region costs.
    small_upload_bytes = 256 * 1024

    def __init__(
        self,
        reference: RegistryReference,
        client: RegistryClient,
        *,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        chunk_size: int = 64 * 1024 * 1024,
        writable: bool = False,
        referrers_mode: ReferrersMode = ReferrersMode.auto,
        settle: SettleOptions | None = None,
    ) -> None:
        self.reference = reference
        self.repository = reference.repository
        self.client = client
        self.chunk_threshold = chunk_threshold
        self.chunk_size = chunk_size
        self._push = (repository_scope(self.repository, "pull", "push"),)
        # A repository opened for writing asks for pull,push from the first request, so one token serves the
        # whole operation instead of a pull token for the HEADs and a second one for the uploads.
        self._pull = self._push if writable else (repository_scope(self.repository, "pull"),)
        self._delete = (repository_scope(self.repository, "delete"),)
        #: Upload sessions a refused mount opened; reused by the next push of that blob (saves a POST).
        self._open_uploads: dict[str, str] = {}
        #: Blob downloads being read right now (see ``_verified_download``).
        self._downloads = 0
        #: subject digest → whether every referrer of it pushed in this run was answered with its OCI-Subject.
        self._subject_answers: dict[str, bool] = {}
        self._lock = threading.Lock()
        self.referrers_backend = RegistryReferrers(
            client, self.repository, self, self._pull, mode=referrers_mode, settle=settle
        )

    @property
    def name(self) -> str:
        return self.reference.repository_name

    def _path(self, kind: str, ref: str = "") -> str:
        return f"/v2/{self.repository}/{kind}/{ref}"

    # -- probing --------------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: proves the registry speaks the API and the credentials work."""
        self.client.request("GET", "/v2/", scopes=(), describe="ping").close()

    # -- blobs ----------------------------------------------------------------------------------------

    def exists(self, desc: Descriptor) -> bool:
        kind = "manifests" if desc.is_manifest else "blobs"
        headers = {"Accept": mediatypes.MANIFEST_ACCEPT} if desc.is_manifest else None
        response = self.client.request(
            "HEAD", self._path(kind, desc.digest), scopes=self._pull, headers=headers,
            ok=(200, 404), describe=f"check {desc.digest}",
        )
        response.close()
        return response.status_code == 200

    def fetch(self, desc: Descriptor) -> ByteStream:
        kind = "manifests" if desc.is_manifest else "blobs"
        headers = {"Accept": mediatypes.MANIFEST_ACCEPT} if desc.is_manifest else {}
        path = self._path(kind, desc.digest)
        response = self.client.request(
            "GET", path, scopes=self._pull, headers=headers, stream=True, describe=f"fetch {desc.digest}",
            transfer=not desc.is_manifest,
        )
        return self._verified_download(self._resuming_body(response, path, headers, desc), desc)

    def _verified_download(self, body: ByteStream, desc: Descriptor) -> ByteStream:
        """Verify ``body`` while it passes, on a helper thread only when no other blob download is running.

        The helper pays while a core would otherwise idle: one download at a time. Beside parallel downloads
        (a promote's ``--concurrency`` copies) every core is busy already, and measured on two cores the
        helper's hand-offs cost a quarter more CPU and its queue 5 MiB of memory per stream, for no speed.
        """
        with self._lock:
            alone = self._downloads == 0
            self._downloads += 1
        try:
            yield from verified(body, desc, helper_thread=alone)
        finally:
            with self._lock:
                self._downloads -= 1

    def _resuming_body(self, response: httpx.Response, path: str, headers: dict[str, str],
                       desc: Descriptor) -> ByteStream:
        """The body of ``response``; when the connection breaks, continue with a ``Range`` request.

        A multi-gigabyte pull should survive a dropped connection without starting over. A registry that
        ignores ``Range`` (answers 200) is handled too: the bytes already received are skipped.
        """
        import httpx

        from ci_oras.registry.transport import describe_transport, transport_hint

        policy = self.client.policy
        received = 0
        skip = 0
        failures = 0
        while True:
            try:
                try:
                    for chunk in response.iter_bytes():
                        if skip:
                            dropped = min(skip, len(chunk))
                            chunk, skip = chunk[dropped:], skip - dropped
                            if not chunk:
                                continue
                        received += len(chunk)
                        yield chunk
                    return
                finally:
                    response.close()
            except httpx.TransportError as exc:
                failures += 1
                if not policy.again(failures):
                    raise RegistryError(
                        f"download of {desc.digest} from {self.client.host} broke off after {received} bytes "
                        f"({describe_transport(exc)})", hint=transport_hint(exc), retryable=True) from exc
            policy.pause(failures)
            response = self.client.request(
                "GET", path, scopes=self._pull, headers={**headers, "Range": f"bytes={received}-"}, stream=True,
                ok=(200, 206), describe=f"resume {desc.digest}", transfer=not desc.is_manifest,
            )
            skip = received if response.status_code == 200 else 0

    def push_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        """Upload a blob; a transient failure restarts the upload when ``chunks`` can be iterated again.

        A generator can be read once, so its upload cannot be retried; a re-iterable source (a list, or an
        object whose ``__iter__`` reopens a file) is tried again, with a fresh upload session, as the run's
        retry policy allows.
        """
        # An iterator is single-use; any other iterable is iterated afresh for a retry. (Never call iter() to
        # find out: for a source stream that starts a download.)
        policy = self.client.policy
        failures = 0
        while True:
            with self._lock:
                location = self._open_uploads.pop(desc.digest, None)
            try:
                if location is None:
                    location = self._start_upload()
                if desc.size > self.chunk_threshold:
                    self._upload_chunked(location, desc, chunks)
                else:
                    self._upload_monolithic(location, desc, chunks)
                return
            except RegistryError as exc:
                failures += 1
                if not exc.retryable or isinstance(chunks, Iterator) or not policy.again(failures):
                    raise
            policy.pause(failures)

    def mount(self, desc: Descriptor, from_repository: str) -> bool:
        """Cross-repository mount; a refused mount's upload session is kept for the following push."""
        scopes = (repository_scope(from_repository, "pull"),) + self._push
        response = self.client.request(
            "POST", self._path("blobs", "uploads/"), params={"mount": desc.digest, "from": from_repository},
            scopes=scopes, ok=(201, 202), describe=f"mount {desc.digest}", content=b"",
        )
        response.close()
        if response.status_code == 201:
            return True
        location = response.headers.get("Location")
        if location:
            with self._lock:
                self._open_uploads[desc.digest] = str(response.url.join(location))
        return False

    def _start_upload(self) -> str:
        response = self.client.request(
            "POST", self._path("blobs", "uploads/"), scopes=self._push, ok=(202,),
            describe="start upload", content=b"",
        )
        response.close()
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.client.host} started an upload without a Location header")
        return str(response.url.join(location))

    def _upload_monolithic(self, location: str, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        response = self.client.request(
            "PUT", _with_digest(location, desc.digest), scopes=self._push,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
            content=_exact_size(chunks, desc), ok=(201,), describe=f"upload {desc.digest}",
            transfer=True,
        )
        response.close()

    def _upload_chunked(self, location: str, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        pieces = _Pieces(_exact_size(chunks, desc))
        offset = 0
        while offset < desc.size:
            size = min(self.chunk_size, desc.size - offset)
            response = self.client.request(
                "PATCH", location, scopes=self._push,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                    "Content-Range": f"{offset}-{offset + size - 1}",
                },
                content=pieces.next_piece(size), ok=(202,), describe=f"upload chunk of {desc.digest}",
                transfer=True,
            )
            response.close()
            offset += size
            new_location = response.headers.get("Location")
            if new_location:
                location = str(response.url.join(new_location))
        pieces.finish()
        response = self.client.request(
            "PUT", _with_digest(location, desc.digest), scopes=self._push,
            headers={"Content-Length": "0"}, content=b"", ok=(201,), describe=f"finish upload {desc.digest}",
            transfer=True,  # the registry may assemble a large blob before answering: no request deadline
        )
        response.close()

    # -- manifests ------------------------------------------------------------------------------------

    def resolve(self, reference: str) -> Descriptor:
        response = self.client.request(
            "HEAD", self._path("manifests", reference), scopes=self._pull,
            headers={"Accept": mediatypes.MANIFEST_ACCEPT}, describe=f"resolve {self._shown(reference)}",
        )
        response.close()
        digest = response.headers.get("Docker-Content-Digest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        length = response.headers.get("Content-Length")
        if is_digest(reference) and digest and digest != reference:
            if digest.split(":")[0] == reference.split(":")[0]:
                raise IntegrityError(f"registry {self.client.host} answered {digest} for {reference}")
            # Named by another algorithm (sha512): only the bytes can tell; fetch and verify them.
            return self.fetch_manifest(reference).descriptor
        if not digest or not is_digest(digest) or not length or not length.isdigit() \
                or not mediatypes.is_manifest_type(media_type):
            # Some registries omit the digest on HEAD (or send one that is not a digest): fetch the bytes.
            return self.fetch_manifest(reference).descriptor
        return Descriptor(media_type=media_type, digest=digest, size=int(length))

    def fetch_manifest(self, reference: str) -> Manifest:
        response, raw = self._get_manifest_bytes(reference)
        return self._manifest_answer(reference, response, raw, listing=False)[0]

    def get_manifest_if_exists(self, reference: str) -> tuple[Manifest, str | None, float] | None:
        """For the referrers backend, which reads fallback indexes with it: an index is parsed as a listing
        (malformed entries kept apart in ``Manifest.malformed``, for the backend to refuse or report)."""
        try:
            response, raw = self._get_manifest_bytes(reference)
        except NotFoundError:
            return None
        return self._manifest_answer(reference, response, raw, listing=True)

    def get_manifest_if_changed(self, reference: str, etag: str
                                ) -> tuple[Manifest, str | None, float] | Unchanged | None:
        """:meth:`get_manifest_if_exists`, asked with ``If-None-Match: etag`` (an earlier answer's): UNCHANGED
        when the registry says that answer still holds (304, no body)."""
        try:
            response, raw = self._get_manifest_bytes(reference, etag)
        except NotFoundError:
            return None
        if response.status_code == 304:
            return UNCHANGED
        return self._manifest_answer(reference, response, raw, listing=True)

    def _manifest_answer(self, reference: str, response: httpx.Response, raw: bytes, *, listing: bool
                         ) -> tuple[Manifest, str | None, float]:
        """The manifest answered, its ETag, and the seconds the answering attempt took (retries' waits left
        out: the referrers watch sizes its window from registry round trips, not from our own back-off)."""
        from ci_oras.registry.retry import attempt_seconds

        header = response.headers.get("Docker-Content-Digest")
        expected = reference if is_digest(reference) else header if header and is_digest(header) else None
        wrong = mismatch(raw, expected) if expected else None
        if expected and wrong:
            raise IntegrityError(
                f"manifest {self._shown(reference)} from {self.client.host} has digest {wrong}, expected {expected}",
                hint="the registry or a proxy altered the manifest; do not use it",
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip() or None
        source = self.name if is_digest(reference) else self._shown(reference)
        try:
            manifest = parse_manifest(raw, media_type, digest_bytes(raw), source=source, listing=listing)
        except MalformedError as exc:
            # JSON of the wrong shape is a malformed manifest (exit 6); a body that is not JSON at all under a
            # Content-Type that is not a manifest's is a page some proxy or portal answered instead (exit 5).
            undecodable = isinstance(exc.__cause__, (json.JSONDecodeError, UnicodeError))
            if not undecodable or mediatypes.is_manifest_type(media_type or ""):
                raise
            raise RegistryError(
                f"registry {self.client.host} answered {self._shown(reference)} with something that is not a "
                f"manifest (Content-Type {media_type or 'none'}): {exc.problem}",
                hint="check the registry address (a proxy or login page may be answering) and retry later",
            ) from exc
        except UsageError as exc:
            # The user named a manifest; what came back is not one (an HTML page, a login portal, garbage):
            # that is the registry's failure, not bad input.
            raise RegistryError(
                f"registry {self.client.host} answered {self._shown(reference)} with something that is not a "
                f"manifest (Content-Type {media_type or 'none'}): {exc.message}",
                hint="check the registry address (a proxy or login page may be answering) and retry later",
            ) from exc
        return manifest, response.headers.get("ETag"), attempt_seconds(response)

    def _get_manifest_bytes(self, reference: str, if_none_match: str | None = None) -> tuple[httpx.Response, bytes]:
        """GET a manifest whole: read within its attempt, capped at ``protocols.MAX_MANIFEST_BYTES`` (a body cut off
        mid-way is retried like a dropped connection, ``retry.py``). With ``if_none_match`` a 304 answer comes
        back with no bytes."""
        headers = {"Accept": mediatypes.MANIFEST_ACCEPT}
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        response = self.client.request(
            "GET", self._path("manifests", reference), scopes=self._pull, headers=headers,
            ok=(200, 304) if if_none_match else (200,), describe=f"fetch manifest {self._shown(reference)}",
        )
        return response, response.content

    def push_manifest(self, manifest: Manifest, tag: str | None = None) -> None:
        response = self.put_manifest(manifest, tag or manifest.digest)
        if manifest.subject is not None and tag is None:
            self._note_subject_answer(manifest.subject.digest, response)

    def _note_subject_answer(self, subject_digest: str, response: httpx.Response) -> None:
        """Keep whether the PUT of a referrer was answered with its ``OCI-Subject`` (the registry lists it).

        A promote stores a subject's referrers first and updates its list once, later (``push_referrers`` with
        ``stored``): the answers given then say whether the list is the API's or a fallback index, as they do
        for an attach, so the update needs no probe of the referrers API.
        """
        said = response.headers.get("OCI-Subject") == subject_digest
        with self._lock:
            self._subject_answers[subject_digest] = self._subject_answers.get(subject_digest, True) and said

    def put_manifest(self, manifest: Manifest, reference: str, headers: dict[str, str] | None = None,
                     ok: tuple[int, ...] = (200, 201)) -> httpx.Response:
        """PUT the exact bytes; a DIGEST_INVALID or MANIFEST_BLOB_UNKNOWN answer is retried, as the run's retry
        policy allows, once the referenced blobs are confirmed present with their sizes (distribution gives
        these answers transiently under concurrent writers); a blob really missing or wrong is an integrity
        error."""
        policy = self.client.policy
        failures = 0
        while True:
            try:
                response = self.client.request(
                    "PUT", self._path("manifests", reference), scopes=self._push,
                    headers={"Content-Type": manifest.media_type, **(headers or {})}, content=manifest.raw,
                    ok=ok, describe=f"push manifest {manifest.digest}",
                )
                break
            except CiOrasError as exc:
                code = _first_code(exc)
                if code not in _RECHECK_CODES:
                    if isinstance(exc, UsageError) and _FALLBACK_TAG_RE.match(reference):
                        raise self._index_refused(manifest, reference, exc) from exc
                    raise
                self._check_referenced(manifest)  # a blob really missing or wrong: exit 6 now
                failures += 1
                if not policy.again(failures):
                    raise self._still_refused(exc, code) from exc
                policy.pause(failures)
        response.close()
        returned = response.headers.get("Docker-Content-Digest")
        if (response.status_code < 300 and returned and returned.startswith("sha256:")
                and returned != manifest.digest):
            raise IntegrityError(
                f"registry {self.client.host} stored manifest as {returned}, expected {manifest.digest}",
                hint="the registry rewrote the manifest bytes",
            )
        return response

    def _check_referenced(self, manifest: Manifest) -> None:
        """Raise IntegrityError unless every blob or child manifest ``manifest`` names is stored, at its size."""
        for child in manifest.children():
            kind = "manifests" if child.is_manifest else "blobs"
            headers = {"Accept": mediatypes.MANIFEST_ACCEPT} if child.is_manifest else None
            response = self.client.request(
                "HEAD", self._path(kind, child.digest), scopes=self._pull, headers=headers, ok=(200, 404),
                describe=f"check {child.digest}",
            )
            response.close()
            where = f"{self.client.host}/{self.repository}"
            if response.status_code == 404:
                raise IntegrityError(
                    f"manifest {manifest.digest} references {child.digest}, which {where} does not have",
                    hint="push the missing content first (a promote or push copies it)",
                )
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != child.size:
                raise IntegrityError(
                    f"manifest {manifest.digest} says {child.digest} has {child.size} bytes; {where} stores "
                    f"{length}", hint="the manifest or the stored content is wrong; do not use it",
                )

    def _still_refused(self, error: CiOrasError, code: str) -> CiOrasError:
        """Every retry refused although the referenced content checks out. DIGEST_INVALID then most likely
        means the manifest bytes are altered on the way (integrity); MANIFEST_BLOB_UNKNOWN, that the registry
        contradicts its own HEAD answers (a registry failure)."""
        if code == "DIGEST_INVALID":
            return error
        refused = RegistryError(f"{error.message}, although every referenced blob is present",
                                hint="the registry contradicts itself; retry later or report it to its operator")
        refused.answer = error.answer
        return refused

    def _index_refused(self, index: Manifest, reference: str, exc: UsageError) -> RegistryError:
        """The registry refused our own referrers index (too large, most often): its limit, not bad input."""
        return RegistryError(
            f"registry {self.client.host} refused the referrers index {self.name}:{reference} "
            f"({len(index.manifests)} entries, {len(index.raw)} bytes): {exc.message}",
            hint="too many referrers for the tag schema on this registry; delete stale ones "
                 "(ci-oras delete --graph) or use a registry with the referrers API",
        )

    # -- referrers ------------------------------------------------------------------------------------

    def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
        return self.referrers_backend.list_referrers(subject.digest, artifact_type)

    def referrers_api(self) -> bool | None:
        return self.referrers_backend.api_supported

    def assume_referrers_api(self, supported: bool) -> None:
        self.referrers_backend.assume(supported)

    def listing_validator(self, subject: Descriptor) -> str | None:
        return self.referrers_backend.validators.get(subject.digest)

    def referrers_if_changed(self, subject: Descriptor, validator: str) -> list[Descriptor] | Unchanged:
        return self.referrers_backend.list_referrers_if_changed(subject.digest, validator)

    def push_referrer(self, manifest: Manifest) -> None:
        if manifest.subject is None:
            self.push_manifest(manifest)
            return
        self.push_referrers(manifest.subject, [manifest])

    def push_referrers(self, subject: Descriptor, manifests: list[Manifest], stored: Collection[str] = ()) -> None:
        backend = self.referrers_backend
        backend.require_api(subject.digest)
        # None: nothing was pushed now (a re-run), so no answer says whether the registry lists referrers.
        confirmed: bool | None = None
        for manifest in manifests:
            if manifest.digest in stored:
                continue
            response = self.put_manifest(manifest, manifest.digest)
            said = response.headers.get("OCI-Subject") == subject.digest
            confirmed = said if confirmed is None else confirmed and said
        if confirmed is None:  # stored earlier: by push_manifest in this run, if anything answered
            with self._lock:
                confirmed = self._subject_answers.get(subject.digest)
        backend.ensure_all_listed(subject.digest, manifests, confirmed_by_registry=confirmed)

    def tag(self, manifest: Manifest, tag: str) -> None:
        self.push_manifest(manifest, tag)

    def tags(self) -> list[str]:
        found = self._read_tags()
        assert found is not None  # no page limit of our own: next_page's ends the listing with an error
        return sorted(set(found))

    def _read_tags(self, max_pages: int | None = None) -> list[str] | None:
        """Every tag, following ``Link`` pages (registries that ignore ``n`` answer all in one); None when
        there are more than ``max_pages`` pages (none of them past the limit is requested)."""
        found: list[str] = []
        url: str | None = self._path("tags", "list")
        params: dict[str, str] | None = {"n": "1000"}
        followed: set[str] = set()
        while url:
            if max_pages is not None and len(followed) >= max_pages:
                return None
            response = self.client.request("GET", url, scopes=self._pull, params=params, describe="list tags")
            try:
                body = Fields.of(load_json(response.read(), self._invalid_tag_list), self._invalid_tag_list)
            finally:
                response.close()
            found.extend(body.strings("tags"))
            url = self.client.next_page(response, "list tags", followed)
            params = None
        return found

    def listed_subjects(self, max_requests: int) -> Container[str] | None:
        """On the tag schema, the subjects whose ``sha256-<hex>`` tag the tag list shows (``ListedSubjects``);
        None with the referrers API, or when the tag list cannot be read whole in ``max_requests`` pages (an
        error, a malformed answer): the caller then reads each subject's tag as before. GitLab resolves an
        absent ``sha256-<hex>`` tag to the subject itself, which a read ignores: absent from the list is the
        same empty listing."""
        if not self.referrers_backend.tag_schema:
            return None
        try:
            found = self._read_tags(max_requests)
        except CiOrasError:
            return None
        return None if found is None else _FallbackTags(tag for tag in found if _FALLBACK_TAG_RE.match(tag))

    def delete(self, desc: Descriptor) -> None:
        if not desc.is_manifest:
            raise NotFoundError(f"{desc.digest} is not a manifest", hint="delete removes manifests only")
        scopes = self._delete + self._push
        response = self.client.request(
            "DELETE", self._path("manifests", desc.digest), scopes=scopes, ok=(200, 202),
            describe=f"delete {desc.digest}",
        )
        response.close()

    def close(self) -> None:
        """The shared client belongs to the session; nothing to release per repository."""

    def _invalid_tag_list(self, problem: str) -> RegistryError:
        return RegistryError(f"registry {self.client.host} returned an invalid tag list for {self.name}: {problem}")

    def _shown(self, reference: str) -> str:
        return f"{self.name}@{reference}" if is_digest(reference) else f"{self.name}:{reference}"

    # -- referrers bookkeeping after deletes (ReferrersIndexKeeper) -------------------------------------

    def referrers_index(self, subject: Descriptor) -> Descriptor | None:
        got = self.referrers_backend.real_fallback_index(subject.digest)
        if got is None:
            return None
        index = got[0]
        return Descriptor(media_type=index.media_type, digest=index.digest, size=len(index.raw))

    def forget_referrer(self, subject: Descriptor, referrer_digest: str) -> bool:
        """Tag schema: rewrite the subject's ``sha256-<hex>`` index without the entry (deleted when emptied).
        With the referrers API the registry updates its list itself: nothing to do."""
        backend = self.referrers_backend
        return backend.forget_in_fallback(subject.digest, referrer_digest, self.delete_if_present)

    def drop_referrers_index(self, subject: Descriptor) -> bool:
        return self.referrers_backend.drop_fallback(subject.digest, self.delete_if_present)

    def delete_if_present(self, digest: str) -> bool:
        """DELETE a manifest by digest (a tag cannot be deleted on distribution); False when it was gone."""
        response = self.client.request(
            "DELETE", self._path("manifests", digest), scopes=self._delete + self._push, ok=(200, 202, 404),
            describe=f"delete {digest}",
        )
        response.close()
        return response.status_code != 404


class _FallbackTags:
    """The subjects with a ``sha256-<hex>`` tag, from one read of the tag list (``listed_subjects``)."""

    __slots__ = ("_tags",)

    def __init__(self, tags: Iterable[str]) -> None:
        self._tags = frozenset(tags)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        try:
            return fallback_tag(digest) in self._tags
        except UsageError:
            return True  # no tag can name it: read as before, which reports it


def _exact_size(chunks: Iterable[bytes], desc: Descriptor) -> Iterator[bytes]:
    """Pass chunks through, failing if they are not exactly ``desc.size`` bytes.

    The digest itself is not re-hashed here: the registry verifies the ``?digest=`` of every upload and
    answers DIGEST_INVALID (an IntegrityError) on a mismatch, so hashing on our side too would only halve the
    throughput. Sources are verified where they are read (``fetch``).
    """
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > desc.size:
            raise IntegrityError(f"content for {desc.digest} is larger than its {desc.size} bytes",
                                 hint="the file changed while it was being pushed; push again")
        yield chunk
    if sent != desc.size:
        raise IntegrityError(f"content for {desc.digest} is {sent} bytes, expected {desc.size}",
                             hint="the file changed while it was being pushed; push again")


class _Pieces:
    """Cuts one stream into consecutive pieces of exact sizes without buffering a piece in memory.

    Each PATCH streams its piece straight from the source; only the tail of a chunk that straddles two pieces
    is carried over.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._source = chunks
        self._leftover = b""

    def next_piece(self, size: int) -> Iterator[bytes]:
        need = size
        while need > 0:
            chunk = self._leftover or next(self._source, b"")
            self._leftover = b""
            if not chunk:
                return  # the size check in _exact_size reports the short source
            if len(chunk) > need:
                chunk, self._leftover = chunk[:need], chunk[need:]
            need -= len(chunk)
            yield chunk

    def finish(self) -> None:
        """Run the source to its end so its size check fires for a longer-than-declared source."""
        for _ in self._source:
            pass


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def _first_code(error: CiOrasError) -> str | None:
    """The first error code of a 400 answer the error was mapped from (the one distribution decides by)."""
    answer = error.answer
    if answer is None or answer.status != 400 or not answer.errors:
        return None
    return answer.errors[0][0] or None
