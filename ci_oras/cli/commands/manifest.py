"""``ci-oras manifest fetch REF``: the exact manifest bytes (``| sha256sum`` gives the digest)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ci_oras.cli.app import Options, OutputFormat, command, emit_result, manifest_app, report, require_reference
from ci_oras.cli.app import runtime


@command(manifest_app, "fetch")
def manifest_fetch(
    reference: Annotated[str, typer.Argument(metavar="REF", help="REGISTRY/REPO:TAG, …@DIGEST or oci:PATH:TAG.")],
    *,
    options: Options,
) -> None:
    """Print the exact manifest bytes (text) or a JSON document describing it (--output json)."""
    from ci_oras.steps.manifest import fetch_manifest

    ref, name = require_reference(reference)
    with runtime(options) as run:
        result = fetch_manifest(run.open(ref), name, str(ref))
    if options.output is OutputFormat.json:
        report(options, result, str)
    else:
        sys.stdout.buffer.write(result.manifest.raw)  # the exact bytes: `| sha256sum` gives the digest
        if sys.stdout.isatty():
            sys.stdout.buffer.write(b"\n")  # only for the eye: keep the prompt off the last line
        sys.stdout.flush()
        emit_result(options, result)
