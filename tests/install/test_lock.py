"""requirements/runtime.lock: the hash-pinned runtime dependencies every wrapper installs from.

Checked the way ``make check-lock`` checks it (requirements/lock.py, against the package index the tests
install from): it pins pyproject.toml's runtime dependencies within their ranges, is complete for every
supported Python version on every platform the wrappers run on, and covers every import of ``ci_oras``; a
lock missing a dependency, pinning one outside its range or lacking a module ci-oras imports is reported.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from harness.installs import REPO_ROOT, wheels_cache


def test_the_lock_matches_pyproject_and_is_complete(lock: ModuleType) -> None:
    """With the wheels pip fetched for this lock kept between runs (checked against the lock's hashes each
    time): the metadata and import checks run on every run, pip only when the lock changed."""
    assert lock.check(downloads=wheels_cache() / "lock-check") == []


def test_a_variant_that_is_not_the_lock_without_its_dependencies_is_reported(lock: ModuleType,
                                                                             tmp_path: Path) -> None:
    """The smaller locks beside runtime.lock must be exactly it without their left-out dependencies: one that
    keeps a left-out pin or drops a needed one is reported, and so is a missing one (the same lock's kept
    downloads)."""
    (tmp_path / "runtime.lock").write_text(lock.LOCK.read_text())
    core = (lock.LOCK.parent / "runtime-core.lock").read_text()
    signing = (lock.LOCK.parent / "runtime-signing.lock").read_text()
    assert "cryptography==" not in core and "sigstore==" not in core and "typer==" in core
    assert "cryptography==" in signing and "sigstore==" not in signing and "pydantic==" not in signing
    cryptography = next(b for b in lock._lock_blocks(signing) if b.startswith("cryptography=="))
    typer = next(b for b in lock._lock_blocks(signing) if b.startswith("typer=="))
    variants = {**lock.VARIANTS, "runtime-other.lock": ("rich",)}
    (tmp_path / "runtime-core.lock").write_text(core + cryptography)
    (tmp_path / "runtime-signing.lock").write_text(signing.replace(typer, ""))
    problems = lock.check(tmp_path / "runtime.lock", downloads=wheels_cache() / "lock-check", variants=variants)
    assert problems == [
        "runtime-core.lock is not runtime.lock without cryptography, sigstore and what only they need",
        "runtime-other.lock is not runtime.lock without rich and what only they need",
        "runtime-signing.lock is not runtime.lock without sigstore and what only they need",
    ], problems


def test_the_lock_pins_the_runtime_dependencies_and_no_generator_dependency(lock: ModuleType) -> None:
    names = {entry.name for entry, _ in lock.entries(lock.LOCK.read_text())}
    assert {"typer", "httpx", "cryptography", "cffi", "sigstore", "pydantic", "pydantic-core"} <= names
    assert not names & {"jinja2", "markupsafe"}, names
    # sigstore-rekor-types asks for pydantic[email]: what that extra adds is pinned too
    assert {"email-validator", "dnspython"} <= names, names


def test_compiled_dependencies_carry_a_wheel_per_platform(lock: ModuleType) -> None:
    """cffi has one wheel per Python version and platform; cryptography one abi3 wheel per platform."""
    hashes = {entry.name + str(entry.specifier): options.count("--hash=")
              for entry, options in lock.entries(lock.LOCK.read_text())}
    cffi = sum(count for name, count in hashes.items() if name.startswith("cffi=="))
    cryptography = sum(count for name, count in hashes.items() if name.startswith("cryptography=="))
    assert cffi == len(lock.PYTHONS) * len(lock.PLATFORMS), hashes
    assert cryptography == len(lock.PLATFORMS), hashes


def test_every_import_of_ci_oras_is_covered_by_the_lock(lock: ModuleType, tmp_path: Path) -> None:
    """The import scan finds the lazy cryptography import of the signing code and flags what no pin provides."""
    found = lock.imports(REPO_ROOT / "ci_oras")
    assert "ci_oras.steps.sign" in found["cryptography"] and "httpx" in found and "typer" in found
    assert "_typeshed" not in found  # only under TYPE_CHECKING
    package = tmp_path / "ci_oras"
    (package / "steps").mkdir(parents=True)
    (package / "__init__.py").write_text("import httpx\n")
    (package / "steps" / "sign.py").write_text("def sign():\n    from cryptography import x509\n")
    (package / "wrappers").mkdir()
    (package / "wrappers" / "generate.py").write_text("import jinja2\n")
    problems = lock.uncovered_imports(package, {"httpx", "typer"})
    assert problems == ["ci_oras.steps.sign imports cryptography, which no package pinned in runtime.lock provides"]


def test_what_an_extra_asks_for_is_required_of_the_lock(lock: ModuleType, tmp_path: Path) -> None:
    """A lock without email-validator is incomplete: sigstore-rekor-types requires pydantic[email]."""
    lines = lock.LOCK.read_text().replace("\\\n", "").splitlines()
    broken = tmp_path / "runtime.lock"
    broken.write_text("\n".join(line for line in lines if not line.startswith("email-validator==")) + "\n")
    problems = lock.check(broken, platforms=[lock.platform("linux-x86_64")], pythons=["3.12"])
    assert any("needs email-validator" in problem and "lacks" in problem for problem in problems), problems


def test_a_missing_pin_and_a_wrong_hash_are_reported(lock: ModuleType, tmp_path: Path) -> None:
    lines = lock.LOCK.read_text().replace("\\\n", "").splitlines()
    broken = tmp_path / "runtime.lock"
    broken.write_text("\n".join(line for line in lines if not line.startswith(("h11==", "typer=="))) + "\n")
    one = {"platforms": [lock.platform("linux-x86_64")], "pythons": ["3.12"]}  # any one shows these
    problems = lock.check(broken, **one)
    assert any("httpcore needs h11" in problem and "lacks" in problem for problem in problems), problems
    assert any("pyproject.toml needs typer" in problem for problem in problems), problems
    assert any(problem.startswith("ci_oras.cli") and "imports typer" in problem for problem in problems), problems

    digest = next(line for line in lines if line.startswith("httpx==")).split("sha256:")[1]
    broken.write_text("\n".join(lines).replace(digest, "0" * 64) + "\n")
    assert any("pip refuses" in problem and "httpx" in problem for problem in lock.check(broken, **one))


def test_a_lock_without_cryptography_fails_on_the_signing_imports(lock: ModuleType, tmp_path: Path) -> None:
    text = lock.LOCK.read_text()
    blocks = lock._lock_blocks(text)
    broken = tmp_path / "runtime.lock"
    broken.write_text("".join(b for b in blocks if not b.startswith(("cryptography==", "cffi==", "pycparser=="))))
    problems = lock.check(broken, platforms=[lock.platform("windows-amd64")], pythons=["3.10"])
    assert "ci_oras.signing.keys imports cryptography, which no package pinned in runtime.lock provides" in problems
    assert any("pyproject.toml needs cryptography" in problem for problem in problems), problems


def test_kept_downloads_are_used_only_while_their_hashes_hold(lock: ModuleType, tmp_path: Path) -> None:
    """A kept download whose wheel no longer has its pin's hash (tampered, truncated) is fetched again."""
    (pin,) = [(r, h) for r, h in lock.entries(lock.LOCK.read_text()) if r.name == "idna"]
    combination = lock.combinations(lock.PLATFORMS[:1], lock.PYTHONS[-1:])[0]
    dest = tmp_path / "kept"
    assert lock._fetch_pins([pin], combination, dest).returncode == 0
    (wheel,) = dest.glob("idna-*.whl")
    original = wheel.read_bytes()
    assert lock._hashes_hold([pin], dest)

    wheel.write_bytes(original[:-1])
    assert not lock._hashes_hold([pin], dest)
    assert lock._fetch_pins([pin], combination, dest).returncode == 0
    assert wheel.read_bytes() == original, "fetched again, with its hash"
