"""The default TLS trust is built when a connection first needs it, once, and is httpx's own default.

A plain-HTTP run never loads the CA bundle (about 25 ms of a short CI step); the first HTTPS connection
builds the same context httpx would have built up front, honouring ``SSL_CERT_FILE`` like it does.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from harness.registry import RunningRegistry

from ci_oras.registry.transport import TransportOptions, make_client


def test_trust_is_built_at_the_first_tls_connection_only_once(registry_plain: RunningRegistry,
                                                              registry_tls: RunningRegistry,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[dict[str, Any]] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.ca_file))
    client = make_client(TransportOptions())
    try:
        assert client.get(f"{registry_plain.url}/v2/").status_code == 200
        assert built == []  # plain HTTP: no context, no CA bundle
        for _ in range(2):
            assert client.get(f"{registry_tls.url}/v2/").status_code == 200
        assert built == [{"cafile": str(registry_tls.ca_file)}]  # httpx's default, made once
    finally:
        client.close()


def test_deferred_trust_still_rejects_an_unknown_ca(registry_tls: RunningRegistry,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    client = make_client(TransportOptions())
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"{registry_tls.url}/v2/")
    finally:
        client.close()
