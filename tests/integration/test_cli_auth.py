"""Every credential source, token auth, TLS, and the exit codes for auth and connection failures."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from harness.cli import clean_env, run_cli
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_AUTH, EXIT_REGISTRY, EXIT_USAGE


def _artifact(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "payload.txt").write_text("secret-free payload\n")
    return src


def _write_docker_config(home: Path, content: dict[str, object]) -> None:
    (home / ".docker").mkdir(parents=True, exist_ok=True)
    (home / ".docker" / "config.json").write_text(json.dumps(content))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(params=["htpasswd", "token"])
def auth_registry(request: pytest.FixtureRequest) -> RunningRegistry:
    registry: RunningRegistry = request.getfixturevalue(f"registry_{request.param}")
    return registry


def _push(registry: RunningRegistry, repo: str, tmp_path: Path, env: dict[str, str], *extra: str,
          stdin: str | None = None) -> tuple[int, str]:
    result = run_cli("push", f"{registry.host}/{repo}:v1", "payload.txt", *extra, env=env, cwd=_artifact(tmp_path),
                     stdin=stdin)
    assert registry.password is None or registry.password not in result.stdout + result.stderr
    return result.returncode, result.stderr


def test_anonymous_is_denied_with_hint(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    code, stderr = _push(auth_registry, unique_repo, tmp_path, clean_env(tmp_path))
    assert code == EXIT_AUTH
    assert "ci-oras login" in stderr and stderr.count("\n") == 1


def test_username_password_stdin(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username and auth_registry.password
    code, stderr = _push(auth_registry, unique_repo, tmp_path, clean_env(tmp_path),
                         "--username", auth_registry.username, "--password-stdin",
                         stdin=auth_registry.password + "\n")
    assert code == 0, stderr


def test_password_flag_warns(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username and auth_registry.password
    code, stderr = _push(auth_registry, unique_repo, tmp_path, clean_env(tmp_path),
                         "-u", auth_registry.username, "-p", auth_registry.password)
    assert code == 0, stderr
    assert "--password-stdin" in stderr and "insecure" in stderr


def test_wrong_password_is_exit_4(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username
    code, stderr = _push(auth_registry, unique_repo, tmp_path, clean_env(tmp_path),
                         "-u", auth_registry.username, "--password-stdin", stdin="wrong-password")
    assert code == EXIT_AUTH
    assert "authentication failed" in stderr and auth_registry.host in stderr
    assert "wrong-password" not in stderr


def test_environment_variables(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username and auth_registry.password
    env = clean_env(tmp_path, {"CI_ORAS_USERNAME": auth_registry.username,
                               "CI_ORAS_PASSWORD": auth_registry.password, "CI_ORAS_REGISTRY": auth_registry.host})
    code, stderr = _push(auth_registry, unique_repo, tmp_path, env)
    assert code == 0, stderr


def test_docker_config_auth(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username and auth_registry.password
    env = clean_env(tmp_path)
    _write_docker_config(tmp_path, {"auths": {
        f"http://{auth_registry.host}/v2/": {"auth": _b64(f"{auth_registry.username}:{auth_registry.password}")}}})
    code, stderr = _push(auth_registry, unique_repo, tmp_path, env)
    assert code == 0, stderr


def test_registry_auth_file(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username and auth_registry.password
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {auth_registry.host: {
        "auth": _b64(f"{auth_registry.username}:{auth_registry.password}")}}}))
    code, stderr = _push(auth_registry, unique_repo, tmp_path, clean_env(tmp_path, {"REGISTRY_AUTH_FILE": str(auth_file)}))
    assert code == 0, stderr


def test_credential_helper(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username and auth_registry.password
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-citest"
    helper.write_text(
        "#!/bin/sh\n"
        'read server\n'
        f'[ "$1" = get ] && [ "$server" = "{auth_registry.host}" ] && '
        f'printf \'{{"ServerURL":"%s","Username":"{auth_registry.username}","Secret":"{auth_registry.password}"}}\' '
        '"$server" && exit 0\n'
        "echo 'credentials not found in native keychain'; exit 1\n")
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    env = clean_env(tmp_path)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    _write_docker_config(tmp_path, {"credHelpers": {auth_registry.host: "citest"}})
    code, stderr = _push(auth_registry, unique_repo, tmp_path, env)
    assert code == 0, stderr
    _write_docker_config(tmp_path, {"credsStore": "citest"})
    code, stderr = _push(auth_registry, unique_repo, tmp_path, env)
    assert code == 0, stderr


def test_flags_win_over_environment(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username and auth_registry.password
    env = clean_env(tmp_path, {"CI_ORAS_USERNAME": "nobody", "CI_ORAS_PASSWORD": "nothing",
                               "CI_ORAS_REGISTRY": auth_registry.host})
    code, stderr = _push(auth_registry, unique_repo, tmp_path, env, "-u", auth_registry.username,
                         "--password-stdin", stdin=auth_registry.password)
    assert code == 0, stderr


def test_login_then_logout(auth_registry: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert auth_registry.username and auth_registry.password
    env = clean_env(tmp_path)
    bad = run_cli("login", auth_registry.host, "-u", auth_registry.username, "--password-stdin", env=env,
                  stdin="not-the-password")
    assert bad.returncode == EXIT_AUTH
    assert not (tmp_path / ".docker" / "config.json").exists()  # a failed login stores nothing
    good = run_cli("login", auth_registry.host, "-u", auth_registry.username, "--password-stdin", env=env,
                   stdin=auth_registry.password)
    assert good.returncode == 0, good.stderr
    config = json.loads((tmp_path / ".docker" / "config.json").read_text())
    assert base64.b64decode(config["auths"][auth_registry.host]["auth"]).decode() == (
        f"{auth_registry.username}:{auth_registry.password}")
    assert ((tmp_path / ".docker" / "config.json").stat().st_mode & 0o777) == 0o600
    code, stderr = _push(auth_registry, unique_repo, tmp_path, env)
    assert code == 0, stderr
    assert run_cli("logout", auth_registry.host, env=env).returncode == 0
    code, _ = _push(auth_registry, unique_repo, tmp_path, env)
    assert code == EXIT_AUTH


def test_token_scopes_and_caching(registry_token: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert registry_token.issuer and registry_token.username and registry_token.password
    registry_token.issuer.clear_requests()
    env = clean_env(tmp_path, {"CI_ORAS_USERNAME": registry_token.username,
                               "CI_ORAS_PASSWORD": registry_token.password, "CI_ORAS_REGISTRY": registry_token.host})
    code, stderr = _push(registry_token, unique_repo, tmp_path, env)
    assert code == 0, stderr
    requests = registry_token.issuer.requests
    # One token for the whole push: pull,push on the repository, fetched once and reused for every request.
    assert len(requests) == 1, requests
    assert requests[0].scopes == (f"repository:{unique_repo}:pull,push",)
    assert requests[0].has_authorization


def test_identity_token_uses_refresh_grant(registry_token: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    """ACR-style: docker config ``identitytoken`` is exchanged with POST grant_type=refresh_token."""
    issuer = registry_token.issuer
    assert issuer is not None
    issuer.clear_requests()
    _write_docker_config(tmp_path, {"auths": {registry_token.host: {
        "auth": _b64(f"{issuer.identity_username}:"), "identitytoken": issuer.identity_token}}})
    code, stderr = _push(registry_token, unique_repo, tmp_path, clean_env(tmp_path))
    assert code == 0, stderr
    assert issuer.identity_token not in stderr
    assert [(r.method, r.grant_type) for r in issuer.requests] == [("POST", "refresh_token")]


def test_acr_token_username_with_password_stdin(registry_token: RunningRegistry, tmp_path: Path,
                                                unique_repo: str) -> None:
    issuer = registry_token.issuer
    assert issuer is not None
    issuer.clear_requests()
    code, stderr = _push(registry_token, unique_repo, tmp_path, clean_env(tmp_path),
                         "-u", issuer.identity_username, "--password-stdin", stdin=issuer.identity_token)
    assert code == 0, stderr
    assert issuer.requests[0].grant_type == "refresh_token"


def test_tls_with_ca_file(registry_tls: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    assert registry_tls.ca_file
    code, stderr = _push(registry_tls, unique_repo, tmp_path, clean_env(tmp_path), "--ca-file", str(registry_tls.ca_file))
    assert code == 0, stderr
    pulled = run_cli("pull", f"{registry_tls.host}/{unique_repo}:v1", "-o", str(tmp_path / "o"),
                     "--ca-file", str(registry_tls.ca_file), env=clean_env(tmp_path))
    assert pulled.returncode == 0, pulled.stderr


def test_tls_untrusted_fails_closed(registry_tls: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    code, stderr = _push(registry_tls, unique_repo, tmp_path, clean_env(tmp_path), "--no-plain-http")
    assert code == EXIT_REGISTRY
    assert "certificate" in stderr and "--ca-file" in stderr


def test_insecure_skips_verification_loudly(registry_tls: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    code, stderr = _push(registry_tls, unique_repo, tmp_path, clean_env(tmp_path), "--insecure")
    assert code == 0, stderr
    assert "WARNING" in stderr and "NOT verified" in stderr


def test_plain_http_against_tls_registry_explains(registry_tls: RunningRegistry, tmp_path: Path,
                                                  unique_repo: str) -> None:
    code, stderr = _push(registry_tls, unique_repo, tmp_path, clean_env(tmp_path))
    assert code == EXIT_REGISTRY, stderr


def test_bad_ca_file_is_usage_error(registry_tls: RunningRegistry, tmp_path: Path, unique_repo: str) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    code, stderr = _push(registry_tls, unique_repo, tmp_path, clean_env(tmp_path), "--ca-file", str(tmp_path / "bad.pem"))
    assert code == EXIT_USAGE, stderr
