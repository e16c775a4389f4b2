"""promote with referrers (20 and 200) and a 1 GiB multi-blob image, same registry and across registries.

Run: ``python benchmarks/bench_promote.py [--image-mib 1024] [--layers 8]``.

Each promotion is a whole ``ci-oras promote`` process run under GNU time (peak RSS) with a counting proxy in
front of each registry (requests). The 1 GiB copy is compared with raw ``curl GET | curl PUT`` pipes of the
same blobs in the same run (one pipe per blob, four at a time, like ``--concurrency 4``).

Protocol minimum for promoting a subject with N referrers (one blob each) to a new repository on a
registry without the referrers API, written down so the request counts can be checked against it:

  source: GET root, referrers probe, GET fallback index, N × GET referrer manifest, and to know they have
          no referrers N × GET their fallback index (N + 1 < 32 nodes to list)       = 2N + 3
          or, from 32 nodes on, one tag list instead (graph/walk.py)                 = N + 4
  destination: per distinct blob HEAD + (mount POST | POST + PUT); per manifest HEAD + PUT (N + 1);
          the fallback index GET + PUT + read-back (+2 watch reads); tag HEAD + PUT    ≈ 3B + 2(N+1) + 7
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness.oci import OCI_INDEX, OCI_MANIFEST, push_blob, push_manifest  # noqa: E402
from harness.proxy import RegistryProxy  # noqa: E402
from harness.registry import start_registry  # noqa: E402

EMPTY = "application/vnd.oci.empty.v1+json"


def seed_referrers(client: httpx.Client, url: str, repo: str, count: int, layer_bytes: int = 100_000) -> None:
    config = push_blob(client, url, repo, b"{}")
    layer = push_blob(client, url, repo, os.urandom(layer_bytes))
    image = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                        "layers": [{"mediaType": "application/octet-stream", "digest": layer,
                                    "size": layer_bytes}]}).encode()
    subject = push_manifest(client, url, repo, "v1", image)
    entries = []
    for number in range(count):
        data = f"referrer {number}\n".encode()
        blob = push_blob(client, url, repo, data)
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.bench",
                           "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                           "layers": [{"mediaType": "text/plain", "digest": blob, "size": len(data)}],
                           "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(image)}}).encode()
        digest = push_manifest(client, url, repo, "sha256:" + hashlib.sha256(body).hexdigest(), body)
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
                        "artifactType": "application/x.bench"})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    push_manifest(client, url, repo, "sha256-" + subject.split(":")[1], index, OCI_INDEX)


def seed_image(client: httpx.Client, url: str, repo: str, total: int, layers: int, work: Path) -> list[tuple[str, int]]:
    """A multi-layer image of ``total`` random bytes; each layer streamed from a file (never in memory)."""
    config = push_blob(client, url, repo, b"{}")
    descriptors = []
    size = total // layers
    for number in range(layers):
        path = work / f"layer{number}"
        hasher = hashlib.sha256()
        with path.open("wb") as out:
            for offset in range(0, size, 8 << 20):  # sizes that are not a multiple of 8 MiB too
                chunk = os.urandom(min(8 << 20, size - offset))
                hasher.update(chunk)
                out.write(chunk)
        digest = "sha256:" + hasher.hexdigest()
        subprocess.run(["curl", "-sf", "-X", "POST", "-D", str(work / "h"), "-o", "/dev/null",
                        f"{url}/v2/{repo}/blobs/uploads/"], check=True)
        location = [line.split(": ", 1)[1].strip() for line in (work / "h").read_text().splitlines()
                    if line.lower().startswith("location:")][0]
        target = (location if location.startswith("http") else url + location) + f"&digest={digest}"
        subprocess.run(["curl", "-sf", "-T", str(path), "-o", "/dev/null", target], check=True)
        path.unlink()
        descriptors.append((digest, size))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                                      "size": 2},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d,
                                       "size": s} for d, s in descriptors]}).encode()
    push_manifest(client, url, repo, "v1", manifest)
    return descriptors


def measure(argv: list[str]) -> tuple[float, float, str]:
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%M", *argv], capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(done.stderr)
        return elapsed, int(report.read().split()[-1]) / 1024, done.stdout


def curl_copy(src: str, dst: str, repo_src: str, repo_dst: str, blob: tuple[str, int]) -> None:
    digest, size = blob
    location = httpx.post(f"{dst}/v2/{repo_dst}/blobs/uploads/").headers["Location"]
    target = (location if location.startswith("http") else dst + location) + f"&digest={digest}"
    pipe = (f"curl -sf {src}/v2/{repo_src}/blobs/{digest} | "
            f"curl -sf -T - -H 'Content-Type: application/octet-stream' -H 'Content-Length: {size}' '{target}'")
    subprocess.run(["bash", "-c", pipe], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-mib", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--referrers", default="20,200")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ci-oras-bench-promote-"))
    a = start_registry(work / "a", "plain")
    b = start_registry(work / "b", "plain")
    pa, pb = RegistryProxy(a), RegistryProxy(b)
    cli = [sys.executable, "-m", "ci_oras", "promote", "-O", "json"]
    try:
        print(f"{'promotion':46} {'s':>6} {'requests':>9} {'MB moved':>9} {'RSS MiB':>8}")
        with httpx.Client(timeout=120) as client:
            for count in (int(c) for c in args.referrers.split(",")):
                seed_referrers(client, a.url, f"bench/ref{count}", count)
                for label, dst_proxy in (("same registry", pa), ("across registries", pb)):
                    pa.clear()
                    pb.clear()
                    dst = f"{dst_proxy.host}/bench/ref{count}-{label.split()[0]}:v1"
                    seconds, rss, out = measure(cli + [f"{pa.host}/bench/ref{count}:v1", dst])
                    moved = json.loads(out)["bytes"] / 1e6
                    requests = len(pa.requests) + (len(pb.requests) if dst_proxy is pb else 0)
                    print(f"{f'{count} referrers, {label}':46} {seconds:6.2f} {requests:9d} {moved:9.1f} {rss:8.1f}")
                    pa.clear()
                    pb.clear()
                    seconds, rss, out = measure(cli + [f"{pa.host}/bench/ref{count}:v1", dst])
                    requests = len(pa.requests) + (len(pb.requests) if dst_proxy is pb else 0)
                    writes = sum(1 for p in (pa, pb) for r in p.requests if r.method in ("PUT", "POST", "PATCH"))
                    print(f"{f'  re-run ({writes} writes)':46} {seconds:6.2f} {requests:9d} {0.0:9.1f} {rss:8.1f}")
            total = args.image_mib << 20
            blobs = seed_image(client, a.url, "bench/big", total, args.layers, work)
        seconds, rss, _ = measure(cli + [f"{a.host}/bench/big:v1", f"{b.host}/bench/big:v1"])
        print(f"{f'{args.image_mib} MiB image in {args.layers} layers, across':46} {seconds:6.2f} {'':>9} "
              f"{total / 1e6:9.1f} {rss:8.1f}")
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda blob: curl_copy(a.url, b.url, "bench/big", "bench/curl", blob), blobs))
        curl_seconds = time.perf_counter() - started
        print(f"{'  curl GET | curl PUT, same blobs, 4 at a time':46} {curl_seconds:6.2f} {'':>9} {total / 1e6:9.1f}")
        print(f"\nbulk copy throughput: ci-oras {total / seconds / 1e6:.0f} MB/s, curl {total / curl_seconds / 1e6:.0f} "
              f"MB/s, ratio {curl_seconds / seconds:.2f}x")
    finally:
        pa.stop()
        pb.stop()
        a.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
