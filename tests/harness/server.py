"""What the harness's in-process HTTP servers have in common: the fake registry, the fault-injecting proxy,
its blob storage and the token issuer.

Each binds 127.0.0.1 on a free port, serves every connection from a daemon thread (a test never waits for
a client's idle keep-alive connection to end), stops idempotently, works as a context manager, and records
every request it receives so that a test can assert on what a client really sent. Only what they answer
differs: that is their handler class.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qs

if TYPE_CHECKING:  # typing.Self is 3.11+; only needed for type checkers
    from typing_extensions import Self

__all__ = ["CHUNK", "BackgroundServer", "HarnessHTTPServer", "QuietHandler", "RecordedRequest"]

#: Bytes read or written at a time when a body is streamed.
CHUNK = 64 * 1024


@dataclass
class RecordedRequest:
    """One request a server received, and how it answered.

    ``time`` is ``time.monotonic()`` when the request head arrived (to measure a client's back-off).
    ``status`` and ``response_headers`` are filled in *before* the answer is written, so a client that has
    its answer always finds them.
    """

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    time: float
    status: int | None = None
    response_headers: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> str:
        """Path plus ``?query`` exactly as the client sent it."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        """A request header (case-insensitive), or None."""
        return _find_header(self.headers, name)

    def response_header(self, name: str) -> str | None:
        """A header of the answer (case-insensitive), or None."""
        return _find_header(self.response_headers, name)


def _find_header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return None


#: What a server records per request (a :class:`RecordedRequest`, or the token issuer's own record).
Record = TypeVar("Record")


class HarnessHTTPServer(ThreadingHTTPServer):
    """A threading server whose handlers answer for ``owner`` (the object the test holds)."""

    daemon_threads = True
    allow_reuse_address = True
    #: socketserver's default listen backlog is 5, far below the connections a client opens at once (a release
    #: copy of 16 images side by side opens dozens): past it Linux drops handshakes, and the client waits out
    #: TCP's retransmission back-off, a delay no registry (which listens with the system's maximum) would add.
    request_queue_size = socket.SOMAXCONN
    owner: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away (a CLI process exiting with idle keep-alive connections) is routine.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, request bodies read in either framing, and no access log: the servers
    record requests structurally instead."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is closed after this
    #: Headers and body go out in separate writes; with Nagle's algorithm the body would wait for the
    #: client's delayed ACK of the headers (40 ms on Linux), as no real registry makes a client wait.
    disable_nagle_algorithm = True
    server: HarnessHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def _request_body(self) -> Iterator[bytes]:
        """The request body in chunks, from ``Content-Length`` or chunked framing."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            yield from self._chunked_body()
            return
        yield from self._sized_body(int(self.headers.get("Content-Length") or 0))

    def _sized_body(self, size: int) -> Iterator[bytes]:
        remaining = size
        while remaining > 0:
            data = self.rfile.read(min(remaining, CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            remaining -= len(data)
            yield data

    def _chunked_body(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield from self._sized_body(size)
            self.rfile.readline(3)  # CRLF after the chunk


class BackgroundServer(Generic[Record]):
    """Serve ``_handler`` from a daemon thread, and keep the requests it records in arrival order.

    Subclasses set ``_handler`` and ``_name`` (the thread's name and error messages); handlers reach the
    server object as ``self.server.owner`` and call its ``_record``.
    """

    _handler: ClassVar[type[BaseHTTPRequestHandler]]
    _name: ClassVar[str] = "server"
    #: How often the serving thread looks for a stop request.
    _poll_interval: ClassVar[float] = 0.05

    def __init__(self) -> None:
        self._server: HarnessHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._records: list[Record] = []
        self._records_lock = threading.Lock()

    def start(self) -> Self:
        """Bind ``127.0.0.1:0`` and serve in a daemon thread (a no-op while serving); returns self."""
        if self._server is not None:
            return self
        server = HarnessHTTPServer(("127.0.0.1", 0), self._handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name=f"{self._name}-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close the listening socket (idempotent).

        Handler threads are daemons blocked on idle keep-alive connections at most; they end with the client
        or the interpreter.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port served on (only while running)."""
        if self._server is None:
            raise RuntimeError(f"{self._name} is not running")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: what goes into a reference (a loopback host: plain HTTP by default)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def requests(self) -> list[Record]:
        """A snapshot of every request recorded so far, in arrival order."""
        with self._records_lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget the recorded requests (nothing else)."""
        with self._records_lock:
            self._records.clear()

    def _record(self, record: Record) -> None:
        with self._records_lock:
            self._records.append(record)
