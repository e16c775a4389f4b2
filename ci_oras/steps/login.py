"""``login`` / ``logout``: check credentials against the registry, then store or forget them like docker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ci_oras.errors import UsageError
from ci_oras.oci.reference import parse_registry_reference
from ci_oras.registry.credentials import remove_login, save_login
from ci_oras.runtime import Runtime


@dataclass(frozen=True)
class LoginResult:
    registry: str
    stored_in: str

    def document(self) -> dict[str, Any]:
        return {"schema": "ci-oras/login/v1", "registry": self.registry, "storedIn": self.stored_in}


@dataclass(frozen=True)
class LogoutResult:
    registry: str
    removed: bool

    def document(self) -> dict[str, Any]:
        return {"schema": "ci-oras/logout/v1", "registry": self.registry, "removed": self.removed}


def _registry_host(registry: str) -> str:
    """Accept ``host``, ``host/``, or a full reference, and return the normalised registry host.

    Errors name the host the user typed: the repository used to parse it is an internal detail.
    """
    text = registry.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    hint = "write the registry as HOST[:PORT], e.g. ghcr.io or localhost:5000"
    host = text.split("/", 1)[0]
    if not host:
        raise UsageError(f"the registry host is empty in {registry!r}", hint=hint)
    try:
        return parse_registry_reference(f"{host}/ping-probe").registry
    except UsageError as exc:
        raise UsageError(f"invalid registry host {registry!r}", hint=hint) from exc


def login(run: Runtime, registry: str, username: str, password: str) -> LoginResult:
    """Ping ``/v2/`` with the credentials first, so a typo is reported now and never stored."""
    from ci_oras.store.registry import RegistryRepository

    host = _registry_host(registry)
    probe = parse_registry_reference(f"{host}/ping-probe")
    repository = run.open(probe)
    assert isinstance(repository, RegistryRepository)
    repository.ping()
    stored = save_login(host, username, password, env=run.env)
    return LoginResult(registry=host, stored_in=stored)


def logout(registry: str, env: Mapping[str, str]) -> LogoutResult:
    host = _registry_host(registry)
    return LogoutResult(registry=host, removed=remove_login(host, env=env))
