"""Push and pull of one large blob against a local docker-registry, next to curl on the same bytes.

Run: ``python benchmarks/bench_blob.py [--size-mib 1024] [--repeat 2]``. Prints a table of wall time,
throughput and peak RSS for:

- ``curl -T`` upload (POST + streamed PUT) and ``curl`` download of the same blob, the reference;
- the ``ci-oras push`` / ``ci-oras pull`` commands (whole CLI processes: hashing the file, HEAD checks,
  upload, manifest; pull verifies the digest while writing);
- the library's ``push_blob`` alone, single PUT and chunked PATCH, to separate protocol cost from hashing.

Each process runs under GNU time, so its peak RSS is its own, not inherited from this script.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness.registry import start_registry  # noqa: E402


@dataclass
class Measure:
    name: str
    seconds: float
    size: int
    rss_mib: float

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6


def run_measured(name: str, argv: list[str], size: int, cwd: Path | None = None) -> Measure:
    """Run ``argv`` under GNU time: its peak RSS is the measured process's own, not inherited from us."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        completed = subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%M", *argv], cwd=cwd,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if completed.returncode != 0:
            raise SystemExit(f"{name} failed: {completed.stderr}")
        rss_kib = int(report.read().split()[-1])
    return Measure(name, elapsed, size, rss_kib / 1024)


def make_file(path: Path, size: int) -> str:
    hasher = hashlib.sha256()
    block = 8 * 1024 * 1024
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(block, left))
            hasher.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return "sha256:" + hasher.hexdigest()


def curl_upload(url: str, repo: str, path: Path, digest: str, size: int, *, hash_first: bool = False) -> Measure:
    """``curl -T`` of the blob; with ``hash_first``, ``sha256sum`` runs before it, as a script would need to."""
    import httpx

    location = httpx.post(f"{url}/v2/{repo}/blobs/uploads/").headers["Location"]
    target = (location if location.startswith("http") else url + location) + f"&digest={digest}"
    curl = f"curl -sf -T {path} -H 'Content-Type: application/octet-stream' '{target}'"
    if hash_first:
        return run_measured("sha256sum, then curl -T (upload)", ["bash", "-c", f"sha256sum {path} >/dev/null && {curl}"],
                            size)
    return run_measured("curl -T (upload)", ["bash", "-c", curl], size)


LIBRARY_PUSH = """
import sys
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.reference import parse_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.store.registry import RegistryRepository
path, digest, size, ref, threshold = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
run = Runtime(TransportOptions(), LoginFlags(), {})
reference = parse_reference(ref)
repo = RegistryRepository(reference, run.session.client_for(reference), chunk_threshold=threshold, writable=True)
def chunks():
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            yield chunk
repo.push_blob(Descriptor("application/octet-stream", digest, size), chunks())
run.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    cli = [sys.executable, "-m", "ci_oras"]
    work = Path(tempfile.mkdtemp(prefix="ci-oras-bench-"))
    registry = start_registry(work / "registry", "plain")
    results: list[Measure] = []
    try:
        src = work / "src"
        src.mkdir()
        blob = src / "big.bin"
        digest = make_file(blob, size)
        for round_no in range(args.repeat):
            repo = f"bench/r{round_no}"
            results.append(curl_upload(registry.url, f"{repo}-curl", blob, digest, size))
            results.append(curl_upload(registry.url, f"{repo}-curl2", blob, digest, size, hash_first=True))
            results.append(run_measured(
                "curl (download to a file)", ["curl", "-sf", "-o", str(work / "curl.out"),
                                              f"{registry.url}/v2/{repo}-curl/blobs/{digest}"], size))
            (work / "curl.out").unlink()
            results.append(run_measured("library push_blob, single PUT",
                                        [sys.executable, "-c", LIBRARY_PUSH, str(blob), digest, str(size),
                                         f"{registry.host}/{repo}-lib1", str(size + 1)], size))
            results.append(run_measured("library push_blob, 64 MiB PATCH chunks",
                                        [sys.executable, "-c", LIBRARY_PUSH, str(blob), digest, str(size),
                                         f"{registry.host}/{repo}-lib2", "0"], size))
            results.append(run_measured("ci-oras push (whole CLI)", cli + ["push", f"{registry.host}/{repo}:v1",
                                                                          "big.bin"], size, cwd=src))
            out = work / f"out{round_no}"
            results.append(run_measured("ci-oras pull (whole CLI)", cli + ["pull", f"{registry.host}/{repo}:v1",
                                                                          "-o", str(out)], size))
            shutil.rmtree(out)
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nblob size {size / 2**20:.0f} MiB, {args.repeat} rounds, docker-registry on loopback\n")
    print(f"{'what':42} {'seconds':>8} {'MB/s':>8} {'peak RSS MiB':>13}")
    for m in results:
        print(f"{m.name:42} {m.seconds:8.2f} {m.mb_per_s:8.1f} {m.rss_mib:13.1f}")
    by_name: dict[str, list[float]] = {}
    for m in results:
        by_name.setdefault(m.name, []).append(m.seconds)
    median = {name: statistics.median(times) for name, times in by_name.items()}
    print(f"\nmedian of {args.repeat} rounds (throughput ratio, higher is better):")
    for ours, theirs in (("ci-oras push (whole CLI)", "curl -T (upload)"),
                         ("ci-oras push (whole CLI)", "sha256sum, then curl -T (upload)"),
                         ("library push_blob, single PUT", "curl -T (upload)"),
                         ("ci-oras pull (whole CLI)", "curl (download to a file)")):
        print(f"  {ours} / {theirs}: {median[theirs] / median[ours]:.2f}x")


if __name__ == "__main__":
    main()
