"""What one CLI invocation opens: targets for references, sharing one registry session.

The CLI builds a ``Runtime`` from its flags and the environment, opens targets through it and closes it at
the end. Credentials given as flags are bound to the registry of the reference they were given with, so they
are never sent to any other host a command touches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ci_oras.oci.reference import LayoutReference, Reference, RegistryReference
from ci_oras.registry.credentials import Credential, resolve_credential, unused_env_credentials
from ci_oras.registry.referrers import ReferrersMode
from ci_oras.registry.transport import TransportOptions

if TYPE_CHECKING:
    import httpx

    from ci_oras.registry.session import RegistrySession
    from ci_oras.store.protocols import Target


@dataclass(frozen=True)
class LoginFlags:
    username: str | None = None
    password: str | None = None


class Runtime:
    """``transport`` replaces the network for every registry the run opens (``httpx.MockTransport``, an
    in-process registry); left out, requests go to the registries themselves."""

    def __init__(self, options: TransportOptions, login: LoginFlags, env: Mapping[str, str],
                 transport: httpx.BaseTransport | None = None) -> None:
        self.options = options
        self.login = login
        self.env = env
        self._transport = transport
        self._flag_hosts: set[str] = set()
        self._session: RegistrySession | None = None

    def credential_for(self, host: str) -> Credential | None:
        if host in self._flag_hosts:
            return resolve_credential(host, username=self.login.username, password=self.login.password, env=self.env)
        return resolve_credential(host, env=self.env)

    def unused_credentials(self, host: str) -> str | None:
        """Why credentials set in the environment were not used for ``host`` (for its "authentication
        required" message)."""
        return unused_env_credentials(host, self.env)

    @property
    def session(self) -> RegistrySession:
        if self._session is None:
            from ci_oras.registry.session import RegistrySession

            self._session = RegistrySession(self.options, self.credential_for, self.unused_credentials,
                                            transport=self._transport)
        return self._session

    def open(self, reference: Reference, *, create: bool = False, use_login_flags: bool = True,
             referrers: ReferrersMode = ReferrersMode.auto, watch_listings: bool = True,
             absent_layout_is_empty: bool = False) -> Target:
        """A target for ``reference``; ``create`` means "about to write": a layout is created if absent and a
        registry repository asks for push access up front. ``absent_layout_is_empty``: a layout that does not
        exist is opened as an empty store (a dry run into it shows everything as to copy, and creates nothing).
        ``watch_listings=False``: tag-schema referrers
        listings are read back once, not watched (``SettleOptions.watch``), for a caller that checks them later."""
        if isinstance(reference, LayoutReference):
            if absent_layout_is_empty and not create and not Path(reference.path).exists():
                from ci_oras.store.memory import MemoryStore

                return MemoryStore(reference.path)  # a dry run's destination not there yet: it holds nothing
            from ci_oras.store.layout import OCILayout

            return OCILayout(reference.path, create=create)
        assert isinstance(reference, RegistryReference)
        if use_login_flags and (self.login.username is not None or self.login.password is not None):
            self._flag_hosts.add(reference.registry)
        from ci_oras.registry.referrers import SettleOptions
        from ci_oras.store.registry import RegistryRepository

        return RegistryRepository(reference, self.session.client_for(reference), writable=create,
                                  referrers_mode=referrers, settle=None if watch_listings else SettleOptions(watch=False))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
