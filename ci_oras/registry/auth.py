"""Registry authentication: Basic, and the Bearer token challenge of the Docker/OCI token protocol.

One ``Authenticator`` serves every thread of a run, and promote or push run up to 64 requests at once, so the
design is about what concurrent requests may and may not conclude from each other:

- **First contact.** The first request to a host goes out anonymously; its 401 challenge tells us the scheme,
  realm and service. That is learned once per host, under the host's lock: while the first request is on its
  way, the other threads wait for its answer instead of each collecting the same 401, and a later 401 never
  overwrites what was learned.
- **Refused or not is decided by the request itself.** A 401 is judged from the ``Authorization`` the refused
  request carried: none (authenticate now), Basic (the credentials are wrong), or one specific bearer token.
  A token that was merely cached may have expired or lack a scope the challenge names, so it is renewed once;
  a token fetched in answer to a refusal and refused in turn means the account lacks the permission. Shared
  state another thread changed in the meantime (a challenge learned, a token renewed) is never read as "these
  credentials were refused" - that misreading failed parallel pushes into every authenticated registry.
- **Tokens.** Cached per host and merged scope set (a cross-repository mount needs one token for two
  repositories), renewed shortly before they expire, and fetched once per (host, scopes) however many threads
  need them: the first fetches, the rest wait for its answer. Credentials the registry or its token service
  refused are remembered for the host, so a wrong password fails every thread at once without asking again.

Credentials go only to the registry host itself and to the token realm it names (over HTTPS, unless the realm
is on loopback or the user chose plain HTTP); callers strip them from redirects and absolute URLs on other
hosts (see ``client.py``).
"""

from __future__ import annotations

import base64
import copy
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ci_oras.errors import AuthError, CiOrasError, RegistryError
from ci_oras.oci.shape import Fields, load_json
from ci_oras.registry.credentials import ACR_TOKEN_USERNAME, Credential

if TYPE_CHECKING:
    import httpx

    from ci_oras.registry.transport import HttpClient, TransportOptions

_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
#: Client id sent in OAuth2 token requests, as docker and oras send theirs.
CLIENT_ID = "ci-oras"
#: The token spec's default lifetime when the answer names none.
_DEFAULT_TOKEN_SECONDS = 60
_EXPIRY_MARGIN_SECONDS = 10
_LOGIN_HINT = "log in with 'ci-oras login', docker login, or pass --username and --password-stdin"


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


@dataclass(frozen=True)
class TokenAnswer:
    """What a token service answered (distribution's token spec): the token, its lifetime in seconds when
    stated (None: the spec's default applies), and a refresh token when one was issued."""

    token: str
    lifetime: float | None = None
    refresh_token: str | None = None


def parse_token_answer(host: str, raw: bytes) -> TokenAnswer:
    """The token service's JSON answer, every field type-checked; anything malformed is a registry error
    naming the host (exit 5: the registry's authentication failed, not the user's credentials)."""

    def invalid(problem: str) -> RegistryError:
        return RegistryError(f"token service for {host} returned an invalid answer: {problem}",
                             hint="the registry's token service failed; retry later")

    body = Fields.of(load_json(raw, invalid), invalid)
    # ``token`` and ``access_token`` are synonyms (OAuth2); the first one set wins, as in docker's client.
    token = body.optional_string("token") or body.optional_string("access_token")
    if not token:
        raise RegistryError(f"token service for {host} returned no token",
                            hint="the registry's token service failed; retry later")
    lifetime = body.raw("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or not 0 < lifetime < 10 ** 9:
        lifetime = None  # absent or nonsense: the spec's default, never a token that does not expire
    return TokenAnswer(token, float(lifetime) if lifetime is not None else None,
                       body.optional_string("refresh_token"))


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


@dataclass(frozen=True, eq=False)
class _Token:
    """One bearer token; compared by identity, because "is the cached token still the one that was refused"
    is the question a refusal asks."""

    value: str
    expires_at: float
    #: The merged scopes it was asked for.
    scopes: tuple[str, ...] = ()
    #: Fetched in answer to a registry refusal: refused in turn (while still valid), it means "not allowed".
    renewal: bool = False


@dataclass(frozen=True)
class Attempt:
    """The authorization one request is about to carry, and how it came about.

    The answer to a 401 depends on exactly this, not on what other threads did to the shared state since.
    """

    header: str | None = None
    token: _Token | None = None
    #: Obtained in answer to a 401 of this very request: refused again, there is nothing left to try.
    answers_refusal: bool = False
    #: The first request to the host: its answer is what the threads waiting in ``prepare`` learn from.
    probe: bool = False
    sent_at: float = field(default_factory=time.monotonic)


class _Flight:
    """A token fetch in progress; threads needing the same token wait for it instead of asking again."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: _Token | None = None
        self.error: CiOrasError | None = None


@dataclass
class _HostState:
    cond: threading.Condition = field(default_factory=threading.Condition)
    challenge: Challenge | None = None
    #: A first request went through without any challenge: the host lets anonymous requests in (so far).
    open: bool = False
    probing: bool = False
    tokens: dict[tuple[str, ...], _Token] = field(default_factory=dict)
    flights: dict[tuple[str, ...], _Flight] = field(default_factory=dict)
    #: Scopes a challenge widened (e.g. a DELETE that also needs ``pull``): ask for the wider set up front.
    widened: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    refresh_token: str | None = None
    credential: Credential | None = None
    credential_known: bool = False
    #: The credentials (or their absence) were refused: every later request fails at once with this error.
    refused: AuthError | None = None


class Authenticator:
    """Adds the right Authorization header per request and fetches tokens; thread-safe, shared per run."""

    def __init__(
        self,
        client: HttpClient,
        options: TransportOptions,
        credential_for: Callable[[str], Credential | None],
        unused_credentials: Callable[[str], str | None] | None = None,
    ) -> None:
        self._client = client
        self._options = options
        self._credential_for = credential_for
        #: Why credentials the user set were not used for a host (shown when that host asks for some).
        self._unused_credentials = unused_credentials
        self._hosts: dict[str, _HostState] = {}
        self._lock = threading.Lock()

    def credential(self, host: str) -> Credential | None:
        """Looked up once per host, under that host's lock: a credential helper that takes its time (an
        unlock prompt, a network round trip) holds up requests to its own host only."""
        state = self._state(host)
        with state.cond:
            if not state.credential_known:
                state.credential = self._credential_for(host)
                state.credential_known = True
            return state.credential

    def _state(self, host: str) -> _HostState:
        with self._lock:
            return self._hosts.setdefault(host, _HostState())

    def prepare(self, host: str, scopes: tuple[str, ...]) -> Attempt:
        """The authorization for a new request: none on first contact, else Basic or a (cached) token.

        While another thread's first request to ``host`` is on its way this waits for its answer, so a burst
        of parallel first requests costs one anonymous round trip, not one each.
        """
        state = self._state(host)
        with state.cond:
            while state.probing and state.challenge is None and not state.open and state.refused is None:
                state.cond.wait()
            if state.refused is not None:
                raise _again(state.refused)
            challenge = state.challenge
            if challenge is None:
                if state.open:
                    return Attempt()
                state.probing = True
                return Attempt(probe=True)
            key = merge_scopes(scopes)
            key = state.widened.get(key, key)
        if challenge.scheme == "basic":
            return Attempt(header=self._basic_header(host))
        if challenge.scheme == "bearer":
            token = self._token(host, state, challenge, key)
            return Attempt(header=f"Bearer {token.value}", token=token)
        return Attempt()

    def release(self, host: str, attempt: Attempt, *, passed: bool) -> None:
        """A first request is over, however it ended: ``passed`` (answered without a challenge) means the
        host lets anonymous requests in; otherwise a thread still waiting may probe again."""
        if attempt.probe:
            state = self._state(host)
            with state.cond:
                state.probing = False
                state.open = state.open or passed
                state.cond.notify_all()

    def refused(self, host: str, attempt: Attempt, header: str | None, scopes: tuple[str, ...]) -> Attempt:
        """After a 401 to ``attempt``: the authorization to retry with, or the error explaining why not."""
        if not header:
            raise self._denied(host, 401)
        challenge = parse_challenge(header)
        state = self._state(host)
        with state.cond:
            if state.challenge is None:
                state.challenge = challenge  # learned once per run; later 401s only add their scope
                state.cond.notify_all()
            learned = state.challenge
        if learned.scheme != challenge.scheme:
            learned = challenge
        if challenge.scheme == "basic":
            sent_basic = attempt.header is not None and attempt.header.lower().startswith("basic ")
            basic = None if sent_basic or attempt.answers_refusal else self._basic_header(host)
            if basic is None:
                raise self._remember_refusal(state, self._denied(host, 401))
            return Attempt(header=basic, answers_refusal=True)
        if challenge.scheme == "bearer":
            sent = attempt.token
            # RFC 6750: "invalid_token" is a token the registry no longer (or never) accepts, typically an
            # expired one; anything else (distribution says "insufficient_scope") is about the grant.
            invalid = challenge.params.get("error") == "invalid_token"
            if attempt.answers_refusal and invalid:
                raise AuthError(
                    f"{host} refused the token its own token service had just issued (401 invalid_token)",
                    hint="the registry and its token service disagree; check their configuration and clocks")
            base = merge_scopes(scopes)
            key = merge_scopes([*scopes, challenge.params.get("scope", "")])
            if attempt.answers_refusal or (sent is not None and sent.renewal and not invalid
                                           and attempt.sent_at < sent.expires_at
                                           and merge_scopes([*sent.scopes, *key]) == sent.scopes):
                # A token fetched in answer to a refusal, already asking for everything this challenge names,
                # was refused for its grant: the account may not.
                raise self._denied(host, 401, insufficient=True)
            if key != base:
                with state.cond:
                    state.widened[base] = key
            token = self._token(host, state, learned, key, refused=sent, renewal=True)
            return Attempt(header=f"Bearer {token.value}", token=token, answers_refusal=True)
        raise AuthError(f"unsupported authentication scheme {challenge.scheme!r} at {host}",
                        hint="ci-oras supports Basic and Bearer token authentication")

    def _token(self, host: str, state: _HostState, challenge: Challenge, key: tuple[str, ...], *,
               refused: _Token | None = None, renewal: bool = False) -> _Token:
        """A valid token for ``key``: the cached one, the one being fetched by another thread, or a new one.

        ``refused`` is the token a registry just refused: it is dropped if it is still the cached one, and a
        token another thread fetched meanwhile is used instead of fetching yet another. ``renewal`` marks a
        new token as fetched in answer to a refusal.
        """
        while True:
            with state.cond:
                if state.refused is not None:
                    raise _again(state.refused)
                if refused is not None and state.tokens.get(key) is refused:
                    del state.tokens[key]
                cached = state.tokens.get(key)
                if cached is not None and cached is not refused and cached.expires_at > time.monotonic():
                    return cached
                flight = state.flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = state.flights[key] = _Flight()
            if not leader:
                flight.done.wait()
                if flight.error is not None:
                    raise _again(flight.error)
                if flight.token is not None:
                    return flight.token
                continue  # the fetching thread was interrupted: try again
            try:
                flight.token = self._fetch_token(host, state, challenge, key, renewal=renewal)
            except CiOrasError as exc:
                flight.error = exc
                if isinstance(exc, AuthError):
                    self._remember_refusal(state, exc)
                raise
            finally:
                with state.cond:
                    del state.flights[key]
                    if flight.token is not None:
                        state.tokens[key] = flight.token
                flight.done.set()
            return flight.token

    def _remember_refusal(self, state: _HostState, error: AuthError) -> AuthError:
        with state.cond:
            if state.refused is None:
                state.refused = error
            state.cond.notify_all()
        return error

    def _basic_header(self, host: str) -> str | None:
        credential = self.credential(host)
        if credential is None or credential.username is None:
            return None
        secret = credential.password if credential.password is not None else credential.identity_token or ""
        raw = f"{credential.username}:{secret}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _fetch_token(self, host: str, state: _HostState, challenge: Challenge, scopes: tuple[str, ...], *,
                     renewal: bool) -> _Token:
        realm = challenge.realm
        if not realm:
            raise AuthError(f"registry {host} sent a Bearer challenge without a realm",
                            hint="the registry's authentication is misconfigured; tell its operator")
        service = challenge.params.get("service")
        credential = self.credential(host)
        with state.cond:
            refresh = state.refresh_token or _identity_token(credential)
        if refresh or (credential is not None and credential.password is not None):
            self._refuse_cleartext_realm(host, realm)
        response = self._request_token(realm, service, scopes, credential, refresh)
        if response.status_code in (401, 403):
            response.close()
            raise self._denied(host, response.status_code, from_realm=True)
        if response.status_code >= 400:
            response.close()
            raise RegistryError(
                f"token service for {host} answered {response.status_code}",
                hint="the registry's token service failed; retry later",
            )
        try:
            answer = parse_token_answer(host, response.read())
        finally:
            response.close()
        lifetime = answer.lifetime or _DEFAULT_TOKEN_SECONDS
        # Renew a little early so a token never expires between our check and the registry's; short-lived
        # tokens keep three quarters of their life.
        margin = min(_EXPIRY_MARGIN_SECONDS, float(lifetime) / 4)
        if answer.refresh_token is not None and refresh:
            with state.cond:
                state.refresh_token = answer.refresh_token
        return _Token(answer.token, time.monotonic() + float(lifetime) - margin, scopes, renewal)

    def _refuse_cleartext_realm(self, host: str, realm: str) -> None:
        """A secret goes to a plain-HTTP token service only on loopback or when the user chose plain HTTP.

        The realm is whatever URL the registry's challenge names; an ``http://`` realm in front of an HTTPS
        registry (a misconfiguration, or a proxy rewriting the challenge) would otherwise carry the password
        or refresh token across the network in cleartext, although the registry itself is reached over TLS.
        """
        import httpx

        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL as exc:
            raise RegistryError(f"registry {host} named an invalid token service URL ({exc})",
                                hint="the registry's authentication is misconfigured; tell its operator") from exc
        if url.scheme == "https" or self._options.plain_http or url.host in ("localhost", "127.0.0.1", "::1"):
            return
        raise AuthError(
            f"registry {host} names a token service over plain HTTP ({url.scheme}://{url.host}); "
            "refusing to send credentials there in cleartext",
            hint="the registry's token realm should be https; pass --plain-http only if this registry and its "
                 "token service are meant to be reached over plain HTTP")

    def _request_token(
        self,
        realm: str,
        service: str | None,
        scopes: tuple[str, ...],
        credential: Credential | None,
        refresh: str | None,
    ) -> httpx.Response:
        """Ask the token service; the run's retry policy applies as to any request (``retry.py``)."""
        import httpx

        from ci_oras.registry.transport import describe_transport, transport_hint

        if refresh:
            # OAuth2 refresh-token grant: what docker does with an identity token (ACR's 0000… user).
            form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": CLIENT_ID}
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            request = self._client.build_request("POST", realm, data=form)
        else:
            params: list[tuple[str, str | int | float | bool | None]] = []
            if service:
                params.append(("service", service))
            params.extend(("scope", scope) for scope in scopes)
            headers: dict[str, str] = {}
            if credential is not None and credential.username is not None and credential.password is not None:
                params.append(("account", credential.username))
                raw = f"{credential.username}:{credential.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
            request = self._client.build_request("GET", httpx.URL(realm).copy_merge_params(params), headers=headers)
        try:
            return self._client.send(request)
        except httpx.TransportError as exc:
            raise RegistryError(f"token request to {request.url.host}:{request.url.port or ''} failed: "
                                f"{describe_transport(exc)}", hint=transport_hint(exc), retryable=True) from exc

    def _denied(self, host: str, status: int, *, from_realm: bool = False, insufficient: bool = False) -> AuthError:
        credential = self.credential(host)
        if credential is None:
            why = self._unused_credentials(host) if self._unused_credentials is not None else None
            return AuthError(
                f"authentication required for {host} ({status})",
                hint=why or _LOGIN_HINT,
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


def _again(error: CiOrasError) -> CiOrasError:
    """A copy of an error another thread raised first: each thread raises its own, with its own traceback."""
    return copy.copy(error)


def _identity_token(credential: Credential | None) -> str | None:
    """The refresh token to exchange, if the credential is one (docker's identitytoken, ACR's 0000… user)."""
    if credential is None:
        return None
    if credential.identity_token:
        return credential.identity_token
    if credential.username == ACR_TOKEN_USERNAME and credential.password:
        return credential.password
    return None
