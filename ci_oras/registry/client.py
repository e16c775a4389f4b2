"""One registry host: authenticated requests, retries, redirects without credentials, errors mapped.

Everything that turns an HTTP answer into a ``CiOrasError`` lives here, so the store above deals only in
successful responses and the user sees one line naming the problem and the fix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ci_oras.errors import AuthError, CiOrasError, IntegrityError, NotFoundError, RegistryError, UsageError
from ci_oras.oci.shape import load_json

if TYPE_CHECKING:
    import httpx

    from ci_oras.registry.auth import Authenticator
    from ci_oras.registry.transport import TransportOptions

_MAX_REDIRECTS = 5
#: Pages one listing may follow: 10 million tags at the 1000 per page we ask for, far beyond any real repository.
MAX_PAGES = 10_000
_INTEGRITY_CODES = frozenset({"DIGEST_INVALID", "SIZE_INVALID", "BLOB_UPLOAD_INVALID"})
_NOT_FOUND_CODES = frozenset({"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"})


def _read_error_body(response: httpx.Response) -> bytes:
    """At most ``MAX_ERROR_BODY_BYTES`` of an error body: it only feeds a one-line message.

    A body already read (the transport reads unstreamed answers, capped) is reused; a streamed one is read
    only that far, so a hostile error body of gigabytes is neither downloaded nor held in memory.
    """
    from ci_oras.registry.transport import MAX_ERROR_BODY_BYTES

    try:
        if response.is_stream_consumed:
            return response.content[:MAX_ERROR_BODY_BYTES]
        parts: list[bytes] = []
        total = 0
        for chunk in response.iter_bytes():
            parts.append(chunk)
            total += len(chunk)
            if total >= MAX_ERROR_BODY_BYTES:
                break
        return b"".join(parts)[:MAX_ERROR_BODY_BYTES]
    except Exception:  # a body that cannot be read (any more): the status alone must do
        return b""


def registry_error_detail(response: httpx.Response) -> tuple[str | None, str]:
    """The first ``{"errors":[{code, message}]}`` entry of a registry error body, as (code, text)."""
    return _error_detail(_read_error_body(response))


def _error_detail(raw: bytes) -> tuple[str | None, str]:
    """The body is only a better message: whatever its shape, the status code decides, so nothing here raises."""
    try:
        body = load_json(raw, RegistryError)
    except RegistryError:
        return None, ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, ""
    first = errors[0]
    code = first.get("code")
    code = code if isinstance(code, str) and code else None
    message = first.get("message")
    message = message if isinstance(message, str) else ""
    detail = first.get("detail")
    if isinstance(detail, str) and detail and detail not in message:
        message = f"{message} ({detail})" if message else detail
    return code, message


class RegistryClient:
    """Requests to one registry host, sharing the run's httpx client and authenticator."""

    def __init__(
        self,
        host: str,
        api_host: str,
        *,
        plain_http: bool,
        http: httpx.Client,
        auth: Authenticator,
        options: TransportOptions,
    ) -> None:
        self.host = host
        self.api_host = api_host
        self.base_url = f"{'http' if plain_http else 'https'}://{api_host}"
        self._base_slash = self.base_url + "/"
        self._own_origin: tuple[str, str, int] | None = None
        self.http = http
        self.auth = auth
        self.options = options
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
        retry: bool = True,
        transfer: bool = False,
    ) -> httpx.Response:
        """Send with auth; follow redirects (credentials only to our own host); raise mapped errors.

        ``content`` as bytes is sent again after an auth challenge; an iterator (a streamed upload) is spent by
        then, so a 401 to it is a retryable RegistryError and the caller restarts the upload from its source.
        Absolute URLs on another host get no credentials. Answers listed in ``ok`` are returned; anything
        else raises. ``transfer`` marks a blob body: bounded by the minimum rate, not the request deadline
        (see ``pacing.py``).
        """
        relative = not url.startswith(("http://", "https://"))
        target = self.url(url) if relative else url
        # A path is joined to our own base URL: same origin by construction, no URL to parse.
        if not relative and not self.same_origin(target):
            # An absolute URL the registry handed out (an upload Location on blob storage): followed, but
            # credentials belong to the registry host alone, so it gets none and its 401 is not answered.
            response = self._send(method, target, None, headers, params, content, stream, retry, describe,
                                  transfer)
            return self._follow_redirects(response, method, None, headers, stream, ok, describe, transfer)
        attempt = first = self.auth.prepare(self.host, scopes)
        passed = False
        try:
            for _ in range(3):
                response = self._send(method, target, attempt.header, headers, params, content, stream, retry,
                                      describe, transfer)
                if response.status_code != 401:
                    passed = attempt.probe
                    break
                challenge = response.headers.get("WWW-Authenticate")
                response.close()
                attempt = self.auth.refused(self.host, attempt, challenge, scopes)
                if not (content is None or isinstance(content, bytes)):
                    # A streamed body is spent: the new authorization is ready, and the caller restarts the
                    # upload from its source (e.g. a token that expired during a long upload).
                    raise RegistryError(f"{describe}: {self.host} refused the authorization mid-upload (401)",
                                        hint="retry; the registry's token expired while the body was sent",
                                        retryable=True)
            else:
                raise AuthError(f"authentication with {self.host} did not settle",
                                hint="check your credentials")
        finally:
            self.auth.release(self.host, first, passed=passed)
        return self._follow_redirects(response, method, attempt.header, headers, stream, ok, describe, transfer)

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

    def _follow_redirects(self, response: httpx.Response, method: str, authorization: str | None,
                          headers: Mapping[str, str] | None, stream: bool, ok: tuple[int, ...],
                          describe: str, transfer: bool = False) -> httpx.Response:
        """Follow GET/HEAD redirects; only hops back on the registry itself carry the authorization."""
        from ci_oras.registry.transport import send_with_retries

        hops = 0
        while response.status_code in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
            hops += 1
            location = response.headers.get("Location")
            response.close()
            if not location or hops > _MAX_REDIRECTS:
                raise RegistryError(
                    f"{describe}: too many or broken redirects from {self.host}",
                    hint="the registry's redirects loop or lack a Location; tell its operator")
            next_url = response.url.join(location)
            redirect_auth = authorization if self.same_origin(next_url) else None
            response = send_with_retries(
                self.http,
                lambda u=next_url, a=redirect_auth: self.http.build_request(  # type: ignore[misc]
                    method, u, headers=_with_auth(headers, a)),
                self.options,
                stream=stream,
                describe=describe,
                transfer=transfer,
            )
        if response.status_code in ok:
            return response
        raise self.error_for(response, describe)

    def _send(
        self,
        method: str,
        url: str,
        authorization: str | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        content: bytes | Iterator[bytes] | None,
        stream: bool,
        retry: bool,
        describe: str,
        transfer: bool = False,
    ) -> httpx.Response:
        from ci_oras.registry.transport import send_with_retries

        def build() -> httpx.Request:
            return self.http.build_request(
                method, url, headers=_with_auth(headers, authorization), params=params, content=content
            )

        return send_with_retries(self.http, build, self.options, stream=stream, retry=retry, describe=describe,
                                 transfer=transfer)

    def error_for(self, response: httpx.Response, describe: str) -> CiOrasError:
        """Translate a failed answer into the error tree (exit codes: docs/architecture.md, "Errors")."""
        status = response.status_code
        body = _read_error_body(response)
        code, message = _error_detail(body)
        response.close()
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
        if status == 400 and code is None and self.base_url.startswith("http://") and (
            response.request.method == "HEAD" or b"HTTP request to an HTTPS server" in body
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


def _with_auth(headers: Mapping[str, str] | None, authorization: str | None) -> dict[str, str]:
    merged = dict(headers or {})
    if authorization:
        merged["Authorization"] = authorization
    return merged
