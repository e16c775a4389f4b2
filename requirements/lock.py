"""Write (or check) requirements/runtime.lock: ci-oras's runtime dependencies, pinned with their wheel hashes.

Every wrapper installs from this file with ``pip install --require-hashes -r runtime.lock`` and then ci-oras
itself with ``--no-deps``, so a pipeline runs exactly the code this lock names, whatever the package index
holds that day. The Azure extension bundles the same wheels and installs them with ``--no-index``.

The dependencies are resolved once per supported Python version (wheels only, so each pin has one hashed file
that installs on every platform: all of them are pure-Python), and the results are merged; a package only some
versions need (or a version only some of them install) carries a ``python_version`` marker. ``--check``
resolves nothing: for every supported Python version it fetches the pins that apply, with their hashes, and
verifies that pyproject.toml's runtime dependencies and each pinned wheel's own dependencies are pinned within
the ranges asked for, so newer releases on the index never make it fail.

``--wheels DIR`` downloads every pinned wheel, hash-checked, for an offline install (azure-pipelines/package.sh).
Writing and checking need Python 3.11 or later (tomllib): ``make lock`` / ``make check-lock``.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "runtime.lock"
#: The Python versions pyproject.toml's requires-python admits and the wrappers may meet.
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def runtime_requirements(root: Path = ROOT) -> list[Requirement]:
    import tomllib  # Python 3.11+; only writing and checking the lock read pyproject.toml

    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return [Requirement(text) for text in data["project"]["dependencies"]]


def _download(arguments: list[str], python: str, dest: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", python, "--dest", str(dest), *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _environment(python: str) -> dict[str, str]:
    """The marker environment of ``python`` on Linux. pip evaluates dependency markers against the interpreter
    running it, even with --python-version, so the resolver below evaluates them itself."""
    return {**default_environment(), "python_version": python, "python_full_version": python + ".0"}


def _dependencies(wheel: Path, environment: dict[str, str]) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
        metadata = email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))
    found = []
    for text in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
            found.append(requirement)
    return found


def _resolve_for(python: str, scratch: Path) -> dict[str, Path]:
    """Name -> wheel of every package the runtime dependencies need on ``python``: the newest version that
    fits every range asked for it (re-picked when a later requirer narrows a range), wheels only."""
    environment = _environment(python)
    wanted: dict[str, dict[str, SpecifierSet]] = {}  # name -> requirer -> range
    for requirement in runtime_requirements():
        wanted.setdefault(canonicalize_name(requirement.name), {})["pyproject.toml"] = requirement.specifier
    chosen: dict[str, Path] = {}
    while True:
        pending = [name for name in sorted(wanted) if name not in chosen or not _fits(chosen[name], wanted[name])]
        if not pending:
            return chosen
        for name in pending:
            specifier = SpecifierSet(",".join(str(s) for s in wanted[name].values() if str(s)))
            dest = scratch / f"{name}-{len(list(scratch.iterdir()))}"
            run = _download(["--no-deps", f"{name}{specifier}"], python, dest)
            if run.returncode != 0:
                raise SystemExit(f"Python {python}: no wheel of {name}{specifier}:\n{run.stderr}")
            (wheel,) = dest.glob("*.whl")
            chosen[name] = wheel
            _forget_ranges_of(wanted, name)  # what an earlier pick of it asked for
            for dependency in _dependencies(wheel, environment):
                wanted.setdefault(canonicalize_name(dependency.name), {})[name] = dependency.specifier
        unneeded = [n for n in wanted if not wanted[n]]
        while unneeded:  # no longer asked for by anyone (an earlier pick's dependency), nor what it asked for
            name = unneeded.pop()
            wanted.pop(name, None)
            chosen.pop(name, None)
            _forget_ranges_of(wanted, name)
            unneeded = [n for n in wanted if not wanted[n]]


def _forget_ranges_of(wanted: dict[str, dict[str, SpecifierSet]], requirer: str) -> None:
    for ranges in wanted.values():
        ranges.pop(requirer, None)


def _fits(wheel: Path, ranges: dict[str, SpecifierSet]) -> bool:
    version = str(parse_wheel_filename(wheel.name)[1])
    return all(specifier.contains(version, prereleases=True) for specifier in ranges.values())


def resolve() -> str:
    """The lock's text: every wheel the runtime dependencies need on any supported Python version."""
    found: dict[tuple[str, str], tuple[str, set[str]]] = {}  # (name, version) -> (sha256, pythons)
    for python in PYTHONS:
        with tempfile.TemporaryDirectory() as scratch:
            for wheel in _resolve_for(python, Path(scratch)).values():
                name, version, _, tags = parse_wheel_filename(wheel.name)
                if any(tag.platform != "any" for tag in tags):
                    raise SystemExit(f"{wheel.name} is platform-specific: the lock holds pure-Python wheels only")
                digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
                # one version may serve some Python versions and another the rest (a dependency that dropped
                # 3.10): both are pinned, each with the marker of the versions it serves
                known = found.setdefault((canonicalize_name(name), str(version)), (digest, set()))
                if known[0] != digest:
                    raise SystemExit(f"{wheel.name}: two files of one version; the lock pins one per version")
                known[1].add(python)
    lines = [
        "# ci-oras's runtime dependencies, pinned with the sha256 of each wheel. Generated by `make lock`",
        "# (requirements/lock.py) from pyproject.toml: edit that, not this file. Install with",
        "#   pip install --require-hashes -r requirements/runtime.lock && pip install --no-deps <ci-oras>",
    ]
    for (name, version), (digest, pythons) in sorted(found.items()):
        lines.append(f"{name}=={version}{_marker(pythons)} \\")
        lines.append(f"    --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


def _marker(pythons: set[str]) -> str:
    """``""`` when every version needs it, else the marker naming the versions that do (a prefix or suffix)."""
    needed = [python in pythons for python in PYTHONS]
    if all(needed):
        return ""
    count = sum(needed)
    if needed[:count] == [True] * count:
        return f' ; python_version < "{PYTHONS[count]}"'
    if needed[-count:] == [True] * count:
        return f' ; python_version >= "{PYTHONS[-count]}"'
    raise SystemExit(f"a dependency only Python {sorted(pythons)} need: not expressible as one marker")


def entries(text: str) -> list[tuple[Requirement, str]]:
    """Each pinned requirement of a lock's text with its hash option (``--hash=sha256:…``)."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.startswith("#"):
            requirement, _, hashes = line.partition(" --hash=")
            found.append((Requirement(requirement.strip()), "--hash=" + hashes.strip()))
    return found


def check(lock: Path = LOCK) -> list[str]:
    """What is wrong with ``lock`` (empty: nothing): a runtime dependency missing or pinned outside its range;
    for each supported Python version, a pin pip cannot fetch with its hash, or a dependency of a pinned wheel
    that the lock lacks or pins outside the range asked for."""
    locked = entries(lock.read_text(encoding="utf-8"))
    problems = []
    for python in PYTHONS:
        environment = _environment(python)
        applying = [(r, h) for r, h in locked if r.marker is None or r.marker.evaluate(environment)]
        versions = {canonicalize_name(r.name): next(iter(r.specifier)).version for r, _ in applying}
        asked = [(r, "pyproject.toml") for r in runtime_requirements()]
        with tempfile.TemporaryDirectory() as scratch:
            pinned = Path(scratch) / "pinned.txt"
            pinned.write_text("".join(f"{r.name}{r.specifier} {h}\n" for r, h in applying), encoding="utf-8")
            run = _download(["--no-deps", "--require-hashes", "-r", str(pinned)], python, Path(scratch) / "w")
            if run.returncode != 0:
                problems.append(f"Python {python}: pip refuses the pins of {lock.name}: {run.stderr.strip()}")
                continue
            for wheel in sorted((Path(scratch) / "w").glob("*.whl")):
                owner = str(parse_wheel_filename(wheel.name)[0])
                asked += [(dependency, owner) for dependency in _dependencies(wheel, environment)]
        for requirement, owner in asked:
            version = versions.get(canonicalize_name(requirement.name))
            if version is None:
                problems.append(f"Python {python}: {owner} needs {requirement.name}, which {lock.name} lacks")
            elif not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"Python {python}: {owner} needs {requirement}, {lock.name} pins {version}")
    return sorted(set(problems))


def fetch_wheels(dest: Path, lock: Path = LOCK) -> list[Path]:
    """Every wheel ``lock`` pins, for every supported Python version (markers ignored), checked against its
    hash, into ``dest``: what an offline install with ``--no-index --find-links dest -r lock`` needs."""
    dest.mkdir(parents=True, exist_ok=True)
    for requirement, hashes in entries(lock.read_text(encoding="utf-8")):
        with tempfile.TemporaryDirectory() as scratch:
            one = Path(scratch) / "one.txt"
            one.write_text(f"{requirement.name}{requirement.specifier} {hashes}\n", encoding="utf-8")
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                       "--only-binary=:all:", "--no-deps", "--ignore-requires-python", "--require-hashes",
                       "--dest", str(dest), "-r", str(one)]
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                raise SystemExit(f"fetching {requirement} failed:\n{run.stderr}")
    return sorted(dest.glob("*.whl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="verify the lock instead of writing it")
    parser.add_argument("--wheels", type=Path, metavar="DIR",
                        help="download every pinned wheel (all Python versions), hash-checked, into DIR")
    args = parser.parse_args()
    if args.wheels:
        fetch_wheels(args.wheels)
        return 0
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make lock` after changing pyproject.toml's dependencies", file=sys.stderr)
        return 1 if problems else 0
    LOCK.write_text(resolve(), encoding="utf-8")
    print(f"wrote {LOCK.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
