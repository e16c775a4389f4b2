"""One registry host: send a request through the run's layers, then map what failed.

The layers are httpx's own parts, composed in ``transport.make_client``: the request's hops (credentials,
challenges, redirects) in an ``httpx.Auth`` flow (``flow.py``), the retry policy and time limits in a
transport (``retry.py``), the connections below it (``connections.py``). What is left here is "send, then map
the error": everything that turns an HTTP answer into a ``CiOrasError`` lives here, so the store above deals
only in successful responses, each error carries the answer it came from (``RegistryAnswer``), and the user
sees one line naming the problem and the fix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ci_oras.errors import (
    AuthError,
    CiOrasError,
    IntegrityError,
    NotFoundError,
    RegistryAnswer,
    RegistryError,
    UsageError,
)
from ci_oras.oci.shape import load_json

if TYPE_CHECKING:
    import httpx

    from ci_oras.registry.auth import Authenticator
    from ci_oras.registry.retry import RetryPolicy
    from ci_oras.registry.transport import HttpClient, TransportOptions

#: Error entries kept from one answer: the first names the problem; a hostile body may list thousands.
_MAX_ERROR_ENTRIES = 8
#: Pages one listing may follow: 10 million tags at the 1000 per page we ask for, far beyond any real repository.
MAX_PAGES = 10_000
_INTEGRITY_CODES = frozenset({"DIGEST_INVALID", "SIZE_INVALID", "BLOB_UPLOAD_INVALID"})
_NOT_FOUND_CODES = frozenset({"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"})


def registry_answer(response: httpx.Response) -> RegistryAnswer:
    """The answer as data: method, URL (no credentials, no query), status and the body's error entries.

    The body of an answer that is not a success was read, capped, within its attempt (``retry.py``), so this
    reads nothing from the network.
    """
    url = response.request.url
    shown = f"{url.scheme}://{url.host}{'' if url.port is None else f':{url.port}'}{url.path}"
    return RegistryAnswer(response.request.method, shown, response.status_code, _error_entries(_content(response)))


def _content(response: httpx.Response) -> bytes:
    """The body already read; a streamed success (never an error: retry.py reads those) has none here."""
    import httpx

    try:
        return response.content
    except httpx.ResponseNotRead:
        return b""


def _error_entries(raw: bytes) -> tuple[tuple[str, str], ...]:
    """The ``{"errors":[{code, message, detail}]}`` entries of an error body as (code, text). The body is only a
    better message: whatever its shape, the status code decides, so nothing here raises."""
    try:
        body = load_json(raw, RegistryError)
    except RegistryError:
        return ()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ()
    entries = []
    for entry in errors[:_MAX_ERROR_ENTRIES]:
        if not isinstance(entry, dict):
            continue
        code = entry.get("code")
        message = entry.get("message")
        message = message if isinstance(message, str) else ""
        detail = entry.get("detail")
        if isinstance(detail, str) and detail and detail not in message:
            message = f"{message} ({detail})" if message else detail
        entries.append((code if isinstance(code, str) else "", message))
    return tuple(entries)


class RegistryClient:
    """Requests to one registry host, sharing the run's httpx client and authenticator."""

    def __init__(
        self,
        host: str,
        api_host: str,
        *,
        plain_http: bool,
        http: HttpClient,
        auth: Authenticator,
        options: TransportOptions,
        policy: RetryPolicy,
    ) -> None:
        self.host = host
        self.api_host = api_host
        self.base_url = f"{'http' if plain_http else 'https'}://{api_host}"
        self._base_slash = self.base_url + "/"
        self._own_origin: tuple[str, str, int] | None = None
        self.http = http
        self.auth = auth
        self.options = options
        #: Whether and when an operation that starts over from its source may try again (``retry.py``).
        self.policy = policy
        #: Whether each repository serves the referrers API, learned once per run (docs/architecture.md, "Referrers").
        self.referrers_api: dict[str, bool] = {}
        self._probe_locks: dict[str, threading.Lock] = {}
        self._probe_locks_guard = threading.Lock()

    def probe_lock(self, repository: str) -> threading.Lock:
        """One lock per repository, so concurrent listings share a single referrers-API probe."""
        with self._probe_locks_guard:
            return self._probe_locks.setdefault(repository, threading.Lock())

    def _origin(self) -> tuple[str, str, int]:
        """Our own (scheme, host, port), parsed once: every absolute URL handed out is compared with it."""
        if self._own_origin is None:
            import httpx

            self._own_origin = _origin(httpx.URL(self.base_url))
        return self._own_origin

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
        describe: str,
        transfer: bool = False,
    ) -> httpx.Response:
        """Send; return the answer when its status is in ``ok``, else raise the mapped error.

        ``url`` is a path on this registry or an absolute URL it handed out (an upload ``Location``). ``content``
        as bytes can be sent again (after a challenge, on a retry); an iterator (a streamed upload) is sent
        once, and the operation restarts it from its source. ``stream`` leaves a success's body to the caller
        (time limits checked as it is read); otherwise it is read whole, capped. ``transfer`` marks a blob body:
        bounded by the minimum rate, not the request deadline (``pacing.py``).
        """
        import httpx

        from ci_oras.registry.flow import RequestFlow
        from ci_oras.registry.retry import SENDING, Sending
        from ci_oras.registry.transport import describe_transport, transport_hint

        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        request = self.http.build_request(method, target, headers=headers, params=params, content=content,
                                          extensions={SENDING: Sending(transfer=transfer, whole=not stream)})
        flow = RequestFlow(self.auth, self.host, scopes, describe, self.same_origin)
        try:
            response = self.http.send(request, auth=flow, stream=stream)
        except httpx.TransportError as exc:
            where = exc.request.url if _has_request(exc) else request.url
            raise RegistryError(f"{describe} to {where.host}:{where.port or ''} failed: {describe_transport(exc)}",
                                hint=transport_hint(exc), retryable=True) from exc
        if response.status_code in ok:
            return response
        raise self.error_for(response, describe)

    def same_origin(self, url: str | httpx.URL) -> bool:
        """Whether ``url`` is on this registry (scheme, host and port): the only place credentials may go."""
        import httpx

        if isinstance(url, str) and url.startswith(self._base_slash):
            # Exactly our scheme://host:port followed by a path: nothing after it can change the authority.
            return True
        try:
            return _origin(httpx.URL(url)) == self._origin()
        except httpx.InvalidURL as exc:
            raise RegistryError(f"{self.host} handed out an invalid URL ({exc})",
                                hint="the registry or a proxy in between is misconfigured") from exc

    def next_page(self, response: httpx.Response, describe: str, followed: set[str]) -> str | None:
        """The ``Link: rel="next"`` URL of a paginated answer; one on another host is refused, not followed.

        Following it would send this registry's credentials to that host and mix its answer into ours.
        ``followed`` holds the pages this listing already followed: a link back to one of them is a loop, and
        more than ``MAX_PAGES`` pages end the listing with an error too, so no registry keeps us paging forever.
        """
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        import httpx

        try:
            url = response.url.join(link)
        except httpx.InvalidURL as exc:
            raise RegistryError(f"{describe}: {self.host} sent an invalid next-page link ({exc})",
                                hint="the registry or a proxy in between is misconfigured") from exc
        if not self.same_origin(url):
            raise RegistryError(
                f"{describe}: {self.host} sent a next-page link to another host "
                f"({url.host}:{_origin(url)[2]})",
                hint="refusing to follow it; the registry or a proxy in between is misconfigured or hostile",
            )
        if str(url) in followed or len(followed) >= MAX_PAGES:
            reason = ("links back to a page it already served" if str(url) in followed
                      else f"has more than {MAX_PAGES} pages")
            raise RegistryError(f"{describe}: the listing {self.host} sent {reason}",
                                hint="the registry or a proxy in between is misconfigured or hostile; tell its operator")
        followed.add(str(url))
        return str(url)

    def error_for(self, response: httpx.Response, describe: str) -> CiOrasError:
        """Translate a failed answer into the error tree (exit codes: docs/architecture.md, "Errors"); the
        error carries the answer (``RegistryAnswer``)."""
        answer = registry_answer(response)
        response.close()
        error = self._mapped(answer, describe, response)
        error.answer = answer
        return error

    def _mapped(self, answer: RegistryAnswer, describe: str, response: httpx.Response) -> CiOrasError:
        status = answer.status
        code, message = answer.errors[0] if answer.errors else ("", "")
        said = f": {code} {message}".rstrip() if code or message else ""
        where = f"{describe} at {self.host} ({status}{said})"
        if status == 404 or code in _NOT_FOUND_CODES:
            return NotFoundError(f"not found: {where}", hint="check the repository, tag or digest")
        if status == 403 or code == "DENIED":
            credential = self.auth.credential(self.host)
            source = f" for the credentials from {credential.source}" if credential else ""
            return AuthError(f"access denied: {where}{source}",
                             hint="the account lacks permission for this repository or action")
        if status == 401:
            return AuthError(f"authentication failed: {where}", hint="check --username/--password-stdin or docker login")
        if code in _INTEGRITY_CODES:
            return IntegrityError(f"registry rejected the content: {where}",
                                  hint="the uploaded bytes do not match their digest or size")
        if status == 429:
            return RegistryError(f"rate limited: {where}", hint="retry later or authenticate for a higher limit",
                                 retryable=True)
        if status == 405:
            return RegistryError(f"operation not supported: {where}",
                                 hint="the registry does not allow this operation (deletes may be disabled)")
        if status == 400 and not code and self.base_url.startswith("http://") and (
            answer.method == "HEAD" or b"HTTP request to an HTTPS server" in _content(response)
        ):
            return RegistryError(f"{self.host} answered 400 to plain HTTP; it probably speaks HTTPS",
                                 hint="pass --no-plain-http (and --ca-file if its CA is private)")
        if status in (400, 413, 415):
            return UsageError(f"registry refused the request: {where}", hint="check the content you are pushing")
        return RegistryError(f"registry error: {where}", hint="retry later; the registry or network failed",
                             retryable=status >= 500)


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in, so ``https://h`` and ``https://h:443`` match."""
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    return url.scheme, url.host.lower(), port


def _has_request(exc: Exception) -> bool:
    """Whether httpx attached the request to ``exc`` (it does for errors raised while sending)."""
    try:
        _ = exc.request  # type: ignore[attr-defined]
    except RuntimeError:
        return False
    return True
