"""Platform emitters (``--emit``): the outputs table, GitHub, GitLab and Azure formats, summaries, secrets."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness.runner_files import parse_github_outputs

from ci_oras.emit import summary
from ci_oras.emit.azure import AzureEmitter
from ci_oras.emit.azure import escape_data as azure_data
from ci_oras.emit.azure import escape_property as azure_property
from ci_oras.emit.base import Emitter
from ci_oras.emit.channel import detect_platform, open_emitter
from ci_oras.emit.github import GitHubEmitter, format_outputs
from ci_oras.emit.github import escape_data as github_data
from ci_oras.emit.github import escape_property as github_property
from ci_oras.emit.gitlab import SIZE_LIMIT, GitLabEmitter, dotenv_value, merge_dotenv
from ci_oras.emit.outputs import OUTPUTS, SUMMARY_STEPS, compact_json, output_names, outputs_for
from ci_oras.errors import UsageError
from ci_oras.graph.discover import Node
from ci_oras.oci.descriptor import Descriptor
from ci_oras.schemas import STEPS

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SECRET = "s3cr%t;pa]ss$word"
#: GitLab's dotenv parser (Ci::ParseDotenvArtifactService#scan_line!): a line that does not match is rejected.
GITLAB_LINE = re.compile(r"^(.*?)=(.*)$")


@dataclass
class FakeResult:
    doc: dict[str, Any]
    root: Node | None = None

    def document(self) -> dict[str, Any]:
        return self.doc


def push_doc(**extra: Any) -> dict[str, Any]:
    return {"schema": "ci-oras/push/v1", "reference": "reg.example/app:v1", "digest": D1, "mediaType": MANIFEST,
            "artifactType": "application/vnd.acme.bundle", "size": 500, "tags": ["v1"], "layers": [],
            "blobsUploaded": 2, **extra}


def attach_doc(step: str = "attach-sbom") -> dict[str, Any]:
    return {"schema": f"ci-oras/{step}/v1", "reference": f"reg.example/app@{D2}", "digest": D2,
            "mediaType": MANIFEST, "artifactType": "application/vnd.cyclonedx+json", "size": 700,
            "subject": {"mediaType": MANIFEST, "digest": D1, "size": 500}, "layers": [], "annotations": {},
            "blobsUploaded": 1, "format": "cyclonedx-json"}


def discover_result() -> FakeResult:
    root = Node(Descriptor(MANIFEST, D1, 500), f"reg.example/app@{D1}")
    sbom = Node(Descriptor(MANIFEST, D2, 700, artifact_type="application/vnd.cyclonedx+json"), f"reg.example/app@{D2}")
    sbom.referrers.append(Node(Descriptor(MANIFEST, D3, 800, artifact_type="application/vnd.cncf.notary.signature"),
                               f"reg.example/app@{D3}"))
    root.referrers.append(sbom)
    return FakeResult({"schema": "ci-oras/discover/v1", **root.to_dict(), "count": 2}, root)


def verify_doc(ok: bool) -> dict[str, Any]:
    return {"schema": "ci-oras/verify/v1", "reference": "reg.example/app:v1", "digest": D1, "mediaType": MANIFEST,
            "ok": ok, "requirements": [{"spec": "sbom", "satisfied": ok, "found": [D2] if ok else [], "needed": 1,
                                        "paths": [[D2]] if ok else [], "subject": D1}],
            "missing": [] if ok else ["sbom", "sbom>signature"], "attempts": 1, "waited": 0.0, "listings": 1}


def promote_doc(dry_run: bool = False) -> dict[str, Any]:
    return {"schema": "ci-oras/promote/v1", "source": f"dev.example/app@{D1}", "destination": "prod.example/app:v1",
            "reference": "prod.example/app:v1", "digest": D1, "mediaType": MANIFEST, "tags": ["v1"],
            "tagsWritten": ["v1"], "copied": {"manifests": 3, "blobs": 4}, "mounted": 2,
            "skipped": {"manifests": 1, "blobs": 5}, "bytes": 123, "referrers": 2, "dryRun": dry_run}


def delete_doc() -> dict[str, Any]:
    return {"schema": "ci-oras/delete/v1", "reference": "reg.example/app:v1", "digest": D1,
            "deleted": [{"digest": D2, "mediaType": MANIFEST}, {"digest": D1, "mediaType": MANIFEST}],
            "alreadyDeleted": [], "indexesDeleted": [], "indexesUpdated": [], "orphanedReferrers": [], "dryRun": False}


# -- detection and the table --------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "platform"), [
    ({}, None),
    ({"GITHUB_ACTIONS": "true"}, "github"),
    ({"GITLAB_CI": "true"}, "gitlab"),
    ({"TF_BUILD": "True"}, "azure"),
    ({"GITHUB_ACTIONS": "false", "TF_BUILD": "True"}, "azure"),
    ({"GITHUB_ACTIONS": "true", "GITLAB_CI": "true"}, "github"),
    ({"CI": "true"}, None),
])
def test_detect_platform(env: dict[str, str], platform: str | None) -> None:
    assert detect_platform(env) == platform


def test_open_emitter_choices(tmp_path: Path) -> None:
    assert open_emitter("none", step="push", env={"GITHUB_ACTIONS": "true"}) is None
    assert open_emitter("auto", step="push", env={}) is None
    assert isinstance(open_emitter("auto", step="push", env={"TF_BUILD": "True"}), AzureEmitter)
    assert isinstance(open_emitter("gitlab", step="push", env={}), GitLabEmitter)
    assert isinstance(open_emitter("github", step="push", env={}), GitHubEmitter)
    with pytest.raises(UsageError):
        open_emitter("jenkins", step="push", env={})


def test_every_step_has_outputs_and_result() -> None:
    assert set(STEPS) == set(OUTPUTS)
    for step in STEPS:
        assert output_names(step)[-1] == "result"
    assert output_names("push") == ("digest", "reference", "artifact-type", "result")
    assert output_names("attach-signature") == ("digest", "reference", "artifact-type", "subject", "result")
    assert output_names("discover") == ("digest", "count", "graph", "result")
    assert output_names("verify") == ("ok", "missing", "result")
    assert output_names("promote") == ("digest", "reference", "copied", "mounted", "skipped", "result")
    assert output_names("delete") == ("deleted", "result")
    assert output_names("pull") == ("digest", "reference", "result")
    assert SUMMARY_STEPS <= set(STEPS)


def test_outputs_of_each_step() -> None:
    assert outputs_for(push_doc()) == {
        "digest": D1, "reference": "reg.example/app:v1", "artifact-type": "application/vnd.acme.bundle",
        "result": compact_json(push_doc())}
    attach = outputs_for(attach_doc())
    assert (attach["digest"], attach["subject"], attach["artifact-type"]) == (D2, D1, "application/vnd.cyclonedx+json")
    discover = outputs_for(discover_result().doc)
    assert (discover["digest"], discover["count"]) == (D1, "2")
    graph = json.loads(discover["graph"])
    assert "schema" not in graph and "count" not in graph
    assert graph["referrers"][0]["referrers"][0]["digest"] == D3
    assert outputs_for(verify_doc(True))["ok"] == "true"
    failed = outputs_for(verify_doc(False))
    assert failed["ok"] == "false" and json.loads(failed["missing"]) == ["sbom", "sbom>signature"]
    promote = outputs_for(promote_doc())
    assert (promote["copied"], promote["mounted"], promote["skipped"]) == ("7", "2", "6")
    assert promote["reference"] == "prod.example/app:v1"
    assert json.loads(outputs_for(delete_doc())["deleted"]) == [D2, D1]


def test_json_values_are_one_ascii_line() -> None:
    doc = push_doc(annotations={"note": "line one\nline two\u2028three é", "dollar": "$HOME"})
    for value in outputs_for(doc).values():
        assert value.isascii() and len(value.splitlines()) <= 1
    assert json.loads(outputs_for(doc)["result"]) == doc


# -- GitHub -------------------------------------------------------------------------------------------------


def test_github_outputs_single_and_multi_line_round_trip() -> None:
    outputs = {"digest": D1, "multi": "a\nb\r\nc", "tricky": "x<<EOF=y", "empty": ""}
    text = format_outputs(outputs)
    assert f"digest={D1}\n" in text and "tricky=x<<EOF=y\n" in text
    assert re.search(r"^multi<<ghadelimiter_[0-9a-f-]{36}$", text, re.MULTILINE)
    parsed = parse_github_outputs(text)
    assert parsed["digest"] == D1 and parsed["tricky"] == "x<<EOF=y" and parsed["empty"] == ""
    assert parsed["multi"].replace("\r", "") == "a\nb\nc"


def test_github_delimiter_is_never_in_the_value() -> None:
    candidates = iter(["COLLIDE", "ALSO", "SAFE"])
    text = format_outputs({"x": "line\nCOLLIDE\nALSO"}, new_delimiter=lambda: next(candidates))
    assert text == "x<<SAFE\nline\nCOLLIDE\nALSO\nSAFE\n"
    assert parse_github_outputs(text) == {"x": "line\nCOLLIDE\nALSO"}


def test_github_command_escaping() -> None:
    assert github_data("50%\r\ndone") == "50%25%0D%0Adone"
    assert github_property("ci-oras a:b,c") == "ci-oras a%3Ab%2Cc"


def test_github_emitter_writes_files_and_commands(tmp_path: Path) -> None:
    stream = io.StringIO()
    env = {"GITHUB_OUTPUT": str(tmp_path / "out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    (tmp_path / "out").write_text("earlier=1\n")
    emitter = GitHubEmitter("attach-sbom", env, stream=stream)
    emitter.protect("pa%ss\nword", None, "")
    emitter.result(FakeResult(attach_doc()))
    emitter.warning("careful: 1, 2")
    emitter.error("it broke\nbadly")
    assert stream.getvalue().splitlines() == [
        "::add-mask::pa%25ss%0Aword", "::add-mask::pa%25ss", "::add-mask::word",
        "::warning title=ci-oras attach-sbom::careful: 1, 2",
        "::error title=ci-oras attach-sbom::it broke%0Abadly",
    ]
    outputs = parse_github_outputs((tmp_path / "out").read_text())
    assert outputs["earlier"] == "1" and outputs["subject"] == D1 and json.loads(outputs["result"]) == attach_doc()
    markdown = (tmp_path / "summary").read_text()
    assert markdown.startswith(f"### ci-oras attach-sbom `reg.example/app@{D2}`\n")
    assert "| `subject` | `" + D1 + "` |" in markdown and "```mermaid\ngraph TD\n" in markdown
    assert "failed" not in markdown  # the error after a result adds no failure summary


def test_github_failure_summary_only_without_result(tmp_path: Path) -> None:
    env = {"GITHUB_OUTPUT": str(tmp_path / "out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    GitHubEmitter("push", env, stream=io.StringIO()).error("registry said no | twice")
    assert (tmp_path / "summary").read_text() == "### ci-oras push: failed\n\n`registry said no \\| twice`\n\n"
    GitHubEmitter("tags", env, stream=io.StringIO()).error("not found")  # helpers write no summary
    assert "tags" not in (tmp_path / "summary").read_text()
    assert not (tmp_path / "out").exists()


def test_github_without_files_only_warns(capsys: pytest.CaptureFixture[str]) -> None:
    GitHubEmitter("push", {}, stream=io.StringIO()).result(FakeResult(push_doc()))
    err = capsys.readouterr().err
    assert "GITHUB_OUTPUT is not set" in err and "GITHUB_STEP_SUMMARY is not set" in err


def test_github_unwritable_output_is_an_error(tmp_path: Path) -> None:
    env = {"GITHUB_OUTPUT": str(tmp_path / "missing-dir" / "out")}
    with pytest.raises(UsageError, match="cannot write the step outputs"):
        GitHubEmitter("push", env, stream=io.StringIO()).result(FakeResult(push_doc()))


# -- GitLab -------------------------------------------------------------------------------------------------


def test_dotenv_value_is_one_literal_line() -> None:
    assert dotenv_value("a\nb\r\nc") == "a b c"
    assert dotenv_value('{"x":"$HOME"}') == '{"x":"$$HOME"}'
    assert dotenv_value("  padded  ") == "padded"


def test_merge_keeps_other_lines_and_replaces_ours(tmp_path: Path) -> None:
    path = tmp_path / "build.env"
    path.write_text("BUILD_ID=42\n\nCI_ORAS_DIGEST=old\r\nOTHER=x=y\nCI_ORAS_DIGEST=older\n")
    assert merge_dotenv(path, {"CI_ORAS_DIGEST": D1, "CI_ORAS_OK": "true"}) == []
    assert path.read_text() == f"BUILD_ID=42\nCI_ORAS_DIGEST={D1}\nOTHER=x=y\nCI_ORAS_OK=true\n"
    assert all(GITLAB_LINE.match(line) for line in path.read_text().splitlines())


def test_gitlab_emitter_merges_steps(tmp_path: Path) -> None:
    dotenv = tmp_path / "ci-oras.env"
    dotenv.write_text("BUILD_ID=42\n")
    env = {"CI_ORAS_DOTENV": str(dotenv)}
    GitLabEmitter("push", env).result(FakeResult(push_doc()))
    GitLabEmitter("verify", env).result(FakeResult(verify_doc(False)))
    values = dict(line.split("=", 1) for line in dotenv.read_text().splitlines())
    assert values["BUILD_ID"] == "42"
    assert values["CI_ORAS_DIGEST"] == D1 and values["CI_ORAS_ARTIFACT_TYPE"] == "application/vnd.acme.bundle"
    assert values["CI_ORAS_OK"] == "false" and json.loads(values["CI_ORAS_MISSING"]) == ["sbom", "sbom>signature"]
    assert json.loads(values["CI_ORAS_RESULT"])["schema"] == "ci-oras/verify/v1"  # replaced by the later step
    assert all(GITLAB_LINE.match(line) for line in dotenv.read_text().splitlines())
    markdown = (tmp_path / "ci-oras-summary.md").read_text()
    assert markdown.index("### ci-oras push") < markdown.index("### ci-oras verify")
    assert "**Failed**: missing `sbom`, `sbom>signature`." in markdown


def test_gitlab_file_choice_and_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    GitLabEmitter("pull", {}).write_outputs({"digest": D1})
    assert (tmp_path / "ci-oras.env").read_text() == f"CI_ORAS_DIGEST={D1}\n"
    GitLabEmitter("pull", {"CI_ORAS_DOTENV": "env.env", "CI_ORAS_DOTENV_PREFIX": "APP_"}).write_outputs(
        {"artifact-type": "x"})
    assert (tmp_path / "env.env").read_text() == "APP_ARTIFACT_TYPE=x\n"
    GitLabEmitter("pull", {"CI_ORAS_DOTENV": "env.env"}, emit_file=str(tmp_path / "sub" / "flag.env")).write_outputs(
        {"digest": D2})
    assert (tmp_path / "sub" / "flag.env").read_text() == f"CI_ORAS_DIGEST={D2}\n"
    with pytest.raises(UsageError, match="CI_ORAS_DOTENV_PREFIX"):
        GitLabEmitter("pull", {"CI_ORAS_DOTENV_PREFIX": "BAD-PREFIX"})


def test_gitlab_stays_below_the_size_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dotenv = tmp_path / "ci-oras.env"
    env = {"CI_ORAS_DOTENV": str(dotenv)}
    GitLabEmitter("push", env).result(FakeResult(push_doc()))
    assert "CI_ORAS_RESULT=" in dotenv.read_text()
    big = discover_result()
    big.doc["annotations"] = {f"k{i}": "v" * 100 for i in range(30)}  # ~3.4 KB, twice (graph and result)
    GitLabEmitter("discover", env).result(big)
    text = dotenv.read_text()
    assert len(text.encode()) < SIZE_LIMIT
    assert "CI_ORAS_RESULT=" not in text  # dropped, and the push step's older result removed with it
    assert "CI_ORAS_GRAPH=" in text and "CI_ORAS_COUNT=2" in text
    assert "CI_ORAS_RESULT left out" in capsys.readouterr().err
    big.doc["annotations"] = {f"k{i}": "v" * 100 for i in range(60)}  # the graph alone is too big now
    GitLabEmitter("discover", env).result(big)
    text = dotenv.read_text()
    assert len(text.encode()) < SIZE_LIMIT and "CI_ORAS_GRAPH=" not in text and "CI_ORAS_COUNT=2" in text
    assert "CI_ORAS_RESULT, CI_ORAS_GRAPH left out" in capsys.readouterr().err


# -- Azure --------------------------------------------------------------------------------------------------


def test_azure_escaping() -> None:
    assert azure_data("100%\r\nok;]") == "100%AZP25%0D%0Aok;]"
    assert azure_property("a%b\nc;d]e") == "a%AZP25b%0Ac%3Bd%5De"


def test_azure_emitter_lines_and_summary(tmp_path: Path) -> None:
    stream = io.StringIO()
    emitter = AzureEmitter("promote", {"AGENT_TEMPDIRECTORY": str(tmp_path)}, stream=stream)
    emitter.protect("pw%1")
    emitter.result(FakeResult(promote_doc()))
    emitter.error("copy failed: 50% done\nstopped")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "##vso[task.setsecret]pw%AZP251"
    assert f"##vso[task.setvariable variable=digest;isOutput=true]{D1}" in lines
    assert "##vso[task.setvariable variable=copied;isOutput=true]7" in lines
    assert "##vso[task.setvariable variable=skipped;isOutput=true]6" in lines
    result_line = next(line for line in lines if "variable=result;" in line)
    assert json.loads(result_line.split("]", 1)[1]) == promote_doc()
    upload = next(line for line in lines if line.startswith("##vso[task.uploadsummary]"))
    path = Path(upload.removeprefix("##vso[task.uploadsummary]"))
    assert path.parent == tmp_path and path.name.startswith("ci-oras-promote-")
    markdown = path.read_text()
    assert "### ci-oras promote" in markdown and "graph LR" in markdown and "copied 3 manifests, 4 blobs" in markdown
    assert lines[-1] == "##vso[task.logissue type=error]copy failed: 50%AZP25 done%0Astopped"


# -- summaries ----------------------------------------------------------------------------------------------


def test_summary_discover_uses_render_mermaid() -> None:
    result = discover_result()
    markdown = summary.result_summary(result.doc, outputs_for(result.doc), result)
    assert "```mermaid\ngraph TD\n" in markdown and "application/vnd.cncf.notary.signature" in markdown
    assert "| `graph` |" not in markdown and "| `result` |" not in markdown


def test_summary_leaves_out_a_huge_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary, "MAX_MERMAID_CHARS", 50)
    result = discover_result()
    markdown = summary.result_summary(result.doc, outputs_for(result.doc), result)
    assert "```mermaid" not in markdown and "too large to draw" in markdown


def test_summary_cells_are_safe() -> None:
    doc = push_doc(reference="reg.example/app:v1", artifactType="a|b`c``d")
    markdown = summary.result_summary(doc, outputs_for(doc))
    assert "| `artifact-type` | ```a\\|b`c``d``` |" in markdown
    assert "_Dry run" in summary.result_summary(promote_doc(True), outputs_for(promote_doc(True)))


# -- secrets ------------------------------------------------------------------------------------------------


def _emitters(tmp_path: Path, stream: io.StringIO) -> list[Emitter]:
    env = {"GITHUB_OUTPUT": str(tmp_path / "gh-out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "gh-summary"),
           "CI_ORAS_DOTENV": str(tmp_path / "ci-oras.env"), "AGENT_TEMPDIRECTORY": str(tmp_path)}
    return [cls("push", env, stream=stream) for cls in (GitHubEmitter, GitLabEmitter, AzureEmitter)]


def test_secrets_are_never_written(tmp_path: Path) -> None:
    stream = io.StringIO()
    leaky = push_doc(annotations={"oops": f"token={SECRET}"}, reference=f"reg.example/{SECRET}:v1")
    for emitter in _emitters(tmp_path, stream):
        emitter.protect(SECRET)
        emitter.result(FakeResult(leaky))
        emitter.warning(f"warned about {SECRET}")
        emitter.error(f"failed with {SECRET}")
    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert len(files) == 5  # GitHub outputs and summary, dotenv and its summary, Azure summary
    for path in files:
        text = path.read_text()
        assert SECRET not in text and SECRET.replace("$", "$$") not in text, path
        assert "***" in text, path
    commands = [line for line in stream.getvalue().splitlines()
                if not line.startswith(("::add-mask::", "##vso[task.setsecret]"))]
    assert commands and not any(SECRET in line or azure_data(SECRET) in line or github_data(SECRET) in line
                                for line in commands)


def test_short_secrets_are_masked_but_not_redacted(tmp_path: Path) -> None:
    stream = io.StringIO()
    emitter = GitHubEmitter("push", {"GITHUB_OUTPUT": str(tmp_path / "out")}, stream=stream)
    emitter.protect("abc")
    emitter.write_outputs({"digest": "sha256:abc"})
    assert stream.getvalue() == "::add-mask::abc\n"
    assert (tmp_path / "out").read_text() == "digest=sha256:abc\n"


def test_release_summaries_name_each_image_and_what_stops_it() -> None:
    """A failed gate is read in the summary by image: its destination, source and what it misses, not only
    ``images[2]``; the commit says which graph is incomplete; the copy lists what each image moved."""
    image = {"id": "images[2]", "source": "staging.example/shop/web", "digest": "sha256:" + "ab" * 32,
             "destination": "prod.example/shop/web", "tags": ["v1", "stable"], "shard": 1,
             "gate": {"ok": False, "required": ["sbom", "signature"], "missing": ["signature"]},
             "estimate": {"bytes": 300, "blobs": 4, "manifests": 3, "requests": 18}}
    plan = {"schema": "ci-oras/release-plan/v1", "release": "v1", "ok": False, "failed": ["images[2]"],
            "shards": [], "matrix": {"shard": []}, "images": [image]}
    markdown = summary.result_summary(plan, outputs_for(plan))
    assert "**Gate failed** for 1 of 1 images" in markdown
    assert "| `images[2]` `prod.example/shop/web` | `staging.example/shop/web@sha256:abababababab` | 1 " \
           "| 3 manifests, 300 bytes | ❌ missing `signature` |" in markdown

    commit = {"schema": "ci-oras/release-commit/v1", "release": "v1", "ok": False, "incomplete": ["images[2]"],
              "tagsWritten": 0, "images": [{"id": "images[2]", "digest": image["digest"],
                                            "destination": "prod.example/shop/web", "complete": False,
                                            "missing": ["sha256:" + "cd" * 32], "tags": ["v1"], "tagsWritten": []}]}
    markdown = summary.result_summary(commit, outputs_for(commit))
    assert "**Incomplete**: 1 of 1 graphs; no tag moved." in markdown and "❌ 1 manifests missing" in markdown

    copy = {"schema": "ci-oras/release-copy/v1", "release": "v1", "shard": 2, "bytes": 10, "images": [
        {"id": "images[1]", "digest": image["digest"], "destination": "prod.example/shop/api",
         "copied": {"manifests": 3, "blobs": 4}, "mounted": 0, "skipped": {"manifests": 1, "blobs": 2}, "bytes": 10}]}
    markdown = summary.result_summary(copy, outputs_for(copy))
    assert "| `images[1]` `prod.example/shop/api` | 3 manifests, 4 blobs | 0 | 1 manifests, 2 blobs | 10 |" in markdown
