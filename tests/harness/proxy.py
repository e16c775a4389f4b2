"""A recording, fault-injecting reverse proxy in front of a real registry.

Transport behaviour (retries, ``Retry-After``, dropped connections, redirects
to blob storage on another host) cannot be provoked on a healthy local
``docker-registry``, so tests put :class:`RegistryProxy` between the client
and the registry. It forwards every request faithfully -- method, path and
query, headers, a streamed body -- and streams the answer back, rewriting
``Location`` headers that point at the upstream so a client keeps talking to
the proxy. Every request is recorded (with the proxy's answer) so tests can
assert what the client really sent.

Hooks:

* :meth:`RegistryProxy.inject` answers the next ``times`` matching requests
  with a status of our choosing instead of forwarding them (503, 429 with
  ``Retry-After``, or a forged 200 with a tampered body).
* :meth:`RegistryProxy.drop_connection` closes the socket without answering.
* :meth:`RegistryProxy.slow_down` forwards, but trickles the answer's body
  (``step`` bytes every ``interval`` seconds) or stalls it after some bytes,
  keeping the connection open until the client gives up.
* :meth:`RegistryProxy.redirect_blobs_to` answers blob GETs with a ``307``
  to a :class:`BlobStorageServer`, which is addressed as ``localhost`` (not
  ``127.0.0.1``) so it is a *different host* for the client: credentials
  must not follow the redirect there, which the storage server records.

Both servers bind 127.0.0.1 on port 0, serve from daemon threads, and are
usable as context managers. Like the rest of the harness this module does
not import ``ci_oras``.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .server import CHUNK, BackgroundServer, QuietHandler, RecordedRequest

__all__ = [
    "BlobStorageServer",
    "ProxyRecord",
    "RegistryProxy",
    "Rule",
    "StorageRecord",
    "matching",
]

#: Headers that describe one connection, not the message; never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_BLOB_PATH_RE = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$")


@dataclass
class ProxyRecord(RecordedRequest):
    """One request the proxy received, and what it answered (its ``response_headers`` after ``Location``
    rewriting). ``action`` is ``forwarded``, ``injected``, ``dropped``, ``redirected`` or ``failed`` (the
    upstream could not be reached).
    """

    action: str = "forwarded"


Predicate = Callable[[ProxyRecord], bool]


def matching(method: str | None = None, path: str | None = None, query: str | None = None) -> Predicate:
    """A predicate for :meth:`RegistryProxy.inject` and friends.

    ``method`` is compared case-insensitively; ``path`` and ``query`` are
    regular expressions searched (``re.search``) in the request's path and
    raw query string.
    """
    path_re = re.compile(path) if path is not None else None
    query_re = re.compile(query) if query is not None else None

    def predicate(record: ProxyRecord) -> bool:
        if method is not None and record.method.upper() != method.upper():
            return False
        if path_re is not None and not path_re.search(record.path):
            return False
        return not (query_re is not None and not query_re.search(record.query))

    return predicate


@dataclass
class Rule:
    """An active hook; ``remaining`` counts down, ``hits`` lists what it caught."""

    kind: str  # "inject", "drop" or "slow"
    predicate: Predicate
    remaining: int
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hits: list[ProxyRecord] = field(default_factory=list)
    #: "slow": body bytes per write, seconds between writes, body bytes after which nothing more is sent.
    step: int = CHUNK
    interval: float = 0.0
    stall_after: int | None = None
    #: "slow": request body bytes after which the proxy stops reading the upload (the client's writes block).
    stall_upload_after: int | None = None


class _BaseHandler(QuietHandler):
    # Headers and body go out in separate writes; with Nagle's algorithm the second waits for the client's
    # delayed ACK (~40 ms per answer), which would swamp any latency a test sets or measures.
    disable_nagle_algorithm = True

    # -- request bodies

    def _has_body(self) -> bool:
        return "Transfer-Encoding" in self.headers or "Content-Length" in self.headers

    def _discard_body(self) -> None:
        for _ in self._request_body():
            pass

    # -- answers

    def _send_simple(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """Answer with ``body``; a ``Content-Length`` in ``headers`` other than ``len(body)`` is sent as is
        and the connection closed after the body (a response cut short mid-body)."""
        self.send_response_only(status)
        length = str(len(body))
        for name, value in headers.items():
            if name.lower() == "content-length":
                length = value
            elif name.lower() not in ("transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        if length != str(len(body)):
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _relay(self, response: http.client.HTTPResponse, headers: list[tuple[str, str]],
               pacing: Rule | None = None) -> None:
        """Write ``response``'s status, ``headers`` and streamed body to the client (paced by a "slow" rule)."""
        self.send_response_only(response.status, response.reason)
        for name, value in headers:
            self.send_header(name, value)
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        length = response.getheader("Content-Length")
        if no_body or length is not None:
            self.end_headers()
            if no_body:
                return
            for data in self._body_pieces(response, pacing):
                self.wfile.write(data)
            return
        # Upstream chunked (or close-delimited): re-chunk for our client.
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for data in self._body_pieces(response, pacing):
            self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def _body_pieces(self, response: http.client.HTTPResponse, pacing: Rule | None) -> Iterator[bytes]:
        """The upstream body; with ``pacing``, ``step`` bytes every ``interval`` s, or a stall after
        ``stall_after`` bytes: then nothing more until the client closes the connection (at most 60 s)."""
        sent = 0
        while True:
            size = CHUNK if pacing is None else pacing.step
            if pacing is not None and pacing.stall_after is not None:
                size = min(size, pacing.stall_after - sent)
                if size <= 0:
                    self._hold_until_client_leaves()
                    raise ConnectionError("stalled on purpose")
            data = response.read1(size)
            if not data:
                return
            yield data
            sent += len(data)
            if pacing is not None and pacing.interval:
                time.sleep(pacing.interval)  # the trickle is the fault being injected

    def _hold_until_client_leaves(self) -> None:
        self.close_connection = True
        self.connection.settimeout(60)
        try:
            while self.connection.recv(CHUNK):
                pass
        except OSError:
            pass


def _upstream_connection(base: str, ssl_context: ssl.SSLContext | None, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=timeout,
            context=ssl_context or ssl.create_default_context(),
        )
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)


def _upstream_base(upstream: Any) -> str:
    url = upstream if isinstance(upstream, str) else upstream.url  # a RunningRegistry
    return str(url).rstrip("/")


def _upstream_context(upstream: Any, ssl_context: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """The TLS context to reach ``upstream`` with: the one given, else a TLS registry handle's own (it trusts
    the handle's private CA), else None (the system's trust)."""
    if ssl_context is None and not isinstance(upstream, str) and getattr(upstream, "ca_file", None):
        context: ssl.SSLContext = upstream.ssl_context()
        return context
    return ssl_context


# ---------------------------------------------------------------------------------------------------------
# The proxy


class _ProxyHandler(_BaseHandler):
    def _handle(self) -> None:
        proxy: RegistryProxy = self.server.owner
        split = urlsplit(self.path)
        record = ProxyRecord(
            method=self.command,
            path=split.path,
            query=split.query,
            headers=tuple(self.headers.items()),
            time=time.monotonic(),
        )
        proxy._record(record)
        if proxy.latency:
            time.sleep(proxy.latency)  # a round trip to a registry that is not on this machine
        try:
            rule = proxy._take_rule(record)
            if rule is not None and rule.kind == "drop":
                self._discard_body()
                record.action = "dropped"
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if rule is not None and rule.kind == "slow":
                record.action = "slowed"
                self._forward(proxy, record, pacing=rule)
                return
            if rule is not None:
                self._discard_body()
                record.action = "injected"
                record.status = rule.status
                record.response_headers = tuple(rule.headers.items())
                self._send_simple(rule.status, rule.headers, rule.body)
                return
            self._forward(proxy, record)
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _forward(self, proxy: RegistryProxy, record: ProxyRecord, pacing: Rule | None = None) -> None:
        upstream = urlsplit(proxy.upstream)
        redirect = None
        storage = proxy.storage
        if storage is not None and self.command == "GET":
            redirect = _BLOB_PATH_RE.match(record.path)

        conn = _upstream_connection(proxy.upstream, proxy.ssl_context, proxy.timeout)
        try:
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", upstream.netloc)
                for name, value in self.headers.items():
                    if name.lower() in HOP_BY_HOP or name.lower() == "host":
                        continue
                    conn.putheader(name, value)
                chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
                if chunked:
                    conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                read = 0
                for data in self._request_body():
                    conn.send(b"%X\r\n%s\r\n" % (len(data), data) if chunked else data)
                    read += len(data)
                    if pacing is not None and pacing.stall_upload_after is not None and (
                            read >= pacing.stall_upload_after):
                        # Read no more: the client's socket buffers fill and its writes block. Reading to
                        # notice it leave would un-block it, so wait for the proxy to stop instead.
                        self.close_connection = True
                        proxy._stopping.wait(60)
                        raise ConnectionError("upload stalled on purpose")
                if chunked:
                    conn.send(b"0\r\n\r\n")
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                record.action = "failed"
                record.status = 502
                self.close_connection = True
                self._send_simple(502, {"Content-Type": "text/plain"}, f"proxy: upstream failed: {exc}".encode())
                return

            if redirect is not None and response.status == 200 and storage is not None:
                # The registry authorised the request and has the blob: send the client to storage instead.
                response.close()
                location = (
                    f"{storage.url}/blob/{redirect.group('digest')}?name={quote(redirect.group('name'), safe='')}"
                )
                record.action = "redirected"
                record.status = 307
                record.response_headers = (("Location", location),)
                self._send_simple(307, {"Location": location}, b"")
                return

            headers = []
            for name, value in response.getheaders():
                if name.lower() in HOP_BY_HOP:
                    continue
                if name.lower() == "location":
                    value = proxy._rewrite_location(value)
                headers.append((name, value))
            record.status = response.status
            record.response_headers = tuple(headers)
            if response.getheader("Content-Length") is None and "chunked" not in (
                response.getheader("Transfer-Encoding") or ""
            ).lower() and self.command != "HEAD" and response.status not in (204, 304):
                self.close_connection = True  # close-delimited upstream body; we re-chunk it anyway
            self._relay(response, headers, pacing)
        finally:
            conn.close()


class RegistryProxy(BackgroundServer["ProxyRecord"]):
    """Reverse proxy on ``127.0.0.1:PORT`` in front of ``upstream``.

    ``upstream`` is a URL (``http://127.0.0.1:5000``) or anything with a
    ``.url`` (a :class:`~.registry.RunningRegistry`). Starts on construction
    unless ``start=False``.
    """

    _handler = _ProxyHandler
    _name = "registry-proxy"

    def __init__(
        self,
        upstream: Any,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 60.0,
        start: bool = True,
    ) -> None:
        super().__init__()
        self.upstream = _upstream_base(upstream)
        self.ssl_context = _upstream_context(upstream, ssl_context)
        self.timeout = timeout
        #: Seconds added to every request, to model a remote registry (benchmarks of concurrency).
        self.latency = 0.0
        self.storage: BlobStorageServer | None = None
        #: Set when the proxy stops: releases handlers holding a stalled upload.
        self._stopping = threading.Event()
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        if start:
            self.start()

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    # -- records

    def requests_matching(self, predicate: Predicate | None = None, **kwargs: str) -> list[ProxyRecord]:
        """Recorded requests for which ``predicate`` (or ``matching(**kwargs)``) holds."""
        test = predicate or matching(**kwargs)
        return [record for record in self.requests if test(record)]

    # -- hooks

    def inject(
        self,
        predicate: Predicate | None,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Rule:
        """Answer the next ``times`` requests matching ``predicate`` (None: any) with ``status``."""
        rule = Rule("inject", predicate or (lambda _r: True), times, status, dict(headers or {}), body)
        with self._lock:
            self._rules.append(rule)
        return rule

    def drop_connection(self, predicate: Predicate | None, times: int = 1) -> Rule:
        """Close the connection without answering the next ``times`` matching requests."""
        rule = Rule("drop", predicate or (lambda _r: True), times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def slow_down(self, predicate: Predicate | None, times: int = 1, *, step: int = 1, interval: float = 0.0,
                  stall_after: int | None = None, stall_upload_after: int | None = None) -> Rule:
        """Forward the next ``times`` matching requests but pace the answer's body: ``step`` bytes every
        ``interval`` seconds, and with ``stall_after`` nothing more after that many bytes (a silent stall).
        ``stall_upload_after`` stops reading the request body after that many bytes instead."""
        rule = Rule("slow", predicate or (lambda _r: True), times, step=step, interval=interval,
                    stall_after=stall_after, stall_upload_after=stall_upload_after)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def redirect_blobs_to(self, storage: BlobStorageServer | None) -> None:
        """Answer authorised ``GET /v2/<name>/blobs/<digest>`` with a 307 to ``storage`` (None: stop).

        The GET is first forwarded upstream: only when the registry answers
        200 (credentials accepted, blob present) is the answer replaced by the
        redirect, as a registry with redirecting blob storage behaves; a 401
        challenge or a 404 passes through unchanged.
        """
        self.storage = storage

    def _take_rule(self, record: ProxyRecord) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.predicate(record):
                    rule.remaining -= 1
                    rule.hits.append(record)
                    return rule
        return None

    def _rewrite_location(self, value: str) -> str:
        if value.startswith(self.upstream + "/") or value == self.upstream:
            return self.url + value[len(self.upstream):]
        return value


class _AnsweringHandler(_ProxyHandler):
    """Stamps when the registry's answer came back, before the client can have it."""

    def _relay(self, response: http.client.HTTPResponse, headers: list[tuple[str, str]],
               pacing: Rule | None = None) -> None:
        self.server.owner.answered_now()
        super()._relay(response, headers, pacing)

    def _send_simple(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.server.owner.answered_now()
        super()._send_simple(status, headers, body)


class AnsweringProxy(RegistryProxy):
    """A :class:`RegistryProxy` that also records, per request, when its answer was ready (before the client
    can have it): a request's span at the proxy, to count requests in flight."""

    _handler = _AnsweringHandler

    def __init__(self, upstream: Any) -> None:
        self._current = threading.local()
        self.answers: dict[int, float] = {}
        super().__init__(upstream)

    def _record(self, record: ProxyRecord) -> None:
        super()._record(record)
        self._current.record = record  # one handler thread per connection: the request being handled

    def answered_now(self) -> None:
        record = self._current.record
        with self._lock:
            self.answers.setdefault(id(record), time.monotonic())

    def answered(self, record: ProxyRecord) -> float:
        return self.answers[id(record)]


# ---------------------------------------------------------------------------------------------------------
# Blob storage on "another host"


@dataclass
class StorageRecord(RecordedRequest):
    """One request the storage server received."""


class _StorageHandler(_BaseHandler):
    def _handle(self) -> None:
        storage: BlobStorageServer = self.server.owner
        split = urlsplit(self.path)
        record = StorageRecord(self.command, split.path, split.query, tuple(self.headers.items()), time.monotonic())
        storage._record(record)
        try:
            self._discard_body()
            match = re.fullmatch(r"/blob/(?P<digest>[^/]+)", split.path)
            name = (parse_qs(split.query).get("name") or [""])[0]
            if self.command not in ("GET", "HEAD") or match is None or not name:
                record.status = 404
                self._send_simple(404, {"Content-Type": "text/plain"}, b"not found\n")
                return
            storage._serve(self, record, name, match.group("digest"))
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class BlobStorageServer(BackgroundServer["StorageRecord"]):
    """Serves ``/blob/<digest>?name=<repo>`` by fetching the blob from the registry itself.

    Listens on 127.0.0.1 but is addressed as ``http://localhost:PORT`` (its
    :attr:`url`), a different host name from the registry's ``127.0.0.1``.
    It never looks at the client's ``Authorization``; it authenticates to the
    upstream with its *own* ``username``/``password`` (Basic, or a Bearer
    token fetched from the challenge's realm). Every request's headers are
    recorded in :attr:`requests`.
    """

    _handler = _StorageHandler
    _name = "blob-storage"

    def __init__(
        self,
        upstream: Any,
        *,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        start: bool = True,
    ) -> None:
        super().__init__()
        self.upstream = _upstream_base(upstream)
        self.username = username
        self.password = password
        self.ssl_context = _upstream_context(upstream, ssl_context)
        if start:
            self.start()

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def _serve(self, handler: _StorageHandler, record: StorageRecord, name: str, digest: str) -> None:
        import httpx

        auth = (self.username, self.password) if self.username is not None and self.password is not None else None
        verify: Any = self.ssl_context if self.ssl_context is not None else True
        url = f"{self.upstream}/v2/{name}/blobs/{digest}"
        with httpx.Client(verify=verify, timeout=30.0, follow_redirects=True) as client:
            headers: dict[str, str] = {}
            response = client.send(client.build_request(handler.command, url, headers=headers),
                                   auth=auth, stream=True)
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.status_code == 401 and challenge.lower().startswith("bearer"):
                response.close()
                token = self._bearer_token(client, challenge, auth)
                headers["Authorization"] = f"Bearer {token}"
                response = client.send(client.build_request(handler.command, url, headers=headers), stream=True)
            try:
                status = response.status_code
                record.status = status
                if status != 200:
                    body = response.read() if handler.command != "HEAD" else b""
                    handler._send_simple(status, {"Content-Type": response.headers.get("Content-Type", "")}, body)
                    return
                handler.send_response_only(200)
                handler.send_header("Content-Type", "application/octet-stream")
                handler.send_header("Docker-Content-Digest", digest)
                length = response.headers.get("Content-Length")
                if length is not None:
                    handler.send_header("Content-Length", length)
                    handler.end_headers()
                    if handler.command != "HEAD":
                        for data in response.iter_raw(CHUNK):
                            handler.wfile.write(data)
                    return
                handler.send_header("Transfer-Encoding", "chunked")
                handler.end_headers()
                if handler.command != "HEAD":
                    for data in response.iter_raw(CHUNK):
                        handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                handler.wfile.write(b"0\r\n\r\n")
            finally:
                response.close()

    @staticmethod
    def _bearer_token(client: Any, challenge: str, auth: tuple[str, str] | None) -> str:
        params = {m.group(1).lower(): m.group(2) for m in re.finditer(r'([A-Za-z0-9_-]+)="([^"]*)"', challenge)}
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        answer = client.get(params["realm"], params=query, auth=auth)
        answer.raise_for_status()
        body = answer.json()
        return str(body.get("token") or body.get("access_token"))
