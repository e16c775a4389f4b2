"""A minimal Docker token-auth server for integration tests.

Real registries (Docker Hub, GHCR, ACR, Harbor, GitLab, ...) use the Docker
token protocol: the registry answers ``401`` with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` and the client
fetches a JWT from the realm. Testing ci_oras only against Basic auth would
leave that whole dance -- scope handling, ``GET`` vs ``POST`` (OAuth2) token
requests, refresh/identity tokens -- unexercised, so this module implements
the issuer side closely enough for CNCF distribution to accept its tokens.

Protocol summary (what is implemented):

* ``GET /token?service=S&scope=T:NAME:ACTIONS[&scope=...][&account=A]`` with
  optional ``Authorization: Basic``. Right credentials grant what was asked;
  wrong credentials give ``401``; anonymous requests get whatever
  ``anonymous_actions`` allows (default: nothing -- a token with an empty
  ``access`` list, on which the registry answers ``401 insufficient_scope``).
  A ``scope`` parameter may hold several scopes separated by spaces (that is
  how a cross-repository mount challenge arrives) and may be repeated.
* ``POST /token`` (form body): ``grant_type=password`` (``username``,
  ``password``; a refresh token is returned when ``access_type=offline``) or
  ``grant_type=refresh_token`` (``refresh_token``, ``service``, ``scope``).
  A configured *identity token* is always a valid refresh token; this models
  ACR, where user ``00000000-0000-0000-0000-000000000000`` logs in with a
  refresh token as its password.

Every request is recorded (see :class:`TokenRequestRecord`) so tests can
assert how many token round trips a client made and with which scopes.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .certs import TokenSigningChain
from .server import BackgroundServer, HarnessHTTPServer, QuietHandler

__all__ = [
    "ACR_IDENTITY_USERNAME",
    "Authorizer",
    "ResourceAccess",
    "TokenIssuer",
    "TokenRequestRecord",
    "parse_scopes",
]

#: The fixed user name ACR uses when the "password" is really a refresh token.
ACR_IDENTITY_USERNAME = "00000000-0000-0000-0000-000000000000"

#: ``(subject or None for anonymous, resource type, resource name, requested
#: actions) -> granted actions``. Lets a test model per-repository permissions
#: (e.g. pull-only on one repository) without subclassing the issuer.
Authorizer = Callable[[str | None, str, str, tuple[str, ...]], Iterable[str]]


@dataclass(frozen=True)
class ResourceAccess:
    """One entry of a JWT ``access`` claim (or one parsed ``scope``)."""

    type: str
    name: str
    actions: tuple[str, ...]

    def to_claim(self) -> dict[str, Any]:
        """Return the JSON shape distribution expects inside ``access``."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


@dataclass(frozen=True)
class TokenRequestRecord:
    """What one request to the issuer looked like, for test assertions.

    Attributes:
        method: ``GET`` or ``POST``.
        path: request path without the query string.
        scopes: individual scopes asked for, in order, after splitting
            space-separated ``scope`` values (GET query or POST form).
        scope_params: the ``scope`` values exactly as sent (to check that a
            client forwarded a multi-scope challenge unchanged).
        has_authorization: whether an ``Authorization`` header was present.
        grant_type: POST ``grant_type`` (``password``/``refresh_token``);
            ``None`` for GET.
        username: user name from Basic auth or the POST form, if any.
        service: requested ``service``.
        account: requested ``account`` (GET) if any.
        client_id: POST ``client_id`` if any.
        status: HTTP status the issuer answered with.
        granted: access actually put into the token (empty if none issued).
    """

    method: str
    path: str
    scopes: tuple[str, ...]
    scope_params: tuple[str, ...]
    has_authorization: bool
    grant_type: str | None
    username: str | None
    service: str | None
    account: str | None
    client_id: str | None
    status: int
    granted: tuple[ResourceAccess, ...] = ()


def parse_scopes(values: Iterable[str]) -> list[ResourceAccess]:
    """Parse ``scope`` values into resource accesses, merging duplicates.

    Each value may contain several space-separated scopes. A scope is
    ``type[(class)]:name:actions``; the name itself may contain ``:`` (e.g.
    a registry host with a port in some clients), so the type is what comes
    before the first ``:`` and the actions what comes after the last one.
    Malformed scopes are ignored, like the reference token server does.
    """
    merged: dict[tuple[str, str], list[str]] = {}
    for value in values:
        for scope in value.split():
            first = scope.find(":")
            last = scope.rfind(":")
            if first <= 0 or last == first:
                continue
            rtype, name, actions = scope[:first], scope[first + 1 : last], scope[last + 1 :]
            if not name:
                continue
            bucket = merged.setdefault((rtype, name), [])
            for action in actions.split(","):
                if action and action not in bucket:
                    bucket.append(action)
    return [ResourceAccess(t, n, tuple(a)) for (t, n), a in merged.items()]


def _first(params: dict[str, list[str]], name: str) -> str | None:
    """First value of a parsed query/form parameter, or None if absent."""
    values = params.get(name)
    return values[0] if values else None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _UnauthorizedError(Exception):
    """Raised inside the handler to answer 401 (bad or missing credentials)."""


class _BadRequestError(Exception):
    """Raised inside the handler to answer 400 with an OAuth2 error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(eq=False)
class TokenIssuer(BackgroundServer["TokenRequestRecord"]):
    """Threaded token server on ``127.0.0.1`` plus the signing logic.

    Configuration attributes are plain fields and may be changed while the
    server runs (e.g. a test flipping ``anonymous_actions``); reads happen per
    request.

    Attributes:
        signing: the token-signing chain (see :mod:`.certs`).
        username / password: the one account that is granted what it asks.
        service: expected ``service`` (``aud``); used when a request omits it.
        issuer_name: the ``iss`` claim; must equal the registry's ``issuer``.
        identity_token: a refresh token accepted without a prior password
            grant, and as a Basic password for ``identity_username``.
        identity_username: the user name paired with ``identity_token``.
        anonymous_actions: actions an anonymous request may receive (``()``
            means an empty ``access`` list; ``("pull",)`` models a public
            registry).
        require_auth: answer anonymous requests with 401 instead of an
            empty token (some registries do this).
        authorizer: optional per-resource policy; overrides the two above.
        token_ttl: ``expires_in`` seconds for access tokens.
        include_root_in_x5c: also send the root certificate in ``x5c``
            (distribution accepts both; real issuers differ).
    """

    signing: TokenSigningChain
    username: str = "testuser"
    password: str = "testpassword"
    service: str = "ci-oras-test"
    issuer_name: str = "ci-oras-test-issuer"
    identity_token: str = field(default_factory=lambda: "identity-" + secrets.token_urlsafe(24))
    identity_username: str = ACR_IDENTITY_USERNAME
    anonymous_actions: Collection[str] = ()
    require_auth: bool = False
    authorizer: Authorizer | None = None
    token_ttl: int = 300
    include_root_in_x5c: bool = True

    _refresh_tokens: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # the state BackgroundServer.__init__ would set up (a dataclass does not call it)
    _server: HarnessHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _records: list[TokenRequestRecord] = field(default_factory=list, init=False, repr=False)
    _records_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    _name: ClassVar[str] = "token-issuer"  # (its handler, _TokenHandler, is set below that class)
    _poll_interval: ClassVar[float] = 0.1

    @property
    def url(self) -> str:
        """The realm URL, e.g. ``http://127.0.0.1:PORT/token``."""
        return f"http://127.0.0.1:{self.port}/token"

    realm = url

    def clear_requests(self) -> None:
        """Forget recorded requests (session-scoped registries are shared)."""
        self.clear()

    # ----------------------------------------------------------------- tokens

    def make_token(
        self,
        access: Sequence[ResourceAccess],
        *,
        subject: str = "",
        service: str | None = None,
        ttl: int | None = None,
        not_before: float | None = None,
    ) -> str:
        """Sign a JWT distribution accepts (public so tests can craft odd ones).

        ``aud`` is a single string: distribution 2.8 decodes it into a Go
        string and rejects a JSON list. The ES256 signature is JOSE's raw
        ``r || s`` (32 + 32 bytes), not the DER that ``cryptography`` emits.
        """
        now = int(time.time())
        lifetime = self.token_ttl if ttl is None else ttl
        x5c = [base64.b64encode(self.signing.signing_cert_der).decode("ascii")]
        if self.include_root_in_x5c:
            x5c.append(base64.b64encode(self.signing.root_cert_der).decode("ascii"))
        header = {"typ": "JWT", "alg": "ES256", "x5c": x5c}
        claims = {
            "iss": self.issuer_name,
            "sub": subject,
            "aud": service or self.service,
            "exp": now + lifetime,
            "nbf": int(not_before) if not_before is not None else now - 5,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [a.to_claim() for a in access],
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.signing.signing_key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def issue_refresh_token(self, subject: str) -> str:
        """Create a refresh token bound to ``subject`` (offline password grant)."""
        token = "refresh-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = subject
        return token

    def grant(self, subject: str | None, requested: Sequence[ResourceAccess]) -> list[ResourceAccess]:
        """Decide what goes into the ``access`` claim.

        Authenticated subjects get every requested action (including
        ``delete`` and ``*``); anonymous ones get only ``anonymous_actions``.
        Resources with no granted action are dropped, as real issuers do.
        """
        granted: list[ResourceAccess] = []
        for res in requested:
            if self.authorizer is not None:
                allowed = tuple(self.authorizer(subject, res.type, res.name, res.actions))
            elif subject is not None:
                allowed = res.actions
            else:
                anon = set(self.anonymous_actions)
                allowed = tuple(a for a in res.actions if a in anon)
            if allowed:
                granted.append(ResourceAccess(res.type, res.name, allowed))
        return granted

    # ------------------------------------------------------ credential checks

    def _check_password(self, username: str, password: str) -> str:
        """Return the subject for valid credentials, else raise 401."""
        if secrets.compare_digest(username, self.username) and secrets.compare_digest(
            password, self.password
        ):
            return self.username
        if secrets.compare_digest(username, self.identity_username) and secrets.compare_digest(
            password, self.identity_token
        ):
            return self.identity_username
        raise _UnauthorizedError("invalid username or password")

    def _check_refresh_token(self, token: str) -> str:
        if secrets.compare_digest(token, self.identity_token):
            return self.identity_username
        with self._lock:
            subject = self._refresh_tokens.get(token)
        if subject is None:
            raise _UnauthorizedError("invalid refresh token")
        return subject


@dataclass
class _Reply:
    """A response decided but not yet sent.

    Handlers build a reply first, record the request, and only then write the
    bytes: a client that has its response must always find the request in
    :attr:`TokenIssuer.requests` (recording after sending raced with tests
    that assert right after the call).
    """

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    granted: tuple[ResourceAccess, ...] = ()


def _unauthorized(message: str, *, challenge: bool) -> _Reply:
    headers = {"WWW-Authenticate": 'Basic realm="ci-oras-test-issuer"'} if challenge else {}
    return _Reply(
        HTTPStatus.UNAUTHORIZED, {"errors": [{"code": "UNAUTHORIZED", "message": message}]}, headers
    )


class _TokenHandler(QuietHandler):
    """Request handler; all policy lives on :class:`TokenIssuer`."""

    server_version = "ci-oras-test-token-issuer/1"

    @property
    def issuer(self) -> TokenIssuer:
        issuer: TokenIssuer = self.server.owner
        return issuer

    # -- helpers

    def _send(self, reply: _Reply) -> None:
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _basic_credentials(self) -> tuple[str, str] | None:
        """Decode ``Authorization: Basic``; None if absent, 401 if not Basic."""
        header = self.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise _UnauthorizedError("unsupported authorization scheme")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _UnauthorizedError("malformed basic credentials") from exc
        user, sep, password = decoded.partition(":")
        if not sep:
            raise _UnauthorizedError("malformed basic credentials")
        return user, password

    def _token_reply(
        self, subject: str | None, service: str, requested: list[ResourceAccess], refresh: str | None
    ) -> _Reply:
        issuer = self.issuer
        granted = issuer.grant(subject, requested)
        token = issuer.make_token(granted, subject=subject or "", service=service)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": issuer.token_ttl,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return _Reply(HTTPStatus.OK, body, granted=tuple(granted))

    def _finish(self, reply: _Reply, params: dict[str, list[str]], *, grant_type: str | None,
                username: str | None, account: str | None) -> None:
        """Record the request (``params``: its query or form), then answer it."""
        scope_params = tuple(params.get("scope", []))
        self.issuer._record(TokenRequestRecord(
            method=self.command,
            path=urlsplit(self.path).path,
            scopes=tuple(s for v in scope_params for s in v.split()),
            scope_params=scope_params,
            has_authorization="Authorization" in self.headers,
            grant_type=grant_type,
            username=username,
            service=_first(params, "service"),
            account=account,
            client_id=_first(params, "client_id"),
            status=int(reply.status),
            granted=reply.granted,
        ))
        self._send(reply)

    # -- verbs

    def do_GET(self) -> None:
        issuer = self.issuer
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        scope_params = tuple(query.get("scope", []))
        username: str | None = None
        reply: _Reply
        if url.path != "/token":
            reply = _Reply(HTTPStatus.NOT_FOUND, {"error": "not_found"})
        else:
            try:
                creds = self._basic_credentials()
                if creds is None:
                    if issuer.require_auth:
                        raise _UnauthorizedError("authentication required")
                    subject = None
                else:
                    username = creds[0]
                    subject = issuer._check_password(*creds)
                service = _first(query, "service") or issuer.service
                reply = self._token_reply(subject, service, parse_scopes(scope_params), None)
            except _UnauthorizedError as exc:
                reply = _unauthorized(str(exc), challenge=True)
        self._finish(reply, query, grant_type=None, username=username, account=_first(query, "account"))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"), keep_blank_values=True)
        scope_params = tuple(form.get("scope", []))
        grant_type = _first(form, "grant_type")
        username = _first(form, "username")
        reply: _Reply
        if url.path != "/token":
            reply = _Reply(HTTPStatus.NOT_FOUND, {"error": "not_found"})
        else:
            try:
                reply = self._post_grant(form, grant_type, username, scope_params)
            except _UnauthorizedError as exc:
                # OAuth2 says 400 invalid_grant; registries' token servers
                # (and docker's reference one) answer 401, which is what
                # clients have to cope with in practice.
                reply = _Reply(
                    HTTPStatus.UNAUTHORIZED, {"error": "invalid_grant", "error_description": str(exc)}
                )
            except _BadRequestError as exc:
                reply = _Reply(
                    HTTPStatus.BAD_REQUEST, {"error": exc.error, "error_description": exc.description}
                )
        self._finish(reply, form, grant_type=grant_type, username=username, account=None)

    def _post_grant(
        self,
        form: dict[str, list[str]],
        grant_type: str | None,
        username: str | None,
        scope_params: tuple[str, ...],
    ) -> _Reply:
        """The OAuth2 part: password and refresh_token grants."""
        issuer = self.issuer
        service = _first(form, "service") or issuer.service
        requested = parse_scopes(scope_params)
        if grant_type == "password":
            password = _first(form, "password")
            if username is None or password is None:
                raise _BadRequestError("invalid_request", "username and password are required")
            subject = issuer._check_password(username, password)
            offline = _first(form, "access_type") == "offline"
            refresh = issuer.issue_refresh_token(subject) if offline else None
        elif grant_type == "refresh_token":
            token = _first(form, "refresh_token")
            if not token:
                raise _BadRequestError("invalid_request", "refresh_token is required")
            subject = issuer._check_refresh_token(token)
            refresh = token
        else:
            raise _BadRequestError("unsupported_grant_type", f"unsupported grant_type {grant_type!r}")
        return self._token_reply(subject, service, requested, refresh)


TokenIssuer._handler = _TokenHandler
