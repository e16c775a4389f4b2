"""The registry connections of one run: one HTTP client, one authenticator, one ``RegistryClient`` per host.

``transport`` (default: the network) is the seam where tests and library users hand in their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ci_oras.registry.credentials import Credential
from ci_oras.registry.transport import TransportOptions

if TYPE_CHECKING:
    import httpx

    from ci_oras.oci.reference import RegistryReference
    from ci_oras.registry.auth import Authenticator
    from ci_oras.registry.client import RegistryClient
    from ci_oras.registry.transport import HttpClient


class RegistrySession:
    """Created lazily on first registry use, so commands on OCI layouts never import httpx."""

    def __init__(
        self,
        options: TransportOptions,
        credential_for: Callable[[str], Credential | None],
        unused_credentials: Callable[[str], str | None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.options = options
        self._transport = transport
        from ci_oras.registry.retry import RetryPolicy

        self.policy = RetryPolicy.of(options)
        self._credential_for = credential_for
        self._unused_credentials = unused_credentials
        self._http: HttpClient | None = None
        self._auth: Authenticator | None = None
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def plain_http_for(self, reference: RegistryReference) -> bool:
        if self.options.plain_http is not None:
            return self.options.plain_http
        # Loopback registries are usually plain HTTP; an explicit CA or --insecure says the user wants TLS.
        return reference.is_loopback and not self.options.ca_file and not self.options.insecure

    def client_for(self, reference: RegistryReference) -> RegistryClient:
        from ci_oras.registry.auth import Authenticator
        from ci_oras.registry.client import RegistryClient
        from ci_oras.registry.transport import make_client

        with self._lock:
            if self._http is None:
                self._http = make_client(self.options, self._transport, self.policy)
                self._auth = Authenticator(self._http, self.options, self._credential_for,
                                           self._unused_credentials)
            client = self._clients.get(reference.registry)
            if client is None:
                assert self._auth is not None
                client = RegistryClient(
                    reference.registry,
                    reference.api_host,
                    plain_http=self.plain_http_for(reference),
                    http=self._http,
                    auth=self._auth,
                    options=self.options,
                    policy=self.policy,
                )
                self._clients[reference.registry] = client
            return client

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
