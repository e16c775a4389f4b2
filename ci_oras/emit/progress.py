"""Progress of long copies: a bar that redraws on a terminal, a periodic one-line summary in CI logs."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class CopyProgress:
    """Thread-safe; ``update`` is the callback graph copies call from their workers."""

    def __init__(self, total_blobs: int, total_bytes: int, *, stream: TextIO | None = None,
                 interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.total_blobs = total_blobs
        self.total_bytes = total_bytes
        self.blobs = 0
        self.bytes = 0
        self.manifests = 0
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._started = self._last

    def update(self, what: str, size: int) -> None:
        with self._lock:
            if what == "manifest":
                self.manifests += 1
            else:
                self.blobs += 1
                self.bytes += size
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self._draw(final=False)

    def finish(self) -> None:
        with self._lock:
            if self.tty or time.monotonic() - self._started >= self.interval:
                self._draw(final=True)

    def _draw(self, *, final: bool) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.bytes / elapsed / 1e6
        line = (f"blobs {self.blobs}/{self.total_blobs}  {self.bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB"
                f"  {rate:.1f} MB/s  manifests {self.manifests}")
        if self.tty:
            width = 24
            done = int(width * self.bytes / self.total_bytes) if self.total_bytes else width
            self.stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {line}" + ("\n" if final else ""))
        else:
            self.stream.write(f"progress: {line}\n")
        self.stream.flush()
