"""``make bench``: every benchmark case against real local docker-registry processes; writes benchmarks/results.md.

Run: ``python benchmarks/run.py [--repeat 3] [--image-mib 1024] [--referrers-scale 10000] [--baseline-ref
REF|none] [--out FILE] [--this-interpreter]``.

ci-oras runs the way every wrapper installs it: a fresh virtual environment holding only
``requirements/runtime.lock`` (installed with ``--require-hashes``), not the development environment, whose
test tools change what starts up (an editable install's path finder, click beside httpx). The package is this
checkout's ``ci_oras/`` on ``PYTHONPATH``. ``--this-interpreter`` skips that (no package index needed).

Every row is whole ``ci-oras`` processes (wall; user+system CPU from ``wait4``; peak RSS from GNU time), with a
counting proxy in front of each registry for the request counts. Each row has a baseline measured in the same run,
so a loaded machine shows in both columns: ``python -c "import httpx"`` for start-up-bound rows, raw ``curl GET |
curl PUT`` of the same blobs for the bulk copy, the protocol's request count for graph rows (minimum written down
in bench_promote.py / bench_referrers.py). The 20 ms row puts the proxy's latency in front of the destination; "in
flight" is requests × latency / wall (the proxy adds the latency to each). "Start to first request" is the time
from spawning ``ci-oras discover`` to the proxy receiving its first request (both clocks are this process's
monotonic clock), with the CPU the process had used when it opened its first connection (an audit hook on
``socket.connect``), which a loaded machine changes far less. docker-registry 2.8 has no referrers API, so the API
attach row runs against the tests' spec-faithful registry (``tests/harness/fake_registry.py``), in this process.

The wide-graph rows walk a subject with 1,000 referrers behind the 20 ms proxy, and one with
``--referrers-scale`` referrers on loopback (on docker-registry, and for ``verify`` also on the fake registry
with the referrers API, a thousand entries a page): ``discover`` (the requests it makes are the protocol
minimum: resolving the subject, the API probe, the subject's listing and, since no referrer has a
``sha256-<hex>`` tag, one tag list instead of a listing per referrer) and ``verify`` gates that one
referrer, or one signed signature, satisfies. They are seeded by raw HTTP, sixteen PUTs at a time.

The previous ci-oras column runs the same rows with the package as it was at ``--baseline-ref`` (its
``ci_oras/`` from ``git archive``, first on ``PYTHONPATH``, with the interpreter and dependencies of the
ci-oras column, so only ci-oras's own code differs). By default that is the merge-base of HEAD and ``main``
when HEAD is not on main (a branch is compared with where it started); on main, or with ``--baseline-ref
none``, the column is left out. It covers the start-up-bound rows and the small graph rows, not the long ones.

Both trees are byte-compiled first, as an installed package is: a checkout run with
``PYTHONDONTWRITEBYTECODE`` set would otherwise compile every module from source on every start (about
50 ms), which no installed ci-oras does. Nothing here asserts: timings stay out of the test suite.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_promote import curl_copy, seed_image, seed_referrers  # noqa: E402
from bench_referrers import NOTARY, seed_graph, seed_wide  # noqa: E402
import bench_release  # noqa: E402
import bench_sigstore  # noqa: E402
from harness.fake_registry import FakeRegistry  # noqa: E402
from harness.oci import push_image  # noqa: E402
from harness.proxy import RegistryProxy  # noqa: E402
from harness.registry import RunningRegistry, start_registry  # noqa: E402

#: The interpreter ci-oras and the start-up baseline run with: the runtime environment made in ``main``.
PYTHON = sys.executable
CLI = [PYTHON, "-m", "ci_oras"]
#: Runs ``python -m ci_oras ARGS`` and writes the CPU time used when the first connection opens to stderr.
FIRST_CONNECT = (
    "import sys, time\n"
    "def hook(event, args, seen=[]):\n"
    "    if event == 'socket.connect' and not seen:\n"
    "        seen.append(1)\n"
    "        sys.stderr.write(f'first-connect-cpu {time.process_time()}\\n')\n"
    "sys.addaudithook(hook)\n"
    "import runpy\n"
    "sys.argv[0] = 'ci-oras'\n"
    "runpy.run_module('ci_oras', run_name='__main__', alter_sys=True)\n"
)


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    stdout: str


def timed(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """One process under GNU time: its own wall, CPU and peak RSS.

    The CPU is read from the kernel's accounting of the process (``wait4``), to the microsecond: GNU time
    prints it in hundredths of a second, too coarse for a difference of a few tens of milliseconds (the
    per-request row). It includes GNU time's own share, well under a millisecond.
    """
    with tempfile.NamedTemporaryFile("r") as report, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(["/usr/bin/time", "-o", report.name, "-f", "%M", *argv], stdout=out, stderr=err,
                                   text=True, cwd=cwd, env=env)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise SystemExit(f"{' '.join(argv)} failed:\n{err.read()}")
        rss = report.read().split()[-1]
        return Run(wall, usage.ru_utime + usage.ru_stime, int(rss) / 1024, out.read())


@dataclass
class Tree:
    """One ci-oras to measure: this checkout, or ``ref``'s ``ci_oras/`` on ``PYTHONPATH``."""

    label: str
    env: dict[str, str]


def runtime_python(work: Path) -> str:
    """A virtual environment with the locked runtime dependencies only, as the wrappers install them."""
    venv = work / "runtime-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--require-hashes",
                    "-r", str(ROOT / "requirements" / "runtime.lock")], check=True)
    return python


def compile_package(root: Path) -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "ci_oras")], check=True)


def default_baseline_ref() -> str | None:
    """The merge-base of HEAD and main, unless HEAD is on main (then there is nothing to compare with)."""
    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    base, head = git("merge-base", "HEAD", "main"), git("rev-parse", "HEAD")
    return base if base and base != head else None


def baseline_tree(ref: str, work: Path) -> Tree:
    """``ref``'s package, extracted (no worktree to clean up in the repository) and byte-compiled."""
    target = work / "baseline"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "ci_oras"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    compile_package(target)
    short = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True,
                           check=True).stdout.strip()
    return Tree(f"previous ci-oras ({short})", {**os.environ, "PYTHONPATH": str(target)})


def first_request(argv: list[str], proxy: RegistryProxy, tree: Tree, cwd: Path) -> tuple[float, float]:
    """Seconds from spawning ``ci-oras ARGV`` to its first request at ``proxy``, and its CPU seconds by then."""
    proxy.clear()
    started = time.monotonic()
    done = subprocess.run([PYTHON, "-c", FIRST_CONNECT, *argv], capture_output=True, text=True,
                          env=tree.env, cwd=cwd)
    if done.returncode or not proxy.requests:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    cpu = next(float(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("first-connect-cpu"))
    return proxy.requests[0].time - started, cpu


def median(runs: list[Run]) -> Run:
    runs = sorted(runs, key=lambda r: r.wall)
    return runs[len(runs) // 2]


@dataclass
class Row:
    case: str
    ours: str
    baseline: str
    ratio: str
    target: str
    previous: str = "—"


def release_rows(work: Path, env: dict[str, str], source: RunningRegistry, far: RegistryProxy) -> list[Row]:
    """issue 20's rows: a release of 50 images 20 ms away, one job against a loop of promote, four shards
    against one job, and the commit's requests (``bench_release.py``)."""
    started = time.perf_counter()
    bench_release.seed(source)
    print(f"seeded the release ({bench_release.IMAGES} images) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    figures = bench_release.measure(work, CLI, env, source, far)
    what = f"{bench_release.IMAGES} images (4 MiB layer, 5 referrers each) 20 ms away"
    return [
        Row(f"release of {what}: plan, copy, commit in one job", f"{figures['one-job']:.1f} s",
            f"{figures['loop']:.1f} s (a loop of ci-oras promote)", f"{figures['one-job'] / figures['loop']:.2f}×",
            "≤ 0.25× the loop"),
        Row(f"release of {what}: 4 shards copied by 4 concurrent processes",
            f"{figures['four-shards']:.1f} s (cores {figures['copy-busy-4']:.0%} busy during the copies, "
            f"{figures['copy-busy-1']:.0%} with one)",
            f"{figures['one-job']:.1f} s (one job)", f"{figures['four-shards'] / figures['one-job']:.2f}×",
            "≤ 0.4× one job"),
        Row(f"release commit of {bench_release.IMAGES} images: requests per image besides the tag PUTs",
            f"{figures['commit-requests-1']:.2f} (one shard), {figures['commit-requests-4']:.2f} (four)", "—", "—",
            "≤ 2"),
    ]


def wide_rows(scale: int, repeat: Callable[..., tuple[Run, int]], base: str, baseline: Run,
              a: RunningRegistry, b: RunningRegistry, api: FakeRegistry, pa: RegistryProxy, slow: RegistryProxy,
              papi: RegistryProxy) -> list[Row]:
    """discover and verify of a subject with 1,000 referrers 20 ms away and ``scale`` referrers on loopback.

    The referrers are signatures (one config and one layer blob shared, distinct creation times, the newest
    listed last), pushed by raw HTTP 16 at a time. The chain graph gives every tenth signature, and the newest,
    a signature of its own: the newest-first candidate of ``signature>signature`` is one of them.
    """
    started = time.perf_counter()
    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=32)) as client:
        seed_wide(client, b.url, "bench/wide1000", 1000)
        seed_wide(client, a.url, f"bench/wide{scale}", scale)
        seed_wide(client, api.url, f"bench/wide{scale}", scale, fallback=False)
        seed_wide(client, a.url, f"bench/chain{scale}", scale, signed=set(range(0, scale, 10)) | {scale - 1})
    print(f"seeded the wide graphs ({scale} referrers) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    rows: list[Row] = []

    def far(run: Run, count: int) -> str:
        return (f"{run.wall:.2f} s, {count} requests, {count * slow.latency / run.wall:.1f} in flight on average, "
                f"{run.cpu:.2f} s CPU")

    def near(run: Run, count: int) -> str:
        return f"{run.wall:.2f} s, {count} requests, {run.cpu:.2f} s CPU, {run.rss_mib:.0f} MiB RSS"

    def serial(run: Run, count: int) -> tuple[str, str]:
        return f"{count * slow.latency:.2f} s if serial", f"{run.wall / (count * slow.latency):.2f}×"

    def cli(*argv: str) -> Callable[[int], list[str]]:
        return lambda _n: CLI + list(argv)

    run, count = repeat(cli("discover", f"{slow.host}/bench/wide1000:v1", "-O", "json"), (slow,))
    rows.append(Row("discover 1,000 referrers, 20 ms away", far(run, count), *serial(run, count),
                    "≤ 2.5 s (oras 1.3.3: 64 s)"))
    run, count = repeat(cli("discover", f"{pa.host}/bench/wide{scale}:v1", "-O", "json"), (pa,))
    rows.append(Row(f"discover {scale:,} referrers, loopback", near(run, count), base,
                    f"{run.wall / baseline.wall:.0f}×", "≤ 10 s, ≤ 120 MiB RSS"))
    run, count = repeat(cli("verify", f"{slow.host}/bench/wide1000:v1", "--require", NOTARY), (slow,))
    rows.append(Row("verify --require T, 1 of 1,000 referrers is enough, 20 ms away", far(run, count),
                    *serial(run, count), "≤ 0.4 s, ≤ 6 requests"))
    for label, proxy in (("tag schema", pa), ("referrers API", papi)):
        run, count = repeat(cli("verify", f"{proxy.host}/bench/wide{scale}:v1", "--require", "signature"), (proxy,))
        rows.append(Row(f"verify --require signature, {scale:,} referrers, loopback, {label}", near(run, count),
                        base, f"{run.wall / baseline.wall:.0f}×", "≤ 1 s"))
    run, count = repeat(cli("verify", f"{pa.host}/bench/chain{scale}:v1", "--require", "signature>signature"),
                        (pa,))
    rows.append(Row(f"verify --require 'signature>signature', {scale:,} referrers (every 10th and the newest "
                    "signed), loopback, tag schema", near(run, count), base, f"{run.wall / baseline.wall:.0f}×",
                    "≤ 2 s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image-mib", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md")
    parser.add_argument("--referrers-scale", type=int, default=10_000,
                        help="referrers of the subject in the large discover and verify rows (1000 for a quick run)")
    parser.add_argument("--this-interpreter", action="store_true",
                        help="run ci-oras with this interpreter and its packages instead of a runtime environment "
                             "made from requirements/runtime.lock")
    parser.add_argument("--baseline-ref", default="merge-base",
                        help="git ref of the previous ci-oras column; default: the merge-base of HEAD and main "
                             "(left out on main); none: no such column")
    args = parser.parse_args()
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="ci-oras-bench-"))
    global PYTHON, CLI
    if not args.this_interpreter:
        PYTHON = runtime_python(work)
        CLI = [PYTHON, "-m", "ci_oras"]
    compile_package(ROOT)
    # Every ci-oras process starts in ``work``, so neither tree is shadowed by a ``ci_oras/`` in the current
    # directory (``python -m`` puts it first on the path), and names its package explicitly.
    current = Tree("ci-oras", {**os.environ, "PYTHONPATH": str(ROOT)})
    ref = default_baseline_ref() if args.baseline_ref == "merge-base" else (
        None if args.baseline_ref == "none" else args.baseline_ref)
    previous = baseline_tree(ref, work) if ref else None
    a = start_registry(work / "a", "plain")
    b = start_registry(work / "b", "plain")
    pa, pb = RegistryProxy(a), RegistryProxy(b)
    slow = RegistryProxy(b)
    slow.latency = 0.020
    # docker-registry 2.8 has no referrers API: the spec-faithful registry of the tests stands in (it runs
    # in this process, so its own CPU is not in the ci-oras column).
    api = FakeRegistry().start()
    # The wide referrers-API graph: listed a thousand entries a page, so its listing is a chain of pages.
    wide_api = FakeRegistry(page_size=1000)
    papi = RegistryProxy(wide_api)

    def repeat(make: Callable[[int], list[str]], proxies: tuple[RegistryProxy, ...] = (),
               cwd: Path | None = None, tree: Tree | None = None) -> tuple[Run, int]:
        runs, counts = [], []
        for number in range(args.repeat):
            for proxy in proxies:
                proxy.clear()
            runs.append(timed(make(number), cwd or work, (tree or current).env))
            counts.append(sum(len(p.requests) for p in proxies))
        return median(runs), int(statistics.median(counts)) if counts else 0

    def compared(make: Callable[[int], list[str]], proxies: tuple[RegistryProxy, ...] = (),
                 cwd: Path | None = None, *, show: Callable[[Run, int], str]) -> str:
        """The previous ci-oras on the same case, shown like ours; "—" without a baseline ref."""
        if previous is None:
            return "—"
        return show(*repeat(make, proxies, cwd, previous))

    def startup(run: Run, _count: int = 0) -> str:
        return f"{run.wall * 1000:.0f} ms, {run.cpu * 1000:.0f} ms CPU"

    def graph(run: Run, count: int) -> str:
        return f"{run.wall:.2f} s, {count} requests, {run.cpu:.2f} s CPU"

    try:
        baseline = median([timed([PYTHON, "-c", "import httpx"]) for _ in range(args.repeat)])
        base = f"{baseline.wall * 1000:.0f} ms, {baseline.cpu * 1000:.0f} ms CPU (import httpx)"
        for label, argv, target in (("ci-oras --version", ["--version"], "≤ 50 ms"),
                                    ("ci-oras --help", ["--help"], "≤ 120 ms"),
                                    ("ci-oras discover --help", ["discover", "--help"], "≤ 150 ms")):
            def command(_n: int, argv: list[str] = argv) -> list[str]:
                return CLI + argv

            run, _ = repeat(command)
            rows.append(Row(label, startup(run), base, f"{run.wall / baseline.wall:.2f}×", target,
                            compared(command, show=startup)))

        with httpx.Client(timeout=120) as client:
            push_image(client, a.url, "bench/attach", tag="v1")
            push_image(client, api.url, "bench/attach", tag="v1")
            seed_graph(client, a.url, "bench/discover", 50)  # 50 referrers with one each: 100 referrers
            for width in (20, 100):  # the per-request CPU row: listed by the API, one listing per referrer
                seed_wide(client, api.url, f"bench/api{width}", width, artifact_type="application/vnd.bench",
                          fallback=False)
            seed_referrers(client, a.url, "bench/ref20", 20)
            seed_referrers(client, a.url, "bench/ref200", 200)
            seed_referrers(client, a.url, "bench/ref100", 100)

        probe = ["discover", f"{pa.host}/bench/attach:v1", "-O", "json"]

        def first_requests(tree: Tree) -> tuple[float, str]:
            """The median wall to the first request, and it shown with the CPU used by the first connection."""
            measured = sorted(first_request(probe, pa, tree, work) for _ in range(args.repeat))
            wall, cpu = measured[len(measured) // 2]
            return wall, f"{wall * 1000:.0f} ms, {cpu * 1000:.0f} ms CPU by its first connection"

        wall, shown = first_requests(current)
        rows.append(Row("start to first request of a network command (discover)", shown, base,
                        f"{wall / baseline.wall:.2f}×", "≤ 150 ms",
                        first_requests(previous)[1] if previous else "—"))

        def attach(number: int, host: str = pa.host, repo: str = "bench/attach") -> list[str]:
            (work / f"sig{number}.json").write_text(f'{{"signature": "bench {number} {time.time_ns()}"}}\n')
            return CLI + ["attach", f"{host}/{repo}:v1", f"sig{number}.json", "--artifact-type",
                          "signature/example"]

        run, count = repeat(attach, (pa,), cwd=work)
        rows.append(Row("attach 1 file, tag-schema registry", graph(run, count), base,
                        f"{run.wall / baseline.wall:.1f}×", "≤ 0.25 s, ≤ 11 requests",
                        compared(lambda n: attach(50 + n), (pa,), work, show=graph)))

        def attach_api(number: int) -> list[str]:
            return attach(200 + number, api.host)

        def timing(run: Run, _count: int) -> str:
            return f"{run.wall:.2f} s, {run.cpu:.2f} s CPU"

        run, _ = repeat(attach_api)
        rows.append(Row("attach 1 file, referrers-API registry", timing(run, 0), base,
                        f"{run.wall / baseline.wall:.1f}×", "≤ 0.20 s",
                        compared(lambda n: attach_api(50 + n), show=timing)))

        def discover(_n: int) -> list[str]:
            return CLI + ["discover", f"{pa.host}/bench/discover:v1", "-O", "json"]

        run, count = repeat(discover, (pa,))
        rows.append(Row("discover 100 referrers", graph(run, count), base, f"{run.wall / baseline.wall:.1f}×",
                        "≤ 0.35 s", compared(discover, (pa,), show=graph)))

        def discover_api(width: int) -> Callable[[int], list[str]]:
            return lambda _n: CLI + ["discover", f"{api.host}/bench/api{width}:v1", "-O", "json"]

        def per_request(tree: Tree | None) -> str:
            """CPU of discover over 100 referrers less that over 20, per request more (80 listings)."""
            small, _ = repeat(discover_api(20), tree=tree)
            large, _ = repeat(discover_api(100), tree=tree)
            return (f"{(large.cpu - small.cpu) / 80 * 1000:.2f} ms ({large.cpu * 1000:.0f} − "
                    f"{small.cpu * 1000:.0f} ms CPU, ÷ 80); 100: {large.wall:.2f} s wall")

        rows.append(Row("CPU per request after start-up (discover 100 vs 20 referrers, referrers-API registry)",
                        per_request(None), "—", "—", "≤ 0.5 ms; 100: ≤ 0.20 s wall",
                        per_request(previous) if previous is not None else "—"))

        # Sigstore: the same gate on 1 and on 20 keyless signature bundles, with an identity (each bundle
        # verified by sigstore-python) and without (counted by type): what loading the verifier costs once, and
        # what each bundle costs after it.
        sigstore = bench_sigstore.local_instance(work)
        with httpx.Client(timeout=120) as client:
            for count in (1, 20):
                bench_sigstore.seed_bundles(client, api.url, f"bench/sigstore{count}", count, sigstore)

        def gate(count: int, identity: bool) -> Callable[[int], list[str]]:
            flags = ["--certificate-identity", bench_sigstore.IDENTITY, "--certificate-oidc-issuer",
                     bench_sigstore.ISSUER, "--trusted-root", str(sigstore.trusted_root)] if identity else []
            return lambda _n: CLI + ["verify", f"{api.host}/bench/sigstore{count}:v1", "-r",
                                     f"signature*{count}", "-O", "json", *flags]

        counted, _ = repeat(gate(20, False))
        one, _ = repeat(gate(1, True))
        twenty, _ = repeat(gate(20, True))
        rows.append(Row("verify 20 Sigstore bundles with an identity (sigstore-python), referrers-API registry",
                        f"{twenty.wall:.2f} s, {twenty.cpu:.2f} s CPU; per bundle "
                        f"{(twenty.cpu - one.cpu) / 19 * 1000:.1f} ms CPU; loading the verifier "
                        f"{(one.cpu - counted.cpu) * 1000:.0f} ms CPU once",
                        f"{counted.wall:.2f} s, {counted.cpu:.2f} s CPU counted by type", "—",
                        "(measured)", "—"))

        for referrers, target in ((20, "≤ 0.45 s"), (200, "≤ 2.2 s, ≤ 1050 requests, ≤ 1.0 s CPU")):
            def promote(n: int, r: int = referrers) -> list[str]:
                return CLI + ["promote", f"{pa.host}/bench/ref{r}:v1",
                              f"{pa.host}/bench/ref{r}-copy{n}-{time.time_ns()}:v1"]

            run, count = repeat(promote, (pa,))
            rows.append(Row(f"promote subject + {referrers} referrers, same registry", graph(run, count), base,
                            f"{run.wall / baseline.wall:.1f}×", target,
                            compared(promote, (pa,), show=graph) if referrers <= 20 else "—"))

        run, count = repeat(lambda n: CLI + ["promote", f"{a.host}/bench/ref100:v1",
                                             f"{slow.host}/bench/ref100-{n}-{time.time_ns()}:v1"], (slow,))
        in_flight = count * slow.latency / run.wall
        rows.append(Row("promote subject + 100 referrers to a registry 20 ms away",
                        f"{run.wall:.2f} s, {count} requests to it, {in_flight:.1f} in flight on average",
                        f"{count * slow.latency:.2f} s if serial", f"{run.wall / (count * slow.latency):.2f}×",
                        "≤ 2.5 s"))

        rows.extend(wide_rows(args.referrers_scale, repeat, base, baseline, a, b, wide_api, pa, slow, papi))

        processes = 20

        def listed_count(repo: str) -> int:
            done = subprocess.run(CLI + ["discover", f"{a.host}/{repo}:v1", "-O", "json"],
                                  capture_output=True, text=True, check=True, cwd=work, env=current.env)
            return int(json.loads(done.stdout)["count"])

        # Straight to the registry: the counting proxy runs in this process and would put its own CPU and
        # queueing into every read-to-write cycle the writers measure (and so into their watch windows). Each
        # round on a new image, as a release's parallel jobs meet it: on one image the later rounds would start
        # from an index of 20 or 40 entries more, larger to read and write (distribution checks each entry of
        # an index it is given), which is another case.
        walls: list[float] = []
        cpus: list[float] = []
        kept = 0
        rounds = min(args.repeat, 3)
        for round_number in range(rounds):
            repo = f"bench/parallel{round_number}"
            with httpx.Client(timeout=60) as client:
                push_image(client, a.url, repo, tag="v1")
            argvs = [attach(100 + 20 * round_number + number, a.host, repo) for number in range(processes)]
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=processes) as pool:
                runs = list(pool.map(lambda argv: timed(argv, work, current.env), argvs))
            walls.append(time.perf_counter() - started)
            cpus.extend(r.cpu for r in runs)
            kept += listed_count(repo)
        wall = statistics.median(walls)
        rows.append(Row(f"{processes} attach processes released at once, one new image",
                        f"{wall:.1f} s wall (median of {rounds} rounds: "
                        f"{', '.join(f'{w:.1f}' for w in walls)}), {statistics.mean(cpus):.2f} s CPU per process, "
                        f"{kept}/{processes * rounds} kept",
                        base, f"{wall / baseline.wall:.0f}×", "≤ 3 s, 20/20 kept"))

        total = args.image_mib << 20
        with httpx.Client(timeout=600) as client:
            blobs = seed_image(client, a.url, "bench/big", total, 8, work)
        # Rounds alternate ci-oras and curl, each into a repository of its own, so both meet the same state of
        # the destination registry; the medians are compared.
        copies, curls = [], []
        for round_number in range(min(args.repeat, 3)):
            copies.append(timed(CLI + ["promote", f"{a.host}/bench/big:v1", f"{b.host}/bench/big{round_number}:v1"],
                                work, current.env))
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=4) as pool:
                target = f"bench/curl{round_number}"
                list(pool.map(functools.partial(curl_copy, a.url, b.url, "bench/big", target), blobs))
            curls.append(time.perf_counter() - started)
        run, curl = median(copies), statistics.median(curls)
        rows.append(Row(f"promote {args.image_mib} MiB (8 layers) across registries",
                        f"{total / run.wall / 1e6:.0f} MB/s, {run.rss_mib:.0f} MiB RSS, {run.cpu:.2f} s CPU",
                        f"{total / curl / 1e6:.0f} MB/s (curl GET \\| curl PUT)", f"{curl / run.wall:.2f}× curl",
                        "≥ 1.0× curl, ≤ 50 MiB RSS, ≤ 1.3 s CPU"))
        rows.extend(release_rows(work, current.env, a, slow))
    finally:
        for proxy in (pa, pb, slow, papi):
            proxy.stop()
        api.stop()
        wide_api.stop()
        a.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    lines = [
        "# Benchmarks: every case against its same-run baseline",
        "",
        f"Written by `make bench` ({' '.join(sys.argv[1:]) or 'defaults'}); {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} when it finished; median of {args.repeat} (of "
        f"{min(args.repeat, 3)} for the parallel attaches and the 1 GiB copy). ci-oras ran "
        + ("with the benchmark's own interpreter" if args.this_interpreter else
           "in a virtual environment holding only requirements/runtime.lock, as the wrappers install it")
        + ". Local docker-registry 2.8 processes; the baselines are measured in the same run"
        + (f"; {previous.label} is that commit's package with the same interpreter and dependencies." if previous
           else "."),
        "",
        "| case | ci-oras | baseline (same run) | ratio | target | "
        f"{previous.label if previous else 'previous ci-oras'} |",
        "|---|---|---|---|---|---|",
        *(f"| {r.case} | {r.ours} | {r.baseline} | {r.ratio} | {r.target} | {r.previous} |" for r in rows),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
