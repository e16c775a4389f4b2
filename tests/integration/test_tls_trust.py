"""The default TLS trust is built when a connection first needs it, once, and is httpx's own default.

A plain-HTTP run never loads the CA bundle (about 25 ms of a short CI step); the first HTTPS connection
builds the same context httpx would have built up front, honouring ``SSL_CERT_FILE`` like it does.
"""

from __future__ import annotations

import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from harness.registry import RunningRegistry

from ci_oras.registry.transport import TransportOptions, make_client


@pytest.fixture
def built(registry_tls: RunningRegistry, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every TLS context made (the arguments to httpx's public ``create_ssl_context``), with the TLS
    registry's CA as ``SSL_CERT_FILE``: the connection works only if httpx's default trust honours it."""
    made: list[dict[str, Any]] = []
    real = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.ca_file))
    return made


def test_trust_is_built_at_the_first_tls_connection_only_once(registry_plain: RunningRegistry,
                                                              registry_tls: RunningRegistry,
                                                              built: list[dict[str, Any]]) -> None:
    with make_client(TransportOptions()) as client:
        assert client.get(f"{registry_plain.url}/v2/").status_code == 200
        assert built == []  # plain HTTP: no context, no CA bundle
        for _ in range(2):
            assert client.get(f"{registry_tls.url}/v2/").status_code == 200
    assert built == [{"verify": True, "trust_env": True}]  # httpx's default, made once


def test_parallel_first_connections_build_the_trust_once(registry_tls: RunningRegistry,
                                                          built: list[dict[str, Any]]) -> None:
    """promote opens its first TLS connections from several threads at once: one context for all of them."""
    with make_client(TransportOptions()) as client, ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: client.get(f"{registry_tls.url}/v2/").status_code, range(8)))
    assert statuses == [200] * 8
    assert built == [{"verify": True, "trust_env": True}]


def test_deferred_trust_still_rejects_an_unknown_ca(registry_tls: RunningRegistry,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with make_client(TransportOptions()) as client, pytest.raises(httpx.ConnectError,
                                                                  match="CERTIFICATE_VERIFY_FAILED"):
        client.get(f"{registry_tls.url}/v2/")
