"""Every network step × every kind of authentication × concurrency, against real docker-registry processes.

Why this exists: graph steps were once tested only against anonymous registries, and promoting into any
password-protected registry failed every time (parallel first requests raced the shared per-host auth state).
So every step runs here against an anonymous registry, a Basic (htpasswd) one and a Bearer (token) one, with
credentials given the way users give them (``--username``/``--password-stdin``; a docker config found
through ``DOCKER_CONFIG`` when each end of a promotion needs its own), at concurrency 1 and 8 (and 32 under
``make stress``), and each case checks what the step did (digests listed, bytes pulled back, the whole graph at
the destination), not only its exit code.

What "concurrency" means per step:

- ``discover`` and ``promote`` take ``--concurrency N``: parallel listings / blob copies inside one run, on
  one shared registry session. That is where the per-host auth state is raced, so they run with the flag.
- ``push``, ``pull``, ``attach``, ``attach-sbom``, ``attach-signature``, ``verify``, ``delete --graph`` and
  ``tags`` have no such flag: the axis is N runs of the step at the same time against the same registry, as N
  parallel CI jobs do. Concurrent attaches to one subject race the registry's referrers fallback index (the
  three attach steps take turns among the N runs, as the SBOM, signing and scan jobs of one pipeline do; at
  N = 1 each attaches once, to a subject of its own); concurrent ``delete --graph`` runs each delete their own
  graph from one repository. ``verify`` and ``delete --graph`` also list referrers on their own fixed pool.

Each case runs the three kinds of registry side by side (one batch of runs per phase across the three
registries), so the matrix costs a third of the wall time the registries' write-then-watch waits would add
one after another; an assertion message names the kinds that failed. The CLI runs in this process
(``harness.cli.invoke_cli_many``): a subprocess would add only its start-up, hundreds of times. Two cases run
the real process to keep that boundary honest (the password on stdin, the docker config found through the
environment). ``make test`` runs concurrency 1 and 8; ``make stress`` runs this module five times in a row on
fresh registries, at 1, 8 and 32.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import RunningRegistry, start_registry
from harness.cli import CliResult, clean_env, invoke_cli, invoke_cli_many, run_cli
from harness.oci import OCI_INDEX, OCI_MANIFEST, push_artifact, push_blob, push_fallback_index, push_layer
from harness.token_issuer import ResourceAccess
from samples.make_samples import Chain, cyclonedx_json, make_chain, notary_jws

from ci_oras.errors import EXIT_AUTH, EXIT_NOT_FOUND, EXIT_VERIFICATION_FAILED

AUTH_KINDS = ("anonymous", "basic", "bearer")
#: ``make test`` runs 1 and 8 (the steps' default concurrency); ``make stress`` adds 32 through
#: CI_ORAS_AUTH_MATRIX_CONCURRENCY=1,8,32, five runs in a row: 32 runs at once on three registries cost some
#: 90 s of CPU a run, two fifths of what ``make test`` may spend on all integration tests of a 2-core machine.
CONCURRENCY = tuple(int(n) for n in os.environ.get("CI_ORAS_AUTH_MATRIX_CONCURRENCY", "1,8").split(","))

SBOM_TYPE = "application/vnd.cyclonedx+json"
SIGNATURE_TYPE = "application/vnd.cncf.notary.signature"
REPORT_TYPE = "application/vnd.example.report.v1"
ATTACH_STEPS = ("attach", "attach-sbom", "attach-signature")
STEP_TYPES = {"attach": REPORT_TYPE, "attach-sbom": SBOM_TYPE, "attach-signature": SIGNATURE_TYPE}

#: The second Bearer registry's account: a promotion into it cannot get by with the source's.
OTHER_USERNAME = "promoter"
OTHER_PASSWORD = "another-password-entirely"

concurrency_levels = pytest.mark.parametrize("concurrency", CONCURRENCY, ids=[f"c{n}" for n in CONCURRENCY])


# --------------------------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Endpoint:
    """A registry and the login flags a user passes for it (none when anonymous)."""

    kind: str
    registry: RunningRegistry

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def login(self) -> tuple[str, ...]:
        if self.registry.username is None:
            return ()
        return ("--username", self.registry.username, "--password-stdin")

    @property
    def stdin(self) -> str | None:
        return None if self.registry.password is None else self.registry.password + "\n"

    def repository(self, name: str) -> str:
        """``HOST/matrix/NAME-<unique>``: mutating cases never share a repository."""
        return f"{self.host}/matrix/{name}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Seed:
    """An image-like subject with a small referrers graph, pushed once per registry and never changed.

    ``edges`` and ``types`` come from what push and attach reported, so ``discover`` is checked against
    them, not against itself.
    """

    repository: str  # HOST/REPO
    subject: str
    files: dict[str, bytes]  # path under the pull directory -> content
    edges: frozenset[tuple[str, str]]
    types: dict[str, str]  # referrer digest -> artifactType
    referrer_files: dict[str, tuple[str, bytes]]  # referrer digest -> (file name, content)
    tags: frozenset[str]


@dataclass
class Matrix:
    """What the module's cases share: the endpoints, a scratch area and a clean environment."""

    endpoints: dict[str, Endpoint]
    other_bearer: Endpoint
    root: Path
    chain: Chain
    env: dict[str, str]

    def scratch(self, name: str) -> Path:
        path = self.root / f"{name}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path


class Cases:
    """The three kinds of registry side by side.

    Each :meth:`phase` is one batch of concurrent runs over every kind still passing; :meth:`check` records a
    kind's failed assertion and drops it from later phases, and :meth:`done` fails the test naming them all.
    """

    def __init__(self, matrix: Matrix, kinds: Sequence[str] = AUTH_KINDS) -> None:
        self.matrix = matrix
        self.alive = list(kinds)
        self.failures: dict[str, str] = {}

    def phase(self, plan: Callable[[str, Endpoint], Sequence[Sequence[str]]], cwd: Path | None = None,
              ) -> dict[str, list[CliResult]]:
        jobs = [(kind, tuple(args))
                for kind in self.alive for args in plan(kind, self.matrix.endpoints[kind])]
        endpoints = [self.matrix.endpoints[kind] for kind, _ in jobs]
        results = invoke_cli_many([[*args, *ep.login] for (_, args), ep in zip(jobs, endpoints)],
                                  env=self.matrix.env, cwd=cwd, stdins=[ep.stdin for ep in endpoints])
        grouped: dict[str, list[CliResult]] = {kind: [] for kind in self.alive}
        for (kind, _), result in zip(jobs, results):
            grouped[kind].append(result)
        return grouped

    def check(self, check: Callable[[str], None]) -> None:
        for kind in list(self.alive):
            try:
                check(kind)
            except AssertionError as exc:
                self.failures[kind] = str(exc).splitlines()[0][:600]
                self.alive.remove(kind)

    def done(self) -> None:
        assert not self.failures, "failed for " + "; ".join(f"{k}: {v}" for k, v in self.failures.items())


def _ok(result: CliResult, what: str) -> Any:
    """The JSON document of a run that must have succeeded."""
    assert result.returncode == 0, f"{what} exited {result.returncode}: {result.stderr.strip()}"
    return result.json()


def _ok_all(results: Sequence[CliResult], what: str) -> list[Any]:
    failures = [(n, r.returncode, r.stderr.strip()) for n, r in enumerate(results) if r.returncode != 0]
    assert not failures, f"{len(failures)} of {len(results)} {what} runs failed, e.g. {failures[0]}"
    return [r.json() for r in results]


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _edges(document: dict[str, Any]) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """(subject, referrer) edges and each referrer's artifactType in a discover JSON document."""
    edges: set[tuple[str, str]] = set()
    types: dict[str, str] = {}

    def visit(node: dict[str, Any]) -> None:
        for referrer in node["referrers"]:
            edges.add((node["digest"], referrer["digest"]))
            types[referrer["digest"]] = referrer.get("artifactType", "")
            visit(referrer)

    visit(document)
    return edges, types


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def _sbom(n: int) -> bytes:
    return cyclonedx_json("1.5", timestamp=f"2024-05-02T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z")


def _docker_config(directory: Path, *accounts: tuple[str, str, str]) -> dict[str, str]:
    """A docker config with one entry per (host, username, password); returns the env that points at it."""
    auths = {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
             for host, user, password in accounts}
    (directory / "docker").mkdir(parents=True, exist_ok=True)
    (directory / "docker" / "config.json").write_text(json.dumps({"auths": auths}))
    return clean_env(directory, {"DOCKER_CONFIG": str(directory / "docker")})


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def matrix(registry_plain: RunningRegistry, registry_htpasswd: RunningRegistry,
           registry_token: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    # Started here rather than as a session fixture: only this module needs an account that differs.
    other = start_registry(tmp_path_factory.mktemp("registry-token-other"), "token",
                           username=OTHER_USERNAME, password=OTHER_PASSWORD)
    root = tmp_path_factory.mktemp("matrix")
    endpoints = {"anonymous": Endpoint("anonymous", registry_plain),
                 "basic": Endpoint("basic", registry_htpasswd),
                 "bearer": Endpoint("bearer", registry_token)}
    try:
        yield Matrix(endpoints, Endpoint("bearer", other), root, make_chain(), clean_env(root / "home"))
    finally:
        other.stop()


@pytest.fixture(scope="module")
def seeds(matrix: Matrix) -> dict[str, Seed]:
    """On each registry, with ci-oras itself: a subject of three layers (a binary, a text file, a directory),
    an SBOM, a signature and a report attached to it, and a signature of the SBOM (depth 2)."""
    work = matrix.scratch("seed")
    files = {
        "layer.bin": os.urandom(48_000),
        "notes.txt": b"release notes\n",
        "site/index.html": b"<p>ci-oras</p>\n",
        "site/assets/app.js": b"console.log('ci-oras');\n" * 20,
    }
    for name, data in {**files, "report.txt": b"no findings\n", "sbom.cdx.json": _sbom(0)}.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    cases = Cases(matrix)
    pushed = cases.phase(lambda kind, ep: [("push", f"{ep.host}/matrix/seed:v1", "layer.bin", "notes.txt",
                                            "site", "-O", "json")], cwd=work)
    pushed_docs = {kind: _ok(results[0], f"{kind} seed push") for kind, results in pushed.items()}
    subjects = {kind: doc["digest"] for kind, doc in pushed_docs.items()}
    for kind, doc in pushed_docs.items():  # a Notary signature names the manifest it signs
        (work / f"image-{kind}.sig").write_bytes(notary_jws(matrix.chain, target=doc))
    attached = cases.phase(lambda kind, ep: [
        ("attach-sbom", f"{ep.host}/matrix/seed@{subjects[kind]}", "sbom.cdx.json", "-O", "json"),
        ("attach-signature", f"{ep.host}/matrix/seed@{subjects[kind]}", f"image-{kind}.sig", "-O", "json"),
        ("attach", f"{ep.host}/matrix/seed@{subjects[kind]}", "report.txt", "--artifact-type", REPORT_TYPE,
         "-O", "json")], cwd=work)
    documents = {kind: _ok_all(results, f"{kind} seed attach") for kind, results in attached.items()}
    for kind, docs in documents.items():
        (work / f"sbom-{kind}.sig").write_bytes(notary_jws(matrix.chain, target=docs[0]))
    signed = cases.phase(lambda kind, ep: [
        ("attach-signature", f"{ep.host}/matrix/seed@{documents[kind][0]['digest']}", f"sbom-{kind}.sig",
         "-O", "json"),
    ], cwd=work)
    made: dict[str, Seed] = {}
    for kind in AUTH_KINDS:
        sbom, signature, report = documents[kind]
        sbom_signature = _ok(signed[kind][0], f"{kind} seed signature of the SBOM")
        subject = subjects[kind]
        named = {"sbom.cdx.json": sbom, f"image-{kind}.sig": signature, "report.txt": report,
                 f"sbom-{kind}.sig": sbom_signature}
        made[kind] = Seed(
            repository=f"{matrix.endpoints[kind].host}/matrix/seed", subject=subject, files=files,
            edges=frozenset({(subject, sbom["digest"]), (subject, signature["digest"]),
                             (subject, report["digest"]), (sbom["digest"], sbom_signature["digest"])}),
            types={doc["digest"]: doc["artifactType"] for doc in named.values()},
            referrer_files={doc["digest"]: (name, (work / name).read_bytes()) for name, doc in named.items()},
            tags=frozenset({"v1", f"sha256-{_hex(subject)}", f"sha256-{_hex(sbom['digest'])}"}),
        )
        assert sorted(made[kind].types.values()) == sorted(
            [SBOM_TYPE, SIGNATURE_TYPE, REPORT_TYPE, SIGNATURE_TYPE])
    return made


@pytest.fixture(scope="module")
def layout(matrix: Matrix, seeds: dict[str, Seed]) -> Path:
    """The anonymous registry's seed graph, promoted into an OCI layout."""
    path = matrix.scratch("layout") / "oci"
    _ok(invoke_cli("promote", f"{seeds['anonymous'].repository}:v1", f"oci:{path}:v1", "-O", "json",
                   env=matrix.env), "promote into a layout")
    return path


def graph_checks(reference: str, seed: Seed, work: Path, login: Sequence[str] = ()) -> list[tuple[str, ...]]:
    """The runs that read back a whole graph: discover, then a pull of every node."""
    repository = reference.rsplit(":", 1)[0]
    return [("discover", reference, "-O", "json", *login),
            *(("pull", f"{repository}@{digest}", "-o", str(work / _hex(digest)[:12]), "-O", "json", *login)
              for digest in (seed.subject, *seed.types))]


def assert_whole_graph(results: Sequence[CliResult], seed: Seed, work: Path) -> None:
    """What :func:`graph_checks` read: exactly the seed's graph, every node's files byte-identical (so every
    blob arrived, not only the manifests)."""
    document = _ok(results[0], "discover")
    assert document["digest"] == seed.subject, "the destination tag names another manifest"
    assert _edges(document) == (set(seed.edges), seed.types), "the destination lists another graph"
    pulled = _ok_all(results[1:], "pull")
    assert [doc["digest"] for doc in pulled] == [seed.subject, *seed.types]
    assert _tree(work / _hex(seed.subject)[:12]) == seed.files, "subject files differ"
    for digest, (name, content) in seed.referrer_files.items():
        assert _tree(work / _hex(digest)[:12]) == {name: content}, f"files of referrer {digest} differ"


# ----------------------------------------------------------------------------------------- without ci-oras


def _authorized_client(endpoint: Endpoint, repository: str) -> httpx.Client:
    """A plain HTTP client that may push to ``repository``: seeding without ci-oras, as another tool would."""
    registry = endpoint.registry
    if registry.issuer is not None:
        token = registry.issuer.make_token([ResourceAccess("repository", repository, ("pull", "push"))])
        return httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"})
    if registry.username is not None:
        return httpx.Client(timeout=30, auth=(registry.username, str(registry.password)))
    return httpx.Client(timeout=30)


def _seed_graphs(endpoint: Endpoint, repository: str, count: int) -> list[list[str]]:
    """``count`` graphs (subject tagged ``sN``, SBOM, signature, signature of the SBOM) written with plain
    HTTP calls, with the tag-schema indexes oras writes; returns each graph's digests, the subject's first."""
    name = repository.split("/", 1)[1]
    url = endpoint.registry.url

    def one(client: httpx.Client, n: int) -> list[str]:
        def artifact(artifact_type: str, layer: bytes, **where: Any) -> dict[str, Any]:
            return push_artifact(client, url, name, [push_layer(client, url, name, layer)],
                                 artifact_type=artifact_type, push_config=False, **where)

        subject = artifact(REPORT_TYPE, f"subject {n} {uuid.uuid4()}".encode(), reference=f"s{n}")
        sbom = artifact(SBOM_TYPE, _sbom(n), subject=subject)
        signature = artifact(SIGNATURE_TYPE, f"signature {n}".encode(), subject=subject)
        sbom_signature = artifact(SIGNATURE_TYPE, f"sbom signature {n}".encode(), subject=sbom)
        push_fallback_index(client, url, name, subject["digest"], [sbom, signature])
        push_fallback_index(client, url, name, sbom["digest"], [sbom_signature])
        return [subject["digest"], sbom["digest"], signature["digest"], sbom_signature["digest"]]

    with _authorized_client(endpoint, name) as client, ThreadPoolExecutor(max_workers=8) as pool:
        # Once, first: distribution can fail a manifest PUT while the same blob is being uploaded in parallel.
        push_blob(client, url, name, b"{}")
        return list(pool.map(lambda n: one(client, n), range(count)))


def _stored(endpoint: Endpoint, repository: str, references: Sequence[str]) -> dict[str, str]:
    """Which of ``references`` the registry serves, and their digests, from HEAD requests the registry
    answers itself (no ci-oras involved in the check)."""
    name = repository.split("/", 1)[1]
    with _authorized_client(endpoint, name) as client, ThreadPoolExecutor(max_workers=8) as pool:
        heads = dict(zip(references, pool.map(
            lambda ref: client.head(f"{endpoint.registry.url}/v2/{name}/manifests/{ref}",
                                    headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}), references)))
    assert all(r.status_code in (200, 404) for r in heads.values()), {
        ref: r.status_code for ref, r in heads.items()}
    return {ref: r.headers["Docker-Content-Digest"] for ref, r in heads.items() if r.status_code == 200}


# --------------------------------------------------------------------------------------------- the steps


def _push_each(cases: Cases, work: Path, name: str,
               count: int) -> tuple[dict[str, str], dict[str, list[CliResult]]]:
    """Write ``count`` distinct files per registry and push them all at once, each to its own tag ``tN`` of a
    new repository there; returns the repositories and the push results."""
    repositories = {kind: cases.matrix.endpoints[kind].repository(name) for kind in cases.alive}
    for kind in cases.alive:
        for n in range(count):
            (work / f"{name}-{kind}-{n}.txt").write_text(f"{name} {n} {uuid.uuid4()}\n")
    pushed = cases.phase(lambda kind, ep: [("push", f"{repositories[kind]}:t{n}", f"{name}-{kind}-{n}.txt",
                                            "-O", "json") for n in range(count)], cwd=work)
    return repositories, pushed


@concurrency_levels
def test_push(matrix: Matrix, concurrency: int) -> None:
    """N pushes to one repository at once: every tag listed, each naming what its push reported, and a
    pushed file pulls back byte-identical."""
    work = matrix.scratch("push")
    cases = Cases(matrix)
    repositories, pushed = _push_each(cases, work, "push", concurrency)
    documents: dict[str, list[Any]] = {}

    def pushes_succeed(kind: str) -> None:
        documents[kind] = _ok_all(pushed[kind], "push")
        assert len({doc["digest"] for doc in documents[kind]}) == concurrency

    cases.check(pushes_succeed)
    read = cases.phase(lambda kind, ep: [
        ("tags", repositories[kind], "-O", "json"),
        ("pull", f"{repositories[kind]}:t{concurrency - 1}", "-o", str(work / "out" / kind), "-O", "json")])

    def content_is_there(kind: str) -> None:
        results = read[kind]
        assert sorted(_ok(results[0], "tags")["tags"]) == sorted(f"t{n}" for n in range(concurrency))
        tags = [f"t{n}" for n in range(concurrency)]
        assert _stored(cases.matrix.endpoints[kind], repositories[kind], tags) == {
            tag: doc["digest"] for tag, doc in zip(tags, documents[kind])}
        # A manifest PUT succeeds only once its blobs are stored; one pull shows they hold what was pushed.
        _ok(results[-1], "pull")
        name = f"push-{kind}-{concurrency - 1}.txt"
        assert _tree(work / "out" / kind) == {name: (work / name).read_bytes()}

    cases.check(content_is_there)
    cases.done()


@concurrency_levels
def test_pull(matrix: Matrix, seeds: dict[str, Seed], concurrency: int) -> None:
    """N pulls of the seeded subject at once: every copy byte-identical, the directory layer unpacked."""
    work = matrix.scratch("pull")
    cases = Cases(matrix)
    pulled = cases.phase(lambda kind, ep: [("pull", f"{seeds[kind].repository}:v1",
                                            "-o", str(work / kind / str(n)), "-O", "json")
                                           for n in range(concurrency)])

    def identical(kind: str) -> None:
        assert {doc["digest"] for doc in _ok_all(pulled[kind], "pull")} == {seeds[kind].subject}
        for n in range(concurrency):
            assert _tree(work / kind / str(n)) == seeds[kind].files, f"pull {n} differs"

    cases.check(identical)
    cases.done()


@concurrency_levels
def test_attach(matrix: Matrix, attach_files: Callable[[Path, int], list[tuple[str, str]]],
                concurrency: int) -> None:
    """N attaches to one subject at once (attach, attach-sbom and attach-signature taking turns): none is
    lost from the referrers listing, each listed with its type."""
    work = matrix.scratch("attach")
    jobs = attach_files(work, concurrency)  # (step, file) per run
    # At N = 1 each step attaches once, to a subject of its own; above, all N runs attach to one subject.
    subjects_per_kind = len(ATTACH_STEPS) if concurrency == 1 else 1
    cases = Cases(matrix)
    repositories, pushed = _push_each(cases, work, "subject", subjects_per_kind)
    for kind in cases.alive:  # a Notary signature names the manifest it signs
        targets = [result.json() for result in pushed[kind] if result.returncode == 0]
        for n, (step, name) in enumerate(jobs):
            if step == "attach-signature" and len(targets) == subjects_per_kind:
                (work / name.format(kind=kind)).write_bytes(
                    notary_jws(matrix.chain, target=targets[n % subjects_per_kind]))
    subjects: dict[str, list[str]] = {}
    attached = cases.phase(lambda kind, ep: [
        (step, f"{repositories[kind]}:t{n % subjects_per_kind}", name.format(kind=kind),
         *(("--artifact-type", REPORT_TYPE) if step == "attach" else ()), "-O", "json")
        for n, (step, name) in enumerate(jobs)], cwd=work)
    documents: dict[str, list[Any]] = {}

    def every_attach_succeeds(kind: str) -> None:
        subjects[kind] = [doc["digest"] for doc in _ok_all(pushed[kind], "push")]
        documents[kind] = _ok_all(attached[kind], "attach")
        assert [doc["subject"]["digest"] for doc in documents[kind]] == [
            subjects[kind][n % subjects_per_kind] for n in range(len(jobs))]
        assert [doc["artifactType"] for doc in documents[kind]] == [STEP_TYPES[step] for step, _ in jobs]

    cases.check(every_attach_succeeds)
    listed = cases.phase(lambda kind, ep: [("discover", f"{repositories[kind]}:t{n}", "-O", "json")
                                           for n in range(subjects_per_kind)])

    def none_is_lost(kind: str) -> None:
        edges: set[tuple[str, str]] = set()
        types: dict[str, str] = {}
        for result in listed[kind]:
            found_edges, found_types = _edges(_ok(result, "discover"))
            edges |= found_edges
            types.update(found_types)
        assert edges == {(doc["subject"]["digest"], doc["digest"]) for doc in documents[kind]}, \
            f"{len(documents[kind]) - len(edges)} of {len(documents[kind])} referrers not listed"
        assert types == {doc["digest"]: doc["artifactType"] for doc in documents[kind]}

    cases.check(none_is_lost)
    cases.done()


@pytest.fixture
def attach_files(matrix: Matrix) -> Callable[[Path, int], list[tuple[str, str]]]:
    """Write the files of N attach runs, the three attach steps taking turns (at N = 1, one run of each);
    returns (step, file name) per run."""

    def write(work: Path, count: int) -> list[tuple[str, str]]:
        jobs: list[tuple[str, str]] = []
        for n in range(len(ATTACH_STEPS) if count == 1 else count):
            step = ATTACH_STEPS[n % len(ATTACH_STEPS)]
            name = f"{step}-{n}.json"
            if step == "attach-signature":
                jobs.append((step, f"{step}-{n}-{{kind}}.sig"))  # signed once its subject exists
                continue
            content = {"attach": f'{{"report": {n}, "id": "{uuid.uuid4()}"}}\n'.encode(),
                       "attach-sbom": _sbom(n)}[step]
            (work / name).write_bytes(content)
            jobs.append((step, name))
        return jobs

    return write


@concurrency_levels
def test_discover(matrix: Matrix, seeds: dict[str, Seed], concurrency: int) -> None:
    """discover --concurrency N lists exactly the seeded graph, depth 2 included, by tag and by digest, and
    --artifact-type narrows it."""
    cases = Cases(matrix)
    flags = ("--concurrency", str(concurrency), "-O", "json")
    found = cases.phase(lambda kind, ep: [
        ("discover", f"{seeds[kind].repository}:v1", *flags),
        ("discover", f"{seeds[kind].repository}@{seeds[kind].subject}", *flags),
        ("discover", f"{seeds[kind].repository}:v1", "--artifact-type", SIGNATURE_TYPE, *flags)])

    def exact(kind: str) -> None:
        seed = seeds[kind]
        for result in found[kind][:2]:
            document = _ok(result, "discover")
            assert document["digest"] == seed.subject
            assert _edges(document) == (set(seed.edges), seed.types)
        only, _ = _edges(_ok(found[kind][2], "discover --artifact-type"))
        assert {(s, d) for s, d in only if s == seed.subject} == {
            (s, d) for s, d in seed.edges if s == seed.subject and seed.types[d] == SIGNATURE_TYPE}

    cases.check(exact)
    cases.done()


@concurrency_levels
def test_verify(matrix: Matrix, seeds: dict[str, Seed], concurrency: int) -> None:
    """N gates at once on the seeded graph: those whose requirements hold exit 0, those requiring what was
    never attached exit 1 naming it (at N = 1, one of each, one after the other)."""
    cases = Cases(matrix)
    passing = ("--require", "sbom", "--require", "signature", "--require", "sbom>signature", "-O", "json")
    failing = ("--require", "signature", "--require", "vuln-report", "-O", "json")
    plans: list[list[tuple[str, ...]]] = (
        [[passing if n % 2 == 0 else failing for n in range(concurrency)]] if concurrency > 1
        else [[passing], [failing]])
    for plan in plans:
        gated = cases.phase(lambda kind, ep, plan=plan: [("verify", f"{seeds[kind].repository}:v1", *p)
                                                         for p in plan])

        def gate(kind: str, plan: list[tuple[str, ...]] = plan,
                 gated: dict[str, list[CliResult]] = gated) -> None:
            for spec, result in zip(plan, gated[kind]):
                document = result.json() if result.stdout else {}
                assert document.get("digest") == seeds[kind].subject, result.stderr
                if spec is passing:
                    assert (result.returncode, document["ok"]) == (0, True), result.stderr
                else:
                    assert (result.returncode, document["ok"]) == (EXIT_VERIFICATION_FAILED, False), \
                        result.stderr
                    assert document["missing"] == ["vuln-report"]

        cases.check(gate)
    cases.done()


@concurrency_levels
def test_tags(matrix: Matrix, seeds: dict[str, Seed], concurrency: int) -> None:
    """N listings at once: the tag and both referrers fallback tags; --exclude-digest-tags hides those."""
    cases = Cases(matrix)
    listed = cases.phase(lambda kind, ep: [("tags", seeds[kind].repository, "-O", "json",
                                            *(("--exclude-digest-tags",) if n % 2 else ()))
                                           for n in range(concurrency)])

    def exact(kind: str) -> None:
        for n, document in enumerate(_ok_all(listed[kind], "tags")):
            assert sorted(document["tags"]) == sorted({"v1"} if n % 2 else seeds[kind].tags)

    cases.check(exact)
    cases.done()


@concurrency_levels
def test_delete_graph(matrix: Matrix, concurrency: int) -> None:
    """N ``delete --graph`` at once, each on its own graph in one repository: each deletes exactly its graph,
    and afterwards no tag is listed and no manifest of any graph can be fetched."""
    repositories = {kind: matrix.endpoints[kind].repository("delete") for kind in AUTH_KINDS}
    with ThreadPoolExecutor(max_workers=len(AUTH_KINDS)) as pool:
        graphs = dict(zip(AUTH_KINDS, pool.map(
            lambda kind: _seed_graphs(matrix.endpoints[kind], repositories[kind], concurrency), AUTH_KINDS)))
    cases = Cases(matrix)
    deleted = cases.phase(lambda kind, ep: [("delete", f"{repositories[kind]}:s{n}", "--graph", "-O", "json")
                                            for n in range(concurrency)])

    def each_deletes_its_graph(kind: str) -> None:
        for graph, document in zip(graphs[kind], _ok_all(deleted[kind], "delete --graph")):
            assert {d["digest"] for d in document["deleted"]} == set(graph)

    cases.check(each_deletes_its_graph)
    listed = cases.phase(lambda kind, ep: [("tags", repositories[kind], "-O", "json"),
                                           ("discover", f"{repositories[kind]}@{graphs[kind][-1][0]}",
                                            "-O", "json")])

    def nothing_left(kind: str) -> None:
        tags = listed[kind][0]
        assert tags.returncode in (0, EXIT_NOT_FOUND), tags.stderr
        assert tags.returncode == EXIT_NOT_FOUND or tags.json()["tags"] == [], tags.stdout
        assert listed[kind][1].returncode == EXIT_NOT_FOUND, \
            f"a deleted subject is listed: {listed[kind][1].stdout}"
        every = sorted(d for graph in graphs[kind] for d in graph)
        assert _stored(matrix.endpoints[kind], repositories[kind], every) == {}, "manifests remain"

    cases.check(nothing_left)
    cases.done()


# --------------------------------------------------------------------------------------------- promote


def _promote_and_check(matrix: Matrix, cases: Cases, source: Callable[[str], str],
                       seed: Callable[[str], Seed], concurrency: int, name: str) -> dict[str, Any]:
    """Promote ``source(kind)`` into a new repository of each kind's registry with the login flags for it,
    then read the whole graph back from there."""
    destinations = {kind: f"{matrix.endpoints[kind].repository(name)}:v1" for kind in cases.alive}
    promoted = cases.phase(lambda kind, ep: [("promote", source(kind), destinations[kind],
                                              "--concurrency", str(concurrency), "-O", "json")])
    documents: dict[str, Any] = {}

    def promotes(kind: str) -> None:
        documents[kind] = _ok(promoted[kind][0], "promote")
        assert documents[kind]["digest"] == seed(kind).subject and documents[kind]["tagsWritten"] == ["v1"]
        assert documents[kind]["referrers"] == len(seed(kind).types)

    cases.check(promotes)
    work = matrix.scratch(name)
    read = cases.phase(lambda kind, ep: graph_checks(destinations[kind], seed(kind), work / kind))
    cases.check(lambda kind: assert_whole_graph(read[kind], seed(kind), work / kind))
    return {"destinations": destinations, "documents": documents}


@concurrency_levels
def test_promote_within_registry(matrix: Matrix, seeds: dict[str, Seed], concurrency: int) -> None:
    """promote --concurrency N into another repository of the same registry (blobs mounted, on Bearer with a
    two-scope token): the whole graph arrives, and a re-run copies nothing."""
    cases = Cases(matrix)
    done = _promote_and_check(matrix, cases, lambda kind: f"{seeds[kind].repository}:v1", seeds.__getitem__,
                              concurrency, "within")

    def mounts(kind: str) -> None:
        assert done["documents"][kind]["copied"]["blobs"] == 0, "same-registry promotion uploaded blobs"

    cases.check(mounts)
    again = cases.phase(lambda kind, ep: [("promote", f"{seeds[kind].repository}:v1",
                                           done["destinations"][kind], "--concurrency", str(concurrency),
                                           "-O", "json")])

    def writes_nothing(kind: str) -> None:
        document = _ok(again[kind][0], "promote again")
        assert document["copied"] == {"manifests": 0, "blobs": 0} and document["tagsWritten"] == []

    cases.check(writes_nothing)
    cases.done()


@concurrency_levels
def test_promote_from_anonymous_registry(matrix: Matrix, seeds: dict[str, Seed], concurrency: int) -> None:
    """As reported: an anonymous source, a password-protected destination, the login flags for it."""
    cases = Cases(matrix, ("basic", "bearer"))
    _promote_and_check(matrix, cases, lambda kind: f"{seeds['anonymous'].repository}:v1",
                       lambda kind: seeds["anonymous"], concurrency, "from-anonymous")
    cases.done()


@concurrency_levels
def test_promote_from_layout(matrix: Matrix, seeds: dict[str, Seed], layout: Path, concurrency: int) -> None:
    """oci:LAYOUT -> each kind of registry, the login flags for the destination."""
    cases = Cases(matrix)
    _promote_and_check(matrix, cases, lambda kind: f"oci:{layout}:v1", lambda kind: seeds["anonymous"],
                       concurrency, "from-layout")
    cases.done()


@concurrency_levels
def test_promote_basic_to_bearer_with_other_credentials(matrix: Matrix, seeds: dict[str, Seed],
                                                        concurrency: int) -> None:
    """Basic source, Bearer destination, a different account at each end, both in one docker config: each
    registry gets its own, and the destination's token issuer never sees the source's user."""
    seed, source, target = seeds["basic"], matrix.endpoints["basic"], matrix.other_bearer
    assert source.registry.username != OTHER_USERNAME and target.registry.issuer is not None
    work = matrix.scratch("cross")
    env = _docker_config(work, (source.host, str(source.registry.username), str(source.registry.password)),
                         (target.host, OTHER_USERNAME, OTHER_PASSWORD))
    target.registry.issuer.clear_requests()
    destination = f"{target.repository('cross')}:v1"
    document = _ok(invoke_cli("promote", f"{seed.repository}:v1", destination,
                              "--concurrency", str(concurrency), "-O", "json", env=env), "promote")
    assert document["digest"] == seed.subject and document["copied"]["blobs"] > 0
    assert_whole_graph(invoke_cli_many(graph_checks(destination, seed, work), env=env), seed, work)
    users = {record.username for record in target.registry.issuer.requests}
    assert OTHER_USERNAME in users and users <= {OTHER_USERNAME, None}


# --------------------------------------------------------------------------------------------- failures


@concurrency_levels
def test_wrong_password_exits_4_at_once(matrix: Matrix, seeds: dict[str, Seed], concurrency: int) -> None:
    """A wrong password on a graph step is exit 4 with one short line, without a storm of token requests."""
    issuer = matrix.endpoints["bearer"].registry.issuer
    assert issuer is not None
    issuer.clear_requests()
    cases = Cases(matrix, ("basic", "bearer"))
    runs: list[tuple[str, ...]] = []
    for kind in cases.alive:
        seed, user = seeds[kind], str(matrix.endpoints[kind].registry.username)
        runs += [("discover", f"{seed.repository}:v1", "--concurrency", str(concurrency), "-u", user,
                  "--password-stdin"),
                 ("promote", f"{seed.repository}:v1", f"{matrix.endpoints[kind].repository('denied')}:v1",
                  "--concurrency", str(concurrency), "-u", user, "--password-stdin")]
    for args, result in zip(runs, invoke_cli_many(runs, env=matrix.env, stdin="not-the-password\n")):
        assert result.returncode == EXIT_AUTH, f"{args[0]} {args[1]}: {result.stderr}"
        assert "not-the-password" not in result.stdout + result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
    refused = [r for r in issuer.requests if r.status == 401]
    assert 2 <= len(refused) <= 4, f"{len(refused)} refused token requests for one discover and one promote"


# --------------------------------------------------------------------------------------------- real processes


def test_process_promote_into_basic_with_password_on_stdin(matrix: Matrix, seeds: dict[str, Seed]) -> None:
    """The report, as typed: ``ci-oras promote SRC DST -u U --password-stdin`` in a real process."""
    seed, endpoint = seeds["anonymous"], matrix.endpoints["basic"]
    destination = f"{endpoint.repository('process')}:v1"
    result = run_cli("promote", f"{seed.repository}:v1", destination, *endpoint.login, "--concurrency", "8",
                     "-O", "json", env=matrix.env, stdin=endpoint.stdin)
    assert result.returncode == 0, result.stderr
    work = matrix.scratch("process")
    checks = invoke_cli_many(graph_checks(destination, seed, work, endpoint.login), env=matrix.env,
                             stdin=endpoint.stdin)
    assert_whole_graph(checks, seed, work)


def test_process_promote_basic_to_bearer_from_docker_config(matrix: Matrix, seeds: dict[str, Seed]) -> None:
    """A real process finds both ends' credentials in the docker config that ``DOCKER_CONFIG`` names."""
    seed, source, target = seeds["basic"], matrix.endpoints["basic"], matrix.other_bearer
    work = matrix.scratch("process-cross")
    env = _docker_config(work, (source.host, str(source.registry.username), str(source.registry.password)),
                         (target.host, OTHER_USERNAME, OTHER_PASSWORD))
    destination = f"{target.repository('process')}:v1"
    result = run_cli("promote", f"{seed.repository}:v1", destination, "--concurrency", "32", "-O", "json",
                     env=env)
    assert result.returncode == 0, result.stderr
    assert_whole_graph(invoke_cli_many(graph_checks(destination, seed, work), env=env), seed, work)
