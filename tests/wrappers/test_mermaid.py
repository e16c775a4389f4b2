"""The Mermaid pictures of job summaries parse and render with Mermaid itself.

Real summaries (``--emit github`` into ``$GITHUB_STEP_SUMMARY``) of a deep discover (subject -> SBOM ->
signature of the SBOM), an attach and a promote, made on OCI layouts, are rendered to PNG by mermaid-cli
(``package.json``) driving Debian's chromium; a diagram Mermaid cannot parse is shown to fail the same way.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from harness.cli import clean_env, run_cli
from wrapper_tools import require_tool

from samples.make_samples import cyclonedx_json

MERMAID = re.compile(r"^```mermaid\n(.*?)^```$", re.M | re.S)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> object:
    mmdc = require_tool("mmdc")
    chromium = require_tool("chromium")
    work = tmp_path_factory.mktemp("mermaid")
    config = work / "puppeteer.json"
    # the tests may run as root, where chromium refuses its sandbox
    config.write_text(json.dumps({"executablePath": chromium, "args": ["--no-sandbox"]}))

    def run(name: str, diagram: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        source, png = work / f"{name}.mmd", work / f"{name}.png"
        source.write_text(diagram)
        done = subprocess.run([mmdc, "-q", "-p", str(config), "-i", str(source), "-o", str(png)],
                              capture_output=True, text=True, check=False, timeout=120)
        return done, png

    return run


@pytest.fixture(scope="module")
def summaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Step -> the markdown it wrote to the job summary."""
    work = tmp_path_factory.mktemp("summaries")
    (work / "app.txt").write_text("app\n")
    (work / "sbom.cdx.json").write_bytes(cyclonedx_json())
    (work / "sig.json").write_text('{"signed": true}\n')
    source, target = f"oci:{work / 'layout'}", f"oci:{work / 'copy'}"
    found = {}

    def step(name: str, *args: str) -> dict[str, object]:
        summary = work / f"{name}.md"
        env = clean_env(work / "home", {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(work / "out")})
        done = run_cli(*args, "--emit", "github", "--output", "json", env=env, cwd=work)
        assert done.returncode == 0, done.stderr
        found[name] = summary.read_text()
        document: dict[str, object] = json.loads(done.stdout)
        return document

    step("push", "push", f"{source}:v1", "app.txt")
    sbom = step("attach-sbom", "attach-sbom", f"{source}:v1", "sbom.cdx.json")
    step("attach", "attach", f"{source}@{sbom['digest']}", "sig.json", "--artifact-type", "signature/example")
    step("discover", "discover", f"{source}:v1")
    step("promote", "promote", f"{source}:v1", f"{target}:v1")
    return found


@pytest.mark.parametrize("step", ["discover", "attach", "promote"])
def test_summary_diagram_renders(summaries: dict[str, str], render: object, step: str) -> None:
    diagrams = MERMAID.findall(summaries[step])
    assert len(diagrams) == 1, summaries[step]
    if step == "discover":  # the deep graph: subject -> SBOM -> the SBOM's signature
        assert diagrams[0].count("-->") >= 2, diagrams[0]
    done, png = render(step, diagrams[0])  # type: ignore[operator]
    assert done.returncode == 0, done.stdout + done.stderr + diagrams[0]
    data = png.read_bytes()
    assert data.startswith(PNG) and len(data) > 2000


def test_a_diagram_mermaid_cannot_parse_fails_to_render(render: object) -> None:
    done, _ = render("broken", "graph TD\n  a[unclosed --> b\n")  # type: ignore[operator]
    assert done.returncode != 0
