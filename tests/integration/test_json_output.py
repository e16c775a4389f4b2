"""Every ``--output json`` document is exactly one JSON value on stdout and matches its shipped schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from harness.cli import CliResult, clean_env, run_cli
from harness.registry import RunningRegistry
from samples.make_samples import cyclonedx_json, make_chain, notary_jws

from ci_oras.schemas import STEPS, load_schema


def _validate(step: str, result: CliResult) -> None:
    assert result.returncode == 0, result.stderr
    document = result.json()  # fails unless stdout is exactly one JSON document
    assert document["schema"] == f"ci-oras/{step}/v1"
    jsonschema.validate(document, load_schema(step))


@pytest.mark.parametrize("step", [*STEPS, "error"])
def test_schemas_are_valid_json_schema(step: str) -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema(step))


def test_layout_documents_match_schemas(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "dir" / "b.txt").write_text("b")
    env = clean_env(tmp_path)
    layout = f"oci:{tmp_path / 'layout'}"
    _validate("push", run_cli("push", f"{layout}:v1", "a.txt", "dir", "-O", "json", env=env, cwd=src))
    _validate("pull", run_cli("pull", f"{layout}:v1", "-o", str(tmp_path / "o"), "-O", "json", env=env))
    _validate("manifest", run_cli("manifest", "fetch", f"{layout}:v1", "-O", "json", env=env))
    _validate("tags", run_cli("tags", layout, "-O", "json", env=env))
    _validate("delete", run_cli("delete", f"{layout}:v1", "-O", "json", env=env))


def test_login_documents_match_schemas(registry_htpasswd: RunningRegistry, tmp_path: Path) -> None:
    assert registry_htpasswd.username and registry_htpasswd.password
    env = clean_env(tmp_path)
    result = run_cli("login", registry_htpasswd.host, "-u", registry_htpasswd.username, "--password-stdin",
                     "-O", "json", env=env, stdin=registry_htpasswd.password)
    _validate("login", result)
    assert registry_htpasswd.password not in result.stdout
    _validate("logout", run_cli("logout", registry_htpasswd.host, "-O", "json", env=env))


def test_errors_print_one_error_document(tmp_path: Path) -> None:
    result = run_cli("manifest", "fetch", f"oci:{tmp_path / 'missing'}:v1", "-O", "json", env=clean_env(tmp_path))
    assert result.returncode == 3
    document = result.json()  # exactly one document, in place of the step's result
    jsonschema.validate(document, load_schema("error"))
    assert document["step"] == "manifest fetch" and document["error"]["exitCode"] == 3


def test_referrer_documents_match_schemas(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    (src / "report.txt").write_text("report")
    (src / "bom.json").write_bytes(cyclonedx_json())
    env = clean_env(tmp_path)
    layout = f"oci:{tmp_path / 'layout'}"
    assert run_cli("push", f"{layout}:v1", "a.txt", env=env, cwd=src).returncode == 0
    _validate("attach", run_cli("attach", f"{layout}:v1", "report.txt", "--artifact-type", "application/x.report",
                                "-O", "json", env=env, cwd=src))
    sbom = run_cli("attach-sbom", f"{layout}:v1", "bom.json", "-O", "json", env=env, cwd=src)
    _validate("attach-sbom", sbom)
    (src / "sig.jws").write_bytes(notary_jws(make_chain(), target=sbom.json()))
    _validate("attach-signature", run_cli("attach-signature", f"{layout}@{sbom.json()['digest']}", "sig.jws",
                                          "-O", "json", env=env, cwd=src))
    discovered = run_cli("discover", f"{layout}:v1", "-O", "json", env=env)
    _validate("discover", discovered)
    assert discovered.json()["count"] == 3
