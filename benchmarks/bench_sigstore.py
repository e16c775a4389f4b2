"""Seeding for the Sigstore rows of ``make bench``: keyless bundles minted by the tests' local Sigstore instance
(``tests/harness/sigstore_instance.py``), attached to one subject as cosign v3 attaches them."""

from __future__ import annotations

from pathlib import Path

import httpx
from harness.oci import push_image, push_referrer, subject_of
from harness.sigstore_instance import SigstoreInstance, mint_instance

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"
#: The identity the bundles are signed by, as the rows' verify names it.
IDENTITY = "https://github.com/acme/shop/.github/workflows/release.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"


def seed_bundles(client: httpx.Client, url: str, repo: str, count: int, instance: SigstoreInstance) -> None:
    """An image tagged v1 in ``repo`` with ``count`` cosign v3 signature bundles referring to it."""
    subject = subject_of(push_image(client, url, repo, tag="v1", layer=f"bundles {count}".encode()))
    for _ in range(count):
        bundle = instance.dsse_bundle(instance.statement(subject["digest"], COSIGN_SIGN))
        push_referrer(client, url, repo, subject, BUNDLE, bundle, layer_type=BUNDLE,
                      annotations={"dev.sigstore.bundle.predicateType": COSIGN_SIGN,
                                   "dev.sigstore.bundle.content": "dsse-envelope"})


def local_instance(work: Path) -> SigstoreInstance:
    return mint_instance(work / "sigstore")
