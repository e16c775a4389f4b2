"""The run's HTTP client and what the user chose about connections: timeouts, TLS, retries.

Only this package and ``store/registry.py`` import httpx. ``make_client`` composes the layers every request
goes through (``flow.py``, ``retry.py``, ``connections.py``); the words for a network failure are here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ci_oras import __version__
from ci_oras.errors import UsageError

if TYPE_CHECKING:
    import ssl

    import httpx

    from ci_oras.registry.retry import RetryPolicy

USER_AGENT = f"ci-oras/{__version__}"


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


def make_client(options: TransportOptions, transport: httpx.BaseTransport | None = None,
                policy: RetryPolicy | None = None) -> HttpClient:
    """One client per run: the layers composed in one place.

    Each request goes through its flow (``flow.py``: credentials, challenges, redirects), then the retry
    policy and time limits (``retry.py``), then ``transport``, which reaches the registries: by default
    :class:`~ci_oras.registry.connections.Connections`; tests and library users hand in
    ``httpx.MockTransport`` or an in-process registry instead.
    """
    from ci_oras.registry.retry import RetryingTransport, RetryPolicy

    if transport is None:
        from ci_oras.registry.connections import Connections, ProxyRoutes

        transport = Connections(_tls_context(options), proxies=ProxyRoutes.from_environment())
    return HttpClient(RetryingTransport(transport, options, policy or RetryPolicy.of(options)), options)


class HttpClient:
    """httpx requests sent through the run's layers, driving each request's ``httpx.Auth`` flow.

    It does what ``httpx.Client.send`` does for a registry (run the flow, hand each hop to the transport, read
    a body that is not streamed) and nothing a registry does not use: no cookie jar (registries authenticate
    with headers), no event hooks, no base URL, no redirect handling of its own (``flow.py`` follows
    redirects), each of which every request would pay for. The method names are ``httpx.Client``'s.
    """

    def __init__(self, transport: httpx.BaseTransport, options: TransportOptions) -> None:
        import httpx

        self.transport = transport
        self._headers = httpx.Headers({
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            "Connection": "keep-alive",
            "User-Agent": USER_AGENT,
        })
        self._timeout = httpx.Timeout(options.timeout, connect=min(options.timeout, 15.0)).as_dict()
        self._closed = False

    def build_request(self, method: str, url: str | httpx.URL, *, headers: Mapping[str, str] | None = None,
                      params: httpx.QueryParams | Mapping[str, str] | None = None,
                      content: bytes | Iterator[bytes] | None = None, data: Mapping[str, str] | None = None,
                      extensions: dict[str, object] | None = None) -> httpx.Request:
        import httpx

        merged = self._headers.copy()
        if headers:
            merged.update(headers)
        return httpx.Request(method, url, headers=merged, params=params, content=content, data=data,
                             extensions={"timeout": self._timeout, **(extensions or {})})

    def send(self, request: httpx.Request, *, auth: httpx.Auth | None = None,
             stream: bool = False) -> httpx.Response:
        """Send ``request`` and every hop its ``auth`` flow asks for; the last answer is returned, read
        unless ``stream``. The answers before it are closed (their bodies were read, capped, by
        ``retry.py``)."""
        if self._closed:
            raise RuntimeError("the run's HTTP client is closed")
        if auth is None:
            return self._single(request, stream)
        flow = auth.sync_auth_flow(request)
        try:
            hop = next(flow)
            while True:
                response = self._single(hop, stream)
                try:
                    hop = flow.send(response)
                except StopIteration:
                    return response
                except BaseException:
                    response.close()
                    raise
                response.close()
        finally:
            flow.close()

    def _single(self, request: httpx.Request, stream: bool) -> httpx.Response:
        response = self.transport.handle_request(request)
        response.request = request
        if not stream:
            try:
                response.read()
            except BaseException:
                response.close()
                raise
        return response

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self.send(self.build_request("GET", url, headers=headers))

    def close(self) -> None:
        self._closed = True
        self.transport.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
