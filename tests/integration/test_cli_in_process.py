"""The in-process CLI runner (``harness.cli.invoke_cli``) behaves like the subprocess one where tests rely
on it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.cli import clean_env, invoke_cli, invoke_cli_many, run_cli

from ci_oras.errors import EXIT_NOT_FOUND, EXIT_USAGE


def test_same_results_as_a_real_process(tmp_path: Path) -> None:
    """Exit code, stdout and stderr match the subprocess runner's for a success, a usage error and a miss."""
    env = clean_env(tmp_path, {"SOURCE_DATE_EPOCH": "1700000000"})  # both pushes write the same manifest
    (tmp_path / "hello.txt").write_text("hello\n")
    cases = [("push", f"oci:{tmp_path / 'layout'}:v1", "hello.txt"), ("tags", f"oci:{tmp_path / 'layout'}"),
             ("pull", f"oci:{tmp_path / 'layout'}:v2"), ("verify", f"oci:{tmp_path / 'layout'}:v1")]
    for args in cases:
        in_process, process = invoke_cli(*args, env=env, cwd=tmp_path), run_cli(*args, env=env, cwd=tmp_path)
        assert (in_process.returncode, in_process.stdout) == (process.returncode, process.stdout), args
        assert in_process.stderr.splitlines()[-1:] == process.stderr.splitlines()[-1:], args
    assert [invoke_cli(*args, env=env, cwd=tmp_path).returncode for args in cases[2:]] == [EXIT_NOT_FOUND,
                                                                                           EXIT_USAGE]


def test_parallel_runs_keep_their_own_input_and_output(tmp_path: Path) -> None:
    """Each run reads its own stdin and its output is its own; the process state is restored afterwards."""
    env = clean_env(tmp_path, {"CI_ORAS_TEST_MARKER": "set"})
    before = dict(os.environ), os.getcwd(), (sys.stdin, sys.stdout, sys.stderr)
    layouts = [tmp_path / f"layout-{n}" for n in range(16)]
    for n in range(len(layouts)):
        (tmp_path / f"file-{n}.txt").write_text(f"file {n}\n")
    pushed = invoke_cli_many([("push", f"oci:{layout}:t{n}", f"file-{n}.txt", "-O", "json")
                              for n, layout in enumerate(layouts)], env=env, cwd=tmp_path)
    assert [r.json()["reference"] for r in pushed] == [f"oci:{path}:t{n}" for n, path in enumerate(layouts)]
    # --password-stdin with an empty stdin is a usage error; with a password it is read and the run goes on.
    logins = invoke_cli_many([("push", f"oci:{layouts[0]}:x", "file-0.txt", "-u", "u", "--password-stdin")]
                             * 2, env=env, cwd=tmp_path, stdins=["", "secret\n"])
    assert logins[0].returncode == EXIT_USAGE and "empty password" in logins[0].stderr
    assert logins[1].returncode == 0, logins[1].stderr
    assert (dict(os.environ), os.getcwd(), (sys.stdin, sys.stdout, sys.stderr)) == before
