"""Registry authentication: Basic, and the Bearer token challenge of the Docker/OCI token protocol.

The first request to a host goes out anonymously; its 401 challenge tells us the scheme, realm and service,
which are remembered per host. From then on a request whose scopes already have a cached token carries it at
once, and a request needing new scopes fetches its token *before* sending, so each operation costs one round
trip plus, at most, one token request.

Credentials go only to the registry host itself and to the token realm it names; callers strip them from
redirects to other hosts (see ``client.py``).
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ci_oras.errors import AuthError, RegistryError
from ci_oras.registry.credentials import ACR_TOKEN_USERNAME, Credential

if TYPE_CHECKING:
    import httpx

    from ci_oras.registry.transport import TransportOptions

_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
#: Client id sent in OAuth2 token requests, as docker and oras send theirs.
CLIENT_ID = "ci-oras"
#: The token spec's default lifetime when the answer names none.
_DEFAULT_TOKEN_SECONDS = 60
_EXPIRY_MARGIN_SECONDS = 10


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer" (lowercase)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenge(header: str) -> Challenge:
    """Parse one ``WWW-Authenticate`` value such as ``Bearer realm="…",service="…",scope="…"``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        match.group(1).lower(): (match.group(2) if match.group(2) is not None else match.group(3)).replace('\\"', '"')
        for match in _PARAM_RE.finditer(rest)
    }
    return Challenge(scheme=scheme.lower(), params=params)


def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Combine scopes per resource (``repository:a:pull`` + ``repository:a:push`` → ``repository:a:pull,push``)."""
    actions: dict[str, list[str]] = {}
    for scope in scopes:
        for single in scope.split():
            resource, _, acts = single.rpartition(":")
            if not resource:
                continue
            merged = actions.setdefault(resource, [])
            for act in acts.split(","):
                if act and act not in merged:
                    merged.append(act)
    return tuple(f"{resource}:{','.join(sorted(acts))}" for resource, acts in sorted(actions.items()))


@dataclass
class _Token:
    value: str
    expires_at: float
    #: Fetched in answer to a 401 for this very request; a refusal then means "not allowed", not "expired".
    fresh: bool = False


@dataclass
class _HostState:
    challenge: Challenge | None = None
    tokens: dict[tuple[str, ...], _Token] = field(default_factory=dict)
    refresh_token: str | None = None


class Authenticator:
    """Adds the right Authorization header per request and fetches tokens; thread-safe, shared per run."""

    def __init__(
        self,
        client: httpx.Client,
        options: TransportOptions,
        credential_for: Callable[[str], Credential | None],
    ) -> None:
        self._client = client
        self._options = options
        self._credential_for = credential_for
        self._credentials: dict[str, Credential | None] = {}
        self._hosts: dict[str, _HostState] = {}
        self._lock = threading.Lock()

    def credential(self, host: str) -> Credential | None:
        with self._lock:
            if host not in self._credentials:
                self._credentials[host] = self._credential_for(host)
            return self._credentials[host]

    def _state(self, host: str) -> _HostState:
        with self._lock:
            return self._hosts.setdefault(host, _HostState())

    def authorization(self, host: str, scopes: tuple[str, ...]) -> str | None:
        """The header to send up front, or None to go anonymous (first contact, or an anonymous host)."""
        state = self._state(host)
        challenge = state.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic_header(host)
        if challenge.scheme == "bearer":
            key = merge_scopes(scopes)
            with self._lock:
                cached = state.tokens.get(key)
                if cached is not None:
                    cached.fresh = False
            if cached is not None and cached.expires_at > time.monotonic():
                return f"Bearer {cached.value}"
            return f"Bearer {self._fetch_token(host, challenge, key)}"
        return None

    def handle_challenge(self, host: str, header: str | None, scopes: tuple[str, ...]) -> str:
        """After a 401: learn the challenge, get fresh authorization, or explain why we cannot."""
        if not header:
            raise self._denied(host, 401)
        challenge = parse_challenge(header)
        state = self._state(host)
        previous = state.challenge
        with self._lock:
            state.challenge = challenge
        if challenge.scheme == "basic":
            if previous is not None and previous.scheme == "basic":
                raise self._denied(host, 401)  # we already sent Basic credentials and they were refused
            header_value = self._basic_header(host)
            if header_value is None:
                raise self._denied(host, 401)
            return header_value
        if challenge.scheme == "bearer":
            requested = list(scopes)
            if challenge.params.get("scope"):
                requested.append(challenge.params["scope"])
            key = merge_scopes(requested)
            with self._lock:
                refused = state.tokens.pop(key, None)
                fresh = refused is not None and refused.fresh
            if fresh:
                # A token fetched for exactly these scopes during this request was refused: the grant
                # lacks the permission. A cached token that was refused may merely have expired: renew it.
                raise self._denied(host, 401, insufficient=True)
            return f"Bearer {self._fetch_token(host, challenge, key, fresh=True)}"
        raise AuthError(f"unsupported authentication scheme {challenge.scheme!r} at {host}")

    def _basic_header(self, host: str) -> str | None:
        credential = self.credential(host)
        if credential is None or credential.username is None:
            return None
        secret = credential.password if credential.password is not None else credential.identity_token or ""
        raw = f"{credential.username}:{secret}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _fetch_token(self, host: str, challenge: Challenge, scopes: tuple[str, ...], *, fresh: bool = False) -> str:
        realm = challenge.realm
        if not realm:
            raise AuthError(f"registry {host} sent a Bearer challenge without a realm")
        service = challenge.params.get("service")
        credential = self.credential(host)
        state = self._state(host)
        refresh = state.refresh_token or _identity_token(credential)
        response = self._request_token(realm, service, scopes, credential, refresh)
        if response.status_code in (401, 403):
            raise self._denied(host, response.status_code, from_realm=True)
        if response.status_code >= 400:
            raise RegistryError(
                f"token service for {host} answered {response.status_code}",
                hint="the registry's token service failed; retry later",
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise RegistryError(f"token service for {host} returned an invalid answer") from exc
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service for {host} returned no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_SECONDS
        # Renew a little early so a token never expires between our check and the registry's.
        expires_at = time.monotonic() + max(float(lifetime) - _EXPIRY_MARGIN_SECONDS, 0.0)
        with self._lock:
            state.tokens[scopes] = _Token(token, expires_at, fresh)
            if isinstance(body.get("refresh_token"), str) and refresh:
                state.refresh_token = body["refresh_token"]
        return token

    def _request_token(
        self,
        realm: str,
        service: str | None,
        scopes: tuple[str, ...],
        credential: Credential | None,
        refresh: str | None,
    ) -> httpx.Response:
        import httpx

        from ci_oras.registry.transport import send_with_retries

        if refresh:
            # OAuth2 refresh-token grant: what docker does with an identity token (ACR's 0000… user).
            form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": CLIENT_ID}
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            return send_with_retries(
                self._client,
                lambda: self._client.build_request("POST", realm, data=form),
                self._options,
                describe="token request",
            )
        params: list[tuple[str, str | int | float | bool | None]] = []
        if service:
            params.append(("service", service))
        params.extend(("scope", scope) for scope in scopes)
        headers: dict[str, str] = {}
        if credential is not None and credential.username is not None and credential.password is not None:
            params.append(("account", credential.username))
            raw = f"{credential.username}:{credential.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        url = httpx.URL(realm).copy_merge_params(params)
        return send_with_retries(
            self._client,
            lambda: self._client.build_request("GET", url, headers=headers),
            self._options,
            describe="token request",
        )

    def _denied(self, host: str, status: int, *, from_realm: bool = False, insufficient: bool = False) -> AuthError:
        credential = self.credential(host)
        if credential is None:
            return AuthError(
                f"authentication required for {host} ({status})",
                hint="log in with 'ci-oras login', docker login, or pass --username and --password-stdin",
            )
        if insufficient:
            return AuthError(
                f"access denied by {host} ({status}) for the credentials from {credential.source}",
                hint="the account lacks permission for this repository or action",
            )
        where = " by the token service" if from_realm else ""
        return AuthError(
            f"authentication failed for {host} ({status}){where} with credentials from {credential.source}",
            hint="check --username/--password-stdin or docker login",
        )


def _identity_token(credential: Credential | None) -> str | None:
    """The refresh token to exchange, if the credential is one (docker's identitytoken, ACR's 0000… user)."""
    if credential is None:
        return None
    if credential.identity_token:
        return credential.identity_token
    if credential.username == ACR_TOKEN_USERNAME and credential.password:
        return credential.password
    return None
