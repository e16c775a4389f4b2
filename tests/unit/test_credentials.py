"""Credential resolution against real files in tmp_path and a real credential-helper script.

The environment is always passed explicitly (HOME points into tmp_path) so nothing here reads the real home.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from ci_oras.errors import AuthError, UsageError
from ci_oras.registry.credentials import (
    ACR_TOKEN_USERNAME,
    DOCKER_HUB_KEY,
    Credential,
    config_key,
    docker_config_path,
    normalize_registry_key,
    remove_login,
    resolve_credential,
    save_login,
    unused_env_credentials,
)

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the helper under test is a POSIX shell script"
)

HOST = "127.0.0.1:5000"

# Answers like docker-credential-helpers do: JSON on stdout for `get`, "not found" on stdout with exit 1.
HELPER_SCRIPT = r"""#!/bin/sh
input=$(cat)
case "$1" in
  get)
    printf '%s\n' "$input" >> "$HELPER_LOG.get"
    case "$input" in
      ghcr.io) printf '{"ServerURL":"ghcr.io","Username":"helper-user","Secret":"helper-secret"}\n' ;;
      token.example) printf '{"ServerURL":"token.example","Username":"<token>","Secret":"helper-idtoken"}\n' ;;
      https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub-user","Secret":"hub-secret"}\n' "$input" ;;
      broken.example) echo "error: keychain is locked" >&2; echo "partial"; exit 3 ;;
      garbage.example) echo "this is not json" ;;
      *) echo "credentials not found in native keychain"; exit 1 ;;
    esac ;;
  store) printf '%s' "$input" > "$HELPER_LOG.store" ;;
  erase)
    printf '%s' "$input" > "$HELPER_LOG.erase"
    case "$input" in
      absent.example) echo "credentials not found in native keychain"; exit 1 ;;
    esac ;;
  *) exit 2 ;;
esac
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture()
def env(home: Path, tmp_path: Path) -> dict[str, str]:
    """A minimal environment: fake HOME, a PATH without any docker-credential-* helper."""
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    return {"HOME": str(home), "PATH": f"{empty_bin}{os.pathsep}/usr/bin{os.pathsep}/bin"}


@pytest.fixture()
def helper_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``env`` with a real ``docker-credential-testhelper`` first on PATH, logging what it receives."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-testhelper"
    script.write_text(HELPER_SCRIPT)
    script.chmod(0o755)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "HELPER_LOG": str(tmp_path / "helper")}


def write_config(env: dict[str, str], data: Any) -> Path:
    path = docker_config_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def read_config(env: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(docker_config_path(env).read_text())
    return data


# --------------------------------------------------------------------------------------------------------------
# paths and key spellings


def test_docker_config_path_prefers_docker_config(tmp_path: Path) -> None:
    assert docker_config_path({"DOCKER_CONFIG": str(tmp_path / "d"), "HOME": "/nowhere"}) == (
        tmp_path / "d" / "config.json"
    )
    assert docker_config_path({"HOME": str(tmp_path)}) == tmp_path / ".docker" / "config.json"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("GHCR.io/", "ghcr.io"),
        ("https://ghcr.io", "ghcr.io"),
        ("ghcr.io", "ghcr.io"),
    ],
)
def test_normalize_registry_key(key: str, expected: str) -> None:
    assert normalize_registry_key(key) == expected


def test_config_key_uses_docker_hub_convention() -> None:
    for host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        assert config_key(host) == DOCKER_HUB_KEY
    assert config_key("ghcr.io") == "ghcr.io"


# --------------------------------------------------------------------------------------------------------------
# sources and precedence


def test_anonymous_when_nothing_configured(env: dict[str, str]) -> None:
    assert resolve_credential(HOST, env=env) is None


def test_flags(env: dict[str, str]) -> None:
    cred = resolve_credential(HOST, username="u", password="p", env=env)
    assert cred == Credential(username="u", password="p", source="--username/--password-stdin")


def test_username_without_password_is_usage_error(env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="--username needs --password-stdin or --password"):
        resolve_credential(HOST, username="u", env=env)


def test_password_without_username_is_usage_error(env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="needs --username") as info:
        resolve_credential(HOST, password="s3cret", env=env)
    assert "s3cret" not in str(info.value)


ENV_CREDS = {"CI_ORAS_USERNAME": "eu", "CI_ORAS_PASSWORD": "ep"}


def test_env_variables_for_the_registry_they_name(env: dict[str, str]) -> None:
    for spelling in (HOST, f"http://{HOST}/", f"https://{HOST}/v2/"):
        cred = resolve_credential(HOST, env={**env, **ENV_CREDS, "CI_ORAS_REGISTRY": spelling})
        assert cred is not None
        assert (cred.username, cred.password, cred.source) == ("eu", "ep", "CI_ORAS_USERNAME/CI_ORAS_PASSWORD")
        assert unused_env_credentials(HOST, {**env, **ENV_CREDS, "CI_ORAS_REGISTRY": spelling}) is None


def test_env_variables_reach_no_other_host(env: dict[str, str]) -> None:
    scoped = {**env, **ENV_CREDS, "CI_ORAS_REGISTRY": HOST}
    for other in ("127.0.0.1:5001", "localhost:5000", "ghcr.io"):
        assert resolve_credential(other, env=scoped) is None
        reason = unused_env_credentials(other, scoped)
        assert reason is not None and f"CI_ORAS_REGISTRY={HOST}, not {other}" in reason
        assert "ep" not in reason.split()  # names the variables, never their values


def test_env_variables_unused_without_registry(env: dict[str, str]) -> None:
    unscoped = {**env, **ENV_CREDS}
    assert resolve_credential(HOST, env=unscoped) is None
    assert unused_env_credentials(HOST, unscoped) == (
        "CI_ORAS_USERNAME/CI_ORAS_PASSWORD are set but CI_ORAS_REGISTRY is not; "
        "set CI_ORAS_REGISTRY=host[:port] to use them")


def test_env_registry_docker_hub_aliases(env: dict[str, str]) -> None:
    hub = {**env, **ENV_CREDS, "CI_ORAS_REGISTRY": "docker.io"}
    for alias in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert resolve_credential(alias, env=hub) is not None
    assert resolve_credential("quay.io", env=hub) is None


def test_env_needs_both_variables(env: dict[str, str]) -> None:
    scoped = {**env, "CI_ORAS_REGISTRY": HOST}
    assert resolve_credential(HOST, env={**scoped, "CI_ORAS_USERNAME": "eu"}) is None
    assert resolve_credential(HOST, env={**scoped, "CI_ORAS_PASSWORD": "ep"}) is None
    assert "CI_ORAS_PASSWORD is empty" in (unused_env_credentials(HOST, {**scoped, "CI_ORAS_USERNAME": "eu"}) or "")
    assert unused_env_credentials(HOST, scoped) is None


def test_docker_config_auth(env: dict[str, str]) -> None:
    path = write_config(env, {"auths": {HOST: {"auth": b64("du:dp")}}})
    cred = resolve_credential(HOST, env=env)
    assert cred == Credential(username="du", password="dp", source=f"docker config {path}")


def test_docker_config_from_docker_config_dir(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "DOCKER_CONFIG": str(tmp_path / "dc")}
    write_config(env, {"auths": {HOST: {"auth": b64("du:dp")}}})
    cred = resolve_credential(HOST, env=env)
    assert cred is not None and cred.source == f"docker config {tmp_path / 'dc' / 'config.json'}"


def test_docker_config_username_password_fields(env: dict[str, str]) -> None:
    write_config(env, {"auths": {HOST: {"username": "fu", "password": "fp"}}})
    cred = resolve_credential(HOST, env=env)
    assert cred is not None and (cred.username, cred.password) == ("fu", "fp")


def test_password_with_colon_survives(env: dict[str, str]) -> None:
    write_config(env, {"auths": {HOST: {"auth": b64("du:p:a:ss")}}})
    cred = resolve_credential(HOST, env=env)
    assert cred is not None and cred.password == "p:a:ss"


def test_auth_key_spellings_match(env: dict[str, str]) -> None:
    write_config(env, {"auths": {"http://127.0.0.1:5000/v2/": {"auth": b64("du:dp")}}})
    assert resolve_credential(HOST, env=env) is not None
    assert resolve_credential("127.0.0.1:5001", env=env) is None


@pytest.mark.parametrize("host", ["docker.io", "registry-1.docker.io", "index.docker.io"])
@pytest.mark.parametrize("key", [DOCKER_HUB_KEY, "docker.io", "https://index.docker.io/v1"])
def test_docker_hub_key_spellings(env: dict[str, str], host: str, key: str) -> None:
    write_config(env, {"auths": {key: {"auth": b64("hub:pw")}}})
    cred = resolve_credential(host, env=env)
    assert cred is not None and cred.username == "hub"


def test_docker_hub_canonical_key_wins_over_other_spelling(env: dict[str, str]) -> None:
    write_config(
        env, {"auths": {"docker.io": {"auth": b64("old:x")}, DOCKER_HUB_KEY: {"auth": b64("new:y")}}}
    )
    cred = resolve_credential("docker.io", env=env)
    assert cred is not None and cred.username == "new"


def test_identity_token(env: dict[str, str]) -> None:
    write_config(env, {"auths": {HOST: {"auth": b64(f"{ACR_TOKEN_USERNAME}:"), "identitytoken": "idt"}}})
    cred = resolve_credential(HOST, env=env)
    assert cred is not None
    assert (cred.username, cred.password, cred.identity_token) == (ACR_TOKEN_USERNAME, None, "idt")


def test_identity_token_without_auth(env: dict[str, str]) -> None:
    write_config(env, {"auths": {HOST: {"identitytoken": "idt"}}})
    cred = resolve_credential(HOST, env=env)
    assert cred is not None and cred.username is None and cred.identity_token == "idt"


def test_empty_auths_entry_is_no_credential(env: dict[str, str]) -> None:
    write_config(env, {"auths": {HOST: {}}})
    assert resolve_credential(HOST, env=env) is None


def test_registry_auth_file(env: dict[str, str], tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {HOST: {"auth": b64("pu:pp")}}}))
    cred = resolve_credential(HOST, env={**env, "REGISTRY_AUTH_FILE": str(auth_file)})
    assert cred == Credential(username="pu", password="pp", source=f"REGISTRY_AUTH_FILE {auth_file}")


def test_missing_registry_auth_file_is_anonymous(env: dict[str, str], tmp_path: Path) -> None:
    assert resolve_credential(HOST, env={**env, "REGISTRY_AUTH_FILE": str(tmp_path / "no.json")}) is None


def test_precedence_order(env: dict[str, str], tmp_path: Path) -> None:
    write_config(env, {"auths": {HOST: {"auth": b64("docker:d")}}})
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {HOST: {"auth": b64("podman:p")}}}))
    full = {**env, "REGISTRY_AUTH_FILE": str(auth_file), "CI_ORAS_USERNAME": "envu", "CI_ORAS_PASSWORD": "e",
            "CI_ORAS_REGISTRY": HOST}

    def who(**kwargs: Any) -> str | None:
        cred = resolve_credential(HOST, **kwargs)
        return None if cred is None else cred.username

    assert who(username="flag", password="f", env=full) == "flag"
    assert who(env=full) == "envu"
    no_env = {k: v for k, v in full.items() if not k.startswith("CI_ORAS_")}
    assert who(env=no_env) == "docker"
    docker_config_path(env).unlink()
    assert who(env=no_env) == "podman"


# --------------------------------------------------------------------------------------------------------------
# bad files


def test_corrupt_config_is_usage_error(env: dict[str, str]) -> None:
    path = write_config(env, '{"auths": {"x": {"auth": "c2VjcmV0LXZhbHVl"')
    with pytest.raises(UsageError) as info:
        resolve_credential(HOST, env=env)
    assert str(path) in str(info.value)
    assert info.value.hint and "fix" in info.value.hint
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_config_not_an_object_is_usage_error(env: dict[str, str]) -> None:
    write_config(env, "[1, 2]")
    with pytest.raises(UsageError, match="not a JSON object"):
        resolve_credential(HOST, env=env)


def test_empty_config_file_is_empty(env: dict[str, str]) -> None:
    write_config(env, "")
    assert resolve_credential(HOST, env=env) is None


@pytest.mark.parametrize("auth", ["!!!not base64!!!", b64("no-colon-secretvalue")])
def test_bad_auth_field_is_usage_error_without_secret(env: dict[str, str], auth: str) -> None:
    path = write_config(env, {"auths": {HOST: {"auth": auth}}})
    with pytest.raises(UsageError) as info:
        resolve_credential(HOST, env=env)
    assert str(path) in str(info.value)
    assert "secretvalue" not in str(info.value) and auth not in str(info.value)


# --------------------------------------------------------------------------------------------------------------
# credential helpers


def test_cred_helpers_entry(helper_env: dict[str, str], tmp_path: Path) -> None:
    write_config(
        helper_env, {"credHelpers": {"ghcr.io": "testhelper"}, "auths": {"ghcr.io": {"auth": b64("a:b")}}}
    )
    cred = resolve_credential("ghcr.io", env=helper_env)
    assert cred == Credential(
        username="helper-user",
        password="helper-secret",
        source="credential helper docker-credential-testhelper",
    )
    assert (tmp_path / "helper.get").read_text() == "ghcr.io\n"


def test_helper_token_username_means_identity_token(helper_env: dict[str, str]) -> None:
    write_config(helper_env, {"credsStore": "testhelper"})
    cred = resolve_credential("token.example", env=helper_env)
    assert cred is not None
    assert (cred.username, cred.password, cred.identity_token) == (None, None, "helper-idtoken")


def test_creds_store_gets_docker_hub_server_url(helper_env: dict[str, str], tmp_path: Path) -> None:
    write_config(helper_env, {"credsStore": "testhelper"})
    cred = resolve_credential("docker.io", env=helper_env)
    assert cred is not None and cred.username == "hub-user"
    assert (tmp_path / "helper.get").read_text() == DOCKER_HUB_KEY + "\n"


def test_auths_entry_wins_over_creds_store(helper_env: dict[str, str], tmp_path: Path) -> None:
    write_config(helper_env, {"credsStore": "testhelper", "auths": {"ghcr.io": {"auth": b64("file:pw")}}})
    cred = resolve_credential("ghcr.io", env=helper_env)
    assert cred is not None and cred.username == "file"
    assert not (tmp_path / "helper.get").exists()


def test_creds_store_used_behind_placeholder_entry(helper_env: dict[str, str]) -> None:
    write_config(helper_env, {"credsStore": "testhelper", "auths": {"ghcr.io": {}}})
    cred = resolve_credential("ghcr.io", env=helper_env)
    assert cred is not None and cred.username == "helper-user"


def test_helper_not_found_is_a_miss_and_resolution_continues(helper_env: dict[str, str]) -> None:
    write_config(helper_env, {"credHelpers": {HOST: "testhelper"}, "auths": {HOST: {"auth": b64("file:pw")}}})
    cred = resolve_credential(HOST, env=helper_env)
    assert cred is not None and cred.username == "file"
    write_config(helper_env, {"credsStore": "testhelper"})
    assert resolve_credential(HOST, env=helper_env) is None


def test_helper_missing_is_usage_error(env: dict[str, str]) -> None:
    path = write_config(env, {"credsStore": "testhelper"})
    with pytest.raises(UsageError, match="docker-credential-testhelper") as info:
        resolve_credential(HOST, env=env)
    assert info.value.hint and "install" in info.value.hint and str(path) in info.value.hint


def test_helper_failure_is_auth_error_with_stderr_line(helper_env: dict[str, str]) -> None:
    write_config(helper_env, {"credsStore": "testhelper"})
    with pytest.raises(AuthError, match="keychain is locked") as info:
        resolve_credential("broken.example", env=helper_env)
    assert "partial" not in str(info.value)


def test_helper_garbage_answer_is_auth_error(helper_env: dict[str, str]) -> None:
    write_config(helper_env, {"credsStore": "testhelper"})
    with pytest.raises(AuthError, match="not a JSON object"):
        resolve_credential("garbage.example", env=helper_env)


# --------------------------------------------------------------------------------------------------------------
# save_login / remove_login


def test_save_login_creates_private_file(env: dict[str, str]) -> None:
    where = save_login(HOST, "su", "sp", env=env)
    path = docker_config_path(env)
    assert where == f"docker config {path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_config(env) == {"auths": {HOST: {"auth": b64("su:sp")}}}
    assert resolve_credential(HOST, env=env) == Credential(username="su", password="sp", source=where)
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp file left behind


def test_save_and_remove_preserve_other_keys(env: dict[str, str]) -> None:
    original = {
        "auths": {"ghcr.io": {"auth": b64("g:h")}, f"https://{HOST}/v2/": {"auth": b64("old:o")}},
        "psFormat": "table {{.ID}}",
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        "currentContext": "desktop",
    }
    path = write_config(env, original)
    path.chmod(0o644)
    save_login(HOST, "new", "n", env=env)
    saved = read_config(env)
    assert {k: v for k, v in saved.items() if k != "auths"} == {
        k: v for k, v in original.items() if k != "auths"
    }
    # The existing spelling is reused, not duplicated.
    assert saved["auths"] == {"ghcr.io": {"auth": b64("g:h")}, f"https://{HOST}/v2/": {"auth": b64("new:n")}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    assert remove_login(HOST, env=env) is True
    after = read_config(env)
    assert after["auths"] == {"ghcr.io": {"auth": b64("g:h")}}
    assert after["psFormat"] == original["psFormat"] and after["proxies"] == original["proxies"]
    assert resolve_credential(HOST, env=env) is None
    assert remove_login(HOST, env=env) is False


def test_remove_login_removes_every_spelling(env: dict[str, str]) -> None:
    write_config(env, {"auths": {"docker.io": {"auth": b64("a:b")}, DOCKER_HUB_KEY: {"auth": b64("c:d")}}})
    assert remove_login("registry-1.docker.io", env=env) is True
    assert read_config(env) == {"auths": {}}


def test_remove_login_without_config(env: dict[str, str]) -> None:
    assert remove_login(HOST, env=env) is False
    assert not docker_config_path(env).exists()


def test_save_login_docker_hub_key(env: dict[str, str]) -> None:
    save_login("docker.io", "hub", "pw", env=env)
    assert list(read_config(env)["auths"]) == [DOCKER_HUB_KEY]


def test_save_login_acr_token_round_trip(env: dict[str, str]) -> None:
    save_login("myreg.azurecr.io", ACR_TOKEN_USERNAME, "refresh-tok", env=env)
    entry = read_config(env)["auths"]["myreg.azurecr.io"]
    assert entry == {"auth": b64(f"{ACR_TOKEN_USERNAME}:"), "identitytoken": "refresh-tok"}
    cred = resolve_credential("myreg.azurecr.io", env=env)
    assert cred is not None
    assert (cred.username, cred.password, cred.identity_token) == (ACR_TOKEN_USERNAME, None, "refresh-tok")


def test_save_login_through_symlink_keeps_link(env: dict[str, str], tmp_path: Path) -> None:
    real = tmp_path / "real-config.json"
    real.write_text(json.dumps({"psFormat": "x"}))
    link = docker_config_path(env)
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    save_login(HOST, "u", "p", env=env)
    assert link.is_symlink()
    assert json.loads(real.read_text())["auths"][HOST] == {"auth": b64("u:p")}


@pytest.mark.parametrize(("username", "password"), [("", "p"), ("u", ""), ("a:b", "p")])
def test_save_login_rejects_bad_input(env: dict[str, str], username: str, password: str) -> None:
    with pytest.raises(UsageError):
        save_login(HOST, username, password, env=env)
    assert not docker_config_path(env).exists()


def test_save_login_refuses_corrupt_config(env: dict[str, str]) -> None:
    path = write_config(env, "not json")
    with pytest.raises(UsageError, match="is invalid JSON"):
        save_login(HOST, "u", "p", env=env)
    assert path.read_text() == "not json"


def test_save_and_remove_through_cred_helper(helper_env: dict[str, str], tmp_path: Path) -> None:
    original = {"credHelpers": {"ghcr.io": "testhelper"}, "psFormat": "keep"}
    write_config(helper_env, original)
    where = save_login("ghcr.io", "hu", "hsecret", env=helper_env)
    assert where == "credential helper docker-credential-testhelper"
    stored = json.loads((tmp_path / "helper.store").read_text())
    assert stored == {"ServerURL": "ghcr.io", "Username": "hu", "Secret": "hsecret"}
    assert read_config(helper_env) == original  # the secret never lands in the file

    assert remove_login("ghcr.io", env=helper_env) is True
    assert (tmp_path / "helper.erase").read_text() == "ghcr.io"
    assert read_config(helper_env) == original


def test_save_through_creds_store_docker_hub(helper_env: dict[str, str], tmp_path: Path) -> None:
    write_config(helper_env, {"credsStore": "testhelper"})
    save_login("docker.io", "hu", "hs", env=helper_env)
    assert json.loads((tmp_path / "helper.store").read_text())["ServerURL"] == DOCKER_HUB_KEY


def test_remove_through_helper_also_clears_placeholder(helper_env: dict[str, str], tmp_path: Path) -> None:
    write_config(helper_env, {"credsStore": "testhelper", "auths": {"absent.example": {}, "ghcr.io": {}}})
    assert remove_login("absent.example", env=helper_env) is True  # helper had nothing, but the file did
    assert read_config(helper_env) == {"credsStore": "testhelper", "auths": {"ghcr.io": {}}}
    assert remove_login("absent.example", env=helper_env) is False


def test_save_login_helper_missing_is_usage_error(env: dict[str, str]) -> None:
    write_config(env, {"credsStore": "testhelper"})
    with pytest.raises(UsageError, match="docker-credential-testhelper"):
        save_login(HOST, "u", "p", env=env)


# --------------------------------------------------------------------------------------------------------------
# secrets stay secret


def test_repr_and_str_hide_secrets() -> None:
    cred = Credential(username="user", password="pass-SECRET", identity_token="tok-SECRET", source="here")
    for text in (repr(cred), str(cred), f"{cred}", repr([cred])):
        assert "SECRET" not in text
        assert "***" in text and "user" in text and "here" in text
    assert "***" not in repr(Credential(username="user"))
