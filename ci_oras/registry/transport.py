"""HTTP plumbing shared by every registry call: one client, timeouts, TLS settings and retries.

Only this package and ``store/registry.py`` import httpx. Connection errors, 429 (honouring ``Retry-After``)
and 5xx answers are retried with exponential backoff and full jitter, so a CI job survives a registry hiccup
but still fails within a bounded time. Each attempt also has a deadline (small requests) and a minimum
transfer rate (every body), see ``pacing.py``; an attempt that breaks them is retried like a dropped
connection, so one request gives up after at most ``retries + 1`` attempts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from ci_oras import __version__
from ci_oras.errors import RegistryError, UsageError

if TYPE_CHECKING:
    import ssl

    import httpx

USER_AGENT = f"ci-oras/{__version__}"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Bodies read whole (listings, tokens) are capped like manifests: a hostile registry cannot exhaust memory.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Error bodies only feed a one-line message: the rest is dropped unread.
MAX_ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class TransportOptions:
    """What the user chose about the connection; shared by every host in one run."""

    plain_http: bool | None = None  # None: plain HTTP for loopback hosts only
    insecure: bool = False
    ca_file: str | None = None
    timeout: float = 60.0  # one socket operation: connect, one read, one write
    #: Whole attempt of a request without a blob body (--request-timeout); 0 disables it.
    request_timeout: float = 30.0
    #: Bytes per second every body must average over ``min_rate_window`` seconds (--min-rate); 0 disables it.
    min_rate: float = 1024.0
    min_rate_window: float = 30.0
    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 20.0


def make_client(options: TransportOptions, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """One client per run, redirects handled by us (see client.py).

    ``transport`` replaces the network: tests and library users hand in ``httpx.MockTransport`` or an
    in-process registry; by default requests go out through :class:`~ci_oras.registry.connections.Connections`.
    """
    import httpx

    if transport is None:
        from ci_oras.registry.connections import Connections, ProxyRoutes

        transport = Connections(_tls_context(options), proxies=ProxyRoutes.from_environment())
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(options.timeout, connect=min(options.timeout, 15.0)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def _tls_context(options: TransportOptions) -> Callable[[], ssl.SSLContext]:
    """What makes the TLS context, called at the first HTTPS connection; ``--ca-file`` is read now, so a bad
    file is a usage error before any request."""
    import ssl

    import httpx

    if options.insecure:
        return lambda: httpx.create_ssl_context(verify=False)
    if options.ca_file:
        try:
            context = ssl.create_default_context(cafile=options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load --ca-file {options.ca_file}: {exc}",
                             hint="pass a PEM file with the CA certificate") from exc
        return lambda: context
    # httpx's default trust: SSL_CERT_FILE/SSL_CERT_DIR when set, else certifi's CA bundle.
    return lambda: httpx.create_ssl_context(verify=True, trust_env=True)


def retry_delay(attempt: int, options: TransportOptions, retry_after: str | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    if retry_after:
        seconds = _parse_retry_after(retry_after)
        if seconds is not None:
            return min(seconds, options.max_backoff * 3)
    ceiling = min(options.max_backoff, options.backoff * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


def _parse_retry_after(value: str) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def send_with_retries(
    client: httpx.Client,
    build: Callable[[], httpx.Request],
    options: TransportOptions,
    *,
    stream: bool = False,
    retry: bool = True,
    describe: str = "request",
    transfer: bool = False,
) -> httpx.Response:
    """Send the request ``build()`` makes, rebuilding it for each retry (bodies may be single-use).

    ``transfer`` marks a blob body (either direction): it gets no deadline, only the minimum rate. A
    response that is not streamed is read here, capped (``MAX_BODY_BYTES``, error bodies truncated to
    ``MAX_ERROR_BODY_BYTES``) and within the attempt's limits; a streamed one checks them while it is read.
    """
    import httpx

    from ci_oras.registry.pacing import Budget, PacedStream, pace, read_capped

    attempts = options.retries + 1 if retry else 1
    for attempt in range(1, attempts + 1):
        request = build()
        budget = Budget(options, transfer=transfer, download=request.method == "GET")
        pace(request, budget)
        try:
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                explained = budget.explain(exc)
                if explained is exc:
                    raise
                raise explained from exc
            assert isinstance(response.stream, httpx.SyncByteStream)  # a sync client's stream
            response.stream = PacedStream(response.stream, budget)
            if not stream:
                error = response.status_code >= 400
                response = read_capped(response, MAX_ERROR_BODY_BYTES if error else MAX_BODY_BYTES,
                                       truncate=error)
        except httpx.TransportError as exc:
            if attempt >= attempts:
                raise RegistryError(
                    f"{describe} to {request.url.host}:{request.url.port or ''} failed: {describe_transport(exc)}",
                    hint=transport_hint(exc),
                    retryable=True,
                ) from exc
            time.sleep(retry_delay(attempt, options))
            continue
        if response.status_code in RETRY_STATUSES and attempt < attempts:
            delay = retry_delay(attempt, options, response.headers.get("Retry-After"))
            response.close()
            time.sleep(delay)
            continue
        return response
    raise AssertionError("unreachable")  # pragma: no cover


def transport_hint(exc: Exception) -> str:
    """The fix to suggest for a network failure: the limit that was hit, or the connection settings."""
    hint = getattr(exc, "hint", None)
    return hint if isinstance(hint, str) else "check the registry address, --plain-http/--ca-file, and the network"


def describe_transport(exc: Exception) -> str:
    """One line for a network failure (public: the store words broken-off downloads the same way)."""
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted (use --ca-file, or --insecure only for testing)"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "TLS handshake failed (is this a plain-HTTP registry? try --plain-http)"
    return text.splitlines()[0]
