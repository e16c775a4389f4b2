"""``ci-oras attach``, ``attach-sbom`` and ``attach-signature``: one step, three ways of naming what to attach.

The SBOM and signature flavours detect the file's format in the step (``sbom_file``, ``signature_file``); all
three then resolve the subject and push the referrer the same way (``_attach``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ci_oras.cli.app import Options, ReferrersOpt, app, command, referrers_mode, report, require_reference, runtime
from ci_oras.cli.app import source_date_epoch

if TYPE_CHECKING:
    from ci_oras.files import FileSpec

PlatformOpt = Annotated[Optional[str], typer.Option("--platform", help="Attach to this OS/ARCH child of an index.")]
AnnotationOpt = Annotated[Optional[list[str]], typer.Option("--annotation", "-a", help="Extra annotation KEY=VALUE.")]


@command(app)
def attach(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="What to attach to: REF:TAG or REF@DIGEST.")],
    files: Annotated[Optional[list[str]], typer.Argument(metavar="FILE[:MEDIA_TYPE]...", help="Files; directories are packed.")] = None,
    artifact_type: Annotated[str, typer.Option("--artifact-type", help="The referrer's artifact type (required).")] = "",
    annotation: Annotated[Optional[list[str]], typer.Option("--annotation", "-a", help="Manifest annotation KEY=VALUE.")] = None,
    annotation_file: Annotated[Optional[str], typer.Option("--annotation-file", help="ORAS-style annotation JSON.")] = None,
    platform: PlatformOpt = None,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Attach files to SUBJECT as an OCI 1.1 referrer (like 'oras attach')."""
    from ci_oras.files import load_annotation_file, parse_annotations, parse_file_argument
    from ci_oras.steps.common import require_artifact_type

    require_artifact_type(artifact_type)  # before the files: the usual mistake, named first
    specs = [parse_file_argument(item) for item in files or []]
    from_file = load_annotation_file(annotation_file) if annotation_file else None
    annotations = {**(from_file.manifest if from_file else {}), **parse_annotations(annotation or [])}
    _attach(options, subject, specs, artifact_type, annotations, platform, referrers, "attach", None,
            from_file.files if from_file else None)


@command(app, "attach-sbom")
def attach_sbom(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="What the SBOM describes: REF:TAG or REF@DIGEST.")],
    sbom: Annotated[Path, typer.Argument(metavar="FILE", help="CycloneDX (JSON/XML) or SPDX (JSON/tag-value) SBOM.")],
    artifact_type: Annotated[Optional[str], typer.Option("--artifact-type", help="Override the detected type.")] = None,
    annotation: AnnotationOpt = None,
    platform: PlatformOpt = None,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Attach an SBOM, detecting its format and recording spec version, creation time and tool."""
    from ci_oras.files import parse_annotations
    from ci_oras.steps.attach import sbom_file

    found = sbom_file(sbom, artifact_type)
    annotations = {**found.annotations, **parse_annotations(annotation or [])}
    _attach(options, subject, [found.file], found.artifact_type, annotations, platform, referrers,
            "attach-sbom", found.format, None)


@command(app, "attach-signature")
def attach_signature(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="What is signed: REF:TAG or REF@DIGEST.")],
    signature: Annotated[Path, typer.Argument(metavar="FILE", help="Notary JWS/COSE envelope or Sigstore bundle.")],
    artifact_type: Annotated[Optional[str], typer.Option("--artifact-type", help="For other signature formats.")] = None,
    media_type: Annotated[Optional[str], typer.Option("--media-type", help="Layer media type for other formats.")] = None,
    annotation: AnnotationOpt = None,
    platform: PlatformOpt = None,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Attach a signature: Notary Project (JWS, COSE) and Sigstore bundles are recognised."""
    from ci_oras.files import parse_annotations
    from ci_oras.steps.attach import signature_file

    found = signature_file(signature, artifact_type, media_type)
    annotations = {**found.annotations, **parse_annotations(annotation or [])}
    _attach(options, subject, [found.file], found.artifact_type, annotations, platform, referrers,
            "attach-signature", found.format, None)


def _attach(options: Options, subject: str, specs: list[FileSpec], artifact_type: str, annotations: dict[str, str],
            platform: str | None, referrers: str, step: str, detected_format: str | None,
            file_annotations: dict[str, dict[str, str]] | None) -> None:
    from ci_oras.emit.render import attach_text
    from ci_oras.steps.attach import attach as attach_step
    from ci_oras.steps.common import AttachOptions, creation_time, resolve_subject

    ref, name = require_reference(subject)
    mode = referrers_mode(referrers)
    created, mtime = creation_time(source_date_epoch())
    attach_options = AttachOptions(artifact_type=artifact_type, annotations=annotations,
                                   file_annotations=file_annotations, created=created, mtime=mtime, platform=platform)
    with runtime(options) as run:
        target = run.open(ref, create=True, referrers=mode)
        subject_desc = resolve_subject(target, name, str(ref), platform)
        result = attach_step(target, ref.repository_name, subject_desc, specs, attach_options, step=step,
                             detected_format=detected_format)
    report(options, result, lambda: attach_text(result, ref.repository_name))
