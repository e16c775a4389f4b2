"""Credentials for registry hosts: where they are found, and where ``login`` puts them.

The order follows what CI users already have, most explicit first: command-line flags, then the
``CI_ORAS_USERNAME``/``CI_ORAS_PASSWORD`` environment variables (CI secrets, used only for the registry
``CI_ORAS_REGISTRY`` names, so a secret reaches one host), then docker's ``config.json`` as
written by ``docker login``, ``docker/login-action`` or ``az acr login`` (credential helpers included), then
podman/skopeo's ``REGISTRY_AUTH_FILE``. Reading docker's files instead of inventing our own means a job that
already logged in with docker needs no extra step, and ``ci-oras login`` leaves a file docker can read back.

Secrets never reach a message, a ``repr`` or a log line: errors name the file or helper and the fix, nothing
read from inside an entry.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_oras.errors import AuthError, UsageError
from ci_oras.oci.shape import load_json

__all__ = [
    "ACR_TOKEN_USERNAME",
    "DOCKER_HUB_KEY",
    "Credential",
    "config_key",
    "docker_config_path",
    "normalize_registry_key",
    "remove_login",
    "resolve_credential",
    "save_login",
    "unused_env_credentials",
]

# Docker has always keyed Docker Hub as this v1 URL; other tools read it only under that spelling.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

# The username ACR (and `az acr login --expose-token`) uses to say "the password is a refresh token".
ACR_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"
# A credential helper answering with this username means the secret is an identity token (docker's convention).
_HELPER_TOKEN_USERNAME = "<token>"

_HELPER_PREFIX = "docker-credential-"
_HELPER_TIMEOUT_SECONDS = 30
# docker-credential-helpers print this (on stdout) when they simply have nothing for the server.
_HELPER_NOT_FOUND = "credentials not found"

_FLAGS_SOURCE = "--username/--password-stdin"
_ENV_USERNAME = "CI_ORAS_USERNAME"
_ENV_PASSWORD = "CI_ORAS_PASSWORD"
#: The one registry (``host[:port]``) the environment's credentials are for.
_ENV_REGISTRY = "CI_ORAS_REGISTRY"
_DOCKER_LABEL = "docker config"
_AUTH_FILE_LABEL = "REGISTRY_AUTH_FILE"


@dataclass(frozen=True)
class Credential:
    """One set of credentials for one registry host, and where it came from.

    ``source`` exists so an "access denied" can say which credentials were refused (flags, env, which file or
    helper): the usual cause of a CI auth failure is a stale login from a different place than expected.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)  # or a registry token used as a password
    identity_token: str | None = field(default=None, repr=False)  # docker "identitytoken" / ACR refresh token
    source: str = ""

    def __repr__(self) -> str:
        # Written by hand (not the dataclass repr) so a secret can never leak into a log or traceback.
        password = "***" if self.password is not None else None
        token = "***" if self.identity_token is not None else None
        return (
            f"Credential(username={self.username!r}, password={password!r}, "
            f"identity_token={token!r}, source={self.source!r})"
        )

    __str__ = __repr__


# --------------------------------------------------------------------------------------------------------------
# Paths and key spellings


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    """The environment to read: passed explicitly (tests, embedding) or the process's own."""
    return os.environ if env is None else env


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    """Docker's ``config.json``: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``.

    ``HOME`` is read from ``env`` first so tests and CI runners with a fake home never touch the real one.
    """
    environ = _environ(env)
    config_dir = environ.get("DOCKER_CONFIG")
    if config_dir:
        return Path(config_dir) / "config.json"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".docker" / "config.json"


def normalize_registry_key(key: str) -> str:
    """Reduce a config key or host to a bare lower-case ``host[:port]``.

    Keys in the wild are spelled ``ghcr.io``, ``https://ghcr.io``, ``https://index.docker.io/v1/`` or
    ``http://127.0.0.1:5000/v2/`` depending on the tool that wrote them; all must match the same host.
    """
    text = key.strip().lower()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
            break
    text = text.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    return text.rstrip("/")


def _host_aliases(host: str) -> frozenset[str]:
    """Every normalised spelling that names the same registry as ``host`` (Docker Hub has three)."""
    normalized = normalize_registry_key(host)
    if normalized in _DOCKER_HUB_HOSTS:
        return _DOCKER_HUB_HOSTS
    return frozenset({normalized})


def config_key(host: str) -> str:
    """The key docker itself would use for ``host`` (and the server URL handed to credential helpers)."""
    normalized = normalize_registry_key(host)
    return DOCKER_HUB_KEY if normalized in _DOCKER_HUB_HOSTS else normalized


def _matching_keys(mapping: Mapping[str, Any], host: str) -> list[str]:
    """Keys of ``mapping`` naming ``host``, docker's own spelling first so it wins over duplicates."""
    aliases = _host_aliases(host)
    canonical = config_key(host)
    keys = [key for key in mapping if normalize_registry_key(key) in aliases]
    keys.sort(key=lambda key: key != canonical)  # stable: otherwise keeps file order
    return keys


# --------------------------------------------------------------------------------------------------------------
# Reading config files


def _corrupt(path: Path, label: str, problem: str) -> UsageError:
    return UsageError(
        f"{label} {path} {problem}",
        hint="fix the file or delete it and log in again (docker login / ci-oras login)",
    )


def _load_config(path: Path, label: str) -> dict[str, Any] | None:
    """The parsed file, ``{}`` when empty, ``None`` when absent; anything unreadable is a usage error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise _corrupt(path, label, "is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(
            f"cannot read {label} {path}: {exc.strerror}",
            hint="check the file's permissions, or point DOCKER_CONFIG at a readable directory",
        ) from exc
    if not text.strip():
        return {}  # docker treats an empty file as an empty config
    # secret: the decode error carries the whole document (secrets included) in its `doc` attribute.
    data = load_json(text, lambda problem: _corrupt(path, label, f"is {problem}"), secret=True)
    if not isinstance(data, dict):
        raise _corrupt(path, label, "is not a JSON object")
    return data


def _section(config: Mapping[str, Any], name: str, path: Path, label: str) -> dict[str, Any]:
    """A top-level object such as ``auths`` or ``credHelpers``; missing means empty."""
    value = config.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _corrupt(path, label, f'has a "{name}" that is not a JSON object')
    return value


def _text(value: object) -> str:
    """A string field, with anything else (missing, null, a number) read as empty."""
    return value if isinstance(value, str) else ""


def _decode_auth(auth: str, key: str, path: Path, label: str) -> tuple[str, str]:
    """Split a base64 ``user:password`` ``auth`` field; the message names the entry, never its content."""
    stripped = auth.strip()
    padded = stripped + "=" * (-len(stripped) % 4)  # some tools drop the padding
    try:
        decoded = base64.b64decode(padded, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text (which b64decode refuses)
        decoded = None
    if decoded is None or ":" not in decoded:
        raise _corrupt(path, label, f'has an "auth" for {key!r} that is not base64 of "user:password"')
    username, _, password = decoded.partition(":")
    return username, password


def _credential_from_entry(entry: Mapping[str, Any], key: str, path: Path, label: str) -> Credential | None:
    """Read one ``auths`` entry; an empty entry (docker's placeholder next to a credsStore) is no credential."""
    username = _text(entry.get("username"))
    password = _text(entry.get("password"))
    auth = _text(entry.get("auth"))
    if auth.strip():
        username, password = _decode_auth(auth, key, path, label)  # docker lets "auth" win over the fields
    identity_token = _text(entry.get("identitytoken"))
    source = f"{label} {path}"
    if identity_token:
        return Credential(
            username=username or None, password=password or None, identity_token=identity_token, source=source
        )
    if password:
        return Credential(username=username, password=password, source=source)
    return None


# --------------------------------------------------------------------------------------------------------------
# Credential helpers (docker-credential-<name> get|store|erase)


def _helper_executable(name: str, env: Mapping[str, str], configured_in: Path) -> str:
    """Find the helper on the PATH of ``env`` (not ours), so what the caller passes is what runs."""
    program = _HELPER_PREFIX + name
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise UsageError(
            f"credential helper {program} is not installed (not found on PATH)",
            hint=f"install {program}, or remove it from credsStore/credHelpers in {configured_in}",
        )
    return found


def _run_helper(
    name: str, action: str, stdin: str, env: Mapping[str, str], configured_in: Path
) -> subprocess.CompletedProcess[str]:
    """Run one helper action; only "could not run it at all" is raised here, exit codes are the caller's."""
    program = _HELPER_PREFIX + name
    executable = _helper_executable(name, env, configured_in)
    try:
        return subprocess.run(
            [executable, action],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT_SECONDS,
            env=dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AuthError(
            f"credential helper {program} {action} did not answer within {_HELPER_TIMEOUT_SECONDS}s",
            hint="the helper may be waiting for an unlock prompt; unlock its keychain or configure another store",
        ) from None  # the timeout error can carry the helper's partial output: keep it out of tracebacks
    except OSError as exc:
        raise UsageError(
            f"cannot run credential helper {executable}: {exc.strerror}",
            hint=f"make it executable, or remove it from credsStore/credHelpers in {configured_in}",
        ) from exc


def _helper_said_not_found(result: subprocess.CompletedProcess[str]) -> bool:
    return _HELPER_NOT_FOUND in (result.stdout + "\n" + result.stderr).lower()


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _helper_failure(
    name: str, action: str, result: subprocess.CompletedProcess[str], secret: str | None = None
) -> AuthError:
    """An error quoting the helper's own complaint (stderr, else stdout where docker's helpers write it)."""
    program = _HELPER_PREFIX + name
    reason = _first_line(result.stderr) or _first_line(result.stdout) or f"exit status {result.returncode}"
    if secret:
        reason = reason.replace(secret, "***")  # a helper echoing its input must not leak it through us
    return AuthError(
        f"credential helper {program} {action} failed: {reason}",
        hint=f"check that {program} works on its own ({program} list)",
    )


def _helper_get(name: str, host: str, env: Mapping[str, str], configured_in: Path) -> Credential | None:
    """Ask a helper for ``host``; "not found" is an ordinary miss so resolution can carry on."""
    program = _HELPER_PREFIX + name
    result = _run_helper(name, "get", config_key(host), env, configured_in)
    if result.returncode != 0:
        if _helper_said_not_found(result):
            return None
        raise _helper_failure(name, "get", result)
    try:
        payload = load_json(result.stdout, AuthError, secret=True)
    except AuthError:
        payload = None
    if not isinstance(payload, dict):
        raise AuthError(
            f"credential helper {program} get returned an answer that is not a JSON object",
            hint=f"check that {program} works on its own ({program} list)",
        )
    username = _text(payload.get("Username"))
    secret = _text(payload.get("Secret"))
    if not secret:
        return None
    source = f"credential helper {program}"
    if username == _HELPER_TOKEN_USERNAME:
        return Credential(identity_token=secret, source=source)
    return Credential(username=username, password=secret, source=source)


def _helper_for(config: Mapping[str, Any], host: str, path: Path, label: str) -> str | None:
    """The helper docker would use for ``host``: a per-host ``credHelpers`` entry, else ``credsStore``."""
    helpers = _section(config, "credHelpers", path, label)
    for key in _matching_keys(helpers, host):
        name = _text(helpers[key])
        if name:
            return name
    store = _text(config.get("credsStore"))
    return store or None


# --------------------------------------------------------------------------------------------------------------
# Resolution


def _from_flags(username: str | None, password: str | None) -> Credential | None:
    """Flags must come as a pair: half a pair is a mistake worth stopping for, not a silent anonymous pull."""
    username = username or None
    password = password or None
    if username is None and password is None:
        return None
    if password is None:
        raise UsageError(
            "--username needs --password-stdin or --password",
            hint='pipe the password or token in: echo "$TOKEN" | ci-oras … --username USER --password-stdin',
        )
    if username is None:
        raise UsageError(
            "--password-stdin/--password needs --username",
            hint=f"pass --username too (for an ACR refresh token use --username {ACR_TOKEN_USERNAME})",
        )
    return Credential(username=username, password=password, source=_FLAGS_SOURCE)


def _from_env(env: Mapping[str, str], host: str) -> Credential | None:
    """The environment's credentials, only for the one registry ``CI_ORAS_REGISTRY`` names.

    Both variables or nothing: CI hides secrets from fork builds, and those must still pull anonymously.
    Unscoped they would reach every host a command touches (both ends of a promote, any token realm), so
    without ``CI_ORAS_REGISTRY`` they are not used at all; :func:`unused_env_credentials` says why.
    """
    username = env.get(_ENV_USERNAME, "")
    password = env.get(_ENV_PASSWORD, "")
    scope = env.get(_ENV_REGISTRY, "").strip()
    if username and password and scope and normalize_registry_key(host) in _host_aliases(scope):
        return Credential(username=username, password=password, source=f"{_ENV_USERNAME}/{_ENV_PASSWORD}")
    return None


def unused_env_credentials(host: str, env: Mapping[str, str] | None = None) -> str | None:
    """Why ``CI_ORAS_USERNAME``/``CI_ORAS_PASSWORD`` were not used for ``host``, when they are set at all.

    Shown when ``host`` then asks for authentication: a job that sets the variables expects them to work,
    and "authentication required" alone would not say that they are scoped to another registry.
    """
    environ = _environ(env)
    username = environ.get(_ENV_USERNAME, "")
    password = environ.get(_ENV_PASSWORD, "")
    if not username and not password:
        return None
    variables = f"{_ENV_USERNAME}/{_ENV_PASSWORD}"
    if not (username and password):
        missing = _ENV_PASSWORD if username else _ENV_USERNAME
        return f"{variables} are used only as a pair and {missing} is empty; set both"
    scope = environ.get(_ENV_REGISTRY, "").strip()
    if not scope:
        return (f"{variables} are set but {_ENV_REGISTRY} is not; "
                f"set {_ENV_REGISTRY}=host[:port] to use them")
    if normalize_registry_key(host) in _host_aliases(scope):
        return None
    here = normalize_registry_key(host)
    return (f"{variables} are for {_ENV_REGISTRY}={normalize_registry_key(scope)}, not {here}; "
            f"log in to {here} separately (docker login or ci-oras login)")


def _from_config_file(path: Path, label: str, host: str, env: Mapping[str, str]) -> Credential | None:
    """Docker's lookup inside one file: per-host helper, then ``auths``, then the default ``credsStore``."""
    config = _load_config(path, label)
    if config is None:
        return None
    helpers = _section(config, "credHelpers", path, label)
    for key in _matching_keys(helpers, host):
        name = _text(helpers[key])
        if name:
            found = _helper_get(name, host, env, path)
            if found is not None:
                return found
            break
    auths = _section(config, "auths", path, label)
    for key in _matching_keys(auths, host):
        entry = auths[key]
        if isinstance(entry, dict):
            found = _credential_from_entry(entry, key, path, label)
            if found is not None:
                return found
    store = _text(config.get("credsStore"))
    if store:
        return _helper_get(store, host, env, path)
    return None


def resolve_credential(
    host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Credential | None:
    """Credentials for ``host`` (as the user wrote it), or ``None`` to go anonymous.

    First hit wins: flags, ``CI_ORAS_USERNAME``/``CI_ORAS_PASSWORD`` (when ``CI_ORAS_REGISTRY`` names
    ``host``), docker ``config.json``, then ``REGISTRY_AUTH_FILE``. ``env`` defaults to ``os.environ``;
    helpers run with exactly that environment.
    """
    environ = _environ(env)
    found = _from_flags(username, password) or _from_env(environ, host)
    if found is not None:
        return found
    found = _from_config_file(docker_config_path(environ), _DOCKER_LABEL, host, environ)
    if found is not None:
        return found
    auth_file = environ.get("REGISTRY_AUTH_FILE")
    if auth_file:
        return _from_config_file(Path(auth_file), _AUTH_FILE_LABEL, host, environ)
    return None


# --------------------------------------------------------------------------------------------------------------
# login / logout


def _write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Replace the file atomically with mode 0600: a crash mid-write must not lose the user's other logins."""
    # Write through a symlink (e.g. a mounted secret) rather than replacing the link with a plain file.
    target = path.resolve() if path.is_symlink() else path
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(config, handle, indent="\t")
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, 0o600)  # mkstemp already uses 0600; said explicitly because it is the point
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
    except OSError as exc:
        raise UsageError(
            f"cannot write {_DOCKER_LABEL} {target}: {exc.strerror}",
            hint="check the directory's permissions, or set DOCKER_CONFIG to a writable directory",
        ) from exc


def _auth_entry(username: str, password: str) -> dict[str, str]:
    """The ``auths`` value docker writes; ACR's token username keeps the token as an identity token."""
    if username == ACR_TOKEN_USERNAME:
        auth = base64.b64encode(f"{username}:".encode()).decode("ascii")
        return {"auth": auth, "identitytoken": password}
    return {"auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}


def _check_login_input(username: str, password: str) -> None:
    if not username:
        raise UsageError("login needs a username", hint="pass --username")
    if ":" in username:
        raise UsageError("a registry username cannot contain ':'", hint="check the --username value")
    if not password:
        raise UsageError("login needs a non-empty password", hint="pass it with --password-stdin")


def save_login(host: str, username: str, password: str, *, env: Mapping[str, str] | None = None) -> str:
    """Store a login like ``docker login`` does; returns where it went, for the user-facing message.

    A configured helper (``credHelpers[host]`` or ``credsStore``) gets it, so the secret stays out of the
    file; otherwise ``auths`` in ``config.json`` gets it, every other key of the file kept as it was.
    """
    _check_login_input(username, password)
    environ = _environ(env)
    path = docker_config_path(environ)
    config = _load_config(path, _DOCKER_LABEL) or {}
    helper = _helper_for(config, host, path, _DOCKER_LABEL)
    if helper is not None:
        payload = json.dumps({"ServerURL": config_key(host), "Username": username, "Secret": password})
        result = _run_helper(helper, "store", payload, environ, path)
        if result.returncode != 0:
            raise _helper_failure(helper, "store", result, secret=password)
        return f"credential helper {_HELPER_PREFIX}{helper}"
    auths = _section(config, "auths", path, _DOCKER_LABEL)
    keys = _matching_keys(auths, host)
    for stale in keys[1:]:
        del auths[stale]  # one entry per registry, or a later lookup might read the stale one
    auths[keys[0] if keys else config_key(host)] = _auth_entry(username, password)
    config["auths"] = auths
    _write_config(path, config)
    return f"{_DOCKER_LABEL} {path}"


def _helper_erase(name: str, host: str, env: Mapping[str, str], configured_in: Path) -> bool:
    result = _run_helper(name, "erase", config_key(host), env, configured_in)
    if result.returncode == 0:
        return True
    if _helper_said_not_found(result):
        return False
    raise _helper_failure(name, "erase", result)


def remove_login(host: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Forget ``host`` like ``docker logout``; True when something was actually removed.

    Both places are cleared: the helper (if configured) and every ``auths`` spelling of the host, because
    docker leaves placeholder entries in the file even when the secret lives in a helper.
    """
    environ = _environ(env)
    path = docker_config_path(environ)
    config = _load_config(path, _DOCKER_LABEL)
    if config is None:
        return False
    removed = False
    helper = _helper_for(config, host, path, _DOCKER_LABEL)
    if helper is not None:
        removed = _helper_erase(helper, host, environ, path)
    auths = _section(config, "auths", path, _DOCKER_LABEL)
    keys = _matching_keys(auths, host)
    if keys:
        for key in keys:
            del auths[key]
        config["auths"] = auths
        _write_config(path, config)
        removed = True
    return removed
