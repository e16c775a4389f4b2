"""attach and discover on registries with and without the referrers API, through a latency proxy.

Run: ``python benchmarks/bench_referrers.py [--latency-ms 20] [--attaches 5] [--parallel 20]``.

A local docker-registry answers in about a millisecond, which hides what concurrency buys; a proxy in front
of it adds ``--latency-ms`` to every request, like a registry across a network. The script reports:

- ``ci-oras attach`` (whole CLI processes) on the tag schema (docker-registry) and on a registry with the
  referrers API (the in-process fake): wall time, the requests each one sent next to the protocol minimum
  written down below, and the span from its first to its last request (the part start-up does not hide);
- ``--parallel`` attach processes released at once on one subject (tag schema): wall time from the release
  to the last exit, CPU per process, and how many referrers the index lists afterwards;
- ``discover`` of a subject whose N referrers each have one referrer (depth 2), N = 1 … 100, with one worker
  and with the default eight: time per level should stay flat in N up to the pool size. The minimum is one
  listing per node (2N + 1) plus resolving the root and the one-time API probe: 2N + 3 requests; from
  N = 31 on (32 nodes to list after the root's listing) the walk reads the tag list once instead of the N
  absent tags of the second level: N + 4.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness.oci import MANIFEST_ACCEPT, OCI_EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, push_blob, push_image, push_manifest  # noqa: E402
from harness.proxy import RegistryProxy  # noqa: E402
from harness.registry import start_registry  # noqa: E402

# attach of one small file to a subject given by tag, on a tag-schema registry (see test_request_counts.py):
# HEAD subject, HEAD+POST+PUT layer, HEAD config, PUT manifest, GET+PUT fallback index = 8 protocol-minimum
# requests, plus 1 read a measured window later (the watch that detects a lost update), = 9; +1 DELETE of
# the index it replaced when the subject already had referrers. With the referrers API: the 6 before the
# index, then one listing that confirms it, = 7.
ATTACH_MINIMUM = 8
ATTACH_EXPECTED = 9
ATTACH_API_EXPECTED = 7


def seed_graph(client: httpx.Client, url: str, repo: str, width: int) -> str:
    """A subject with ``width`` referrers, each with one referrer of its own, written by raw HTTP."""
    subject = push_image(client, url, repo, tag="v1")
    config = push_blob(client, url, repo, b"{}")

    def referrer(of: str, size: int, name: str) -> tuple[dict[str, object], str]:
        body = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.bench",
            "config": {"mediaType": OCI_EMPTY_JSON, "digest": config, "size": 2},
            "layers": [{"mediaType": OCI_EMPTY_JSON, "digest": config, "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": of, "size": size},
            "annotations": {"bench": name}}).encode()
        digest = push_manifest(client, url, repo, "sha256:" + hashlib.sha256(body).hexdigest(), body)
        return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": "application/vnd.bench",
                "annotations": {"bench": name}}, digest

    def write_index(subject_digest: str, entries: list[dict[str, object]]) -> None:
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        push_manifest(client, url, repo, "sha256-" + subject_digest.split(":")[1], index, OCI_INDEX)

    level_one = []
    for number in range(width):
        entry, digest = referrer(subject.manifest_digest, len(subject.manifest), f"r{number}")
        child, _ = referrer(digest, int(entry["size"]), f"r{number}.1")  # type: ignore[call-overload]
        write_index(digest, [child])
        level_one.append(entry)
    write_index(subject.manifest_digest, level_one)
    return subject.manifest_digest


#: The annotation ``verify`` orders candidates by (newest first).
CREATED = "org.opencontainers.image.created"
NOTARY = "application/vnd.cncf.notary.signature"


def seed_wide(client: httpx.Client, url: str, repo: str, count: int, *, artifact_type: str = NOTARY,
              fallback: bool = True, signed: Collection[int] = (), workers: int = 16) -> str:
    """A subject tagged ``v1`` with ``count`` referrers of ``artifact_type``, written by raw HTTP, fast.

    Every referrer shares one config and one layer blob; they differ by their ``CREATED`` annotation (referrer
    ``i`` was made ``i`` seconds after the first, so the newest is listed last). The referrers numbered in
    ``signed`` get a referrer of their own, of the same type, made after every first-level one. The manifest
    PUTs run ``workers`` at a time. ``fallback``: write the tag schema's indexes (one for the subject, one per
    signed referrer), for a registry without the referrers API; a registry with it lists them by itself.
    """
    subject = push_image(client, url, repo, tag="v1")
    config = push_blob(client, url, repo, b"{}")
    payload = b'{"bench": "signature"}'
    layer = push_blob(client, url, repo, payload)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def referrer(of: str, size: int, made: int) -> dict[str, object]:
        created = (start + timedelta(seconds=made)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY_JSON, "digest": config, "size": 2},
            "layers": [{"mediaType": "application/jose+json", "digest": layer, "size": len(payload)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": of, "size": size},
            "annotations": {CREATED: created}}, separators=(",", ":")).encode()
        digest = push_manifest(client, url, repo, "sha256:" + hashlib.sha256(body).hexdigest(), body)
        return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": artifact_type,
                "annotations": {CREATED: created}}

    def write_index(subject_digest: str, entries: list[dict[str, object]]) -> None:
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                           separators=(",", ":")).encode()
        push_manifest(client, url, repo, "sha256-" + subject_digest.split(":")[1], index, OCI_INDEX)

    def signature_of(made: int, entry: dict[str, object]) -> None:
        child = referrer(str(entry["digest"]), int(str(entry["size"])), made)
        if fallback:
            write_index(str(entry["digest"]), [child])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        entries = list(pool.map(lambda n: referrer(subject.manifest_digest, len(subject.manifest), n),
                                range(count)))
        list(pool.map(signature_of, range(count, count + len(signed)), [entries[n] for n in sorted(signed)]))
    if fallback:
        write_index(subject.manifest_digest, entries)
    return subject.manifest_digest


def time_discover(host: str, repo: str, concurrency: int) -> tuple[float, int]:
    from ci_oras.graph.discover import DiscoverOptions
    from ci_oras.oci.reference import parse_reference
    from ci_oras.registry.transport import TransportOptions
    from ci_oras.runtime import LoginFlags, Runtime
    from ci_oras.steps.discover import discover_graph

    run = Runtime(TransportOptions(), LoginFlags(), {})
    try:
        target = run.open(parse_reference(f"{host}/{repo}:v1"))
        started = time.perf_counter()
        result = discover_graph(target, f"{host}/{repo}", "v1", DiscoverOptions(concurrency=concurrency))
        return time.perf_counter() - started, result.count
    finally:
        run.close()


def time_attaches(work: Path, host: str, repo: str, count: int, recorder: Any) -> None:
    """``count`` sequential ``ci-oras attach`` processes to one subject; ``recorder`` has requests/clear()."""
    times, counts, spans = [], [], []
    for number in range(count):
        (work / "sig.json").write_text(f'{{"signature": "bench {number}"}}\n')
        recorder.clear()
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "ci_oras", "attach", f"{host}/{repo}:v1", "sig.json",
                               "--artifact-type", "signature/example"], cwd=work, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode:
            raise SystemExit(done.stderr)
        seen = recorder.requests
        counts.append(len(seen))
        spans.append(seen[-1].time - seen[0].time)
    print(f"  wall time median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}); "
          f"first to last request median {statistics.median(spans) * 1000:.0f} ms")
    print(f"  requests per attach: {sorted(set(counts))}")


def time_parallel(work: Path, registry_url: str, host: str, count: int) -> None:
    """``count`` attach processes released together on one subject (tag schema)."""
    import resource

    from harness.parallel import run_released_together

    repo = f"bench/parallel{count}"
    with httpx.Client(timeout=60) as client:
        subject = push_image(client, registry_url, repo, tag="v1")
    commands = []
    for number in range(count):
        (work / f"p{number}.json").write_text(f'{{"signature": "parallel {number}"}}\n')
        commands.append(["attach", f"{host}/{repo}:v1", f"p{number}.json", "--artifact-type", "signature/example"])
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    results, wall = run_released_together(commands, cwd=work, env=dict(os.environ))
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime) / count
    failed = [r.stderr.strip() for r in results if r.returncode]
    index = httpx.get(f"{registry_url}/v2/{repo}/manifests/sha256-{subject.manifest_digest.split(':')[1]}",
                      headers={"Accept": MANIFEST_ACCEPT}, timeout=60).json()
    print(f"{count} attach processes released at once, one subject, tag schema")
    print(f"  wall {wall:.2f} s, CPU {cpu:.2f} s per process, {len(index['manifests'])}/{count} listed, "
          f"{len(failed)} failed\n")


def main() -> None:
    from harness.fake_registry import FakeRegistry

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--attaches", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=20, help="attach processes released at once (0: skip)")
    parser.add_argument("--widths", default="1,2,4,8,16,32,100", help="discover widths ('' to skip)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ci-oras-bench-ref-"))
    registry = start_registry(work / "registry", "plain")
    proxy = RegistryProxy(registry)
    proxy.latency = args.latency_ms / 1000
    fake = FakeRegistry()
    fake_proxy = RegistryProxy(fake.url)
    fake_proxy.latency = proxy.latency
    try:
        with httpx.Client(timeout=60) as client:
            push_image(client, registry.url, "bench/attach", tag="v1")
            push_image(client, fake.url, "bench/attach", tag="v1")
        print(f"latency per request: {args.latency_ms:.0f} ms (proxy in front of each registry)\n")
        print(f"ci-oras attach (whole CLI process), tag schema (docker-registry; expected {ATTACH_EXPECTED} "
              f"requests, +1 DELETE of the replaced index when the subject had referrers)")
        time_attaches(work, proxy.host, "bench/attach", args.attaches, proxy)
        print(f"ci-oras attach (whole CLI process), referrers API (fake registry; expected {ATTACH_API_EXPECTED})")
        time_attaches(work, fake_proxy.host, "bench/attach", args.attaches, fake_proxy)
        print()
        if args.parallel:
            time_parallel(work, registry.url, proxy.host, args.parallel)

        print("discover, depth 2 (N referrers, each with one referrer)")
        print(f"  {'N':>4} {'nodes':>6} {'1 worker s':>11} {'8 workers s':>12} {'requests':>9}")
        with httpx.Client(timeout=60) as client:
            for width in (int(w) for w in args.widths.split(",") if w):
                repo = f"bench/discover{width}"
                seed_graph(client, registry.url, repo, width)
                proxy.clear()
                serial, found = time_discover(proxy.host, repo, 1)
                requests = len(proxy.requests)
                parallel, found_parallel = time_discover(proxy.host, repo, 8)
                assert found == found_parallel == 2 * width, (found, found_parallel)
                print(f"  {width:>4} {found:>6} {serial:>11.2f} {parallel:>12.2f} {requests:>9}")
    finally:
        proxy.stop()
        fake_proxy.stop()
        fake.stop()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
