"""ci-oras works with the oldest dependencies pyproject.toml admits, not only with the pinned ones.

The lock pins the newest versions in range, so the rest of the suite never meets the lower bounds; a user who
installs ci-oras next to other tools may get exactly those. This builds a virtual environment with each runtime
dependency at its lowest admitted version (pip resolves the rest) and runs real commands against a real HTTPS
registry: the help page, a push trusting the registry's CA through ``SSL_CERT_FILE`` (the default trust,
built lazily by ``registry/transport.py``), and a refused certificate ending in an error, not a crash; then a
signature made and verified with the oldest cryptography (its certificate, key and signature APIs). cffi is
not ours to bound: cryptography names the range it needs, and pip takes the newest in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from harness.notary_pki import make_pki, make_root
from harness.prerequisites import missing
from harness.registry import RunningRegistry
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def lowest_admitted() -> list[str]:
    """``name==version`` for every runtime dependency, at the version its ``>=`` bound names."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = []
    for text in data["project"]["dependencies"]:
        requirement = Requirement(text)
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert len(floors) == 1, f"{text}: a runtime dependency needs one explicit lower bound"
        pins.append(f"{requirement.name}=={floors[0]}")
    return pins


@pytest.fixture(scope="module")
def floor_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("floor") / "venv"
    # no pip of its own (ensurepip costs seconds): this session's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                                "--disable-pip-version-check", "--no-compile", *lowest_admitted()], capture_output=True, text=True)
    if installed.returncode:
        missing("cannot install the lowest admitted dependencies from the package index: "
                f"{installed.stderr[-300:]}")
    return python


def run(python: Path, *args: str, cwd: Path,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    # The checkout on the path, not an installed copy: what is tested is this tree's code on those dependencies.
    environment.update({"PYTHONPATH": str(ROOT), "NO_COLOR": "1", **(env or {})})
    return subprocess.run([str(python), "-m", "ci_oras", *args], capture_output=True, text=True, cwd=cwd,
                          env=environment, timeout=120)


def test_the_lower_bounds_are_the_versions_this_code_needs() -> None:
    assert sorted(lowest_admitted()) == ["cryptography==47", "httpcore==1.0.9", "httpx==0.27", "sigstore==4.5.1",
                                        "typer==0.26"]


def test_commands_work_on_the_lowest_admitted_dependencies(floor_python: Path, registry_tls: RunningRegistry,
                                                           tmp_path: Path) -> None:
    probe = ("import cryptography, httpcore, httpx, typer; "
             "print(httpx.__version__, httpcore.__version__, typer.__version__, cryptography.__version__)")
    versions = subprocess.run([str(floor_python), "-c", probe], capture_output=True, text=True,
                              check=True).stdout.split()
    assert versions == ["0.27.0", "1.0.9", "0.26.0", "47.0.0"]

    shown = run(floor_python, "attach", "--help", cwd=tmp_path)
    assert shown.returncode == 0 and "Usage:" in shown.stdout, shown.stderr

    (tmp_path / "hello.txt").write_text("hello\n")
    target = f"{registry_tls.host}/floor/app:v1"
    # --no-plain-http: a loopback registry is taken for plain HTTP unless told otherwise.
    pushed = run(floor_python, "push", target, "hello.txt", "--no-plain-http", cwd=tmp_path,
                 env={"SSL_CERT_FILE": str(registry_tls.ca_file)})
    assert pushed.returncode == 0, pushed.stderr
    listed = run(floor_python, "discover", target, "--no-plain-http", "--ca-file", str(registry_tls.ca_file),
                 cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr

    # Without SSL_CERT_FILE the registry's private CA is not trusted: an error naming the certificate.
    refused = run(floor_python, "discover", target, "--no-plain-http", cwd=tmp_path)
    assert refused.returncode == 5, refused.stderr  # a registry or network error (README, exit codes)
    assert "certificate" in refused.stderr.lower() and "Traceback" not in refused.stderr, refused.stderr


def test_signing_works_on_the_lowest_admitted_cryptography(floor_python: Path, tmp_path: Path) -> None:
    """sign (RSA-PSS and ECDSA keys, JWS and COSE) and verify --signed-by on an OCI layout: every cryptography
    API the signing code calls, on the oldest release pyproject.toml admits."""
    (tmp_path / "hello.txt").write_text("hello\n")
    layout = f"oci:{tmp_path / 'layout'}"
    assert run(floor_python, "push", f"{layout}:v1", "hello.txt", cwd=tmp_path).returncode == 0
    _, stranger = make_root("Stranger Root CA", slot=1)
    (tmp_path / "stranger.pem").write_bytes(stranger.public_bytes(serialization.Encoding.PEM))
    for kind, envelope in (("rsa2048", "jws"), ("ec256", "cose")):
        pki = make_pki(kind)
        (tmp_path / f"{kind}.key").write_bytes(pki.key_pem())
        (tmp_path / f"{kind}.chain").write_bytes(pki.chain_pem)
        (tmp_path / f"{kind}.root").write_bytes(pki.root_pem)
        signed = run(floor_python, "sign", f"{layout}:v1", "--key", f"{kind}.key", "--cert", f"{kind}.chain",
                     "--signature-format", envelope, cwd=tmp_path)
        assert signed.returncode == 0, signed.stderr
        verified = run(floor_python, "verify", f"{layout}:v1", "-r", "signature", "--signed-by", f"{kind}.root",
                       cwd=tmp_path)
        assert verified.returncode == 0, verified.stderr
    refused = run(floor_python, "verify", f"{layout}:v1", "-r", "signature", "--signed-by", "stranger.pem",
                  cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr


def test_sigstore_verification_works_on_the_lowest_admitted_dependencies(
        floor_python: Path, sigstore_instances: tuple[Any, Any], tmp_path: Path) -> None:
    """A keyless bundle verified, and a stranger's refused, by the oldest sigstore and cryptography admitted."""
    local = sigstore_instances[0]
    (tmp_path / "hello.txt").write_text("hello\n")
    layout = f"oci:{tmp_path / 'layout'}"
    pushed = run(floor_python, "push", f"{layout}:v1", "hello.txt", "-O", "json", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["digest"]
    bundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
    (tmp_path / "sign.json").write_bytes(local.dsse_bundle(local.statement(digest, "https://sigstore.dev/cosign/sign/v1")))
    attached = run(floor_python, "attach", f"{layout}:v1", f"sign.json:{bundle}", "--artifact-type", bundle,
                   cwd=tmp_path)
    assert attached.returncode == 0, attached.stderr
    gate = ["verify", f"{layout}:v1", "-r", "signature", "--trusted-root", str(local.trusted_root)]
    verified = run(floor_python, *gate, "--github-repo", "acme/shop", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    refused = run(floor_python, *gate, "--github-repo", "acme/other", "-O", "json", cwd=tmp_path)
    assert refused.returncode == 1 and json.loads(refused.stdout)["signatures"][0]["failedCheck"] == "identity"
