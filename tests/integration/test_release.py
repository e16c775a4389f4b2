"""release plan, copy and commit against two real registries with different accounts.

The source is the session's htpasswd registry, the destination a second htpasswd registry with another
account; both credentials come from the docker config, as in a pipeline that logged in to both.

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``) where the process boundary adds only
start-up (some 0.2 s of CPU a run); the runs killed mid-way are real subprocesses.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
from harness.cli import CliResult, clean_env, invoke_cli
from harness.oci import push_image
from harness.proxy import RegistryProxy
from harness.registry import RunningRegistry, start_registry

from ci_oras.schemas import load_schema

SBOM = "application/vnd.cyclonedx+json"
#: (env, source registry, destination registry, the sources' base path, their digests, this test's prod/<id>)
Release = tuple[dict[str, str], RunningRegistry, RunningRegistry, str, dict[str, str], str]
SIGNATURE = "application/vnd.cncf.notary.signature"


def _login_config(home: Path, *registries: RunningRegistry) -> None:
    auths = {}
    for registry in registries:
        assert registry.username and registry.password
        token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        auths[registry.host] = {"auth": token}
    (home / ".docker").mkdir(parents=True, exist_ok=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": auths}))


def _attach(reference: str, name: str, artifact_type: str, env: dict[str, str], cwd: Path) -> str:
    (cwd / name).write_text(f"{name} for {reference} {uuid.uuid4().hex}\n")
    result = invoke_cli("attach", reference, name, "--artifact-type", artifact_type, "-O", "json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return str(result.json()["digest"])


def _push(registry: RunningRegistry, repo: str, tag: str, size: int) -> str:
    auth = (registry.username or "", registry.password or "")
    with httpx.Client(timeout=30, auth=auth) as client:
        return push_image(client, registry.url, repo, tag=tag, layer=uuid.uuid4().bytes * (size // 16)).manifest_digest


@pytest.fixture(scope="module")
def destination(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A second registry with an account of its own, for the module."""
    registry = start_registry(tmp_path_factory.mktemp("release-destination"), "htpasswd", username="prod-robot",
                              password="another-secret")
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def sources(registry_htpasswd: RunningRegistry, destination: RunningRegistry,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, str]]:
    """shop/api (SBOM, signature, and a signature of the SBOM), shop/web (SBOM only), shop/tools at three tags,
    seeded once for the module: the tests only read them, each promoting into repositories of its own."""
    source = registry_htpasswd
    home = tmp_path_factory.mktemp("release-home")
    env = clean_env(home)
    _login_config(home, source, destination)
    tmp_path = home
    base = f"test/{uuid.uuid4().hex[:8]}"
    digests = {"api": _push(source, f"{base}/api", "v1.4.0", 40_000),
               "web": _push(source, f"{base}/web", "v1.4.0", 10_000)}
    for tag in ("v1.4.0", "v1.4.1", "v1.5.0"):
        digests[f"tools:{tag}"] = _push(source, f"{base}/tools", tag, 1_000)
    api = f"{source.host}/{base}/api"
    sbom = _attach(f"{api}:v1.4.0", "sbom.json", SBOM, env, tmp_path)
    _attach(f"{api}:v1.4.0", "signature.json", SIGNATURE, env, tmp_path)
    _attach(f"{api}@{sbom}", "sbom-signature.json", SIGNATURE, env, tmp_path)
    _attach(f"{source.host}/{base}/web:v1.4.0", "sbom.json", SBOM, env, tmp_path)
    return home, base, digests


@pytest.fixture
def release(registry_htpasswd: RunningRegistry, destination: RunningRegistry, sources: tuple[Path, str, dict[str, str]]
            ) -> Release:
    """The seeded sources (``base`` names them), and a fresh prod/<id> for this test's destination repositories."""
    home, base, digests = sources
    return clean_env(home), registry_htpasswd, destination, base, digests, f"prod/{uuid.uuid4().hex[:8]}"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _plan(env: dict[str, str], cwd: Path, *args: str) -> tuple[CliResult, dict[str, object]]:
    result = invoke_cli("release", "plan", *args, "-O", "json", env=env, cwd=cwd)
    plan = json.loads((cwd / "plan.json").read_text()) if (cwd / "plan.json").exists() else {}
    return result, plan


def test_a_plan_pins_gates_sizes_and_shards_every_image(release: Release, tmp_path: Path) -> None:
    env, source, destination, base, digests, prod = release
    file = _write(tmp_path / "release.yaml", f"""
release: 1.10
images:
  - source: {source.host}/{base}/api:v1.4.0
    destination: {destination.host}/{prod}/api
    tags: [v1.4.0, stable]
    require: [sbom, signature, 'sbom>signature']
  - source: {source.host}/{base}/web:v1.4.0
    destination: {destination.host}/{prod}/web
    require: sbom
  - source-repository: {source.host}/{base}/tools
    tag-pattern: 'v1\\.4\\.\\d+'
    destination: {destination.host}/{prod}/tools
""")
    result, plan = _plan(env, tmp_path, str(file), "--shards", "3", "-o", "plan.json")
    assert result.returncode == 0, result.stderr
    assert result.json() == plan, "the document printed is the plan written"
    jsonschema.validate(plan, load_schema("release-plan"))
    assert plan["release"] == "1.10", "a version stays text"
    images = {image["id"]: image for image in plan["images"]}  # type: ignore[union-attr]
    assert set(images) == {"images[1]", "images[2]", "images[3]:v1.4.0", "images[3]:v1.4.1"}
    api = images["images[1]"]
    assert api["digest"] == digests["api"] and api["sourceTag"] == "v1.4.0"
    assert api["tags"] == ["v1.4.0", "stable"]
    assert api["gate"] == {"ok": True, "required": ["sbom", "signature", "sbom>signature"], "missing": []}
    assert len(api["graph"]["manifests"]) == 4, "the image, its SBOM and signature, the SBOM's signature"
    assert len(api["graph"]["referrers"][api["digest"]]) == 2
    assert api["estimate"]["bytes"] > 40_000 and api["estimate"]["manifests"] == 4
    assert images["images[3]:v1.4.1"]["digest"] == digests["tools:v1.4.1"]
    assert images["images[3]:v1.4.1"]["tags"] == ["v1.4.1"]
    shards = plan["shards"]
    assert [shard["shard"] for shard in shards] == plan["matrix"]["shard"]  # type: ignore[index]
    assert sum(shard["images"] for shard in shards) == 4 and len(shards) == 3  # type: ignore[union-attr]
    assert images["images[1]"]["shard"] not in {images["images[3]:v1.4.0"]["shard"],
                                                 images["images[3]:v1.4.1"]["shard"]}, "the largest alone"
    assert not _exists(destination, f"{prod}/api", "v1.4.0"), "planning writes nothing"


def test_a_failed_gate_writes_the_plan_and_exits_1(release: Release, tmp_path: Path) -> None:
    env, source, destination, base, _digests, prod = release
    file = _write(tmp_path / "release.yaml", f"""
release: v1.4.0
require: [sbom, signature]
images:
  - {{source: {source.host}/{base}/api:v1.4.0, destination: {destination.host}/{prod}/api}}
  - {{source: {source.host}/{base}/web:v1.4.0, destination: {destination.host}/{prod}/web}}
""")
    result, plan = _plan(env, tmp_path, str(file), "-o", "plan.json")
    assert result.returncode == 1, result.stderr
    assert plan["ok"] is False and plan["failed"] == ["images[2]"]
    assert "images[2]" in result.stderr and "signature" in result.stderr
    assert destination.password not in result.stderr + result.stdout


def test_bad_release_files_are_usage_errors_naming_the_field(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    file = _write(tmp_path / "release.yaml", "release: v1\nimages:\n  - source: a.example/x:1\n    colour: red\n")
    result, plan = _plan(env, tmp_path, str(file), "-o", "plan.json")
    assert result.returncode == 2 and plan == {}
    assert result.json()["error"]["message"].startswith(f"{file}: images[1].colour: unknown field")


def test_login_flags_are_refused_when_destinations_span_registries(tmp_path: Path) -> None:
    """--username/--password reach one registry: with destinations on two, nothing is sent anywhere (the
    hosts do not even resolve) and the error names both registries and the way out."""
    env = clean_env(tmp_path)
    file = _write(tmp_path / "release.yaml", "release: v1\nimages:\n"
                  "  - {source: staging.invalid/a:1, destination: prod-one.invalid/a}\n"
                  "  - {source: staging.invalid/b:1, destination: prod-two.invalid/b}\n")
    result = invoke_cli("release", "plan", str(file), "-o", "plan.json", "-O", "json", "-u", "robot",
                     "--password-stdin", env=env, cwd=tmp_path, stdin="s3cret-value\n")
    assert result.returncode == 2 and not (tmp_path / "plan.json").exists()
    error = result.json()["error"]
    assert "prod-one.invalid, prod-two.invalid" in error["message"] and "CI_ORAS_REGISTRY" in error["hint"]
    assert "s3cret-value" not in result.stdout + result.stderr


def test_one_source_to_two_destinations_is_read_once(release: Release, tmp_path: Path) -> None:
    """A mirror in the release file (the same image to production and to a second repository): both land in
    one shard, and its copy reads each source blob once."""
    env, source, destination, base, _digests, prod = release
    with RegistryProxy(source) as proxy:
        home = tmp_path / "home"
        _login_config(home, source, destination)
        config = json.loads((home / ".docker" / "config.json").read_text())
        config["auths"][proxy.host] = config["auths"][source.host]  # the same account, by the proxy's name
        (home / ".docker" / "config.json").write_text(json.dumps(config))
        env = clean_env(home)
        file = _write(tmp_path / "release.yaml", f"""
release: mirror
images:
  - {{source: {proxy.host}/{base}/api:v1.4.0, destination: {destination.host}/{prod}/api}}
  - {{source: {proxy.host}/{base}/api:v1.4.0, destination: {destination.host}/{prod}/dr/api}}
  - {{source: {proxy.host}/{base}/web:v1.4.0, destination: {destination.host}/{prod}/web}}
""")
        result, plan = _plan(env, tmp_path, str(file), "--shards", "3", "-o", "plan.json")
        assert result.returncode == 0, result.stderr
        shards = {image["id"]: image["shard"] for image in plan["images"]}  # type: ignore[union-attr]
        assert shards["images[1]"] == shards["images[2]"] != shards["images[3]"], shards
        proxy.clear()
        copied = invoke_cli("release", "copy", "plan.json", "--shard", str(shards["images[1]"]), "-O", "json", env=env,
                         cwd=tmp_path)
        assert copied.returncode == 0, copied.stderr
        reads = [r.path for r in proxy.requests_matching(method="GET", path=r"/blobs/")]
    assert reads and len(reads) == len(set(reads)), reads
    assert [image["copied"]["blobs"] for image in copied.json()["images"]] == [len(reads)] * 2
    committed = invoke_cli("release", "commit", "plan.json", "-O", "json", env=env, cwd=tmp_path)
    assert committed.returncode == 1 and committed.json()["incomplete"] == ["images[3]"]  # its shard not copied yet


def _exists(registry: RunningRegistry, repo: str, tag: str) -> bool:
    auth = (registry.username or "", registry.password or "")
    answer = httpx.head(f"{registry.url}/v2/{repo}/manifests/{tag}", auth=auth,
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return answer.status_code == 200


def test_copy_every_shard_then_commit_moves_the_tags_last(release: Release, tmp_path: Path) -> None:
    env, source, destination, base, digests, prod = release
    file = _release_file(tmp_path / "release.yaml", source, destination, base, prod)
    result, plan = _plan(env, tmp_path, str(file), "--shards", "2", "-o", "plan.json")
    assert result.returncode == 0, result.stderr
    early = invoke_cli("release", "commit", "plan.json", "-O", "json", env=env, cwd=tmp_path)
    assert early.returncode == 1, early.stderr
    jsonschema.validate(early.json(), load_schema("release-commit"))
    assert early.json()["incomplete"] == ["images[1]", "images[2]"] and early.json()["tagsWritten"] == 0
    assert not _exists(destination, f"{prod}/api", "stable"), "an incomplete release moves no tag"

    for shard in plan["matrix"]["shard"]:  # type: ignore[index]
        copied = invoke_cli("release", "copy", "plan.json", "--shard", str(shard), "-O", "json", env=env, cwd=tmp_path)
        assert copied.returncode == 0, copied.stderr
        jsonschema.validate(copied.json(), load_schema("release-copy"))
    assert not _exists(destination, f"{prod}/api", "stable"), "copies move no tag"
    again = invoke_cli("release", "copy", "plan.json", "--shard", "1", "-O", "json", env=env, cwd=tmp_path)
    assert all(image["copied"] == {"manifests": 0, "blobs": 0} for image in again.json()["images"]), "a re-run copies nothing"

    committed = invoke_cli("release", "commit", "plan.json", "-O", "json", env=env, cwd=tmp_path)
    assert committed.returncode == 0, committed.stderr
    jsonschema.validate(committed.json(), load_schema("release-commit"))
    assert committed.json()["tagsWritten"] == 3
    for tag in ("v1.4.0", "stable"):
        assert _digest_of(destination, f"{prod}/api", tag) == digests["api"]
    shown = invoke_cli("discover", f"{destination.host}/{prod}/api:stable", "-O", "json", env=env)
    assert shown.returncode == 0 and shown.json()["count"] == 3, "the SBOM, the signature and the SBOM's signature"


def test_a_plan_that_failed_its_gate_is_never_copied(release: Release, tmp_path: Path) -> None:
    env, source, destination, base, _digests, prod = release
    file = _write(tmp_path / "release.yaml", f"""
release: v1.4.0
require: attestation
images: [{{source: {source.host}/{base}/web:v1.4.0, destination: {destination.host}/{prod}/web}}]
""")
    assert _plan(env, tmp_path, str(file), "-o", "plan.json")[0].returncode == 1
    copied = invoke_cli("release", "copy", "plan.json", "--shard", "1", env=env, cwd=tmp_path)
    assert copied.returncode == 1 and "failed its gate" in copied.stderr
    assert not _exists(destination, f"{prod}/web", "v1.4.0")


def _digest_of(registry: RunningRegistry, repo: str, tag: str) -> str | None:
    auth = (registry.username or "", registry.password or "")
    answer = httpx.head(f"{registry.url}/v2/{repo}/manifests/{tag}", auth=auth,
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None


def test_a_referrer_the_copy_leaves_out_cannot_satisfy_the_gate(release: Release, tmp_path: Path) -> None:
    """The gate is checked on the graph as it will arrive: with signatures excluded from the copy, 'signature'
    is missing even though the source has one."""
    env, source, destination, base, _digests, prod = release
    file = _write(tmp_path / "release.yaml", f"""
release: v1.4.0
require: [sbom, signature]
defaults: {{exclude-artifact-types: [{SIGNATURE}]}}
images: [{{source: {source.host}/{base}/api:v1.4.0, destination: {destination.host}/{prod}/api}}]
""")
    result, plan = _plan(env, tmp_path, str(file), "-o", "plan.json")
    assert result.returncode == 1, result.stderr
    assert plan["images"][0]["gate"]["missing"] == ["signature"]  # type: ignore[index]
    assert len(plan["images"][0]["graph"]["manifests"]) == 2, "the image and its SBOM"  # type: ignore[index]


def _release_file(path: Path, source: RunningRegistry, destination: RunningRegistry, base: str, prod: str) -> Path:
    return _write(path, f"""
release: v1.4.0
require: sbom
images:
  - source: {source.host}/{base}/api:v1.4.0
    destination: {destination.host}/{prod}/api
    tags: [v1.4.0, stable]
  - source: {source.host}/{base}/web:v1.4.0
    destination: {destination.host}/{prod}/web
""")


def _timed(args: list[str], env: dict[str, str], cwd: Path, kill_after: float | None = None) -> int | None:
    """Run ``ci-oras ARGS``; with ``kill_after``, SIGKILL it then (None when it was killed before it ended)."""
    process = subprocess.Popen([sys.executable, "-m", "ci_oras", *args], env=env, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_after is None:
        return process.wait(timeout=120)
    try:
        return process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return None


def test_a_killed_copy_or_commit_never_leaves_a_tag_on_an_incomplete_graph(
        release: Release, tmp_path: Path) -> None:
    """SIGKILL at seeded random points of the copy (odd trials) or the commit (even ones): whatever was left,
    every destination tag that exists names a complete graph, and running copy and commit again finishes the
    release. make test runs 2 trials, make stress 20 (CI_ORAS_RELEASE_KILLS)."""
    env, source, destination, base, digests, _prod = release
    trials = int(os.environ.get("CI_ORAS_RELEASE_KILLS", "2"))
    chance = random.Random(20)
    edges: dict[str, int] = {"api": 3, "web": 1}
    durations: dict[str, float] = {}
    for trial in range(trials + 1):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        prod = f"prod/{uuid.uuid4().hex[:8]}"
        _release_file(work / "release.yaml", source, destination, base, prod)
        assert _timed(["release", "plan", "release.yaml", "-o", "plan.json"], env, work) == 0
        copy, commit = ["release", "copy", "plan.json", "--shard", "1"], ["release", "commit", "plan.json"]
        if trial == 0:  # the reference run, whose durations the kill points are drawn from
            for name, args in (("copy", copy), ("commit", commit)):
                started = time.monotonic()
                assert _timed(args, env, work) == 0
                durations[name] = time.monotonic() - started
            continue
        killed = "copy" if trial % 2 else "commit"
        if killed == "commit":
            assert _timed(copy, env, work) == 0
        _timed(copy if killed == "copy" else commit, env, work, kill_after=chance.uniform(0.05, 1.0) * durations[killed])
        if killed == "copy":
            _timed(commit, env, work)  # exit 1 if the copy was cut short: it must then move no tag
        for image in ("api", "web"):
            for tag in ("v1.4.0", "stable") if image == "api" else ("v1.4.0",):
                if _digest_of(destination, f"{prod}/{image}", tag) is not None:
                    shown = invoke_cli("discover", f"{destination.host}/{prod}/{image}:{tag}", "-O", "json", env=env)
                    assert shown.returncode == 0 and shown.json()["count"] == edges[image], (trial, killed, image)
        assert _timed(copy, env, work) == 0 and _timed(commit, env, work) == 0
        assert _digest_of(destination, f"{prod}/api", "stable") == digests["api"]


def test_a_release_into_a_token_registry(release: Release, registry_token: RunningRegistry,
                                         tmp_path: Path) -> None:
    """Bearer tokens at the destination (the source keeps Basic): plan, copy and commit at their default
    concurrency, credentials from the docker config."""
    env, source, destination, base, digests, prod = release
    _login_config(Path(env["HOME"]), source, destination, registry_token)
    file = _release_file(tmp_path / "release.yaml", source, registry_token, base, prod)
    assert _plan(env, tmp_path, str(file), "--shards", "2", "-o", "plan.json")[0].returncode == 0
    for shard in (1, 2):
        copied = invoke_cli("release", "copy", "plan.json", "--shard", str(shard), env=env, cwd=tmp_path)
        assert copied.returncode == 0, copied.stderr
    committed = invoke_cli("release", "commit", "plan.json", "-O", "json", env=env, cwd=tmp_path)
    assert committed.returncode == 0 and committed.json()["tagsWritten"] == 3, committed.stderr
    shown = invoke_cli("discover", f"{registry_token.host}/{prod}/api:stable", "-O", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["digest"] == digests["api"] and shown.json()["count"] == 3
