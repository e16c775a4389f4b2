"""``ci-oras push REF FILE...``: files and directories as one OCI artifact."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ci_oras.cli.app import Options, app, command, parse, report, runtime, source_date_epoch
from ci_oras.errors import UsageError


@command(app)
def push(
    reference: Annotated[str, typer.Argument(metavar="REF", help="Where to push: REGISTRY/REPO[:TAG[,TAG...]] or oci:PATH[:TAG].")],
    files: Annotated[Optional[list[str]], typer.Argument(metavar="FILE[:MEDIA_TYPE]...", help="Files; a directory is packed as tar+gzip.")] = None,
    artifact_type: Annotated[Optional[str], typer.Option("--artifact-type", help="The artifact's type.")] = None,
    annotation: Annotated[Optional[list[str]], typer.Option("--annotation", "-a", help="Manifest annotation KEY=VALUE.")] = None,
    annotation_file: Annotated[Optional[str], typer.Option("--annotation-file", help="ORAS-style annotation JSON.")] = None,
    *,
    options: Options,
) -> None:
    """Push files and directories as an OCI artifact (empty config, artifactType), like 'oras push'."""
    from ci_oras.emit.render import push_text
    from ci_oras.files import load_annotation_file, parse_annotations, parse_file_argument
    from ci_oras.steps.common import creation_time
    from ci_oras.steps.push import PushOptions
    from ci_oras.steps.push import push as push_step

    ref = parse(reference)
    if ref.digest:
        raise UsageError(f"cannot push to a digest reference {reference!r}", hint="push to a tag or a bare repository")
    specs = [parse_file_argument(item) for item in files or []]
    from_file = load_annotation_file(annotation_file) if annotation_file else None
    manifest_annotations = {**(from_file.manifest if from_file else {}), **parse_annotations(annotation or [])}
    created, mtime = creation_time(source_date_epoch())
    push_options = PushOptions(
        artifact_type=artifact_type, annotations=manifest_annotations,
        config_annotations=from_file.config if from_file else None,
        file_annotations=from_file.files if from_file else None, created=created, mtime=mtime,
    )
    with runtime(options) as run:
        result = push_step(run.open(ref, create=True), ref.repository_name, ref.tags, specs, push_options)
    report(options, result, lambda: push_text(result))
