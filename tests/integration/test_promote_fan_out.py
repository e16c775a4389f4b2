"""promote SRC DST1 DST2 …: every destination gets the whole graph, each source blob is read once, and no
destination is tagged unless every copy completed.

The CLI's ``main()`` runs in this process (``harness.cli.invoke_cli``): a subprocess would add only its
start-up, some 0.2 s of CPU a run; the process boundary is tested elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from harness.cli import clean_env, invoke_cli
from harness.oci import push_image
from harness.proxy import RegistryProxy
from harness.registry import RegistryFactory, RunningRegistry

from ci_oras.schemas import load_schema


def _edges(env: dict[str, str], reference: str) -> set[tuple[str, str, str]]:
    """(subject, referrer, its artifact type) of every edge discover finds below ``reference``."""
    result = invoke_cli("discover", reference, "-O", "json", env=env)
    assert result.returncode == 0, result.stderr
    edges: set[tuple[str, str, str]] = set()

    def visit(node: dict[str, Any]) -> None:
        for referrer in node["referrers"]:
            edges.add((node["digest"], referrer["digest"], referrer.get("artifactType", "")))
            visit(referrer)

    visit(result.json())
    return edges


def _seed(registry: RunningRegistry, env: dict[str, str], work: Path) -> str:
    """An image (a 300 KB layer) with a signature and an SBOM, the SBOM signed too; returns REPO."""
    name = f"test/{uuid.uuid4().hex[:8]}-fan"
    auth = (registry.username, registry.password) if registry.username and registry.password else None
    with httpx.Client(timeout=30, auth=auth) as client:
        push_image(client, registry.url, name, tag="v1", layer=os.urandom(300_000))
    repo = f"{registry.host}/{name}"

    def attach(subject: str, artifact_type: str) -> str:
        (work / "file.json").write_text(f"{artifact_type} of {subject} {uuid.uuid4().hex}\n")
        result = invoke_cli("attach", f"{repo}{subject}", "file.json", "--artifact-type", artifact_type, "-O", "json",
                         env=env, cwd=work)
        assert result.returncode == 0, result.stderr
        return str(result.json()["digest"])

    attach(":v1", "application/vnd.example.signature")
    sbom = attach(":v1", "application/vnd.cyclonedx+json")
    attach(f"@{sbom}", "application/vnd.example.signature")
    return repo


def test_each_source_blob_is_read_once_for_every_destination(
        registry_plain: RunningRegistry, registry_factory: RegistryFactory, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    repo = _seed(registry_plain, env, tmp_path)
    edges = _edges(env, f"{repo}:v1")
    one, two = registry_factory("plain"), registry_factory("plain")
    layout = tmp_path / "mirror"
    with RegistryProxy(registry_plain) as proxy:
        source = repo.replace(registry_plain.host, proxy.host)
        same_registry = f"{proxy.host}/{repo.split('/', 1)[1]}-staging:v1"
        result = invoke_cli("promote", f"{source}:v1", f"{one.host}/prod/app:v1,stable", f"{two.host}/dr/app",
                         f"oci:{layout}:v1", same_registry, "-O", "json", env=env)
        assert result.returncode == 0, result.stderr
        blob_reads = Counter(r.path.rsplit("/", 1)[1] for r in proxy.requests_matching(method="GET", path=r"/blobs/"))
    document = result.json()
    jsonschema.validate(document, load_schema("promote"))
    # every blob the copies needed was read from the source exactly once (the same-registry copy mounts)
    assert blob_reads and set(blob_reads.values()) == {1}, blob_reads
    assert document["sourceBlobsRead"] == len(blob_reads) == 5  # layer, {} config, three referrer layers
    assert [d["destination"] for d in document["destinations"]] == [
        f"{one.host}/prod/app:v1", f"{two.host}/dr/app:v1", f"oci:{layout}:v1", same_registry]
    assert document["copied"]["manifests"] == sum(d["copied"]["manifests"] for d in document["destinations"]) == 16
    assert document["destinations"][3]["mounted"] == 5 and document["destinations"][3]["copied"]["blobs"] == 0
    staging = f"{repo}-staging:v1"  # the same-registry destination, read past the proxy
    for reference in (f"{one.host}/prod/app:stable", f"{two.host}/dr/app:v1", f"oci:{layout}:v1", staging):
        assert _edges(env, reference) == edges, reference

    again = invoke_cli("promote", f"{repo}:v1", f"{one.host}/prod/app:v1,stable", f"{two.host}/dr/app",
                    f"oci:{layout}:v1", "-O", "json", env=env)
    assert again.returncode == 0, again.stderr
    assert again.json()["sourceBlobsRead"] == 0 and again.json()["tagsWritten"] == []


def test_no_destination_is_tagged_when_one_copy_fails(registry_plain: RunningRegistry,
                                                      registry_factory: RegistryFactory, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    repo = _seed(registry_plain, env, tmp_path)
    open_one = registry_factory("plain")
    locked = registry_factory("htpasswd", username="robot", password="not-given-here")
    result = invoke_cli("promote", f"{repo}:v1", f"{open_one.host}/prod/app:v1", f"{locked.host}/prod/app:v1",
                     "-O", "json", env=env)
    assert result.returncode == 4, result.stdout + result.stderr  # authentication required
    assert result.json()["error"]["message"].startswith(f"authentication required for {locked.host}")
    digest = invoke_cli("manifest", "fetch", f"{repo}:v1", "-O", "json", env=env).json()["digest"]
    with httpx.Client(timeout=30) as client:
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        # the open registry received the whole graph by digest, but no tag: the release of it waits for all
        assert client.head(f"{open_one.url}/v2/prod/app/manifests/{digest}", headers=accept).status_code == 200
        assert client.head(f"{open_one.url}/v2/prod/app/manifests/v1", headers=accept).status_code == 404


def test_login_flags_and_repeated_destinations_are_refused_before_any_request(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    two_registries = invoke_cli("promote", "staging.invalid/app:v1", "one.invalid/app", "two.invalid/app", "-u", "robot",
                             "--password-stdin", "-O", "json", env=env, stdin="s3cret-value\n")
    assert two_registries.returncode == 2
    assert "one.invalid, two.invalid" in two_registries.json()["error"]["message"]
    assert "s3cret-value" not in two_registries.stdout + two_registries.stderr
    twice = invoke_cli("promote", "staging.invalid/app:v1", "one.invalid/app", "one.invalid/app:v1", "-O", "json", env=env)
    assert twice.returncode == 2
    assert twice.json()["error"]["message"] == "destination one.invalid/app:v1 is given twice"


def test_one_destination_keeps_the_single_promote_document(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    """With one DST the document has no fan-out fields: scripts reading promote's output see no change."""
    env = clean_env(tmp_path)
    repo = _seed(registry_plain, env, tmp_path)
    result = invoke_cli("promote", f"{repo}:v1", f"oci:{tmp_path / 'one'}:v1", "-O", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert not {"destinations", "sourceBlobsRead", "sourceBytesRead"} & set(result.json())
    assert result.json()["copied"]["manifests"] == 4


def test_a_dry_run_into_layouts_not_there_yet_shows_everything_and_creates_nothing(
        registry_plain: RunningRegistry, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    repo = _seed(registry_plain, env, tmp_path)
    for destinations in ([f"oci:{tmp_path / 'one'}:v1"], [f"oci:{tmp_path / 'two'}:v1", f"oci:{tmp_path / 'three'}"]):
        result = invoke_cli("promote", f"{repo}:v1", *destinations, "--dry-run", "-O", "json", env=env)
        assert result.returncode == 0, result.stderr
        document = result.json()
        assert document["dryRun"] and document["copied"] == {"manifests": 4 * len(destinations),
                                                            "blobs": 5 * len(destinations)}
        assert document["tagsWritten"] == ["v1"]  # what the run would write
    assert not any((tmp_path / name).exists() for name in ("one", "two", "three")), "a dry run creates nothing"


def test_fan_out_from_basic_into_basic_and_token_registries(
        registry_htpasswd: RunningRegistry, registry_token: RunningRegistry, registry_factory: RegistryFactory,
        tmp_path: Path) -> None:
    """The source and one destination take Basic (different accounts), the other destination Bearer tokens;
    credentials from the docker config, default concurrency: every destination gets the graph and its tag."""
    import base64
    import json

    other = registry_factory("htpasswd", username="mirror-robot", password="mirror-only-secret")
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    auths = {r.host: {"auth": base64.b64encode(f"{r.username}:{r.password}".encode()).decode()}
             for r in (registry_htpasswd, registry_token, other)}
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": auths}))
    env = clean_env(home)
    repo = _seed(registry_htpasswd, env, tmp_path)
    edges = _edges(env, f"{repo}:v1")
    name = f"fan/{uuid.uuid4().hex[:8]}"
    result = invoke_cli("promote", f"{repo}:v1", f"{other.host}/{name}:v1", f"{registry_token.host}/{name}:v1",
                     "-O", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.json()["sourceBlobsRead"] == 5 and result.json()["tagsWritten"] == ["v1"]
    for registry in (other, registry_token):
        assert _edges(env, f"{registry.host}/{name}:v1") == edges, registry.host
