"""The README walkthrough (examples/demo.sh) runs end to end, on its OCI-layout default and on a registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.cli import clean_env
from harness.registry import RunningRegistry

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.sh"


def _run_demo(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = clean_env(tmp_path, extra)
    # The demo calls `ci-oras`; make the one from this interpreter's environment come first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["TMPDIR"] = str(tmp_path)
    return subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=300)


def test_demo_on_layout_default(tmp_path: Path) -> None:
    result = _run_demo(tmp_path, {})
    assert result.returncode == 0, result.stderr
    assert "pulled files are byte-for-byte identical" in result.stderr
    assert "demo finished" in result.stderr
    assert [p for p in tmp_path.iterdir() if p.name.startswith("ci-oras-demo")] == [], "the demo cleans up"


def test_demo_on_registry(registry_plain: RunningRegistry, tmp_path: Path) -> None:
    result = _run_demo(tmp_path, {"CI_ORAS_DEMO_REPO": f"{registry_plain.host}/readme/example"})
    assert result.returncode == 0, result.stderr
    assert "demo finished" in result.stderr
