"""The connections of one run: HTTP/1.1 connection pools behind one ``httpx.BaseTransport``.

httpx's own ``HTTPTransport`` would do, but for two things a registry client measures, both reached here through
public extension points instead of patching either library:

- **Larger socket reads.** httpcore reads at most 64 KiB per socket read; every read is then parsed by h11 and
  passed up in Python, and at loopback and LAN speeds that per-read cost, not the network, limits a blob
  download. httpcore's ``network_backend`` is the seam: :class:`_WideReads` connects like httpcore's own
  backend and reads up to ``READ_BYTES`` while a body keeps the reads full (``_WideStream``). Measured promoting
  1 GiB in 8 layers four at a time: 1.50 s of CPU and 42 MiB at 256 KiB, 1.36 s and 45 MiB at 384 KiB, 1.41 s
  and 48 MiB at 512 KiB, 1.25 s and 62 MiB at 1 MiB (each read is copied on its way up, per stream). Only
  then: a buffer that large is mapped fresh for every read (it is past the allocator's mmap threshold), which
  cost each small answer about 40 µs of system time when every read was wide.
- **TLS set up when first needed.** Creating the default SSL context and loading the CA bundle costs about
  25 ms of CPU, a sixth of a short command, and a run against a plain-HTTP registry never shakes hands. The
  pool for ``https`` is made, with its context, at the first HTTPS request; ``--ca-file`` is loaded up front
  by the caller so that a bad file is a usage error before any request.

Proxies come from the environment as httpx reads them by default (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``, ``NO_PROXY``, and the system settings on macOS and Windows): requests reach this transport
without ``httpx.Client``, whose reading of them would otherwise apply. Only HTTP(S) proxies are supported: a SOCKS proxy
needs a package ci-oras does not install, and says so.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpcore
import httpx

from ci_oras.errors import UsageError

if TYPE_CHECKING:
    from types import TracebackType

#: Bytes asked of the socket per read (see the module docstring for the measurements behind it).
READ_BYTES = 384 * 1024
#: No cap on open connections: the steps' worker pools already bound the requests in flight (``--concurrency``
#: and the walk's), and a cap shared by every host starved copies. An upload holds its connection to DST while
#: its body is read from SRC through another connection of the same pool; with 32 at most, 32 uploads at once
#: (a promote at --concurrency 64, a release copy of 16 images) held them all and every source read waited for
#: one until a timeout broke the copy up: 25 s stalls, retried uploads, once a 120 s hang.
MAX_CONNECTIONS: int | None = None
#: Idle connections kept for reuse; more are closed when their request ends.
MAX_KEEPALIVE = 32

#: httpcore's errors as the httpx errors the layers above catch, most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


_HTTPCORE_ERRORS = tuple(source for source, _ in _ERRORS)


def _as_httpx_error(exc: Exception) -> httpx.TransportError:
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(str(exc))
    raise AssertionError(f"not an httpcore error: {exc!r}")  # pragma: no cover - callers catch only those


class _WideStream(httpcore.NetworkStream):
    """A connection that reads ``READ_BYTES`` at a time from a read that filled what httpcore asked for (a body
    is streaming) until one returns less than a quarter of that (the stream has dried up: an answer's tail, a
    small answer); a TLS upgrade keeps the rule. The quarter keeps a stream that arrives in bursts of one and a
    half reads (registries write in 32 KiB pieces) wide, instead of alternating a full read with a short one."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._wide = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max(max_bytes, READ_BYTES) if self._wide else max_bytes, timeout)
        self._wide = len(data) >= (max_bytes // 4 if self._wide else max_bytes)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _WideStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _WideReads(httpcore.NetworkBackend):
    """httpcore's own socket backend, with every connection wrapped in :class:`_WideStream`."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        return _WideStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                            ) -> httpcore.NetworkStream:  # pragma: no cover - registries are reached over TCP
        return _WideStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - httpcore sleeps only between its own retries
        self._inner.sleep(seconds)


@dataclass(frozen=True)
class ProxyRoutes:
    """Which proxy each request goes through, as httpx decides it from the environment by default.

    ``NO_PROXY`` follows curl's rules as httpx does: ``*`` turns proxies off; an IP address or ``localhost``
    matches that host alone; a name matches itself and its subdomains (a leading dot too); ``host:port`` only
    that port. A host given as an address matches only an entry that is the same address.
    """

    http: str | None = None
    https: str | None = None
    bypass: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, read: Callable[[], Mapping[str, str]] | None = None) -> ProxyRoutes:
        if read is None:
            from urllib.request import getproxies

            read = getproxies
        found = read()
        every = found.get("all")
        bypass = tuple(entry.strip().lower() for entry in found.get("no", "").split(",") if entry.strip())
        if "*" in bypass:
            return cls()
        return cls(http=_proxy_url(found.get("http") or every), https=_proxy_url(found.get("https") or every),
                   bypass=bypass)

    def for_url(self, scheme: str, host: str, port: int) -> str | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None:
            return None
        host = host.lower().strip("[]")
        by_name = not _is_address(host)
        for entry in self.bypass:
            name, port_given = _split_port(entry)
            if port_given is not None and port_given != port:
                continue
            name = name.strip("[]")
            if name == host or (by_name and name != "localhost" and host.endswith("." + name.lstrip("."))):
                return None
        return proxy


def _proxy_url(value: str | None) -> str | None:
    if not value:
        return None
    return value if "://" in value else f"http://{value}"


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("[") and "]:" in entry:
        name, _, port = entry.rpartition(":")
        return name, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Connections(httpx.BaseTransport):
    """Pools of keep-alive connections, made when first used: one plain, one TLS, one per proxy.

    ``tls`` makes the TLS context; it is called once, at the first HTTPS request (or the first through an
    HTTPS proxy). Thread-safe: httpcore's pools are, and making a pool happens under a lock.
    """

    def __init__(self, tls: Callable[[], ssl.SSLContext], *, proxies: ProxyRoutes | None = None) -> None:
        self._tls = tls
        self._tls_context: ssl.SSLContext | None = None
        self._proxies = proxies if proxies is not None else ProxyRoutes()
        self._backend = _WideReads()
        self._pools: dict[tuple[str, str | None], httpcore.ConnectionPool] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)  # a sync client's request
        url = request.url
        port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
        pool = self._pool(url.scheme, self._proxies.for_url(url.scheme, url.host, port))
        sent = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            answer = pool.handle_request(sent)
        except _HTTPCORE_ERRORS as exc:
            raise _as_httpx_error(exc) from exc
        assert isinstance(answer.stream, Iterable)
        return httpx.Response(status_code=answer.status, headers=answer.headers,
                              stream=_Body(answer.stream), extensions=answer.extensions)

    def _pool(self, scheme: str, proxy: str | None) -> httpcore.ConnectionPool:
        key = (scheme, proxy)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = self._make_pool(scheme, proxy)
            return pool

    def _context(self) -> ssl.SSLContext:
        """Under ``_lock``: the TLS context, made once."""
        if self._tls_context is None:
            self._tls_context = self._tls()
        return self._tls_context

    def _make_pool(self, scheme: str, proxy: str | None) -> httpcore.ConnectionPool:
        context = self._context() if scheme == "https" else None
        if proxy is None:
            return httpcore.ConnectionPool(ssl_context=context, network_backend=self._backend,
                                           max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)
        parsed = httpx.URL(proxy)
        if parsed.scheme not in ("http", "https"):
            raise UsageError(f"proxy {parsed.scheme}://{parsed.host} from the environment is not supported",
                             hint="use an HTTP or HTTPS proxy in HTTP_PROXY/HTTPS_PROXY/ALL_PROXY, or set NO_PROXY")
        auth = (parsed.username, parsed.password) if parsed.username else None
        return httpcore.HTTPProxy(
            proxy_url=httpcore.URL(scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port,
                                   target=parsed.raw_path),
            proxy_auth=auth,
            ssl_context=context,
            proxy_ssl_context=self._context() if parsed.scheme == "https" else None,
            network_backend=self._backend,
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE,
        )

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def __exit__(self, exc_type: type[BaseException] | None = None, exc_value: BaseException | None = None,
                 traceback: TracebackType | None = None) -> None:
        self.close()


class _Body(httpx.SyncByteStream):
    """A response body from httpcore, its errors raised as httpx's."""

    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except _HTTPCORE_ERRORS as exc:
            raise _as_httpx_error(exc) from exc

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
