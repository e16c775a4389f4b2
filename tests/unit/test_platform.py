"""``--platform``: one parser and one child-picking rule for pull, attach, promote and verify (oci/platform.py)."""

from __future__ import annotations

import pytest

from ci_oras.errors import NotFoundError, UsageError
from ci_oras.oci import mediatypes
from ci_oras.oci.descriptor import Descriptor, Platform
from ci_oras.oci.manifest import build_image_manifest, build_index
from ci_oras.oci.platform import parse_platform, platform_child

EMPTY = Descriptor(media_type="application/vnd.oci.empty.v1+json", digest="sha256:" + "4" * 64, size=2)


def _child(n: int, platform: Platform | None) -> Descriptor:
    return Descriptor(media_type=mediatypes.OCI_MANIFEST, digest=f"sha256:{n:064x}", size=100, platform=platform)


AMD64 = _child(1, Platform("linux", "amd64"))
ARM_V7 = _child(2, Platform("linux", "arm", "v7"))
ARM64_V8 = _child(3, Platform("linux", "arm64", "v8"))
INDEX = build_index([_child(9, None), AMD64, ARM_V7, ARM64_V8])


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/arm/v7", Platform("linux", "arm", "v7")),
])
def test_parse_platform(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/arm/v7/extra", ""])
def test_malformed_platforms_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="invalid platform"):
        parse_platform(text)


@pytest.mark.parametrize(("wanted", "child"), [
    ("linux/amd64", AMD64),
    ("linux/arm/v7", ARM_V7),
    ("linux/arm64", ARM64_V8),  # no variant asked: any variant matches
])
def test_platform_child_picks_the_matching_child(wanted: str, child: Descriptor) -> None:
    assert platform_child(INDEX, "repo:v1", wanted, "pull") == child


def test_a_variant_asked_must_match() -> None:
    with pytest.raises(NotFoundError) as caught:
        platform_child(INDEX, "repo:v1", "linux/arm/v6", "pull")
    assert "available: linux/amd64, linux/arm/v7, linux/arm64/v8" in str(caught.value)


def test_a_manifest_that_is_no_index_names_the_purpose_in_its_hint() -> None:
    manifest = build_image_manifest(artifact_type="application/vnd.example", config=EMPTY, layers=[EMPTY])
    with pytest.raises(UsageError, match="leave out --platform to attach to the manifest itself"):
        platform_child(manifest, "repo:v1", "linux/amd64", "attach to")
    with pytest.raises(UsageError, match="invalid platform"):  # a malformed platform is named first
        platform_child(manifest, "repo:v1", "linux", "pull")
