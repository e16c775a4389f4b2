"""``ci-oras verify``: the deployment gate (exit 0 when every required referrer exists, 1 when any is missing)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ci_oras.cli import Options, OutputFormat, ReferrersOpt, app, command

if TYPE_CHECKING:
    from ci_oras.steps.verify import Progress, RequirementResult, VerifyResult


@command(app, "verify")
def verify(
    reference: Annotated[str, typer.Argument(metavar="REF", help="The subject: REF:TAG or REF@DIGEST.")],
    require: Annotated[list[str] | None, typer.Option(
        "--require", "-r", metavar="SPEC", help="Required referrer: alias, artifact type, chain a>b, count *N "
        "(repeatable; commas separate specs).")] = None,
    require_file: Annotated[Path | None, typer.Option(
        "--require-file", metavar="FILE", help="More specs, one per line; '#' comments.")] = None,
    wait: Annotated[str, typer.Option(
        "--wait", metavar="DURATION", help="Keep checking this long: 30s, 2m, 1m30s or seconds.")] = "0",
    interval: Annotated[str, typer.Option(
        "--interval", metavar="DURATION", help="Time between checks while waiting.")] = "5s",
    platform: Annotated[str | None, typer.Option(
        "--platform", metavar="OS/ARCH", help="Check this child of an image index.")] = None,
    all_platforms: Annotated[bool, typer.Option(
        "--all-platforms", help="Check every platform child of an image index.")] = False,
    trust_listing: Annotated[bool, typer.Option(
        "--trust-listing", help="Count what the referrers listing says without fetching the listed manifests "
        "to check it (fewer requests; anyone who can push can forge a tag-schema listing).")] = False,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Gate a deployment on referrers: exit 0 when every --require holds, 1 when any is missing.

    SPEC: an artifact type (application/vnd.cyclonedx+json) or an alias:
    sbom = CycloneDX or SPDX;
    signature = Notary, cosign, or a Sigstore bundle without a predicateType;
    attestation = in-toto, DSSE, cosign attestation, or a Sigstore bundle with a predicateType;
    vuln-report = SARIF, Trivy, Grype or OpenVEX.

    Chain with '>' (sbom>signature: an SBOM that is itself signed); count with '*N' at the end (signature*2).
    One --require may list specs separated by commas; a --require-file holds one per line, '#' comments.

    A listed referrer counts only once its manifest is fetched and confirms the listing: it exists, has the
    listed digest and type, and names the manifest it is listed under as its subject. Entries that fail are
    reported as rejected, not counted. --trust-listing skips these fetches, at the risk of counting a
    deleted, forged or foreign referrer.

    --wait polls every --interval until the referrers show up.
    An index is checked itself, unless --platform OS/ARCH (one child) or --all-platforms (every child).
    --output json prints the result document on stdout whether the gate passes or not."""
    from ci_oras.cli import _referrers_mode, _require_reference, emit_result, runtime
    from ci_oras.errors import UsageError, VerificationFailed
    from ci_oras.steps.verify import VerifyOptions
    from ci_oras.steps.verify import verify as verify_step
    from ci_oras.verify_spec import merge, parse_duration, parse_requirement_file, parse_requirements

    from_flags = parse_requirements(require or [])
    from_file = parse_requirement_file(_read_spec_file(require_file), str(require_file)) if require_file else []
    requirements = merge(from_flags, from_file)
    if not requirements:
        raise UsageError("verify needs at least one requirement",
                         hint="add --require SPEC, e.g. --require sbom --require 'sbom>signature'")
    if platform is not None and all_platforms:
        raise UsageError("--platform and --all-platforms are mutually exclusive",
                         hint="pick one platform, or check them all")
    verify_options = VerifyOptions(tuple(requirements), platform=platform, all_platforms=all_platforms,
                                   wait=parse_duration(wait, "--wait"), interval=parse_duration(interval, "--interval"),
                                   trust_listing=trust_listing)
    ref = _require_reference(reference)
    mode = _referrers_mode(referrers)
    with runtime(options) as run:
        result = verify_step(lambda: run.open(ref, referrers=mode), ref.reference, str(ref), verify_options,
                             progress=_say_progress)
    if result.rejected:
        from ci_oras.emit.text import warn

        for rejected in result.rejected:
            warn(f"not counted: {rejected}")
    if options.output is OutputFormat.json:
        from ci_oras.emit.json_output import write_document

        write_document(result.document())
    else:
        from ci_oras.emit.text import say

        say(render_text(result))
    emit_result(options, result)  # ok=false and missing go out too, before the exit 1 below
    if not result.ok:
        raise VerificationFailed(f"verification failed: missing {_missing_text(result)}", hint=_hint(result))


def _read_spec_file(path: Path) -> str:
    from ci_oras.errors import UsageError

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"requirements file not found: {path}", hint="check the --require-file path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read requirements file {path}: {exc}", hint="pass a UTF-8 text file") from None


def _marks() -> tuple[str, str]:
    """✓/✗ where stderr can show them (CI logs are UTF-8); plain words on a console that cannot."""
    encoding = getattr(sys.stderr, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "ok  ", "FAIL"
    return "✓", "✗"


def _label(result: RequirementResult) -> str:
    subject = result.subject
    if subject.platform is not None:
        return f"[{subject.platform}] {result.requirement.spec}"
    return result.requirement.spec


def _line(result: RequirementResult, ok_mark: str, fail_mark: str) -> str:
    count = f"{len(result.found)} of {result.requirement.count}"
    if result.satisfied:
        head = f"{ok_mark} {_label(result)}: {count}"
    else:
        head = f"{fail_mark} {_label(result)}: missing ({count})"
    shown = [" > ".join(path) for path in result.paths]
    return "\n".join([head, *(f"    {path}" for path in shown)])


def render_text(result: VerifyResult) -> str:
    ok_mark, fail_mark = _marks()
    lines = [f"Checked {result.reference} ({result.root.digest})"]
    subjects = {r.subject.digest for r in result.results}
    if len(subjects) == 1 and result.results[0].subject.digest != result.root.digest:
        lines[0] += f", platform {result.results[0].subject.platform} ({result.results[0].subject.digest})"
    lines.extend(_line(r, ok_mark, fail_mark) for r in result.results)
    total = len(result.results)
    if result.ok:
        lines.append("The requirement holds" if total == 1 else f"All {total} requirements hold")
    return "\n".join(lines)


def _missing_text(result: VerifyResult) -> str:
    parts: list[str] = []
    for unmet in result.unmet:
        spec, platform = unmet.requirement.spec, unmet.subject.platform
        text = f"{spec} on {platform}" if platform is not None else spec
        if text not in parts:
            parts.append(text)
    message = ", ".join(parts)
    if result.attempts > 1:
        message += f" (after {result.attempts} checks in {_seconds(result.waited)})"
    return message


def _hint(result: VerifyResult) -> str | None:
    from ci_oras.oci import mediatypes

    checked_index = all(r.subject.digest == result.root.digest for r in result.results)
    if checked_index and mediatypes.is_index_type(result.root.media_type):
        return ("REF is an image index and its platform manifests were not checked: "
                "add --platform OS/ARCH or --all-platforms if the referrers are attached to them")
    return None


def _say_progress(progress: Progress) -> None:
    from ci_oras.emit.text import say

    waiting = ", ".join(dict.fromkeys(
        f"{r.requirement.spec} on {r.subject.platform}" if r.subject.platform else r.requirement.spec
        for r in progress.unmet))
    say(f"Waiting for {waiting}: check {progress.attempt} done, {_seconds(progress.remaining)} left, "
        f"next check in {_seconds(progress.next_check)}")


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"
