"""A password goes to a token service over TLS, or over loopback: never across the network in cleartext."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.cli import clean_env, run_cli
from harness.registry import RunningRegistry

from ci_oras.errors import EXIT_AUTH


def _push(registry: RunningRegistry, tmp_path: Path) -> tuple[int, str]:
    (tmp_path / "payload.txt").write_text("payload\n")
    assert registry.ca_file and registry.username and registry.password
    result = run_cli("push", f"{registry.host}/realm/test:v1", "payload.txt", "--ca-file", str(registry.ca_file),
                     "-u", registry.username, "--password-stdin", env=clean_env(tmp_path / "home"), cwd=tmp_path,
                     stdin=registry.password + "\n")
    assert registry.password not in result.stdout + result.stderr
    return result.returncode, result.stderr


def test_an_https_registry_naming_a_plain_http_token_service_gets_no_password(
        registry_factory: Callable[..., RunningRegistry], tmp_path: Path) -> None:
    registry = registry_factory("token", tls=True, extra_config={
        "auth": {"token": {"realm": "http://token-service.invalid:9/token"}}})
    code, stderr = _push(registry, tmp_path)
    # refused before any connection: the realm's host does not even resolve, which would be exit 5
    assert code == EXIT_AUTH, stderr
    assert "token service over plain HTTP (http://token-service.invalid)" in stderr
    assert "refusing to send credentials there in cleartext" in stderr and stderr.count("\n") == 1


def test_a_token_service_on_loopback_may_be_plain_http(registry_factory: Callable[..., RunningRegistry],
                                                       tmp_path: Path) -> None:
    registry = registry_factory("token", tls=True)  # the test token issuer: http://127.0.0.1:PORT
    assert registry.issuer is not None and registry.issuer.url.startswith("http://127.0.0.1:")
    code, stderr = _push(registry, tmp_path)
    assert code == 0, stderr
