"""Run the real ``ci-oras`` command: in a subprocess, the way a CI job does, or in this process (faster)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


#: Set when the suite itself runs in a CI job: the CLI would emit to that job instead of the test's files.
_CI_PLATFORM_VARIABLES = frozenset({"GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITLAB_CI",
                                    "TF_BUILD", "AGENT_TEMPDIRECTORY"})


def clean_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment with a private HOME/DOCKER_CONFIG, so no real credentials leak into a test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CI_ORAS_", "DOCKER_", "REGISTRY_AUTH", "SOURCE_DATE_EPOCH"))
        and k not in _CI_PLATFORM_VARIABLES
    }
    env["HOME"] = str(home)
    env["DOCKER_CONFIG"] = str(home / ".docker")
    env.update(extra or {})
    return env


def compile_sources(root: Path) -> None:
    """Byte-compile ``root/ci_oras`` (into its ``__pycache__``, as an installed package is compiled), once before
    a session starts its hundreds of ``python -m ci_oras`` processes: with ``PYTHONDONTWRITEBYTECODE`` set, as on
    some machines, each would otherwise compile every module it imports from source (about 50 ms of CPU each).
    The harness and the samples too, which every xdist worker imports. Up-to-date files are skipped; Python
    checks each cached file against its source before using it."""
    import compileall

    for directory in ("ci_oras", "tests/harness", "tests/samples"):
        compileall.compile_dir(str(root / directory), quiet=1)


def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> CliResult:
    completed = subprocess.run(
        [sys.executable, "-m", "ci_oras", *args],
        env=dict(env),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def expect(result: CliResult, code: int = 0) -> CliResult:
    """``result``, once checked to have exited ``code`` (the message shows the whole output if not)."""
    assert result.returncode == code, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
    return result


def push_one_file(reference: str, work: Path) -> tuple[dict[str, str], str]:
    """Push one small file to ``reference`` with the real CLI, its HOME in ``work``; returns that environment
    and the digest pushed."""
    src = work / "src"
    src.mkdir()
    (src / "f").write_text("x")
    env = clean_env(work)
    pushed = run_cli("push", reference, "f", "--output", "json", env=env, cwd=src)
    assert pushed.returncode == 0, pushed.stderr
    return env, str(pushed.json()["digest"])


class _PerThread(io.TextIOBase):
    """A stand-in for ``sys.stdin``/``stdout``/``stderr`` that routes to the calling thread's own stream.

    Installed while in-process runs are active, so that several runs in parallel threads (as parallel CI jobs
    against one registry) each read their own stdin and keep their own output apart.
    """

    def __init__(self, name: str, fallback: Any) -> None:
        super().__init__()
        self._name = name
        self._fallback = fallback

    def _stream(self) -> Any:
        return getattr(_THREAD_STREAMS, self._name, None) or self._fallback

    def __getattr__(self, attribute: str) -> Any:  # buffer, encoding, isatty, ...
        return getattr(self._stream(), attribute)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The thread's stream's: io.TextIOBase defines ``encoding`` (as None), so ``__getattr__`` never sees it,
        and the CLI picks its check marks by it."""
        return str(getattr(self._stream(), "encoding", None) or "utf-8")

    def write(self, text: str) -> int:
        return int(self._stream().write(text))

    def read(self, size: int | None = -1) -> str:
        return str(self._stream().read(size))

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return str(self._stream().readline(size))

    def flush(self) -> None:
        self._stream().flush()

    def isatty(self) -> bool:
        return False


_THREAD_STREAMS = threading.local()
_IN_PROCESS_LOCK = threading.Lock()


def _text_stream(buffer: io.BytesIO) -> io.TextIOWrapper:
    """A text stream with a ``.buffer``, as the CLI writes manifest bytes to ``sys.stdout.buffer``."""
    return io.TextIOWrapper(buffer, encoding="utf-8", newline=None, write_through=True)


def _run_in_thread(args: Sequence[str], stdin: str | None) -> CliResult:
    from ci_oras.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    # Held here until the end: a wrapper that is garbage-collected closes its buffer.
    streams = _text_stream(io.BytesIO((stdin or "").encode())), _text_stream(out), _text_stream(err)
    _THREAD_STREAMS.stdin, _THREAD_STREAMS.stdout, _THREAD_STREAMS.stderr = streams
    code: int
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        _THREAD_STREAMS.stdin = _THREAD_STREAMS.stdout = _THREAD_STREAMS.stderr = None
    return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


def invoke_cli_many(
    runs: Sequence[Sequence[str]], *, env: Mapping[str, str], cwd: Path | None = None,
    stdin: str | None = None, stdins: Sequence[str | None] | None = None,
) -> list[CliResult]:
    """Run ``ci-oras`` once per argument list, all at the same time in this process, one thread each.

    What a subprocess would do, minus the interpreter start-up (~0.3 s each on the CI machine): the real
    ``main()`` with its exit-code handler, ``env`` as the whole environment, ``cwd`` as the working
    directory and ``stdin`` fed to every run (or ``stdins[i]`` to run ``i``). The process-wide environment
    and working directory are swapped for the duration, so calls are serialized with each other. An
    exception escaping ``main()`` (a traceback a user would see) is re-raised here, so the test fails on it.
    """
    inputs = list(stdins) if stdins is not None else [stdin] * len(runs)
    if len(inputs) != len(runs):
        raise ValueError(f"{len(runs)} runs but {len(inputs)} stdins")
    with _IN_PROCESS_LOCK:
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        saved_streams = sys.stdin, sys.stdout, sys.stderr
        os.environ.clear()
        os.environ.update(env)
        # typer sets and then deletes this variable around parsing each command; between threads that
        # deletion changes os.environ's size while another run iterates it (httpx reading proxy variables).
        # Present from the start, it is only ever re-set, as each run in its own process would see it.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
        sys.stdin = _PerThread("stdin", saved_streams[0])
        sys.stdout = _PerThread("stdout", saved_streams[1])
        sys.stderr = _PerThread("stderr", saved_streams[2])
        try:
            if cwd is not None:
                os.chdir(cwd)
            if len(runs) == 1:
                return [_run_in_thread(runs[0], inputs[0])]
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="ci-oras-cli") as pool:
                futures = [pool.submit(_run_in_thread, args, text) for args, text in zip(runs, inputs)]
                return [future.result() for future in futures]
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)


def invoke_cli(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, stdin: str | None = None
) -> CliResult:
    """:func:`run_cli` in this process, for tests where the process boundary adds only start-up time."""
    return invoke_cli_many([args], env=env, cwd=cwd, stdin=stdin)[0]
