"""The release rows of ``make bench``: 50 images, each a subject with a 4 MiB layer and 5 referrers, from one
registry to another through a proxy adding 20 ms to every request.

- a loop of ``ci-oras promote``, one image after another (oras is not installed here; issue 20 allows our own
  promote in its place);
- ``release plan``, ``copy --shard 1`` and ``commit`` in one job;
- the same with ``--shards 4``, the four copies run as four concurrent processes;
- the requests ``release commit`` makes per image besides the tag PUTs (counted at the proxy).

Each case writes into repositories of its own, so none finds the others' blobs at the destination.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from bench_promote import seed_referrers
from harness.proxy import RegistryProxy
from harness.registry import RunningRegistry

IMAGES = 50
LAYER_BYTES = 4 * 1024 * 1024
REFERRERS = 5


def seed(source: RunningRegistry) -> None:
    with httpx.Client(timeout=120) as client, ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: seed_referrers(client, source.url, f"bench/rel/app{n}", REFERRERS, LAYER_BYTES),
                      range(IMAGES)))


def _release_file(path: Path, source: RunningRegistry, destination: str, prefix: str) -> Path:
    lines = ["release: bench", "images:"]
    lines += [f"  - {{source: {source.host}/bench/rel/app{n}:v1, destination: {destination}/{prefix}/app{n}}}"
              for n in range(IMAGES)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def measure(work: Path, cli: list[str], env: dict[str, str], source: RunningRegistry,
            far: RegistryProxy) -> dict[str, float]:
    """Wall seconds of each case, the commit's requests per image besides its tag PUTs, and how busy the
    machine's cores were while the copies ran (every process: the copies, both registries, the proxy)."""
    figures: dict[str, float] = {}

    def run(*argv: str) -> None:
        done = subprocess.run([*cli, *argv], cwd=work, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")

    started = time.perf_counter()
    for n in range(IMAGES):
        run("promote", f"{source.host}/bench/rel/app{n}:v1", f"{far.host}/loop/app{n}:v1")
    figures["loop"] = time.perf_counter() - started

    def release(shards: int, prefix: str, copies: Callable[[], None] | None = None) -> float:
        plan = work / f"{prefix}.json"
        _release_file(work / f"{prefix}.yaml", source, far.host, prefix)
        started = time.perf_counter()
        run("release", "plan", f"{prefix}.yaml", "--shards", str(shards), "-o", plan.name)
        busy_before, total_before = _cpu_times()
        processes = [subprocess.Popen([*cli, "release", "copy", plan.name, "--shard", str(shard)], cwd=work, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for shard in range(1, shards + 1)]
        for process in processes:
            _out, err = process.communicate()
            if process.returncode:
                raise SystemExit(f"release copy failed:\n{err}")
        busy_after, total_after = _cpu_times()
        figures[f"copy-busy-{shards}"] = (busy_after - busy_before) / max(1, total_after - total_before)
        far.clear()
        run("release", "commit", plan.name)
        commit_requests = [r for r in far.requests
                           if not (r.method == "PUT" and "/manifests/" in r.path and "sha256" not in r.path)]
        figures[f"commit-requests-{shards}"] = len(commit_requests) / IMAGES
        return time.perf_counter() - started

    figures["one-job"] = release(1, "one")
    figures["four-shards"] = release(4, "four")
    return figures
