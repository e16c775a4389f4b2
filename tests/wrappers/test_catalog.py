"""The step catalog against the issue's contract, the real CLI (every mapped flag exists, with the right
shape) and the emitters (the outputs a wrapper declares are the ones ``--emit`` sets)."""

from __future__ import annotations

import enum
from typing import Any

import pytest
import typer

from ci_oras import catalog
from ci_oras.catalog import InputType, Maps
from ci_oras.cli.commands import load

app = load(None)  # every command registered
COMMON = ["plain-http", "insecure", "ca-file", "username", "password", "referrers"]

#: The contract of the CI wrappers issue: step -> (its own inputs, its outputs without ``result``).
CONTRACT: dict[str, tuple[list[str], list[str]]] = {
    "push": (["reference", "files", "artifact-type", "annotations"],
             ["digest", "reference", "artifact-type"]),
    "attach": (["subject", "files", "artifact-type", "annotations"],
               ["digest", "reference", "artifact-type", "subject"]),
    "attach-sbom": (["subject", "sbom"], ["digest", "reference", "artifact-type", "subject"]),
    "attach-signature": (["subject", "signature", "artifact-type", "media-type"],
                         ["digest", "reference", "artifact-type", "subject"]),
    "sign": (["subject", "key", "key-env", "cert", "signature-format", "expiry", "annotations", "platform"],
             ["digest", "reference", "artifact-type", "subject"]),
    "discover": (["reference", "artifact-type", "depth"], ["digest", "count", "graph"]),
    "verify": (["reference", "require", "wait", "trust-policy", "trust-store", "signed-by", "certificate-identity",
                "certificate-identity-regexp", "certificate-oidc-issuer", "certificate-oidc-issuer-regexp",
                "github-repo", "signer-workflow", "trusted-root", "fail-on-missing"],
               ["ok", "missing"]),
    "promote": (["source", "destination", "artifact-type", "exclude-artifact-type", "concurrency"],
                ["digest", "reference", "copied", "mounted", "skipped"]),
    "delete": (["reference", "graph"], ["deleted"]),
    # the release issue: plan -> matrix of copy jobs -> commit
    "release-plan": (["release-file", "out", "shards", "concurrency", "copy-job"],
                     ["ok", "matrix", "azure-matrix", "shards", "failed"]),
    "release-copy": (["plan", "shard", "images", "concurrency"], ["bytes", "images"]),
    "release-commit": (["plan", "concurrency"], ["ok", "incomplete", "tags-written"]),
}


def _command(step: str) -> Any:
    """The click command typer builds (typer vendors click, so its classes are duck-typed here); a step of a
    command group (``release-plan``) is found by its words (``release plan``)."""
    command = typer.main.get_command(app)
    for word in catalog.step(step).command:
        command = command.commands[word]  # type: ignore[attr-defined]
    return command


def _option(command: Any, flag: str) -> Any:
    for param in command.params:
        if param.param_type_name == "option" and (flag in param.opts or flag in param.secondary_opts):
            return param
    raise AssertionError(f"ci-oras {command.name} has no option {flag}")


def _choices(option: Any) -> set[str]:
    """An option's allowed values: an Enum annotation's values, or a metavar like ``auto|api|tag``."""
    annotation = getattr(getattr(option, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {str(member.value) for member in annotation}
    choices = getattr(getattr(option, "type", None), "choices", None)
    if choices is not None:
        return {str(getattr(c, "value", c)) for c in choices}
    return set((option.metavar or "").split("|"))


def test_steps_and_inputs_follow_the_contract() -> None:
    assert [step.name for step in catalog.STEPS] == list(CONTRACT)
    for step in catalog.STEPS:
        own, outputs = CONTRACT[step.name]
        # push writes no referrers: the CLI has no --referrers there, so neither has the wrapper
        common = [name for name in COMMON if not (step.name == "push" and name == "referrers")]
        assert [i.name for i in step.inputs] == own + common, step.name
        assert [o.name for o in step.outputs] == outputs + ["result"], step.name


def test_multi_line_inputs_map_one_line_to_one_argument() -> None:
    assert catalog.PUSH.input("files").maps is Maps.ARGUMENTS
    assert catalog.PUSH.input("annotations").maps is Maps.OPTION_PER_LINE
    assert catalog.PUSH.input("annotations").flag == "--annotation"
    assert catalog.VERIFY.input("require").maps is Maps.OPTION_PER_LINE
    assert catalog.VERIFY.input("require").flag == "--require"
    for step in catalog.STEPS:
        for item in step.inputs:
            per_line = item.maps in (Maps.ARGUMENTS, Maps.OPTION_PER_LINE)
            assert per_line == (item.type is InputType.LINES), (step.name, item.name)


def test_names_are_kebab_case_with_camel_case_twins() -> None:
    for step in catalog.STEPS:
        for item in step.inputs:
            assert item.name == item.name.lower() and "_" not in item.name and " " not in item.name
        for output in step.outputs:
            assert output.name == output.name.lower() and "_" not in output.name
    assert catalog.PLAIN_HTTP.camel_name == "plainHttp"
    assert catalog.VERIFY.input("fail-on-missing").camel_name == "failOnMissing"
    assert catalog.ATTACH_SBOM.camel_name == "AttachSbom"
    assert catalog.PLAIN_HTTP.env_name == "INPUT_PLAIN_HTTP"


def test_defaults_and_choices_are_consistent() -> None:
    assert catalog.VERIFY.input("fail-on-missing").default == "true"
    assert catalog.VERIFY.soft_failure is not None
    assert catalog.VERIFY.soft_failure.input == "fail-on-missing"
    for step in catalog.STEPS:
        for item in step.inputs:
            if item.type is InputType.BOOLEAN and item.default:
                assert item.default in ("true", "false"), (step.name, item.name)
            if item.type is InputType.CHOICE:
                assert item.options and (item.default in item.options or not item.default)
            else:
                assert not item.options
            assert not (item.required and item.default), (step.name, item.name)
            assert item.secret == (item.maps is Maps.PASSWORD_STDIN)


@pytest.mark.parametrize("step", catalog.STEPS, ids=lambda step: step.name)
def test_every_input_maps_to_a_real_cli_flag(step: catalog.Step) -> None:
    command = _command(step.name)
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    assert [(i.argument, i.maps is Maps.ARGUMENTS) for i in step.arguments] == [
        ((p.metavar or p.name or "").removesuffix("..."), p.nargs == -1) for p in arguments
    ], f"positional inputs of {step.name} do not match the CLI's arguments"
    for item in step.options:
        if item.maps is Maps.WRAPPER:
            assert item.flag is None
            continue
        if item.maps is Maps.PASSWORD_STDIN:
            assert _option(command, "--password-stdin").is_flag
            continue
        assert item.flag is not None, item.name
        option = _option(command, item.flag)
        if item.maps is Maps.OPTION:
            assert not option.is_flag and not option.multiple, item.name
        elif item.maps is Maps.OPTION_PER_LINE:
            assert option.multiple, f"{item.flag} of {step.name} is not repeatable"
        elif item.maps is Maps.SWITCH:
            assert option.is_flag and item.flag in option.opts, item.name
        else:
            raise AssertionError(f"unexpected mapping {item.maps} for {item.name}")
        if item.options:
            assert set(item.options) == _choices(option), item.name


@pytest.mark.parametrize("step", catalog.STEPS, ids=lambda step: step.name)
def test_every_step_has_emit_github(step: catalog.Step) -> None:
    """Depends on the emitters: every wrapper runs ``ci-oras <step> ... --emit github``."""
    assert "github" in _choices(_option(_command(step.name), "--emit"))


def test_outputs_are_the_ones_the_emitters_set() -> None:
    """Depends on the emitters: ``ci_oras.emit.outputs`` is their table of outputs."""
    from ci_oras.emit.outputs import output_names

    for step in catalog.STEPS:
        assert tuple(o.name for o in step.outputs) == output_names(step.name), step.name
