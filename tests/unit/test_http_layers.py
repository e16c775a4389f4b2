"""The HTTP layers as one client composes them (``make_client``), driven through the transport seam.

A scripted ``httpx.MockTransport`` stands where the network is, so each rule is checked on the exact requests
sent: which answers and bodies are retried and after how long (the one ``RetryPolicy``, its clock injected),
which hops carry the registry's credentials (``RequestFlow``), and what a mapped error carries
(``RegistryAnswer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from ci_oras.errors import AuthError, CiOrasError, RegistryAnswer, RegistryError
from ci_oras.registry.auth import Authenticator
from ci_oras.registry.client import RegistryClient
from ci_oras.registry.credentials import Credential
from ci_oras.registry.retry import MAX_ERROR_BODY_BYTES, RetryPolicy
from ci_oras.registry.transport import TransportOptions, make_client

HOST = "registry.invalid"
BASIC = "Basic dXNlcjpzZWNyZXQ="  # user:secret


class Script:
    """Answers requests in order from a list of handlers; records a copy of every request as it was sent (a
    flow may send one request object again with other headers)."""

    def __init__(self, *answers: Callable[[httpx.Request], httpx.Response]) -> None:
        self._answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(httpx.Request(request.method, request.url, headers=request.headers.copy(),
                                       content=request.read()))
        return self._answers.pop(0)(request)


def answer(status: int, **kwargs: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(status, **kwargs)  # type: ignore[arg-type]


def _client(script: Script, waits: list[float], *, retries: int = 4,
            credential: Credential | None = None) -> RegistryClient:
    options = TransportOptions(retries=retries)
    policy = RetryPolicy(retries=retries, backoff=0.5, max_backoff=20.0, sleep=waits.append,
                         jitter=lambda low, high: high)
    http = make_client(options, httpx.MockTransport(script), policy)
    auth = Authenticator(http, options, lambda host: credential if host == HOST else None)
    return RegistryClient(HOST, HOST, plain_http=False, http=http, auth=auth, options=options, policy=policy)


def test_a_replayable_request_is_retried_on_the_policy_s_answers_and_waits() -> None:
    waits: list[float] = []
    script = Script(answer(503), answer(429, headers={"Retry-After": "2"}), answer(502), answer(200, content=b"{}"))
    response = _client(script, waits).request("GET", "/v2/", scopes=(), describe="ping")
    assert response.status_code == 200 and response.content == b"{}"
    assert len(script.seen) == 4
    assert waits == [0.5, 2.0, 2.0], "exponential backoff (jitter at its top here); Retry-After wins"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 412])
def test_an_answer_that_is_not_a_hiccup_is_not_retried(status: int) -> None:
    waits: list[float] = []
    script = Script(answer(status))
    with pytest.raises(CiOrasError):
        _client(script, waits).request("GET", "/v2/x/manifests/v1", scopes=(), describe="fetch")
    assert len(script.seen) == 1 and waits == []


def test_the_last_retry_s_answer_is_mapped_and_carries_its_data() -> None:
    waits: list[float] = []
    body = {"errors": [{"code": "UNAVAILABLE", "message": "down", "detail": "maintenance"}]}
    script = Script(*[answer(503, json=body)] * 3)
    with pytest.raises(RegistryError) as caught:
        _client(script, waits, retries=2).request("GET", "/v2/app/tags/list?n=1", scopes=(), describe="list tags")
    assert len(script.seen) == 3 and len(waits) == 2
    assert caught.value.retryable
    assert caught.value.answer == RegistryAnswer("GET", f"https://{HOST}/v2/app/tags/list", 503,
                                                 (("UNAVAILABLE", "down (maintenance)"),))
    assert "UNAVAILABLE down (maintenance)" in caught.value.message


def test_a_streamed_body_is_sent_once_and_its_failure_left_to_the_operation() -> None:
    waits: list[float] = []
    script = Script(answer(503))

    def body() -> Iterator[bytes]:
        yield b"part one"
        yield b"part two"

    with pytest.raises(RegistryError) as caught:
        _client(script, waits).request("PUT", "/v2/app/blobs/uploads/1?digest=sha256:x", scopes=(),
                                       content=body(), ok=(201,), describe="upload")
    assert len(script.seen) == 1 and waits == []
    assert script.seen[0].content == b"part onepart two"
    assert caught.value.retryable, "the operation above restarts the upload from its source"


def test_a_body_cut_off_mid_way_is_read_again_within_the_request() -> None:
    class CutOff(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'{"schemaVersion":'
            raise httpx.ReadError("connection reset")

    waits: list[float] = []
    script = Script(lambda _r: httpx.Response(200, stream=CutOff()), answer(200, content=b'{"schemaVersion":2}'))
    response = _client(script, waits).request("GET", "/v2/app/manifests/v1", scopes=(), describe="fetch")
    assert response.content == b'{"schemaVersion":2}' and len(script.seen) == 2 and waits == [0.5]


def test_bodies_are_capped_whole_bodies_refused_error_bodies_truncated() -> None:
    waits: list[float] = []
    huge = b"x" * (5 * 1024 * 1024)
    with pytest.raises(RegistryError, match="larger than"):
        _client(Script(answer(200, content=huge)), waits).request("GET", "/v2/", scopes=(), describe="ping")
    script = Script(answer(500, content=huge))
    with pytest.raises(RegistryError) as caught:
        _client(script, waits, retries=0).request("GET", "/v2/", scopes=(), describe="ping")
    assert caught.value.answer is not None and caught.value.answer.status == 500
    streamed = _client(Script(answer(200, content=huge)), waits).request("GET", "/v2/b", scopes=(), stream=True,
                                                                          describe="blob")
    assert sum(len(chunk) for chunk in streamed.iter_bytes()) == len(huge), "a streamed success is not capped"
    assert MAX_ERROR_BODY_BYTES < len(huge)


def test_a_challenge_is_answered_on_the_registry_and_never_elsewhere() -> None:
    waits: list[float] = []
    challenge = {"WWW-Authenticate": f'Basic realm="{HOST}"'}
    script = Script(
        answer(401, headers=challenge),
        answer(307, headers={"Location": "https://storage.invalid/blob?sig=1"}),  # another host: no credentials
        answer(200, content=b"blob bytes"),
        answer(307, headers={"Location": f"https://{HOST}/v2/app/blobs/other"}),  # back on the registry
        answer(200, content=b"same origin"),
        answer(307, headers={"Location": f"http://{HOST}/v2/app/blobs/plain"}),  # same host name, plain HTTP
        answer(401, headers=challenge),
    )
    client = _client(script, waits, credential=Credential(username="user", password="secret", source="test"))
    assert client.request("GET", "/v2/app/blobs/a", scopes=(), describe="fetch").content == b"blob bytes"
    assert client.request("GET", "/v2/app/blobs/b", scopes=(), describe="fetch").content == b"same origin"
    with pytest.raises(AuthError):
        client.request("GET", "/v2/app/blobs/c", scopes=(), describe="fetch")
    sent = [(str(r.url), r.headers.get("Authorization")) for r in script.seen]
    assert sent == [
        (f"https://{HOST}/v2/app/blobs/a", None),
        (f"https://{HOST}/v2/app/blobs/a", BASIC),
        ("https://storage.invalid/blob?sig=1", None),
        (f"https://{HOST}/v2/app/blobs/b", BASIC),
        (f"https://{HOST}/v2/app/blobs/other", BASIC),
        (f"https://{HOST}/v2/app/blobs/c", BASIC),
        (f"http://{HOST}/v2/app/blobs/plain", None),
    ]
    assert {r.headers["Host"] for r in script.seen[2:3]} == {"storage.invalid"}


def test_redirects_end_after_five_hops() -> None:
    waits: list[float] = []
    loop = answer(302, headers={"Location": "/v2/app/blobs/again"})
    script = Script(*[loop] * 6)
    with pytest.raises(RegistryError, match="too many or broken redirects"):
        _client(script, waits).request("GET", "/v2/app/blobs/a", scopes=(), describe="fetch")
    assert len(script.seen) == 6


def test_equal_jitter_stays_in_the_upper_half_of_each_step() -> None:
    policy = RetryPolicy(retries=4, backoff=0.5, max_backoff=4.0)
    for failures, step in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
    assert policy.delay(1, "7") == 7.0 and policy.delay(1, "999") == 12.0, "Retry-After, capped at 3x the ceiling"
    assert policy.delay(1, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.0, "a date in the past: at once"
    assert [policy.again(n) for n in range(1, 6)] == [True, True, True, True, False]


def test_the_client_keeps_no_cookies_and_names_itself() -> None:
    """A registry or a CDN in front of it may set a cookie; the run's client keeps none (registries
    authenticate with headers), so nothing one answer set travels with a later request."""
    waits: list[float] = []
    script = Script(answer(200, headers={"Set-Cookie": "session=abc; Path=/"}, content=b"{}"),
                    answer(200, content=b"{}"))
    client = _client(script, waits)
    client.request("GET", "/v2/", scopes=(), describe="ping")
    client.request("GET", "/v2/app/tags/list", scopes=(), describe="list tags")
    assert "Cookie" not in script.seen[1].headers
    assert all(seen.headers["User-Agent"].startswith("ci-oras/") for seen in script.seen)


def test_every_hop_before_the_last_is_closed_and_the_last_is_read() -> None:
    """The flow's hops (a challenge, then the answer) go through one ``send``: the 401 is closed, the answer
    handed back with its body read (nothing left on the connection)."""
    waits: list[float] = []
    closed: list[int] = []

    class Tracked(httpx.ByteStream):
        def __init__(self, body: bytes, status: int) -> None:
            super().__init__(body)
            self._status = status

        def close(self) -> None:
            closed.append(self._status)

    def challenge(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}, stream=Tracked(b"no", 401))

    script = Script(challenge, lambda _request: httpx.Response(200, stream=Tracked(b'{"ok":1}', 200)))
    response = _client(script, waits, credential=Credential("user", "secret", "test")).request(
        "GET", "/v2/", scopes=(), describe="ping")
    assert response.content == b'{"ok":1}'
    assert 401 in closed
    assert script.seen[1].headers["Authorization"] == BASIC
