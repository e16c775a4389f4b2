"""What the three release examples share in their tests: the staged images, the release file, the checks.

A release here is three images in a staging registry (``dev``, one account), each with an SBOM and a
signature attached, the first one's SBOM signed too, moved to a production registry with another account
(``prod``). The images are seeded through the registries themselves (not the recording proxies), so what the
proxies record is the pipeline's traffic alone. The release file names the proxies' hosts, as a user's names
their registries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cli import clean_env, run_cli
from wrapper_tools import Guarded

SBOM = "application/vnd.cyclonedx+json"
SIGNATURE = "application/vnd.cncf.notary.signature"
IMAGES = ("api", "web", "worker")
TAG = "v1.4.0"
#: Methods that change a registry: a refused release sends none of them to production.
WRITES = frozenset({"PUT", "POST", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Staged:
    """The seeded images: ``base`` is the path under both registries, ``digests`` each image's manifest."""

    dev: Guarded
    prod: Guarded
    base: str
    digests: dict[str, str]

    def source(self, image: str) -> str:
        return f"{self.dev.host}/{self.base}/{image}:{TAG}"

    def destination(self, image: str) -> str:
        return f"{self.prod.host}/{self.base}/{image}"


def _cli(home: Path, registry: Guarded, *args: str) -> Any:
    """``ci-oras ARGS -O json`` straight at ``registry`` (past its proxy) with its own account."""
    result = run_cli(*args, "-O", "json", "--emit", "none", "-u", registry.username, "--password-stdin",
                     env=clean_env(home), stdin=registry.password + "\n", cwd=home)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.json()


def stage_release(dev: Guarded, prod: Guarded, work: Path, *, unsigned: str | None = None) -> Staged:
    """Push :data:`IMAGES` to ``dev`` with an SBOM and a signature each (``api``'s SBOM signed as well);
    ``unsigned`` names an image left without its signature, so a gate requiring one fails for it."""
    work.mkdir(parents=True, exist_ok=True)
    base = f"shop-{uuid.uuid4().hex[:8]}"
    direct = dev.registry.host
    digests = {}
    for image in IMAGES:
        (work / "app.txt").write_text(f"{image} {uuid.uuid4().hex}\n")
        digests[image] = _cli(work, dev, "push", "--artifact-type", "application/vnd.example.app",
                              f"{direct}/{base}/{image}:{TAG}", "app.txt")["digest"]
        subject = f"{direct}/{base}/{image}@{digests[image]}"
        (work / "sbom.json").write_text(f'{{"bomFormat": "CycloneDX", "specVersion": "1.6", "x": "{image}"}}\n')
        sbom = _cli(work, dev, "attach", "--artifact-type", SBOM, subject, "sbom.json")["digest"]
        if image != unsigned:
            (work / "signature.jws").write_text(f"signature of {image} {uuid.uuid4().hex}\n")
            _cli(work, dev, "attach", "--artifact-type", SIGNATURE, subject, "signature.jws")
        if image == IMAGES[0]:
            (work / "signature.jws").write_text(f"signature of {image}'s SBOM {uuid.uuid4().hex}\n")
            _cli(work, dev, "attach", "--artifact-type", SIGNATURE, f"{direct}/{base}/{image}@{sbom}", "signature.jws")
    return Staged(dev, prod, base, digests)


def release_file(staged: Staged) -> str:
    """The release file of the examples, its placeholders set: every image needs an SBOM and a signature; the
    images go to production under their own tag and ``stable``."""
    lines = [f"release: {TAG}", "require: [sbom, signature]", "images:"]
    for image in IMAGES:
        lines += [f"  - source: {staged.source(image)}", f"    destination: {staged.destination(image)}",
                  f"    tags: [{TAG}, stable]"]
    return "\n".join(lines) + "\n"


def _graph(home: Path, registry: Guarded, reference: str) -> list[Any]:
    def shape(node: dict[str, Any]) -> list[Any]:
        return sorted([child.get("artifactType", ""), child["digest"], shape(child)] for child in node["referrers"])

    return shape(_cli(home, registry, "discover", reference))


def assert_released(staged: Staged, home: Path) -> None:
    """Every image is in production under both tags, at its staging digest, with the same referrers graph."""
    home.mkdir(parents=True, exist_ok=True)
    for image in IMAGES:
        digest = staged.digests[image]
        for tag in (TAG, "stable"):
            fetched = _cli(home, staged.prod, "manifest", "fetch",
                           f"{staged.prod.registry.host}/{staged.base}/{image}:{tag}")
            assert fetched["digest"] == digest, (image, tag)
        staging = _graph(home, staged.dev, f"{staged.dev.registry.host}/{staged.base}/{image}@{digest}")
        production = _graph(home, staged.prod, f"{staged.prod.registry.host}/{staged.base}/{image}@{digest}")
        assert production == staging and len(production) == 2, (image, production)


def assert_production_untouched(staged: Staged) -> None:
    """No request that writes reached production (a plan only reads there, to size what a copy would move)."""
    writes = [f"{record.method} {record.path}" for record in staged.prod.proxy.requests if record.method in WRITES]
    assert not writes, writes


def copy_shards_run(log: str) -> list[int]:
    """The ``--shard`` numbers of the ``ci-oras release copy`` command lines a wrapper echoed into ``log``."""
    import re

    return sorted(int(number) for number in re.findall(r"ci-oras release copy .*--shard (\d+)", log))
