"""Real-registry test harness for ci_oras integration tests.

The harness starts the CNCF distribution registry (Debian's ``docker-registry``
binary) as a subprocess in one of four set-ups -- plain HTTP, htpasswd Basic
auth, Docker token auth (with an in-process token issuer) and TLS -- so that
integration tests talk to a real registry instead of a mock whose behaviour we
would have to guess.

It deliberately does not import ``ci_oras``: the harness must be able to prove
itself (``tests/integration/test_harness.py``) independently of the code under
test.
"""

from __future__ import annotations

from .registry import (
    MODES,
    REGISTRY_BINARY,
    RegistryBinaryNotFoundError,
    RegistryFactory,
    RegistryStartError,
    RunningRegistry,
    find_registry_binary,
    start_registry,
)
from .token_issuer import TokenIssuer, TokenRequestRecord

__all__ = [
    "MODES",
    "REGISTRY_BINARY",
    "RegistryBinaryNotFoundError",
    "RegistryFactory",
    "RegistryStartError",
    "RunningRegistry",
    "TokenIssuer",
    "TokenRequestRecord",
    "find_registry_binary",
    "start_registry",
]
