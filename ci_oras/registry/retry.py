"""Whether and when to try again: one policy, and the transport layer that applies it to every request.

:class:`RetryPolicy` is the only place that decides. The transport (:class:`RetryingTransport`, between the
client and the connections) applies it to single requests; the operations that must start over from their
source instead (a blob upload whose body was streamed, a download resumed with ``Range``, a manifest PUT
refused while a concurrent writer's blobs settle) ask the same policy how many times and how long to wait.

- **What is retried:** a connection error, an attempt past its time limits (``pacing.py``), and the answers
  429, 500, 502, 503 and 504; nothing else (a 4xx is an answer, not a hiccup).
- **Which requests:** those whose body can be sent again (none, or bytes). A streamed body is spent after one
  attempt; the operation above restarts it from its source.
- **When:** ``Retry-After`` when the registry sends one (capped at three times ``max_backoff``), else
  exponential backoff with *equal jitter*: half of ``min(max_backoff, backoff * 2**(attempt-1))`` fixed and
  half random, so parallel clients spread out yet none retries at once into a registry that is struggling.
- **How long:** at most ``retries`` retries, so one request ends after ``retries + 1`` attempts.

Bodies that are used whole (manifests, listings, tokens) and every answer that is not a success are read
inside the attempt, capped, so a body cut off is retried like a dropped connection and a hostile body cannot
exhaust memory.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import httpx

from ci_oras.registry.pacing import Budget, PacedStream, pace
from ci_oras.store.protocols import MAX_MANIFEST_BYTES

if TYPE_CHECKING:
    from ci_oras.registry.transport import TransportOptions

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Bodies read whole (manifests, listings, tokens) are capped like manifests: a hostile registry cannot exhaust
#: memory.
MAX_BODY_BYTES = MAX_MANIFEST_BYTES
#: Error bodies only feed a one-line message: the rest is dropped unread.
MAX_ERROR_BODY_BYTES = 64 * 1024
#: The request extension naming how a request is sent (:class:`Sending`).
SENDING = "ci_oras.sending"
#: The response extension holding the seconds its own attempt took, back-off before it left out.
ATTEMPT_SECONDS = "ci_oras.attempt_seconds"


@dataclass(frozen=True)
class RetryPolicy:
    """Whether and when to try again (module docstring); ``sleep`` and ``jitter`` are injectable clocks."""

    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 20.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    jitter: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    @classmethod
    def of(cls, options: TransportOptions) -> RetryPolicy:
        return cls(retries=options.retries, backoff=options.backoff, max_backoff=options.max_backoff)

    def again(self, failures: int) -> bool:
        """Whether an operation that failed ``failures`` times may try once more."""
        return failures <= self.retries

    def retries_answer(self, status: int) -> bool:
        return status in RETRY_STATUSES

    def delay(self, failures: int, retry_after: str | None = None) -> float:
        """Seconds to wait before the next attempt, after ``failures`` failed ones."""
        if retry_after:
            seconds = _parse_retry_after(retry_after)
            if seconds is not None:
                return min(seconds, self.max_backoff * 3)
        step = min(self.max_backoff, self.backoff * (2 ** (failures - 1)))
        return self.jitter(step / 2, step)

    def pause(self, failures: int, retry_after: str | None = None) -> None:
        self.sleep(self.delay(failures, retry_after))


def _parse_retry_after(value: str) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class Sending:
    """How one request is sent, as a request extension (``SENDING``): ``transfer`` marks a blob body (either
    direction: the minimum rate applies, not the request deadline); ``whole`` a response used whole, read and
    capped within the attempt (a streamed one checks its limits while the caller reads it)."""

    transfer: bool = False
    whole: bool = True


class RetryingTransport(httpx.BaseTransport):
    """The policy and the time limits of each attempt, around the transport that reaches the registries."""

    def __init__(self, inner: httpx.BaseTransport, options: TransportOptions, policy: RetryPolicy) -> None:
        self._inner = inner
        self._options = options
        self.policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sending = request.extensions.get(SENDING)
        if not isinstance(sending, Sending):
            sending = Sending()
        replayable = isinstance(request.stream, httpx.ByteStream)
        failures = 0
        while True:
            budget = Budget(self._options, transfer=sending.transfer, download=request.method == "GET")
            pace(request, budget)
            try:
                response = self._attempt(request, budget, sending)
            except httpx.TransportError:
                failures += 1
                if not (replayable and self.policy.again(failures)):
                    raise
                self.policy.pause(failures)
                continue
            if replayable and self.policy.retries_answer(response.status_code):
                failures += 1
                if self.policy.again(failures):
                    response.close()
                    self.policy.pause(failures, response.headers.get("Retry-After"))
                    continue
            return response

    def _attempt(self, request: httpx.Request, budget: Budget, sending: Sending) -> httpx.Response:
        try:
            response = self._inner.handle_request(request)
        except httpx.TimeoutException as exc:
            explained = budget.explain(exc)
            if explained is exc:
                raise
            raise explained from exc
        assert isinstance(response.stream, httpx.SyncByteStream)  # a sync transport's answer
        response.stream = PacedStream(response.stream, budget)
        failed = not 200 <= response.status_code < 300
        if sending.whole or failed:
            response.request = request
            response = read_capped(response, MAX_ERROR_BODY_BYTES if failed else MAX_BODY_BYTES, truncate=failed)
        response.extensions[ATTEMPT_SECONDS] = time.monotonic() - budget.started
        return response

    def close(self) -> None:
        self._inner.close()


def read_capped(response: httpx.Response, limit: int, *, truncate: bool) -> httpx.Response:
    """Read a body that is used whole, at most ``limit`` bytes (after decoding, so a compressed body cannot
    expand past it either). ``truncate`` keeps the first ``limit`` bytes (error bodies, shown in messages
    only); otherwise a longer body is refused. Returns a fully read response.

    A body that states its length, not encoded, within the limit is read by httpx itself (h11 holds the
    server to its ``Content-Length``): the common answer costs no copy and no second response.
    """
    length = response.headers.get("Content-Length")
    if (length is not None and length.isdigit() and int(length) <= limit
            and "Content-Encoding" not in response.headers):
        response.read()
        return response
    from ci_oras.errors import RegistryError

    parts: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > limit:
                if truncate:
                    parts.append(chunk[: len(chunk) - (total - limit)])
                    break
                raise RegistryError(
                    f"{response.request.method} {response.request.url.path} at {response.request.url.host} "
                    f"answered a body larger than {limit} bytes; refusing to read it",
                    hint="the registry is misbehaving or hostile; report it to its operator",
                )
            parts.append(chunk)
    finally:
        response.close()
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"]
    return httpx.Response(response.status_code, headers=headers, content=b"".join(parts),
                          request=response.request, extensions=dict(response.extensions))


def attempt_seconds(response: httpx.Response) -> float:
    """How long the attempt that answered took (the referrers watch sizes its window from registry round
    trips, not from our own back-off); 0.0 for an answer that did not pass ``RetryingTransport``."""
    seconds = response.extensions.get(ATTEMPT_SECONDS)
    return float(seconds) if isinstance(seconds, float) else 0.0
