"""Every hop of one request, as httpx's auth hook sees them: credentials, challenges, redirects.

httpx runs an ``httpx.Auth`` flow around each request and hands it every answer, so the one rule about
credentials is kept in one place: a request to the registry's own origin (scheme, host, port) carries the
authorization the :class:`~ci_oras.registry.auth.Authenticator` prepares, and a 401 is answered with what it
decides (at most three tries); a hop anywhere else (an upload ``Location`` on blob storage, a download
redirected to a CDN) carries none and its 401 is not answered. Redirects are followed here, not by httpx
(``follow_redirects=False``), because httpx keeps an ``Authorization`` header on a redirect from http to
https on the same host name, and a registry's credentials go to that registry's exact origin only.

A 401 to a request whose body was streamed cannot be answered by sending it again: the new authorization is
prepared, and a retryable error tells the operation above to restart the upload from its source (a token
that expired during a long upload).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import httpx

from ci_oras.errors import AuthError, RegistryError

if TYPE_CHECKING:
    from ci_oras.registry.auth import Attempt, Authenticator

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_CHALLENGE_TRIES = 3

Flow = Generator[httpx.Request, httpx.Response, httpx.Response]


class RequestFlow(httpx.Auth):
    """The hops of one request to registry ``host`` (whose origin ``same_origin`` recognises)."""

    def __init__(self, auth: Authenticator, host: str, scopes: tuple[str, ...], describe: str,
                 same_origin: Callable[[httpx.URL], bool]) -> None:
        self._auth = auth
        self._host = host
        self._scopes = scopes
        self._describe = describe
        self._same_origin = same_origin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._same_origin(request.url):
            response = yield from self._authorized(request)
        else:
            request.headers.pop("Authorization", None)
            response = yield request
        yield from self._redirected(request, response)

    def _authorized(self, request: httpx.Request) -> Flow:
        """Send with the prepared authorization; answer 401 challenges as the authenticator decides."""
        attempt = first = self._auth.prepare(self._host, self._scopes)
        passed = False
        try:
            for _ in range(_CHALLENGE_TRIES):
                _authorize(request, attempt)
                response = yield request
                if response.status_code != 401:
                    passed = attempt.probe
                    return response
                response.read()  # read already, capped (retry.py): the connection is free while we ask for a token
                attempt = self._auth.refused(self._host, attempt, response.headers.get("WWW-Authenticate"),
                                             self._scopes)
                if not isinstance(request.stream, httpx.ByteStream):
                    raise RegistryError(f"{self._describe}: {self._host} refused the authorization mid-upload (401)",
                                        hint="retry; the registry's token expired while the body was sent",
                                        retryable=True)
            raise AuthError(f"authentication with {self._host} did not settle", hint="check your credentials")
        finally:
            self._auth.release(self._host, first, passed=passed)

    def _redirected(self, request: httpx.Request, response: httpx.Response) -> Generator[httpx.Request,
                                                                                           httpx.Response, None]:
        """Follow GET/HEAD redirects; only a hop back on the registry's own origin carries the authorization."""
        hops = 0
        authorization = request.headers.get("Authorization")
        while response.status_code in _REDIRECTS and request.method in ("GET", "HEAD"):
            hops += 1
            location = response.headers.get("Location")
            if not location or hops > MAX_REDIRECTS:
                raise RegistryError(f"{self._describe}: too many or broken redirects from {self._host}",
                                    hint="the registry's redirects loop or lack a Location; tell its operator")
            response.read()
            url = response.url.join(location)
            headers = {name: value for name, value in request.headers.items()
                       if name.lower() not in ("host", "authorization")}
            if authorization and self._same_origin(url):
                headers["Authorization"] = authorization
            request = httpx.Request(request.method, url, headers=headers, extensions=request.extensions)
            response = yield request


def _authorize(request: httpx.Request, attempt: Attempt) -> None:
    if attempt.header:
        request.headers["Authorization"] = attempt.header
    else:
        request.headers.pop("Authorization", None)
