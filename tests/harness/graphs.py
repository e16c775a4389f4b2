"""Referrer graphs attached through the real CLI, for the integration tests that read them back.

``attach-sbom`` and ``attach-signature`` write them as a pipeline does, so the manifests carry the
annotations the real steps write; each attach on the tag schema settles for a while, so a module builds its
graph once and shares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from samples.make_samples import cyclonedx_json, make_chain, notary_jws

from .cli import CliResult, clean_env, expect, run_cli
from .oci import push_image
from .registry import RunningRegistry


@dataclass(frozen=True)
class SignedSbom:
    """image ← CycloneDX SBOM ← Notary signature of the SBOM in ``repo`` on ``registry``: the three digests,
    and the environment (a private HOME in ``work``) the attaches ran with."""

    registry: RunningRegistry
    repo: str
    env: dict[str, str]
    work: Path
    image: str
    sbom: str
    signature: str

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/{self.repo}"

    def cli(self, *args: str) -> CliResult:
        """The real command in a subprocess, with the environment and in the directory of the attaches."""
        return run_cli(*args, env=self.env, cwd=self.work)


def attach_signed_sbom(registry: RunningRegistry, repo: str, work: Path) -> SignedSbom:
    """Push an image tagged ``v1`` to ``repo`` by raw HTTP, attach a CycloneDX 1.5 SBOM to it and a Notary JWS
    signature to the SBOM (by digest) with the real CLI, run in ``work``."""
    env = clean_env(work)
    with httpx.Client(timeout=30) as client:
        image = push_image(client, registry.url, repo, tag="v1").manifest_digest
    (work / "bom.cdx.json").write_bytes(cyclonedx_json("1.5"))
    ref = f"{registry.host}/{repo}"
    sbom = expect(run_cli("attach-sbom", f"{ref}:v1", "bom.cdx.json", "-O", "json", env=env, cwd=work)).json()
    (work / "bom.sig").write_bytes(notary_jws(make_chain(), target=sbom))
    signature = expect(run_cli("attach-signature", f"{ref}@{sbom['digest']}", "bom.sig", "-O", "json",
                               env=env, cwd=work)).json()
    assert sbom["subject"]["digest"] == image
    assert signature["subject"]["digest"] == sbom["digest"]
    return SignedSbom(registry, repo, env, work, image, sbom["digest"], signature["digest"])
