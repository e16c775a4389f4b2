"""Which absolute URLs a registry hands out may be followed with its credentials: its own, no other host's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ci_oras.errors import RegistryError
from ci_oras.oci.reference import RegistryReference, parse_reference
from ci_oras.registry.client import MAX_PAGES, RegistryClient
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime

BASE = "http://127.0.0.1:5000"


@pytest.fixture
def client() -> Iterator[RegistryClient]:
    runtime = Runtime(TransportOptions(), LoginFlags(), {"HOME": "/nonexistent"})
    reference = parse_reference("127.0.0.1:5000/x/y")
    assert isinstance(reference, RegistryReference)
    yield runtime.session.client_for(reference)  # nothing is sent: these tests only ask about URLs
    runtime.close()


def _page(link: str) -> httpx.Response:
    return httpx.Response(200, headers={"Link": f'<{link}>; rel="next"'},
                          request=httpx.Request("GET", f"{BASE}/v2/x/y/tags/list"))


@pytest.mark.parametrize(("link", "expected"), [
    ("/v2/x/y/tags/list?last=a", f"{BASE}/v2/x/y/tags/list?last=a"),
    (f"{BASE}/v2/x/y/tags/list?n=1", f"{BASE}/v2/x/y/tags/list?n=1"),
    ("http://127.0.0.1:5000/v2/x/y/tags/list?n=2", f"{BASE}/v2/x/y/tags/list?n=2"),
])
def test_next_page_on_the_registry_itself_is_followed(client: RegistryClient, link: str, expected: str) -> None:
    assert client.next_page(_page(link), "list tags", set()) == expected


@pytest.mark.parametrize("link", [
    "http://localhost:5000/v2/x/y/tags/list",  # another name is another host, even for the same socket
    "http://127.0.0.1:5001/v2/x/y/tags/list",
    "https://127.0.0.1:5000/v2/x/y/tags/list",
    "//evil.example/v2/x/y/tags/list",
])
def test_next_page_on_another_host_is_refused(client: RegistryClient, link: str) -> None:
    with pytest.raises(RegistryError, match="next-page link to another host") as info:
        client.next_page(_page(link), "list tags", set())
    assert info.value.exit_code == 5


def test_no_link_is_the_last_page(client: RegistryClient) -> None:
    response = httpx.Response(200, request=httpx.Request("GET", f"{BASE}/v2/x/y/tags/list"))
    assert client.next_page(response, "list tags", set()) is None


def test_default_ports_are_the_same_origin(client: RegistryClient) -> None:
    assert client.same_origin(f"{BASE}/v2/")
    assert not client.same_origin("http://127.0.0.1/v2/")
    assert not client.same_origin("http://127.0.0.1.evil.example:5000/v2/")


def test_an_invalid_link_is_a_registry_error(client: RegistryClient) -> None:
    with pytest.raises(RegistryError, match="invalid"):
        client.next_page(_page("http://127.0.0.1:5000.evil.example/v2/"), "list tags", set())


def test_a_link_back_to_a_page_already_followed_is_a_loop(client: RegistryClient) -> None:
    followed: set[str] = set()
    assert client.next_page(_page("/v2/x/y/tags/list?last=a"), "list tags", followed) is not None
    with pytest.raises(RegistryError, match="links back to a page it already served") as info:
        client.next_page(_page("/v2/x/y/tags/list?last=a"), "list tags", followed)
    assert info.value.exit_code == 5


def test_the_number_of_pages_is_bounded(client: RegistryClient) -> None:
    """Distinct pages without end (``?page=1``, ``?page=2`` …) stop after MAX_PAGES."""
    followed: set[str] = set()
    for page in range(MAX_PAGES):
        assert client.next_page(_page(f"/v2/x/y/tags/list?page={page}"), "list tags", followed) is not None
    with pytest.raises(RegistryError, match=f"has more than {MAX_PAGES} pages"):
        client.next_page(_page(f"/v2/x/y/tags/list?page={MAX_PAGES}"), "list tags", followed)
