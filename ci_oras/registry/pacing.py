"""Time limits of one HTTP attempt: a deadline for small requests, a minimum rate for every body.

httpx bounds each socket operation (one read, one write), never a whole request, so a registry trickling a
byte every few seconds keeps a request alive for ever and a silent stall lasts a full read timeout per
attempt. A :class:`Budget` closes both gaps:

- requests without a blob body (manifests, listings, tokens, HEADs) must finish within ``--request-timeout``;
- every body (blob downloads and uploads too) must move at least ``--min-rate`` bytes per second, averaged over
  ``--min-rate-window`` seconds; a window without a single byte is a stall.

Blob transfers get no deadline: a 1 GiB layer on a slow link may take an hour and still be healthy; the
minimum rate is what bounds it (at most ``size / min_rate`` plus one window).

The checks run where the bytes pass (the response or request body stream), and each socket operation's own
timeout is clamped to what the deadline or the window still allows, so no extra thread is needed. One gap
remains: response *headers* trickled byte by byte are bounded per read only (h11 caps them at 16 KiB), since
httpx exposes no hook between the socket reads of the header phase. This module imports httpx and is itself
imported only when a request is sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ci_oras.registry.transport import TransportOptions

_CONNECT_CEILING = 15.0
_SLOW_LINK_HINT = "the registry or network is too slow; lower --min-rate or raise --min-rate-window for a slow link"


class TooSlow(httpx.ReadTimeout):
    """An attempt ran past its deadline or fell below the minimum rate; retried like any network failure."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class Budget:
    """The limits of one attempt of one request; ``transfer`` marks a blob body (no deadline, rate only)."""

    def __init__(self, options: TransportOptions, *, transfer: bool, download: bool) -> None:
        self.options = options
        self.transfer = transfer
        self.download = download
        self.started = time.monotonic()
        self.deadline = (self.started + options.request_timeout
                         if not transfer and options.request_timeout > 0 else None)
        self._window_start = self.started
        self._window_bytes = 0
        self._last_progress = self.started

    @property
    def _rate_on(self) -> bool:
        return self.options.min_rate > 0 and self.options.min_rate_window > 0

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.001)

    def timeout(self) -> httpx.Timeout:
        """Socket timeouts for this attempt: never past the deadline; a body read or write never waits
        longer than the rate window (a window without a byte fails the rate anyway)."""
        operation = self.options.timeout
        remaining = self.remaining()
        limit = operation if remaining is None else min(operation, remaining)
        body = min(limit, self.options.min_rate_window) if self._rate_on else limit
        # Waiting for an upload's answer is the registry's work (it may be assembling a large blob): only
        # the operation timeout applies there; a download's first byte is part of the transfer.
        read = body if self.download else limit
        return httpx.Timeout(limit, connect=min(limit, _CONNECT_CEILING), read=read, write=body, pool=limit)

    def check(self, received: int) -> None:
        """Account ``received`` bytes; raise :class:`TooSlow` past the deadline or below the minimum rate."""
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise self.deadline_error()
        if received:
            self._last_progress = now
        if not self._rate_on:
            return
        self._window_bytes += received
        elapsed = now - self._window_start
        if elapsed >= self.options.min_rate_window:
            if self._window_bytes / elapsed < self.options.min_rate:
                raise self.rate_error(self._window_bytes / elapsed, elapsed)
            self._window_start, self._window_bytes = now, 0

    def explain(self, exc: httpx.TimeoutException) -> httpx.TimeoutException:
        """A socket timeout reworded as the limit that caused it, when one did."""
        if isinstance(exc, TooSlow):
            return exc
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline - 0.05:
            return self.deadline_error()
        idle = now - self._last_progress
        if self._rate_on and idle >= self.options.min_rate_window - 0.05 and (
            isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout))
        ):
            return TooSlow(
                f"no data for {idle:.1f}s: a stall under --min-rate {self.options.min_rate:g} B/s over "
                f"--min-rate-window {self.options.min_rate_window:g}s", hint=_SLOW_LINK_HINT)
        return exc

    def deadline_error(self) -> TooSlow:
        return TooSlow(
            f"no complete answer within --request-timeout {self.options.request_timeout:g}s",
            hint="the registry or network is too slow; raise --request-timeout if it is merely slow",
        )

    def rate_error(self, rate: float, elapsed: float) -> TooSlow:
        return TooSlow(
            f"{rate:.0f} B/s over {elapsed:.1f}s is below --min-rate {self.options.min_rate:g} B/s "
            f"(measured over --min-rate-window {self.options.min_rate_window:g}s)", hint=_SLOW_LINK_HINT)


class PacedStream(httpx.SyncByteStream):
    """A request or response body that checks its :class:`Budget` on every chunk that passes."""

    def __init__(self, inner: httpx.SyncByteStream, budget: Budget) -> None:
        self._inner = inner
        self._budget = budget

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                self._budget.check(len(chunk))
                yield chunk
        except httpx.TimeoutException as exc:
            explained = self._budget.explain(exc)
            if explained is exc:
                raise
            raise explained from exc

    def close(self) -> None:
        self._inner.close()


def pace(request: httpx.Request, budget: Budget) -> None:
    """Check the budget while a streamed request body is sent (bytes bodies are sent in one write)."""
    if isinstance(request.stream, httpx.SyncByteStream) and not isinstance(request.stream, httpx.ByteStream):
        request.stream = PacedStream(request.stream, budget)
    request.extensions = {**request.extensions, "timeout": budget.timeout().as_dict()}
