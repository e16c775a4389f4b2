"""Start many ``ci-oras`` processes and release them at the same moment (a barrier), for races between CI jobs.

Each process reports on a pipe that it is waiting, then blocks on a shared lock the caller holds; once all have
reported, the lock is released and they run ``python -m ci_oras ARGS`` (start-up included, as parallel CI jobs
would). Nothing is timed by sleeping: the caller waits for the pipe and for the processes.

Like the rest of the harness this module does not import ``ci_oras``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finished", "run_released_together"]

_BARRIER = """
import fcntl, os, runpy, sys
ready, lock_path = int(sys.argv[1]), sys.argv[2]
with open(lock_path) as lock:
    os.write(ready, b"."); os.close(ready)
    fcntl.flock(lock, fcntl.LOCK_SH)
sys.argv = ["ci-oras", *sys.argv[3:]]
runpy.run_module("ci_oras", run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def run_released_together(commands: Sequence[Sequence[str]], *, cwd: Path, env: Mapping[str, str],
                          timeout: float = 600) -> tuple[list[Finished], float]:
    """Run every ``ci-oras`` argument list in its own process, all released at once.

    Returns the results in order and the wall time from the release to the last exit.
    """
    lock_path = cwd / ".barrier.lock"
    lock_path.touch()
    read_end, write_end = os.pipe()
    processes: list[subprocess.Popen[str]] = []
    with open(lock_path) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for args in commands:
                processes.append(subprocess.Popen(
                    [sys.executable, "-c", _BARRIER, str(write_end), str(lock_path), *args],
                    cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    pass_fds=(write_end,)))
            os.close(write_end)
            arrived = 0
            while arrived < len(commands):  # every process waits at the barrier (EOF: one died before it)
                chunk = os.read(read_end, len(commands))
                if not chunk:
                    break
                arrived += len(chunk)
        finally:
            os.close(read_end)
            released = time.perf_counter()
            fcntl.flock(lock, fcntl.LOCK_UN)
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(Finished(process.returncode, stdout, stderr))
    if arrived < len(commands):
        raise RuntimeError(f"only {arrived} of {len(commands)} processes reached the barrier: "
                           + " | ".join(r.stderr.strip()[-300:] for r in results if r.returncode))
    return results, time.perf_counter() - released
