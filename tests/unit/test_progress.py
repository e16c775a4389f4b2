"""CopyProgress (promote): a redrawn bar on a terminal, periodic plain lines in CI logs."""

from __future__ import annotations

import io

from ci_oras.emit.progress import CopyProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ci_log_gets_periodic_plain_lines() -> None:
    log = io.StringIO()
    progress = CopyProgress(total_blobs=3, total_bytes=3_000_000, stream=log, interval=0.0)
    for _ in range(3):
        progress.update("blob", 1_000_000)
    progress.update("manifest", 500)
    progress.finish()
    lines = log.getvalue().splitlines()
    assert all(line.startswith("progress: ") and "\r" not in line for line in lines)
    assert "blobs 3/3" in lines[-1] and "3.0/3.0 MB" in lines[-1] and "manifests 1" in lines[-1]


def test_quiet_run_in_ci_prints_nothing() -> None:
    log = io.StringIO()
    progress = CopyProgress(total_blobs=1, total_bytes=10, stream=log)  # CI default: a line every 10 s
    progress.update("blob", 10)
    progress.finish()
    assert log.getvalue() == ""


def test_terminal_redraws_one_bar() -> None:
    terminal = _Terminal()
    progress = CopyProgress(total_blobs=2, total_bytes=200, stream=terminal, interval=0.0)
    progress.update("blob", 100)
    progress.update("blob", 100)
    progress.finish()
    text = terminal.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "\r[" + "#" * 24 + "]" in text
