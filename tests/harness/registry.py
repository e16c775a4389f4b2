"""Start a real CNCF distribution registry (``docker-registry``) for tests.

Why a real process rather than a fake: registries differ from the OCI spec in
ways that matter to a client (upload session ``Location`` handling, ``Accept``
rules for manifests, auth challenges, ...). The Debian ``docker-registry``
2.8.2 package is small, needs no Docker daemon and starts in well under a
second, so every integration test can talk to the real thing.

The registry binds ``127.0.0.1:0``; the kernel picks a free port and the
registry prints it in its log (``listening on 127.0.0.1:PORT``), which is how
we learn it -- no racy "find a free port, then start" dance.

Modes:

``plain``     HTTP, no auth.
``htpasswd``  HTTP, Basic auth from an htpasswd file (bcrypt ``$2y$``).
``token``     HTTP, Docker token auth backed by an in-process
              :class:`~.token_issuer.TokenIssuer`.
``tls``       HTTPS with a private CA (``ca_file``), no auth.

``tls=True`` may be passed to add HTTPS to ``htpasswd`` or ``token`` as well.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .certs import generate_tls_files, generate_token_signing_chain
from .token_issuer import Authorizer, TokenIssuer

if TYPE_CHECKING:  # typing.Self is 3.11+; only needed for type checkers
    from typing_extensions import Self

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "INSTALL_HINT",
    "MODES",
    "REGISTRY_BINARY",
    "TOKEN_ISSUER_NAME",
    "TOKEN_SERVICE",
    "RegistryBinaryNotFoundError",
    "RegistryFactory",
    "RegistryStartError",
    "RunningRegistry",
    "find_registry_binary",
    "start_registry",
]

REGISTRY_BINARY = "docker-registry"
INSTALL_HINT = "apt-get install -y docker-registry"
MODES = ("plain", "htpasswd", "token", "tls")
DEFAULT_USERNAME = "testuser"
DEFAULT_PASSWORD = "testpassword"
TOKEN_SERVICE = "ci-oras-test"
TOKEN_ISSUER_NAME = "ci-oras-test-issuer"
HTPASSWD_REALM = "ci-oras-test-realm"

_LISTENING_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class RegistryBinaryNotFoundError(RuntimeError):
    """``docker-registry`` is not installed.

    A distinct type so the pytest layer can choose between failing (in CI,
    where a missing binary is a broken set-up) and skipping (on a laptop).
    """


class RegistryStartError(RuntimeError):
    """The registry process exited or never logged its listening address."""


def find_registry_binary() -> str:
    """Return the path of ``docker-registry`` or raise with an install hint."""
    path = shutil.which(REGISTRY_BINARY)
    if path is None:
        raise RegistryBinaryNotFoundError(
            f"{REGISTRY_BINARY!r} was not found on PATH; install it with `{INSTALL_HINT}` "
            "(Debian/Ubuntu package of the CNCF distribution registry)"
        )
    return path


# Registries that are still running, stopped at interpreter exit as a
# backstop for when pytest finalizers do not run (e.g. an internal error), so
# no orphaned registry outlives the test session.
_RUNNING: set[RunningRegistry] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _RUNNING_LOCK:
        leftovers = list(_RUNNING)
    for registry in leftovers:
        registry.stop()


@dataclass(eq=False)
class RunningRegistry:
    """Handle to a started registry; call :meth:`stop` when done.

    Attributes:
        host: ``127.0.0.1:PORT`` -- what goes into an image reference.
        port: the port the registry chose.
        url: ``http://host`` or ``https://host``.
        mode: ``plain``, ``htpasswd``, ``token`` or ``tls``.
        username / password: credentials for ``htpasswd`` and ``token``;
            ``None`` otherwise.
        ca_file: PEM of the CA that signed the server certificate when served
            over TLS; ``None`` otherwise.
        issuer: the :class:`TokenIssuer` in ``token`` mode (inspect its
            ``requests``); ``None`` otherwise.
        root_dir: the registry's filesystem storage root.
        process: the ``docker-registry serve`` subprocess.
        workdir: directory holding config, log, certificates and storage.
        config_file: the generated configuration (JSON, which is YAML).
        log_file: combined stdout/stderr of the registry.
    """

    host: str
    port: int
    url: str
    mode: str
    username: str | None
    password: str | None
    ca_file: Path | None
    issuer: TokenIssuer | None
    root_dir: Path
    process: subprocess.Popen[bytes]
    workdir: Path
    config_file: Path
    log_file: Path
    _log_handle: IO[bytes] | None = field(default=None, repr=False)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and stop the issuer.

        Idempotent, so fixtures and the atexit backstop may both call it.
        """
        _terminate(self.process, timeout)
        if self.issuer is not None:
            self.issuer.stop()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)

    @property
    def running(self) -> bool:
        """Whether the registry process is still alive."""
        return self.process.poll() is None

    def log_text(self) -> str:
        """The registry's log so far (useful in assertion messages)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting ``ca_file``.

        httpx 0.28 deprecates ``verify=<path>``; pass this instead.
        """
        if self.ca_file is None:
            raise RuntimeError(f"registry in mode {self.mode!r} is not served over TLS")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the process, then SIGKILL it if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


#: What the ``registry_factory`` fixture yields: ``factory(mode, **opts)``
#: with the keyword arguments of :func:`start_registry`.
RegistryFactory = Callable[..., "RunningRegistry"]


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``extra`` into ``base`` (tests override single keys)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def _htpasswd_line(username: str, password: str) -> str:
    """An Apache-style ``user:$2y$...`` bcrypt entry.

    Cost 4 (the minimum) on purpose: distribution checks the hash on every
    request, and the default cost 12 would add ~0.25 s to each one.
    ``$2b$`` and ``$2y$`` are the same algorithm; ``$2y$`` is what
    ``htpasswd -B`` writes, so that is what we test against.
    """
    try:
        import bcrypt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("htpasswd mode needs the 'bcrypt' package: pip install bcrypt") from exc
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    _, _variant, rest = hashed.split("$", 2)  # "$2b$<cost>$<salt+hash>"
    return f"{username}:$2y${rest}\n"


def _registry_env() -> dict[str, str]:
    """The environment for the child, without ``REGISTRY_*`` variables.

    distribution overrides any config key from ``REGISTRY_<PATH>`` variables;
    a stray one on a developer machine must not change what we test.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def _wait_for_port(
    process: subprocess.Popen[bytes], log_file: Path, config_file: Path, timeout: float
) -> int:
    """Poll the log until ``listening on 127.0.0.1:PORT`` or fail with the log."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_file.read_text(errors="replace") if log_file.exists() else ""
        match = _LISTENING_RE.search(text)
        if match:
            return int(match.group(1))
        exited = process.poll()
        if exited is not None or time.monotonic() > deadline:
            why = (
                f"exited with code {exited}"
                if exited is not None
                else f"did not listen within {timeout:.0f} s"
            )
            raise RegistryStartError(
                f"docker-registry {why}.\n--- config {config_file} ---\n"
                f"{config_file.read_text(errors='replace')}\n--- log {log_file} ---\n{text}"
            )
        time.sleep(0.02)


def start_registry(
    workdir: Path,
    mode: str,
    *,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    tls: bool | None = None,
    anonymous_actions: Collection[str] = (),
    require_auth: bool = False,
    authorizer: Authorizer | None = None,
    identity_token: str | None = None,
    token_ttl: int = 300,
    extra_config: Mapping[str, Any] | None = None,
    startup_timeout: float = 10.0,
    binary: str | None = None,
) -> RunningRegistry:
    """Start ``docker-registry serve`` in ``mode`` under ``workdir``.

    Args:
        workdir: an empty-ish directory owned by the caller (config, log,
            certificates and storage go there).
        mode: one of :data:`MODES`.
        username / password: the account for ``htpasswd`` / ``token``.
        tls: serve HTTPS; defaults to ``mode == "tls"``.
        anonymous_actions, require_auth, authorizer, identity_token,
        token_ttl: passed to :class:`TokenIssuer` (``token`` mode only).
        extra_config: deep-merged into the generated registry config.
        startup_timeout: seconds to wait for the listening log line.
        binary: registry executable; defaults to ``docker-registry`` on PATH.

    Raises:
        RegistryBinaryNotFoundError: the binary is missing (checked first).
        RegistryStartError: the registry did not come up.
    """
    if mode not in MODES:
        raise ValueError(f"unknown registry mode {mode!r}; expected one of {MODES}")
    exe = binary or find_registry_binary()
    use_tls = mode == "tls" if tls is None else tls

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    root_dir = workdir / "storage"
    root_dir.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(root_dir)},
            "delete": {"enabled": True},
            # No background purge goroutine touching storage mid-test.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": "127.0.0.1:0", "secret": secrets.token_hex(16)},
    }

    ca_file: Path | None = None
    if use_tls:
        tls_files = generate_tls_files(workdir / "tls")
        ca_file = tls_files.ca_cert
        config["http"]["tls"] = {
            "certificate": str(tls_files.server_cert),
            "key": str(tls_files.server_key),
        }

    issuer: TokenIssuer | None = None
    user: str | None = None
    pw: str | None = None
    if mode == "htpasswd":
        user, pw = username, password
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(_htpasswd_line(username, password))
        config["auth"] = {"htpasswd": {"realm": HTPASSWD_REALM, "path": str(htpasswd)}}
    elif mode == "token":
        user, pw = username, password
        signing = generate_token_signing_chain(workdir / "token")
        issuer = TokenIssuer(
            signing=signing,
            username=username,
            password=password,
            service=TOKEN_SERVICE,
            issuer_name=TOKEN_ISSUER_NAME,
            anonymous_actions=tuple(anonymous_actions),
            require_auth=require_auth,
            authorizer=authorizer,
            token_ttl=token_ttl,
        )
        if identity_token is not None:
            issuer.identity_token = identity_token
        issuer.start()
        config["auth"] = {
            "token": {
                "realm": issuer.url,
                "service": TOKEN_SERVICE,
                "issuer": TOKEN_ISSUER_NAME,
                "rootcertbundle": str(signing.root_cert),
            }
        }

    if extra_config:
        _deep_merge(config, extra_config)

    # JSON is valid YAML, and avoids a PyYAML dependency for the harness.
    config_file = workdir / "config.yml"
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    log_file = workdir / "registry.log"
    log_handle = log_file.open("wb")
    try:
        # The log goes to a file, not a pipe: nobody drains a pipe after
        # start-up, and a full pipe would block the registry mid-test.
        process = subprocess.Popen(
            [exe, "serve", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            env=_registry_env(),
            cwd=workdir,
        )
    except BaseException:
        log_handle.close()
        if issuer is not None:
            issuer.stop()
        raise

    try:
        port = _wait_for_port(process, log_file, config_file, startup_timeout)
    except BaseException:
        _terminate(process)
        log_handle.close()
        if issuer is not None:
            issuer.stop()
        raise

    host = f"127.0.0.1:{port}"
    registry = RunningRegistry(
        host=host,
        port=port,
        url=f"{'https' if use_tls else 'http'}://{host}",
        mode=mode,
        username=user,
        password=pw,
        ca_file=ca_file,
        issuer=issuer,
        root_dir=root_dir,
        process=process,
        workdir=workdir,
        config_file=config_file,
        log_file=log_file,
        _log_handle=log_handle,
    )
    with _RUNNING_LOCK:
        _RUNNING.add(registry)
    return registry
