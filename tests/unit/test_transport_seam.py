"""The transport seam: a run's registries reached through a transport handed to ``Runtime``, no socket opened.

The spec-faithful fake registry runs in process here (``FakeRegistry.transport()``, never started as a
server), so a whole promote with its referrers, a discover and the error mapping run through the same client,
auth and retry layers as over the network. The registry hosts are names that do not resolve: a request that
reached the network instead of the seam would fail.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from harness.fake_registry import FakeRegistry
from harness.oci import push_image, push_referrer, subject_of

from ci_oras.errors import NotFoundError, RegistryError
from ci_oras.graph.copy import CopyOptions
from ci_oras.graph.discover import DiscoverOptions
from ci_oras.oci.reference import parse_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.steps.discover import discover_graph
from ci_oras.steps.promote import Endpoint, promote

SOURCE = "source.registry.invalid"
DESTINATION = "destination.registry.invalid"
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


class TwoRegistries(httpx.BaseTransport):
    """Routes each request by host to its in-process registry; nothing else answers."""

    def __init__(self, registries: dict[str, FakeRegistry]) -> None:
        self._transports = {host: fake.transport() for host, fake in registries.items()}
        self.schemes: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.schemes.add(request.url.scheme)
        return self._transports[request.url.host].handle_request(request)


def _runtime(tmp_path: Path, transport: httpx.BaseTransport, **options: float) -> Runtime:
    return Runtime(TransportOptions(**options), LoginFlags(), {"HOME": str(tmp_path)},  # type: ignore[arg-type]
                   transport=transport)


def test_a_promote_with_its_referrers_runs_through_a_handed_in_transport(tmp_path: Path) -> None:
    source, destination = FakeRegistry(start=False), FakeRegistry(start=False, referrers_api=False)
    with httpx.Client(transport=source.transport()) as seed:
        image = push_image(seed, f"http://{SOURCE}", "app", tag="v1", layer=b"layer bytes\n" * 1000)
        sbom = push_referrer(seed, f"http://{SOURCE}", "app", subject_of(image), SBOM, b"sbom")
        signature = push_referrer(seed, f"http://{SOURCE}", "app", sbom, SIGNATURE, b"signature")
    transport = TwoRegistries({SOURCE: source, DESTINATION: destination})
    run = _runtime(tmp_path, transport)
    try:
        result = promote(
            Endpoint(run.open(parse_reference(f"{SOURCE}/app:v1")), f"{SOURCE}/app", "v1"),
            Endpoint(run.open(parse_reference(f"{DESTINATION}/prod:v1"), create=True), f"{DESTINATION}/prod",
                     "v1", tags=("v1",)),
            CopyOptions(),
        )
        assert result.stats.manifests_copied == 3
        found = discover_graph(run.open(parse_reference(f"{DESTINATION}/prod:v1")), f"{DESTINATION}/prod", "v1",
                               DiscoverOptions())
    finally:
        run.close()

    assert "v1" in destination.tags("prod")
    assert destination.manifest("prod", "v1").digest == image.manifest_digest  # type: ignore[union-attr]
    assert destination.blob("prod", image.layer_digest) == b"layer bytes\n" * 1000
    listed = found.root.referrers
    assert [(r.descriptor.digest, [g.descriptor.digest for g in r.referrers]) for r in listed] == [
        (sbom["digest"], [signature["digest"]])]
    assert transport.schemes == {"https"}, "names that are not loopback are reached over TLS (here: the seam)"
    assert source.requests and destination.writes()


def test_errors_and_retries_are_the_same_through_the_seam(tmp_path: Path) -> None:
    answers = iter([httpx.Response(503), httpx.Response(503)])

    def flaky(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(
            404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})

    run = _runtime(tmp_path, httpx.MockTransport(flaky), backoff=0.0)
    try:
        target = run.open(parse_reference(f"{SOURCE}/app:v1"))
        with pytest.raises(NotFoundError, match="manifest unknown"):
            target.fetch_manifest("v1")
    finally:
        run.close()

    run = _runtime(tmp_path, httpx.MockTransport(lambda request: httpx.Response(503)), backoff=0.0, retries=1)
    try:
        with pytest.raises(RegistryError, match="503"):
            run.open(parse_reference(f"{SOURCE}/app:v1")).fetch_manifest("v1")
    finally:
        run.close()
