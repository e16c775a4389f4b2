"""An in-process registry written from the OCI distribution-spec v1.1.1 text.

The real ``docker-registry`` (CNCF distribution 2.8) has no referrers API, and
registries that have one (zot, Harbor, ...) cannot be installed here. Tests of
the native-referrers path therefore talk to :class:`FakeRegistry`: a small,
in-memory registry that follows the specification -- not any client's idea of
it -- and can be switched into the behaviours of real registries a client has
to survive (API missing, ``OCI-Subject`` missing, filter ignored, pagination,
GitLab's dash-tag bug, HTML answers, lost list updates).

Endpoints (``<name>`` matches the spec's repository-name grammar):

=========================================  =====================================================
``GET /v2/``                               200 ``{}``
``HEAD|GET /v2/<name>/blobs/<digest>``     200 (``Docker-Content-Digest``) / 404 BLOB_UNKNOWN
``DELETE /v2/<name>/blobs/<digest>``       202
``POST /v2/<name>/blobs/uploads/``         202 session; ``?digest=`` + body: 201 (monolithic);
                                           ``?mount=&from=``: 201 if ``from`` has it, else 202
``PATCH <upload location>``                202, new ``Location`` (``?_state=N``, like distribution; older
                                           locations of the session stay valid), ``Range: 0-<end>``;
                                           416 out of order; no ``Content-Range``: appended (streamed)
``PUT <upload location>?digest=``          201 / 400 DIGEST_INVALID
``GET|DELETE <upload location>``           204 ``Range`` / 204 cancelled
``PUT /v2/<name>/manifests/<ref>``         201 (+ ``OCI-Subject`` when the manifest has a subject)
``HEAD|GET /v2/<name>/manifests/<ref>``    200 byte-exact / 404 MANIFEST_UNKNOWN
``DELETE /v2/<name>/manifests/<ref>``      202 (digest: manifest, its tags, its referrer entries;
                                           tag: just the tag)
``GET /v2/<name>/tags/list[?n=&last=]``    200 sorted, ``Link`` when more remain
``GET /v2/<name>/referrers/<digest>``      200 image index, ``?artifactType=`` filter, ``Link`` pages
=========================================  =====================================================

``tags/list`` and ``referrers`` answer 404 NAME_UNKNOWN for a repository no manifest was ever pushed to
(blobs alone do not make it known -- as on distribution). The referrers of an unknown *subject* in a known
repository are an empty index (200). The referrers list keeps push order; a pushed manifest is listed once.
Known, deliberate differences from distribution 2.8 (the spec allows or requires them): a monolithic
``POST ?digest=`` stores the body (201), ``DELETE`` by tag is 202, ``PATCH`` ``Content-Range`` is checked
(416), manifest reads do not need an ``Accept`` header, ``tags/list`` is sorted and honours ``n``/``last``.

Switches are constructor keyword arguments and plain attributes, read on
every request, so a test may flip them mid-conversation:

``referrers_api`` (True)
    False: ``GET /referrers/...`` answers ``404 text/plain "404 page not found"``
    exactly like distribution 2.8, and manifest PUTs carry no ``OCI-Subject``.
``oci_subject_header`` (True)
    False: the API works but PUT responses omit ``OCI-Subject``.
``filter_header`` (True)
    False: ``artifactType`` is ignored (everything returned) and no
    ``OCI-Filters-Applied`` header is sent.
``page_size`` (None)
    Maximum entries per referrers page and per tags page (``n`` larger than
    this is cut down); forces ``Link`` pagination.
``dash_tag_returns_subject`` (False)
    GitLab's bug: resolving a missing tag ``sha256-<hex>`` returns the
    manifest ``sha256:<hex>`` itself.
``html_referrers`` (False)
    The referrers path answers ``200 text/html`` with an HTML page.
``drop_referrer_updates`` (0)
    The next N subject-bearing manifest PUTs are stored (and still answered
    with ``OCI-Subject``) but not added to the referrers list; a later re-PUT
    of the same manifest lists it.
``validate_blobs`` / ``validate_children`` (True)
    Image manifests need their config and layer blobs in the repository /
    indexes need their child manifests (400 MANIFEST_BLOB_UNKNOWN /
    MANIFEST_UNKNOWN otherwise).

Like the rest of the harness this module does not import ``ci_oras``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from .server import BackgroundServer, QuietHandler, RecordedRequest

if TYPE_CHECKING:  # typing.Self is 3.11+; only needed for type checkers
    import httpx
    from typing_extensions import Self

__all__ = [
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SUPPORTED_MANIFEST_TYPES",
    "FakeRegistry",
    "FakeRequest",
    "StoredManifest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
#: The withdrawn artifact manifest (image-spec 1.1 release candidates); rejected like distribution does.
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SUPPORTED_MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES

#: Registries SHOULD accept manifests of at least 4 MiB; larger ones get 413.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"(?P<alg>[a-z0-9]+(?:[+._-][a-z0-9]+)*):(?P<enc>[a-zA-Z0-9=_-]+)")
_HASHES = {"sha256": (hashlib.sha256, 64), "sha512": (hashlib.sha512, 128)}
_HEX_RE = re.compile(r"[a-f0-9]+")
_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")
# Greedy name, then one of the endpoint suffixes (uploads tried before a blob digest).
_PATH_RE = re.compile(
    r"^/v2/(?P<name>.+)/(?:"
    r"blobs/uploads/?(?P<upload>[^/]*)"
    r"|blobs/(?P<blob>[^/]+)"
    r"|manifests/(?P<manifest>[^/]+)"
    r"|(?P<tags>tags/list)"
    r"|referrers/(?P<referrers>[^/]*)"
    r")$"
)
_NOT_FOUND_TEXT = b"404 page not found\n"
_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Registry</title></head>"
    b"<body><h1>Welcome</h1><p>This is not an API.</p></body></html>\n"
)


class _Problem(Exception):
    """An error answered as ``{"errors": [...]}`` (or, with ``raw``, as is)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}


def _checked_digest(value: str) -> str:
    """The algorithm of ``value``; a malformed digest or an unsupported algorithm is a ``DIGEST_INVALID``."""
    try:
        algorithm, _ = parse_digest(value)
    except ValueError as exc:
        raise _digest_problem(str(exc), {"digest": value}) from None
    return algorithm


def _digest_problem(message: str, detail: Any = None) -> _Problem:
    return _Problem(400, "DIGEST_INVALID", message, detail)


def parse_digest(value: str) -> tuple[str, str]:
    """``(algorithm, encoded)`` of a well-formed digest of a supported algorithm, else ``ValueError``."""
    match = DIGEST_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"malformed digest {value!r}")
    alg, enc = match.group("alg"), match.group("enc")
    if alg not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {alg!r}")
    _, length = _HASHES[alg]
    if len(enc) != length or not _HEX_RE.fullmatch(enc):
        raise ValueError(f"digest {value!r} is not {length} lowercase hex characters")
    return alg, enc


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{_HASHES[algorithm][0](data).hexdigest()}"


def _is_digest(value: str) -> bool:
    return ":" in value


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as stored: the exact bytes pushed and the media type they were pushed with."""

    digest: str
    media_type: str
    body: bytes

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def subject(self) -> str | None:
        subject = self.json().get("subject")
        return subject.get("digest") if isinstance(subject, dict) else None

    def descriptor(self) -> dict[str, Any]:
        """This manifest as an entry of a referrers index (distribution-spec "Listing Referrers")."""
        desc = dict(self._listed)
        if "annotations" in desc:
            desc["annotations"] = dict(desc["annotations"])
        return desc

    @cached_property
    def _listed(self) -> dict[str, Any]:
        """The listing entry, worked out once: a subject with thousands of referrers is listed page by page,
        and parsing every stored manifest again for each page made a listing quadratic."""
        doc = self.json()
        desc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body)}
        artifact_type = doc.get("artifactType")
        if artifact_type is None and isinstance(doc.get("config"), dict):
            artifact_type = doc["config"].get("mediaType")
        if artifact_type is not None:
            desc["artifactType"] = artifact_type
        annotations = doc.get("annotations")
        if isinstance(annotations, dict) and annotations:
            desc["annotations"] = dict(annotations)
        return desc


@dataclass
class FakeRequest(RecordedRequest):
    """One request the fake received and how it answered (``body_size``: the request body's length)."""

    body_size: int = 0


@dataclass
class _Upload:
    name: str
    data: bytearray = field(default_factory=bytearray)
    state: int = 0  # bumped on every PATCH: the Location changes like distribution's ``_state``


@dataclass
class _Repo:
    blobs: set[str] = field(default_factory=set)
    manifests: dict[str, StoredManifest] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: subject digest -> referrer manifest digests, in the order they were listed
    referrers: dict[str, list[str]] = field(default_factory=dict)
    #: a manifest was ever pushed here; before that, tags/list and referrers answer NAME_UNKNOWN
    #: (distribution creates the repository's manifest store on the first manifest, not on blobs)
    named: bool = False


@dataclass
class _Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Handler(QuietHandler):
    def _handle(self) -> None:
        registry: FakeRegistry = self.server.owner
        split = urlsplit(self.path)
        record = FakeRequest(self.command, split.path, split.query, tuple(self.headers.items()), time.monotonic())
        registry._record(record)
        try:
            body = b"".join(self._request_body())
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        answer, headers = registry._answer(record, self.headers, body)
        self.send_response(answer.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and answer.body:
            self.wfile.write(answer.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def version_string(self) -> str:
        return "ci-oras-fake-registry"


class FakeRegistry(BackgroundServer["FakeRequest"]):
    """A spec-faithful, switchable in-memory OCI registry on ``127.0.0.1:<port>``.

    Started by the constructor (``start=False`` to defer); ``stop()`` or use
    it as a context manager. See the module docstring for the switches.

    Attributes mirroring :class:`~harness.registry.RunningRegistry`, so code
    written for the real registry runs against the fake unchanged:
    ``host`` (``127.0.0.1:PORT``), ``port``, ``url`` (``http://host``),
    ``mode`` (``"fake"``), ``username``/``password``/``ca_file`` (None).
    """

    mode = "fake"
    username: str | None = None
    password: str | None = None
    ca_file: None = None
    issuer: None = None
    _handler = _Handler
    _name = "fake-registry"

    def __init__(
        self,
        *,
        referrers_api: bool = True,
        oci_subject_header: bool = True,
        filter_header: bool = True,
        page_size: int | None = None,
        dash_tag_returns_subject: bool = False,
        html_referrers: bool = False,
        drop_referrer_updates: int = 0,
        validate_blobs: bool = True,
        validate_children: bool = True,
        start: bool = True,
    ) -> None:
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be a positive integer or None")
        super().__init__()
        self.referrers_api = referrers_api
        self.oci_subject_header = oci_subject_header
        self.filter_header = filter_header
        self.page_size = page_size
        self.dash_tag_returns_subject = dash_tag_returns_subject
        self.html_referrers = html_referrers
        self.drop_referrer_updates = drop_referrer_updates
        self.validate_blobs = validate_blobs
        self.validate_children = validate_children

        self._lock = threading.RLock()
        self._blobs: dict[str, bytes] = {}
        self._repos: dict[str, _Repo] = {}
        self._uploads: dict[str, _Upload] = {}
        if start:
            self.start()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        super().start()
        self._port = super().port
        return self

    @property
    def port(self) -> int:
        """The port served on; still known after :meth:`stop`, so a test can show that nothing answers."""
        if not hasattr(self, "_port"):
            raise RuntimeError("fake registry was never started")
        return self._port

    def __repr__(self) -> str:
        where = self.host if hasattr(self, "_port") else "not started"
        return f"<FakeRegistry {where} referrers_api={self.referrers_api}>"

    def writes(self) -> list[FakeRequest]:
        """The recorded requests that change something (PUT, POST, PATCH, DELETE), in arrival order."""
        return [r for r in self.requests if r.method in ("PUT", "POST", "PATCH", "DELETE")]

    # ------------------------------------------------------------------ state inspection

    def referrers(self, name: str, digest: str) -> list[dict[str, Any]]:
        """The descriptors the referrers API would list for ``digest`` (unfiltered, unpaged)."""
        with self._lock:
            repo = self._repos.get(name)
            if repo is None:
                return []
            return [repo.manifests[d].descriptor() for d in repo.referrers.get(digest, [])]

    def manifest(self, name: str, reference: str) -> StoredManifest | None:
        """The stored manifest for a tag or digest (no dash-tag bug applied), or None."""
        with self._lock:
            repo = self._repos.get(name)
            if repo is None:
                return None
            digest = reference if _is_digest(reference) else repo.tags.get(reference)
            return repo.manifests.get(digest) if digest else None

    def tags(self, name: str) -> list[str]:
        """The repository's tags, sorted."""
        with self._lock:
            repo = self._repos.get(name)
            return sorted(repo.tags) if repo else []

    def blob(self, name: str, digest: str) -> bytes | None:
        """A blob's bytes if it is linked into repository ``name``, else None."""
        with self._lock:
            repo = self._repos.get(name)
            return self._blobs.get(digest) if repo and digest in repo.blobs else None

    def repositories(self) -> list[str]:
        with self._lock:
            return sorted(self._repos)

    # ------------------------------------------------------------------ in process

    def transport(self) -> httpx.MockTransport:
        """The same registry as an httpx transport: answered in the calling thread, no socket, no server.

        Hand it to ``Runtime(..., transport=...)``; the requests are recorded as the server records them.
        """
        import httpx

        def answer(request: httpx.Request) -> httpx.Response:
            split = urlsplit(request.url.raw_path.decode("ascii"))
            record = FakeRequest(request.method, split.path, split.query, tuple(request.headers.items()),
                                 time.monotonic())
            self._record(record)
            answered, headers = self._answer(record, request.headers, request.read())
            body = answered.body if request.method != "HEAD" else b""
            return httpx.Response(answered.status, headers=headers, stream=httpx.ByteStream(body))

        return httpx.MockTransport(answer)

    def _answer(self, record: FakeRequest, headers: Any, body: bytes) -> tuple[_Answer, dict[str, str]]:
        """Dispatch one request (server or transport alike) and fill in its record."""
        record.body_size = len(body)
        answer = self._dispatch(record.method, record.path, record.query, headers, body)
        sent = dict(answer.headers)
        if answer.status != 204 and not 100 <= answer.status < 200:
            sent["Content-Length"] = str(len(answer.body))
        record.status = answer.status
        record.response_headers = tuple(sent.items())
        return answer, sent

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, method: str, path: str, query: str, headers: Any, body: bytes) -> _Answer:
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            if path in ("/v2", "/v2/"):
                if method in ("GET", "HEAD"):
                    return _Answer(200, {"Content-Type": "application/json"}, b"{}")
                return _method_not_allowed()
            match = _PATH_RE.match(path)
            if match is None:
                return _not_found_text()
            name = match.group("name")
            if not NAME_RE.fullmatch(name):
                raise _Problem(400, "NAME_INVALID", "invalid repository name", {"name": name})
            if match.group("upload") is not None:
                upload_id = match.group("upload")
                if not upload_id:
                    if method != "POST":
                        return _method_not_allowed()
                    return self._start_upload(name, params, body)
                return self._upload(method, name, upload_id, params, headers, body)
            if match.group("blob") is not None:
                return self._blob(method, name, match.group("blob"))
            if match.group("manifest") is not None:
                return self._manifest(method, name, match.group("manifest"), headers, body)
            if match.group("tags") is not None:
                if method not in ("GET", "HEAD"):
                    return _method_not_allowed()
                return self._tags_list(name, params)
            if method not in ("GET", "HEAD"):
                return _method_not_allowed()
            return self._referrers(name, match.group("referrers"), params)
        except _Problem as problem:
            return _error(problem)
        except Exception as exc:  # noqa: BLE001 - a bug in the fake must reach the test as a 500, not a reset
            return _error(_Problem(500, "UNKNOWN", f"fake registry bug: {exc!r}"))

    # ------------------------------------------------------------------ blobs

    def _repo(self, name: str) -> _Repo:
        repo = self._repos.get(name)
        if repo is None:
            repo = self._repos[name] = _Repo()
        return repo

    def _blob(self, method: str, name: str, digest: str) -> _Answer:
        _checked_digest(digest)
        with self._lock:
            repo = self._repos.get(name)
            present = repo is not None and digest in repo.blobs
            if method in ("GET", "HEAD"):
                if not present:
                    raise _Problem(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest})
                data = self._blobs[digest]
                return _Answer(
                    200,
                    {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest,
                     "ETag": f'"{digest}"', "Accept-Ranges": "none"},
                    data,
                )
            if method == "DELETE":
                if not present:
                    raise _Problem(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest})
                assert repo is not None
                repo.blobs.discard(digest)
                if not any(digest in r.blobs for r in self._repos.values()):
                    self._blobs.pop(digest, None)
                return _Answer(202, {"Docker-Content-Digest": digest})
        return _method_not_allowed()

    def _upload_location(self, name: str, upload_id: str, upload: _Upload) -> str:
        return f"/v2/{name}/blobs/uploads/{upload_id}?_state={upload.state}"

    def _new_session(self, name: str) -> _Answer:
        upload_id = str(uuid.uuid4())
        upload = _Upload(name)
        self._uploads[upload_id] = upload
        self._repo(name)
        return _Answer(
            202,
            {"Location": self._upload_location(name, upload_id, upload), "Range": "0-0",
             "Docker-Upload-UUID": upload_id},
        )

    def _store_blob(self, name: str, digest: str, data: bytes) -> _Answer:
        alg = _checked_digest(digest)
        actual = compute_digest(data, alg)
        if actual != digest:
            raise _digest_problem("provided digest did not match uploaded content",
                                  {"digest": digest, "actual": actual})
        self._blobs[digest] = data
        self._repo(name).blobs.add(digest)
        return _Answer(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})

    def _start_upload(self, name: str, params: dict[str, str], body: bytes) -> _Answer:
        with self._lock:
            mount = params.get("mount")
            if mount is not None:
                _checked_digest(mount)
                source = self._repos.get(params.get("from", ""))
                if source is not None and mount in source.blobs:
                    self._repo(name).blobs.add(mount)
                    return _Answer(201, {"Location": f"/v2/{name}/blobs/{mount}", "Docker-Content-Digest": mount})
                return self._new_session(name)
            digest = params.get("digest")
            if digest is not None:
                return self._store_blob(name, digest, body)
            return self._new_session(name)

    def _upload(self, method: str, name: str, upload_id: str, params: dict[str, str], headers: Any,
                body: bytes) -> _Answer:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or upload.name != name:
                raise _Problem(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {"uuid": upload_id})
            if method in ("GET", "HEAD"):
                return _Answer(204, {"Location": self._upload_location(name, upload_id, upload),
                                     "Range": _range(len(upload.data)), "Docker-Upload-UUID": upload_id})
            if method == "DELETE":
                del self._uploads[upload_id]
                return _Answer(204)
            if method == "PATCH":
                self._append(upload, headers.get("Content-Range"), body)
                upload.state += 1
                return _Answer(202, {"Location": self._upload_location(name, upload_id, upload),
                                     "Range": _range(len(upload.data)), "Docker-Upload-UUID": upload_id})
            if method == "PUT":
                digest = params.get("digest")
                if not digest:
                    raise _digest_problem("digest parameter missing")
                if body or headers.get("Content-Range"):
                    self._append(upload, headers.get("Content-Range"), body)
                answer = self._store_blob(name, digest, bytes(upload.data))
                del self._uploads[upload_id]
                return answer
        return _method_not_allowed()

    @staticmethod
    def _append(upload: _Upload, content_range: str | None, body: bytes) -> None:
        if content_range:
            match = _RANGE_RE.match(content_range.strip())
            if match is None:
                raise _Problem(400, "BLOB_UPLOAD_INVALID", f"malformed Content-Range {content_range!r}")
            start, end = int(match.group(1)), int(match.group(2))
            if start != len(upload.data) or end < start:
                raise _Problem(416, "BLOB_UPLOAD_INVALID", "chunk out of order",
                               {"expected_start": len(upload.data), "range": content_range},
                               {"Range": _range(len(upload.data))})
            if end - start + 1 != len(body):
                raise _Problem(400, "SIZE_INVALID", "Content-Range does not match the body length",
                               {"range": content_range, "length": len(body)})
        upload.data.extend(body)

    # ------------------------------------------------------------------ manifests

    def _manifest(self, method: str, name: str, reference: str, headers: Any, body: bytes) -> _Answer:
        by_digest = _is_digest(reference)
        if by_digest:
            _checked_digest(reference)
        elif not TAG_RE.fullmatch(reference):
            if method == "PUT":
                raise _Problem(400, "MANIFEST_INVALID", "invalid tag", {"tag": reference})
            raise _Problem(404, "MANIFEST_UNKNOWN", "manifest unknown", {"tag": reference})
        if method in ("GET", "HEAD"):
            return self._get_manifest(name, reference)
        if method == "PUT":
            return self._put_manifest(name, reference, headers.get("Content-Type"), body)
        if method == "DELETE":
            return self._delete_manifest(name, reference)
        return _method_not_allowed()

    def _get_manifest(self, name: str, reference: str) -> _Answer:
        with self._lock:
            repo = self._repos.get(name)
            stored: StoredManifest | None = None
            if repo is not None:
                digest = reference if _is_digest(reference) else repo.tags.get(reference)
                if digest is None and self.dash_tag_returns_subject:
                    bug = re.fullmatch(r"(sha256|sha512)-([a-f0-9]+)", reference)
                    digest = f"{bug.group(1)}:{bug.group(2)}" if bug else None
                stored = repo.manifests.get(digest) if digest else None
            if stored is None:
                raise _Problem(404, "MANIFEST_UNKNOWN", "manifest unknown", {"reference": reference})
            return _Answer(
                200,
                {"Content-Type": stored.media_type, "Docker-Content-Digest": stored.digest,
                 "ETag": f'"{stored.digest}"'},
                stored.body,
            )

    def _put_manifest(self, name: str, reference: str, content_type: str | None, body: bytes) -> _Answer:
        if len(body) > MAX_MANIFEST_SIZE:
            raise _Problem(413, "SIZE_INVALID", f"manifest larger than {MAX_MANIFEST_SIZE} bytes")
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Problem(400, "MANIFEST_INVALID", f"manifest is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise _Problem(400, "MANIFEST_INVALID", "manifest is not a JSON object")
        media_type = (content_type or "").split(";", 1)[0].strip() or doc.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise _Problem(400, "MANIFEST_INVALID", "no Content-Type and no mediaType in the manifest")
        if media_type not in SUPPORTED_MANIFEST_TYPES:
            raise _Problem(400, "MANIFEST_INVALID", f"unsupported manifest media type {media_type!r}")
        if "mediaType" in doc and doc["mediaType"] != media_type:
            raise _Problem(400, "MANIFEST_INVALID",
                           f"mediaType {doc['mediaType']!r} does not match Content-Type {media_type!r}")
        if doc.get("schemaVersion") != 2:
            raise _Problem(400, "MANIFEST_INVALID", "schemaVersion must be 2")

        if _is_digest(reference):
            alg, _ = parse_digest(reference)
            digest = compute_digest(body, alg)
            if digest != reference:
                raise _digest_problem("manifest digest does not match the reference",
                                      {"digest": reference, "actual": digest})
        else:
            digest = compute_digest(body)

        if media_type in IMAGE_MANIFEST_TYPES:
            config = doc.get("config")
            layers = doc.get("layers", [])
            if not isinstance(layers, list):
                raise _Problem(400, "MANIFEST_INVALID", "layers must be a list")
            referenced = [_descriptor(config, "config"), *(_descriptor(x, "layers[]") for x in layers)]
        else:
            children = doc.get("manifests")
            if not isinstance(children, list):
                raise _Problem(400, "MANIFEST_INVALID", "an index needs a manifests list")
            referenced = [_descriptor(x, "manifests[]") for x in children]
        subject: str | None = None
        if "subject" in doc:
            subject = _descriptor(doc["subject"], "subject")["digest"]

        with self._lock:
            repo = self._repos.get(name)
            if media_type in IMAGE_MANIFEST_TYPES and self.validate_blobs:
                for desc in referenced:
                    if repo is None or desc["digest"] not in repo.blobs:
                        raise _Problem(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry",
                                       {"digest": desc["digest"]})
            if media_type in INDEX_TYPES and self.validate_children:
                for desc in referenced:
                    if repo is None or desc["digest"] not in repo.manifests:
                        raise _Problem(400, "MANIFEST_UNKNOWN", "manifest unknown",
                                       {"digest": desc["digest"]})
            repo = self._repo(name)
            repo.named = True
            repo.manifests[digest] = StoredManifest(digest, media_type, bytes(body))
            if not _is_digest(reference):
                repo.tags[reference] = digest
            answer_headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
            if subject is not None:
                listed = repo.referrers.setdefault(subject, [])
                if self.drop_referrer_updates > 0:
                    self.drop_referrer_updates -= 1  # stored, but the list update is "lost"
                elif digest not in listed:
                    listed.append(digest)
                if self.referrers_api and self.oci_subject_header:
                    answer_headers["OCI-Subject"] = subject
        return _Answer(201, answer_headers)

    def _delete_manifest(self, name: str, reference: str) -> _Answer:
        with self._lock:
            repo = self._repos.get(name)
            if repo is None:
                raise _Problem(404, "MANIFEST_UNKNOWN", "manifest unknown", {"reference": reference})
            if not _is_digest(reference):
                if repo.tags.pop(reference, None) is None:
                    raise _Problem(404, "MANIFEST_UNKNOWN", "manifest unknown", {"tag": reference})
                return _Answer(202)
            if repo.manifests.pop(reference, None) is None:
                raise _Problem(404, "MANIFEST_UNKNOWN", "manifest unknown", {"digest": reference})
            for tag in [t for t, d in repo.tags.items() if d == reference]:
                del repo.tags[tag]
            for listed in repo.referrers.values():
                if reference in listed:
                    listed.remove(reference)
            return _Answer(202)

    # ------------------------------------------------------------------ listings

    def _tags_list(self, name: str, params: dict[str, str]) -> _Answer:
        limit = _int_param(params, "n")
        with self._lock:
            repo = self._repos.get(name)
            if repo is None or not repo.named:
                raise _Problem(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
            tags = sorted(repo.tags)
        last = params.get("last")
        if last is not None:
            tags = [t for t in tags if t > last]
        if self.page_size is not None:
            limit = self.page_size if limit is None else min(limit, self.page_size)
        headers = {"Content-Type": "application/json"}
        if limit is not None and len(tags) > limit:
            tags = tags[:limit]
            if tags:
                query = urlencode({"n": limit, "last": tags[-1]})
                headers["Link"] = f'</v2/{name}/tags/list?{query}>; rel="next"'
        return _Answer(200, headers, _json({"name": name, "tags": tags}))

    def _referrers(self, name: str, digest: str, params: dict[str, str]) -> _Answer:
        if self.html_referrers:
            return _Answer(200, {"Content-Type": "text/html; charset=utf-8"}, _HTML_PAGE)
        if not self.referrers_api:
            return _not_found_text()
        _checked_digest(digest)
        with self._lock:
            repo = self._repos.get(name)
            if repo is None or not repo.named:
                raise _Problem(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
            listed = [repo.manifests[d] for d in repo.referrers.get(digest, [])]
        headers = {"Content-Type": OCI_INDEX}
        artifact_type = params.get("artifactType")
        next_params: dict[str, str] = {}
        if artifact_type is not None and self.filter_header:
            listed = [m for m in listed if m._listed.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
            next_params["artifactType"] = artifact_type
        offset = _decode_cursor(params["_cursor"]) if "_cursor" in params else 0
        listed = listed[offset:]
        if self.page_size is not None and len(listed) > self.page_size:
            listed = listed[: self.page_size]
            next_params["_cursor"] = _encode_cursor(offset + self.page_size)
            headers["Link"] = f'</v2/{name}/referrers/{digest}?{urlencode(next_params, quote_via=quote)}>; rel="next"'
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [m._listed for m in listed]}
        return _Answer(200, headers, _json(index))


# ---------------------------------------------------------------------- helpers


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error(problem: _Problem) -> _Answer:
    entry: dict[str, Any] = {"code": problem.code, "message": problem.message}
    if problem.detail is not None:
        entry["detail"] = problem.detail
    headers = {"Content-Type": "application/json; charset=utf-8", **problem.headers}
    return _Answer(problem.status, headers, _json({"errors": [entry]}))


def _not_found_text() -> _Answer:
    return _Answer(404, {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
                   _NOT_FOUND_TEXT)


def _method_not_allowed() -> _Answer:
    return _error(_Problem(405, "UNSUPPORTED", "the operation is unsupported"))


def _range(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


def _descriptor(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Problem(400, "MANIFEST_INVALID", f"{where} is not a descriptor")
    digest, size, media_type = value.get("digest"), value.get("size"), value.get("mediaType")
    if not isinstance(media_type, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _Problem(400, "MANIFEST_INVALID", f"{where} needs mediaType and a non-negative size")
    try:
        parse_digest(digest if isinstance(digest, str) else "")
    except ValueError as exc:
        raise _Problem(400, "MANIFEST_INVALID", f"{where}: {exc}") from None
    return value


def _int_param(params: dict[str, str], key: str) -> int | None:
    if key not in params:
        return None
    try:
        value = int(params[key])
    except ValueError:
        value = -1
    if value < 0:
        raise _Problem(400, "UNSUPPORTED", f"{key} must be a non-negative integer", {key: params[key]})
    return value


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _decode_cursor(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("o"):
            raise ValueError(raw)
        return max(int(raw[1:]), 0)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _Problem(400, "UNSUPPORTED", "invalid continuation token", {"_cursor": token}) from None

