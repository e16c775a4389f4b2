"""Write (or check) requirements/runtime.lock: ci-oras's runtime dependencies, pinned with their wheel hashes.

Every wrapper installs from this file with ``pip install --require-hashes -r runtime.lock`` and then ci-oras
itself with ``--no-deps``, so a pipeline runs exactly the code this lock names, whatever the package index
holds that day. The Azure extension bundles the same wheels and installs them with ``--no-index``.

Some dependencies are compiled (cryptography, cffi), so a pin carries the hash of every wheel a supported
machine needs: the dependencies are resolved once per supported Python version on each platform in
``PLATFORMS`` (wheels only), and the results are merged. pip accepts several ``--hash`` options per pin and,
online, picks a file whose hash is listed; offline it finds exactly those files beside the lock. A package
only some Python versions or platforms need (or a version only some of them can install) carries a marker
naming them. A file serving several Python versions (an ``abi3`` or pure-Python wheel) is pinned once.

``--check`` resolves nothing: for every supported Python version on every platform it fetches the pins that
apply, with their hashes, and verifies that pyproject.toml's runtime dependencies and each pinned wheel's own
dependencies are pinned within the ranges asked for, so newer releases on the index never make it fail. It
also reads every ``ci_oras`` module's imports and fails when one names a module that no pinned wheel provides
(an import the lock does not cover crashes an installed ci-oras, whatever the development venv holds).

Beside the lock, ``VARIANTS`` are the same pins without some runtime dependencies and whatever only they need
(``runtime-core.lock``: without cryptography and sigstore). A step that never imports those installs the smaller
lock (the GitLab and Azure YAML templates of such steps carry it inline; ``catalog.Step.lock`` names each step's),
so a job that only pushes or promotes does not fetch and compile sigstore's tree. ``make lock`` writes them from
the same resolution and ``--check`` fails when one is not exactly what the lock and its wheels give.

``--wheels DIR`` downloads the pinned wheels of the chosen platforms, hash-checked, for an offline install
(azure-pipelines/package.sh); ``--variant OTHER=NAME,...`` also writes into OTHER the wheels without those
dependencies and whatever only they need, with the lock of what is left beside them. Writing and checking need
Python 3.11 or later (tomllib): ``make lock`` / ``make check-lock``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import email.message
import email.parser
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "runtime.lock"
PACKAGE = ROOT / "ci_oras"
#: The Python versions pyproject.toml's requires-python admits and the wrappers may meet.
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
#: The smaller locks written beside runtime.lock: file name -> the runtime dependencies it leaves out, with
#: whatever nothing else needs. sigstore is imported only by verify with a Sigstore identity, cryptography only
#: by the signing steps (tests/install/test_installed.py checks each step's imports against ``catalog``).
VARIANTS: dict[str, tuple[str, ...]] = {
    "runtime-signing.lock": ("sigstore",),
    "runtime-core.lock": ("cryptography", "sigstore"),
}


@dataclass(frozen=True)
class Platform:
    """An operating system and machine the wrappers run on: the wheel tags pip may pick for it (best first) and
    the values its markers see."""

    name: str
    tags: tuple[str, ...]
    sys_platform: str
    system: str
    machine: str

    def environment(self, python: str) -> dict[str, str]:
        """The marker environment of CPython ``python`` here. pip evaluates dependency markers against the
        interpreter running it, even with --python-version and --platform, so the resolver does it itself."""
        return {**default_environment(), "python_version": python, "python_full_version": python + ".0",
                "implementation_name": "cpython", "platform_python_implementation": "CPython",
                "os_name": "nt" if self.system == "Windows" else "posix", "sys_platform": self.sys_platform,
                "platform_system": self.system, "platform_machine": self.machine}

    def marker(self) -> str:
        return f'sys_platform == "{self.sys_platform}" and platform_machine == "{self.machine}"'

    def not_marker(self) -> str:
        return f'sys_platform != "{self.sys_platform}" or platform_machine != "{self.machine}"'


#: GitHub's, GitLab's and Azure's hosted runners and the usual self-hosted machines: glibc Linux (manylinux2014,
#: i.e. glibc 2.17, preferred over manylinux_2_28 where both exist: it installs on more systems), macOS 11+ on
#: Apple silicon, macOS 10.13+ on Intel, 64-bit Windows. musl (Alpine) and 32-bit systems are not covered.
PLATFORMS = (
    Platform("linux-x86_64", ("manylinux2014_x86_64", "manylinux_2_28_x86_64"), "linux", "Linux", "x86_64"),
    Platform("linux-aarch64", ("manylinux2014_aarch64", "manylinux_2_28_aarch64"), "linux", "Linux", "aarch64"),
    Platform("macos-arm64", ("macosx_11_0_arm64",), "darwin", "Darwin", "arm64"),
    Platform("macos-x86_64", ("macosx_10_13_x86_64",), "darwin", "Darwin", "x86_64"),
    Platform("windows-amd64", ("win_amd64",), "win32", "Windows", "AMD64"),
)
#: Imports of a module that no runtime dependency provides, allowed only in the modules named: the ``wrappers``
#: extra renders the CI wrappers (``python -m ci_oras.wrappers.generate``); no step imports it.
NOT_RUNTIME = {"jinja2": frozenset({"ci_oras.wrappers.generate"})}

Combination = tuple[str, Platform]


def combinations(platforms: Sequence[Platform] = PLATFORMS, pythons: Sequence[str] = PYTHONS) -> list[Combination]:
    return [(python, platform) for platform in platforms for python in pythons]


def platform(name: str) -> Platform:
    for known in PLATFORMS:
        if known.name == name:
            return known
    raise SystemExit(f"unknown platform {name!r}; known: {', '.join(p.name for p in PLATFORMS)}")


def runtime_requirements(root: Path = ROOT) -> list[Requirement]:
    import tomllib  # Python 3.11+; only writing and checking the lock read pyproject.toml

    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return [Requirement(text) for text in data["project"]["dependencies"]]


def _pip_environment() -> dict[str, str]:
    """The environment of pip runs: the package index alone. This machine's pip configuration may add local
    wheel directories, extra indexes or constraints, whose files a runner could never fetch."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def _download(arguments: list[str], combination: Combination, dest: Path) -> subprocess.CompletedProcess[str]:
    python, target = combination
    nodot = python.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
               "--abi", f"cp{nodot}", "--abi", "abi3", "--abi", "none",
               *(option for tag in target.tags for option in ("--platform", tag)),
               "--dest", str(dest), *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=_pip_environment())


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


@functools.cache
def _requires(wheel: Path) -> tuple[Requirement, ...]:
    """Every ``Requires-Dist`` of ``wheel``, parsed once (a check reads each wheel for 25 combinations and each
    variant)."""
    return tuple(Requirement(text) for text in _metadata(wheel).get_all("Requires-Dist") or [])


def _dependencies(wheel: Path, environment: dict[str, str], extras: Iterable[str] = ()) -> list[Requirement]:
    """What ``wheel`` requires here, with what its ``extras`` add (a requirer asking for ``pydantic[email]``
    needs email-validator too)."""
    found = []
    asked = ("", *sorted(extras))
    for requirement in _requires(wheel):
        if requirement.marker is None or any(requirement.marker.evaluate({**environment, "extra": extra})
                                             for extra in asked):
            found.append(requirement)
    return found


def _extras_asked(wheels: dict[str, Path], roots: Iterable[Requirement],
                  environment: dict[str, str]) -> dict[str, set[str]]:
    """Name -> the extras anything among ``roots`` and ``wheels`` asks of it (extras of extras included)."""
    asked: dict[str, set[str]] = {}
    for root in roots:
        asked.setdefault(canonicalize_name(root.name), set()).update(root.extras)
    while True:
        grown = False
        for name, wheel in wheels.items():
            for dependency in _dependencies(wheel, environment, asked.get(name, ())):
                known = asked.setdefault(canonicalize_name(dependency.name), set())
                if not set(dependency.extras) <= known:
                    known.update(dependency.extras)
                    grown = True
        if not grown:
            return asked


def _name(wheel: Path) -> str:
    return str(parse_wheel_filename(wheel.name)[0])


def _resolve_for(combination: Combination, scratch: Path) -> dict[str, Path]:
    """Name -> wheel of every package the runtime dependencies need on ``combination``: the newest version that
    fits every range asked for it (re-picked when a later requirer narrows a range), wheels only. Each round
    fetches every package still pending with one pip run."""
    environment = combination[1].environment(combination[0])
    wanted: dict[str, dict[str, SpecifierSet]] = {}  # name -> requirer -> range
    extras: dict[str, dict[str, frozenset[str]]] = {}  # name -> requirer -> the extras it asks for
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        wanted.setdefault(name, {})["pyproject.toml"] = requirement.specifier
        extras.setdefault(name, {})["pyproject.toml"] = frozenset(requirement.extras)
    chosen: dict[str, Path] = {}

    def ask_dependencies_of(name: str) -> None:
        """Record what the chosen wheel of ``name`` (with the extras asked of it) requires."""
        asked = frozenset().union(*extras.get(name, {}).values())
        for dependency in _dependencies(chosen[name], environment, asked):
            needed = canonicalize_name(dependency.name)
            wanted.setdefault(needed, {})[name] = dependency.specifier
            before = frozenset().union(*extras.get(needed, {}).values())
            extras.setdefault(needed, {})[name] = frozenset(dependency.extras)
            if needed in chosen and not frozenset(dependency.extras) <= before:
                ask_dependencies_of(needed)  # an extra asked of a package already picked adds its requirements

    for round_number in range(100):
        pending = [name for name in sorted(wanted) if name not in chosen or not _fits(chosen[name], wanted[name])]
        if not pending:
            return chosen
        dest = scratch / f"round-{round_number}"
        asked = [f"{name}{SpecifierSet(','.join(str(s) for s in wanted[name].values() if str(s)))}"
                 for name in pending]
        run = _download(["--no-deps", *asked], combination, dest)
        if run.returncode != 0:
            raise SystemExit(f"Python {combination[0]} on {combination[1].name}: no wheel of one of "
                             f"{' '.join(asked)}:\n{run.stderr}")
        for wheel in dest.glob("*.whl"):
            name = canonicalize_name(_name(wheel))
            chosen[name] = wheel
            _forget_ranges_of(wanted, name)  # what an earlier pick of it asked for
            _forget_ranges_of(extras, name)
            ask_dependencies_of(name)
        unneeded = [n for n in wanted if not wanted[n]]
        while unneeded:  # no longer asked for by anyone (an earlier pick's dependency), nor what it asked for
            name = unneeded.pop()
            wanted.pop(name, None)
            chosen.pop(name, None)
            _forget_ranges_of(wanted, name)
            _forget_ranges_of(extras, name)
            unneeded = [n for n in wanted if not wanted[n]]
    raise SystemExit(f"Python {combination[0]} on {combination[1].name}: the resolution does not settle")


def _forget_ranges_of(wanted: dict[str, dict[str, SpecifierSet]] | dict[str, dict[str, frozenset[str]]],
                      requirer: str) -> None:
    for ranges in wanted.values():
        ranges.pop(requirer, None)


def _fits(wheel: Path, ranges: dict[str, SpecifierSet]) -> bool:
    version = str(parse_wheel_filename(wheel.name)[1])
    return all(specifier.contains(version, prereleases=True) for specifier in ranges.values())


def _serves(tags: Iterable[Tag], python: str) -> bool:
    """Whether a wheel with ``tags`` (already fitting the platform) installs on CPython ``python``."""
    version = tuple(int(part) for part in python.split("."))
    for tag in tags:
        interpreter = tag.interpreter
        digits = interpreter[2:]
        if not interpreter.startswith(("cp", "py")) or not digits.isdigit():
            continue
        wanted = (int(digits[0]), int(digits[1:] or 0))
        if tag.abi == "abi3" and interpreter.startswith("cp") and wanted <= version:
            return True
        if tag.abi == "none" and (wanted == version or (len(digits) == 1 and wanted[0] == version[0])):
            return True
        if tag.abi == f"cp{python.replace('.', '')}" and wanted == version:
            return True
    return False


@dataclass
class _Pin:
    files: dict[str, tuple[str, frozenset[Tag], set[str]]]  # file name -> (sha256, tags, pythons it serves)
    needed: set[tuple[str, str]]  # (python, platform name)


def resolve() -> dict[Path, str]:
    """The lock's text (``LOCK``) and each of its ``VARIANTS``: every wheel the runtime dependencies need on any
    supported Python and platform."""
    found: dict[tuple[str, str], _Pin] = {}
    results: dict[Combination, list[Path]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        def one(combination: Combination) -> None:
            where = Path(scratch) / f"{combination[1].name}-{combination[0]}"
            results[combination] = list(_resolve_for(combination, where).values())

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, combinations()))
        by_name = {combination: {canonicalize_name(_name(wheel)): wheel for wheel in wheels}
                   for combination, wheels in results.items()}
        kept = {name: _kept(by_name, left_out) for name, left_out in VARIANTS.items()}
        for (python, target), wheels in sorted(results.items(), key=lambda item: (item[0][1].name, item[0][0])):
            for wheel in wheels:
                name, version, _, tags = parse_wheel_filename(wheel.name)
                pin = found.setdefault((canonicalize_name(name), str(version)), _Pin({}, set()))
                pin.needed.add((python, target.name))
                digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
                pin.files.setdefault(wheel.name, (digest, frozenset(tags), set()))[2].add(f"{target.name}/{python}")
    span = f"{PYTHONS[0]}-{PYTHONS[-1]}"
    lines = [
        f"# ci-oras's runtime dependencies, pinned with the sha256 of each wheel they need on CPython {span} on",
        f"# {', '.join(p.name for p in PLATFORMS)}.",
        "# Generated by `make lock` (requirements/lock.py) from pyproject.toml: edit that, not this file. Install with",
        "#   pip install --require-hashes -r requirements/runtime.lock && pip install --no-deps <ci-oras>",
    ]
    for (name, version), pin in sorted(found.items()):
        marker = _marker(pin.needed)
        lines.append(f"{name}=={version}{' ; ' + marker if marker else ''} \\")
        digests = sorted({digest for digest, _, _ in _fewest_files(pin).values()})
        lines.extend(f"    --hash=sha256:{digest}" + (" \\" if at < len(digests) - 1 else "")
                     for at, digest in enumerate(digests))
    text = "\n".join(lines) + "\n"
    return {LOCK: text, **{LOCK.parent / name: variant_text(text, kept[name], VARIANTS[name]) for name in VARIANTS}}


def _kept(wheels: Mapping[Combination, Mapping[str, Path]], left_out: Iterable[str]) -> set[str]:
    """The names some combination needs when ``left_out`` and what only they need are left out."""
    omitted = {canonicalize_name(name) for name in left_out}
    keep: set[str] = set()
    for (python, target), by_name in wheels.items():
        keep |= _reached(runtime_requirements(), by_name, target.environment(python), omitted)
    return keep


def variant_text(text: str, keep: set[str], left_out: Iterable[str]) -> str:
    """The lock ``text`` holding only the pins of ``keep`` (their blocks as they are, hashes and markers)."""
    blocks = _lock_blocks(text)
    kept = [block for block in blocks[1:] if canonicalize_name(Requirement(block.split(" \\")[0]).name) in keep]
    note = f"# Without {', '.join(sorted(left_out))} and what nothing else needs (requirements/lock.py VARIANTS).\n"
    return blocks[0] + note + "".join(kept)


def _fewest_files(pin: _Pin) -> dict[str, tuple[str, frozenset[Tag], set[str]]]:
    """The files to pin: per platform, one that serves several Python versions (an abi3 wheel) replaces the
    version-specific picks it can stand for, so cryptography is one file per platform, not one per Python."""
    kept: dict[str, tuple[str, frozenset[Tag], set[str]]] = {}
    for target in sorted({name for _, name in pin.needed}):
        pythons = {python for python, name in pin.needed if name == target}
        candidates = [f for f, entry in pin.files.items() if any(s.startswith(target + "/") for s in entry[2])]
        uncovered = set(pythons)
        # widest first: the file serving most of this platform's Python versions
        for file_name in sorted(candidates, key=lambda f: (-sum(_serves(pin.files[f][1], p) for p in pythons), f)):
            serves = {python for python in uncovered if _serves(pin.files[file_name][1], python)}
            if serves:
                kept[file_name] = pin.files[file_name]
                uncovered -= serves
        if uncovered:
            raise SystemExit(f"no pinned file serves Python {sorted(uncovered)} on {target}")
    return kept


def _marker(needed: set[tuple[str, str]]) -> str:
    """``""`` when every supported Python on every platform needs it, else the marker naming those that do: the
    Python versions as a prefix or suffix of ``PYTHONS``, the platforms as one, all but one, or a list."""
    pythons = {python for python, _ in needed}
    names = {name for _, name in needed}
    if needed != {(python, name) for python in pythons for name in names}:
        raise SystemExit(f"needed on {sorted(needed)}: not expressible as Python versions x platforms")
    parts = [part for part in (_python_marker(pythons), _platform_marker(names)) if part]
    return " and ".join(f"({part})" if " or " in part and len(parts) > 1 else part for part in parts)


def _python_marker(pythons: set[str]) -> str:
    needed = [python in pythons for python in PYTHONS]
    if all(needed):
        return ""
    count = sum(needed)
    if needed[:count] == [True] * count:
        return f'python_version < "{PYTHONS[count]}"'
    if needed[-count:] == [True] * count:
        return f'python_version >= "{PYTHONS[-count]}"'
    raise SystemExit(f"a dependency only Python {sorted(pythons)} need: not expressible as one marker")


def _platform_marker(names: set[str]) -> str:
    inside = [p for p in PLATFORMS if p.name in names]
    outside = [p for p in PLATFORMS if p.name not in names]
    if not outside:
        return ""
    systems = {p.system for p in inside}
    if not any(p.system in systems for p in outside):
        return " or ".join(f'platform_system == "{system}"' for system in sorted(systems))
    if len(inside) == 1:
        return inside[0].marker()
    if len(outside) == 1:
        return outside[0].not_marker()
    return " or ".join(f"({p.marker()})" for p in inside)


def entries(text: str) -> list[tuple[Requirement, str]]:
    """Each pinned requirement of a lock's text with its hash options (``--hash=sha256:… --hash=sha256:…``)."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.startswith("#"):
            requirement, _, hashes = line.partition(" --hash=")
            found.append((Requirement(requirement.strip()), " ".join(("--hash=" + hashes).split())))
    return found


def _applying(locked: list[tuple[Requirement, str]], combination: Combination) -> list[tuple[Requirement, str]]:
    environment = combination[1].environment(combination[0])
    return [(r, h) for r, h in locked if r.marker is None or r.marker.evaluate(environment)]


def _fetch_pins(pins: list[tuple[Requirement, str]], combination: Combination,
                dest: Path) -> subprocess.CompletedProcess[str]:
    """Download ``pins`` for ``combination`` with pip's hash checking (no dependencies resolved). A ``dest``
    completed by an earlier check of the same lock (``check(downloads=...)``) is used again when every wheel
    in it still has one of its pin's hashes: the pins are exact versions with hashes, so what pip fetched
    then is what it would fetch now."""
    complete = dest.parent / f"{dest.name}.complete"
    if complete.is_file() and _hashes_hold(pins, dest):
        return subprocess.CompletedProcess([], 0, "", "")
    shutil.rmtree(dest, ignore_errors=True)
    complete.unlink(missing_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    done = _fetch_pins_now(pins, combination, dest)
    if done.returncode == 0:
        complete.touch()
    return done


def _hashes_hold(pins: list[tuple[Requirement, str]], dest: Path) -> bool:
    """Whether ``dest`` holds one wheel per pin, each with one of the pin's hashes."""
    allowed = {canonicalize_name(r.name): set(re.findall(r"--hash=sha256:([0-9a-f]{64})", h)) for r, h in pins}
    wheels = {canonicalize_name(_name(wheel)): wheel for wheel in dest.glob("*.whl")}
    if set(wheels) != set(allowed):
        return False
    for name, wheel in wheels.items():
        digest = hashlib.sha256()
        with wheel.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() not in allowed[name]:
            return False
    return True


def _fetch_pins_now(pins: list[tuple[Requirement, str]], combination: Combination,
                    dest: Path) -> subprocess.CompletedProcess[str]:
    dest.mkdir(parents=True, exist_ok=True)
    pinned = dest.parent / f"{dest.name}.txt"
    pinned.write_text("".join(f"{r.name}{r.specifier} {h}\n" for r, h in pins), encoding="utf-8")
    return _download(["--no-deps", "--require-hashes", "-r", str(pinned)], combination, dest)


def _fetch_everywhere(locked: list[tuple[Requirement, str]], chosen: list[Combination],
                      scratch: Path) -> tuple[dict[Combination, dict[str, Path]], dict[Combination, str]]:
    """For each combination, name -> the wheel pip fetches, hash-checked, for every pin that applies there; and
    pip's complaint where it refuses. The first platform's combinations fetch every pin; the others only the
    pins those did not answer with one pure-Python file (which installs everywhere), so pip resolves small
    sets."""
    wheels: dict[Combination, dict[str, Path]] = {}
    refused: dict[Combination, str] = {}
    universal: dict[str, Path] = {}  # pin -> its one file, fetched once

    def one(combination: Combination) -> None:
        applying = _applying(locked, combination)
        into = scratch / f"{combination[1].name}-{combination[0]}"
        run = _fetch_pins([(r, h) for r, h in applying if str(r) not in universal], combination, into)
        if run.returncode != 0:
            refused[combination] = run.stderr.strip()
            return
        found = {canonicalize_name(_name(w)): w for w in into.glob("*.whl")}
        found.update({canonicalize_name(r.name): universal[str(r)] for r, _ in applying if str(r) in universal})
        wheels[combination] = found

    first = [c for c in chosen if c[1] == chosen[0][1]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, first))
        for combination in first:
            for requirement, _ in _applying(locked, combination) if combination in wheels else []:
                wheel = wheels[combination].get(canonicalize_name(requirement.name))
                if wheel and all(tag.platform == "any" for tag in parse_wheel_filename(wheel.name)[3]):
                    universal[str(requirement)] = wheel
        list(pool.map(one, [c for c in chosen if c not in first]))
    return wheels, refused


def check(lock: Path = LOCK, platforms: Sequence[Platform] = PLATFORMS, package: Path = PACKAGE,
          pythons: Sequence[str] = PYTHONS, downloads: Path | None = None,
          variants: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """What is wrong with ``lock`` (empty: nothing): a runtime dependency missing or pinned outside its range;
    for each of ``pythons`` on each of ``platforms``, a pin pip cannot fetch with its hashes, or a
    dependency of a pinned wheel that the lock lacks or pins outside the range asked for; an import of
    ``package`` that no pinned wheel provides. ``downloads``: a directory keeping what pip fetched, for the
    next check of the same lock (the tests check it every run); by default nothing is kept. ``variants``: the
    smaller locks beside ``lock`` that must be exactly what it gives (default: ``VARIANTS`` when checking
    ``LOCK`` on every platform and Python)."""
    text = lock.read_text(encoding="utf-8")
    locked = entries(text)
    problems: list[str] = []
    provided: set[str] = set()
    with contextlib.ExitStack() as stack:
        if downloads is None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            key = hashlib.sha256("\n".join([text, *(p.name for p in platforms), *pythons]).encode()).hexdigest()
            scratch = downloads / key[:32]
            scratch.mkdir(parents=True, exist_ok=True)
        fetched, refused = _fetch_everywhere(locked, combinations(platforms, pythons), scratch)
        for (python, target), complaint in refused.items():
            problems.append(f"Python {python} on {target.name}: pip refuses the pins of {lock.name}: {complaint}")
        for (python, target), wheels in fetched.items():
            where = f"Python {python} on {target.name}"
            applying = _applying(locked, (python, target))
            versions = {canonicalize_name(r.name): next(iter(r.specifier)).version for r, _ in applying}
            asked = [(r, "pyproject.toml") for r in runtime_requirements()]
            environment = target.environment(python)
            by_name: dict[str, Path] = {canonicalize_name(_name(wheel)): wheel for wheel in wheels.values()}
            extras = _extras_asked(by_name, runtime_requirements(), environment)
            for name, wheel in by_name.items():
                provided.update(top_level_modules(wheel))
                asked += [(dependency, _name(wheel))
                          for dependency in _dependencies(wheel, environment, extras.get(name, ()))]
            for requirement, owner in asked:
                version = versions.get(canonicalize_name(requirement.name))
                if version is None:
                    problems.append(f"{where}: {owner} needs {requirement.name}, which {lock.name} lacks")
                elif not requirement.specifier.contains(version, prereleases=True):
                    problems.append(f"{where}: {owner} needs {requirement}, {lock.name} pins {version}")
        if variants is None:
            everywhere = set(platforms) == set(PLATFORMS) and set(pythons) == set(PYTHONS)
            variants = VARIANTS if everywhere and lock == LOCK else {}
        if not refused:
            problems += _stale_variants(lock, text, fetched, variants)
    if not any("pip refuses" in problem for problem in problems):
        problems += uncovered_imports(package, provided, lock.name)
    return sorted(set(problems))


def _stale_variants(lock: Path, text: str, fetched: Mapping[Combination, Mapping[str, Path]],
                    variants: Mapping[str, Sequence[str]]) -> list[str]:
    """Each variant beside ``lock`` that is missing or not exactly what ``text`` and its wheels give."""
    problems = []
    for name, left_out in variants.items():
        expected = variant_text(text, _kept(fetched, left_out), left_out)
        path = lock.parent / name
        if not path.is_file() or path.read_text(encoding="utf-8") != expected:
            problems.append(f"{name} is not {lock.name} without {', '.join(left_out)} and what only they need")
    return problems


def top_level_modules(wheel: Path) -> set[str]:
    """The importable top-level names a wheel installs (``cryptography``, ``_cffi_backend``, ``typing_extensions``)."""
    names = set()
    with zipfile.ZipFile(wheel) as archive:
        for entry in archive.namelist():
            first = entry.split("/")[0]
            if first.endswith((".dist-info", ".data")):
                continue
            if "/" in entry:
                names.add(first)
            elif first.endswith((".py", ".so", ".pyd")):
                names.add(first.split(".")[0])
    return names


def imports(package: Path) -> dict[str, set[str]]:
    """Top-level module -> the modules of ``package`` importing it, outside the standard library and the package
    itself. Imports inside functions count (a lazy import still runs); ``if TYPE_CHECKING:`` blocks do not."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for name in imported_modules(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != package.name:
                found.setdefault(top, set()).add(module)
    return found


def imported_modules(tree: ast.AST) -> list[str]:
    """Every module a module's AST imports (``from a import b`` names ``a`` and ``a.b``, which may be a module),
    inside functions too (a lazy import still runs), except under ``if TYPE_CHECKING:``."""
    names: list[str] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            names += [name for child in node.orelse for name in imported_modules(ast.Module([child], []))]
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        names += imported_modules(node)
    return names


def uncovered_imports(package: Path, provided: set[str], lock_name: str = LOCK.name) -> list[str]:
    """An import of ``package`` that no module in ``provided`` satisfies (allowed exceptions: ``NOT_RUNTIME``)."""
    problems = []
    for top, importers in sorted(imports(package).items()):
        if top in provided:
            continue
        for importer in sorted(importers - NOT_RUNTIME.get(top, frozenset())):
            problems.append(f"{importer} imports {top}, which no package pinned in {lock_name} provides")
    return problems


def fetch_wheels(dest: Path, lock: Path = LOCK, platforms: Sequence[Platform] = PLATFORMS,
                 variants: Mapping[Path, Sequence[str]] | None = None) -> list[Path]:
    """Every wheel ``lock`` pins for ``platforms`` (each supported Python version), checked against its hashes,
    into ``dest``: what an offline install with ``--no-index --find-links dest -r lock`` needs on them.

    ``variants`` (directory -> dependency names): each directory gets the wheels without those dependencies and
    whatever nothing else needs, and the lock of what is left (only its pins and their hashes) as
    ``runtime.lock``, for an install that never imports them; one download serves them all.
    """
    locked = entries(lock.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as scratch:
        everything, refused = _fetch_everywhere(locked, combinations(platforms), Path(scratch))
        for (python, target), complaint in refused.items():
            raise SystemExit(f"fetching the pins for Python {python} on {target.name} failed:\n{complaint}")
        targets: list[tuple[Path, set[str]]] = [(dest, set())]
        targets += [(directory, {canonicalize_name(name) for name in names})
                    for directory, names in (variants or {}).items()]
        for directory, left_out in targets:
            directory.mkdir(parents=True, exist_ok=True)
            keep: set[str] = set()
            for combination, wheels in everything.items():
                reached = _reached(runtime_requirements(), wheels, combination[1].environment(combination[0]),
                                   left_out)
                keep.update(reached)
                for name in reached:
                    shutil.copy2(wheels[name], directory / wheels[name].name)
            if left_out:
                text = variant_text(lock.read_text(encoding="utf-8"), keep, left_out)
                (directory / "runtime.lock").write_text(text, encoding="utf-8")
    return sorted(dest.glob("*.whl"))


def _reached(roots: list[Requirement], wheels: Mapping[str, Path], environment: dict[str, str],
             omitted: set[str]) -> set[str]:
    """The names needed from ``roots`` through the wheels' dependencies, never entering ``omitted``."""
    reached: set[str] = set()
    pending = [canonicalize_name(r.name) for r in roots if r.marker is None or r.marker.evaluate(environment)]
    extras = _extras_asked(wheels, roots, environment)
    while pending:
        name = pending.pop()
        if name in reached or name in omitted:
            continue
        reached.add(name)
        if name not in wheels:
            raise SystemExit(f"the lock lacks {name}: run `make check-lock`")
        pending += [canonicalize_name(d.name) for d in _dependencies(wheels[name], environment, extras.get(name, ()))]
    return reached


def _lock_blocks(text: str) -> list[str]:
    """The lock's text cut into its header and one block per pin (a pin with its continued hash lines)."""
    blocks: list[str] = []
    for line in text.splitlines(keepends=True):
        if blocks and (blocks[-1].rstrip("\n").endswith("\\") or (line.startswith("#") and blocks[-1].startswith("#"))):
            blocks[-1] += line
        else:
            blocks.append(line)
    return blocks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="verify the lock instead of writing it")
    parser.add_argument("--wheels", type=Path, metavar="DIR",
                        help="download the pinned wheels (every supported Python version), hash-checked, into DIR")
    parser.add_argument("--platform", action="append", default=[], choices=[p.name for p in PLATFORMS],
                        help="with --wheels: only this platform's wheels (repeatable; default: every platform)")
    parser.add_argument("--variant", action="append", default=[], metavar="OTHER=NAME[,NAME...]",
                        help="with --wheels: OTHER also gets the wheels without these dependencies and what only "
                             "they need, and the lock of the rest as OTHER/runtime.lock (repeatable)")
    args = parser.parse_args()
    if args.wheels:
        chosen = [platform(name) for name in args.platform] or list(PLATFORMS)
        variants: dict[Path, list[str]] = {}
        for text in args.variant:
            directory, equals, names = text.partition("=")
            if not equals or not directory or not names:
                parser.error(f"--variant {text!r}: write OTHER=NAME[,NAME...]")
            variants[Path(directory)] = names.split(",")
        fetch_wheels(args.wheels, platforms=chosen, variants=variants)
        return 0
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make lock` after changing pyproject.toml's dependencies", file=sys.stderr)
        return 1 if problems else 0
    for path, text in resolve().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
