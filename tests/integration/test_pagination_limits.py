"""A paginated listing (tags, referrers) ends: a ``Link`` back to a page already served is exit 5 naming the
listing, never an endless run (the bound on distinct pages is in ``tests/unit/test_registry_links.py``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.cli import clean_env, run_cli
from harness.proxy import RegistryProxy, matching
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_REGISTRY
from ci_oras.oci.mediatypes import OCI_INDEX


@pytest.fixture
def proxy(registry_plain: RunningRegistry) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry_plain) as running:
        yield running


def _pushed(proxy: RegistryProxy, tmp_path: Path) -> tuple[str, str]:
    repo = f"pages/{uuid.uuid4().hex[:8]}"
    (tmp_path / "a.txt").write_text("a\n")
    pushed = run_cli("push", "--output", "json", f"{proxy.host}/{repo}:v1", "a.txt", env=clean_env(tmp_path),
                     cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    return repo, json.loads(pushed.stdout)["digest"]


def test_a_tag_listing_linking_back_to_itself_ends(proxy: RegistryProxy, tmp_path: Path) -> None:
    repo, _ = _pushed(proxy, tmp_path)
    proxy.inject(matching("GET", "/tags/list"), 200, times=50, headers={
        "Content-Type": "application/json", "Link": f'</v2/{repo}/tags/list?last=v1&n=1000>; rel="next"'},
        body=json.dumps({"name": repo, "tags": ["v1"]}).encode())

    result = run_cli("tags", f"{proxy.host}/{repo}", env=clean_env(tmp_path))

    assert result.returncode == EXIT_REGISTRY, result.stderr
    assert "list tags: the listing" in result.stderr and "links back to a page it already served" in result.stderr
    assert len(proxy.requests_matching(path="/tags/list")) == 2  # the first page and its one repeat


def test_a_referrers_listing_linking_back_to_itself_ends(proxy: RegistryProxy, tmp_path: Path) -> None:
    repo, digest = _pushed(proxy, tmp_path)
    page = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    proxy.inject(matching("GET", f"/referrers/{digest}"), 200, times=50, headers={
        "Content-Type": OCI_INDEX, "Link": f'</v2/{repo}/referrers/{digest}?page=2>; rel="next"'},
        body=json.dumps(page).encode())

    result = run_cli("discover", f"{proxy.host}/{repo}:v1", env=clean_env(tmp_path))

    assert result.returncode == EXIT_REGISTRY, result.stderr
    assert f"list referrers of {digest}: the listing" in result.stderr
    assert len(proxy.requests_matching(path="/referrers/")) == 2

