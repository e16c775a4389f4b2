"""The committed wrapper files are what ``python -m ci_oras.wrappers.generate`` renders from the catalog."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from ci_oras import catalog
from ci_oras.wrappers import generate

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_regenerating_changes_nothing() -> None:
    problems = generate.stale(REPO_ROOT)
    assert not problems, (
        "generated wrappers are stale; run `python -m ci_oras.wrappers.generate` and commit the result:\n"
        + "\n".join(problems)
    )


def test_every_step_setup_and_the_reference_are_generated() -> None:
    files = generate.render_generated()
    expected = {f"actions/{step.name}/action.yml" for step in catalog.STEPS}
    expected |= {"actions/setup/action.yml", "actions/README.md", "actions/install.sh"}
    expected |= {f"gitlab/{step.name}.yml" for step in catalog.STEPS} | {"gitlab/README.md"}
    expected |= {f"azure-pipelines/templates/{step.name}.yml" for step in catalog.STEPS}
    for step in catalog.STEPS:
        task = f"azure-pipelines/tasks/{generate.azure_task_name(step)}V0"
        expected |= {f"{task}/task.json", f"{task}/index.js"}
    expected |= {"azure-pipelines/vss-extension.json", "azure-pipelines/ci-oras-task.js"}
    assert set(files) == expected


def test_check_mode_lists_stale_missing_and_foreign_files(tmp_path: Path) -> None:
    check = [sys.executable, "-m", "ci_oras.wrappers.generate", "--root", str(tmp_path)]
    written = subprocess.run(check, check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    assert written.returncode == 0, written.stderr
    fresh = subprocess.run([*check, "--check"], check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    assert fresh.returncode == 0, fresh.stderr

    (tmp_path / "actions/push/action.yml").write_text("edited by hand\n")
    (tmp_path / "actions/verify/action.yml").unlink()
    (tmp_path / "actions/old-step").mkdir()
    (tmp_path / "actions/old-step/action.yml").write_text("name: gone\n")
    stale = subprocess.run([*check, "--check"], check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    assert stale.returncode == 1
    assert "differs: actions/push/action.yml" in stale.stderr
    assert "missing: actions/verify/action.yml" in stale.stderr
    assert "not generated: actions/old-step/action.yml" in stale.stderr

    rewritten = subprocess.run(check, check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    assert "wrote actions/push/action.yml" in rewritten.stderr
    assert "wrote actions/verify/action.yml" in rewritten.stderr
    assert rewritten.returncode == 1  # the foreign action is reported, never deleted
    assert (tmp_path / "actions/old-step/action.yml").exists()


def test_rendering_is_deterministic() -> None:
    assert generate.render_all() == generate.render_all()


def test_without_jinja2_the_generator_says_which_extra_it_needs(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """jinja2 is the wrappers extra: a runtime install lacks it, and the generator says so instead of failing."""
    monkeypatch.setitem(sys.modules, "jinja2", None)  # what an install without the extra looks like to import
    assert generate.main(["--check"]) == 2
    assert "pip install -e '.[wrappers]'" in capsys.readouterr().err


def test_an_azure_task_lists_the_shared_connection_inputs_by_a_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    """ci-oras-task.js holds the connection inputs once; a step without them cannot be generated for Azure."""
    files = generate.render_azure()
    for step in catalog.STEPS:
        index = files[f"azure-pipelines/tasks/{generate.azure_task_name(step)}V0/index.js"]
        assert index.count(f'"{generate.AZURE_CONNECTION_MARK}"') == 1 and '"plainHttp"' not in index
    assert files["azure-pipelines/ci-oras-task.js"].count('"plainHttp"') == 1

    lacking = dataclasses.replace(catalog.PUSH, inputs=catalog.PUSH.inputs[:-len(catalog.CONNECTION)])
    monkeypatch.setattr(catalog, "STEPS", (lacking,))
    with pytest.raises(ValueError, match="lack catalog.CONNECTION"):
        generate.render_azure()
