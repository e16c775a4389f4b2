from __future__ import annotations

import pytest

from ci_oras.errors import EXIT_USAGE, UsageError
from ci_oras.oci.reference import LayoutReference, RegistryReference, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tags", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", (), None),
        ("alpine:3.20", "docker.io", "library/alpine", ("3.20",), None),
        ("acme/app:v1", "docker.io", "acme/app", ("v1",), None),
        ("index.docker.io/acme/app", "docker.io", "acme/app", (), None),
        ("docker.io/alpine", "docker.io", "library/alpine", (), None),
        ("localhost/app", "localhost", "app", (), None),
        ("localhost:5000/a/b:v1,stable", "localhost:5000", "a/b", ("v1", "stable"), None),
        ("127.0.0.1:5000/readme/example@" + DIGEST, "127.0.0.1:5000", "readme/example", (), DIGEST),
        ("ghcr.io/acme/app:v1@" + DIGEST, "ghcr.io", "acme/app", ("v1",), DIGEST),
        ("[::1]:5000/app:v1", "[::1]:5000", "app", ("v1",), None),
        ("myreg.example/a__b/c-d.e:tag_1.0-x", "myreg.example", "a__b/c-d.e", ("tag_1.0-x",), None),
    ],
)
def test_registry_references(text: str, registry: str, repository: str, tags: tuple[str, ...],
                             digest: str | None) -> None:
    ref = parse_reference(text)
    assert isinstance(ref, RegistryReference)
    assert (ref.registry, ref.repository, ref.tags, ref.digest) == (registry, repository, tags, digest)


def test_docker_hub_api_host_and_loopback() -> None:
    hub = parse_reference("alpine")
    assert isinstance(hub, RegistryReference) and hub.api_host == "registry-1.docker.io"
    local = parse_reference("127.0.0.1:5000/x")
    assert isinstance(local, RegistryReference) and local.is_loopback
    remote = parse_reference("ghcr.io/x")
    assert isinstance(remote, RegistryReference) and not remote.is_loopback


@pytest.mark.parametrize(
    ("text", "path", "tags", "digest"),
    [
        ("oci:./build", "./build", (), None),
        ("oci:./build:v1", "./build", ("v1",), None),
        ("oci:/tmp/layout:v1,latest", "/tmp/layout", ("v1", "latest"), None),
        ("oci:layout@" + DIGEST, "layout", (), DIGEST),
        ("oci:/a:b/dir", "/a:b/dir", (), None),
    ],
)
def test_layout_references(text: str, path: str, tags: tuple[str, ...], digest: str | None) -> None:
    ref = parse_reference(text)
    assert isinstance(ref, LayoutReference)
    assert (ref.path, ref.tags, ref.digest) == (path, tags, digest)


@pytest.mark.parametrize(
    "text",
    ["", "UPPER/case", "a b", "https://ghcr.io/x", "ghcr.io/x:", "ghcr.io/x:-bad", "ghcr.io/x@sha256:123",
     "ghcr.io/x@md5:" + "a" * 32, "ghcr.io//x", "oci:", "oci::v1", "ghcr.io/x:" + "a" * 129, "bad_host:99/x"],
)
def test_malformed_references_exit_2(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_reference(text)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in str(info.value)


def test_round_trip_string() -> None:
    assert str(parse_reference("localhost:5000/a/b:v1,v2")) == "localhost:5000/a/b:v1,v2"
    assert str(parse_reference("oci:./x@" + DIGEST)) == "oci:./x@" + DIGEST
