"""``ci-oras pull REF``: an artifact's files, every digest verified, written all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ci_oras.cli.app import Options, app, command, report, require_reference, runtime


@command(app)
def pull(
    reference: Annotated[str, typer.Argument(metavar="REF", help="What to pull: REGISTRY/REPO:TAG, …@DIGEST or oci:PATH:TAG.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Directory to write files into.")] = Path("."),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files with different content.")] = False,
    platform: Annotated[Optional[str], typer.Option(
        "--platform", metavar="OS/ARCH[/VARIANT]",
        help="Of an image index, pull only this child's files (default: every child's).")] = None,
    max_unpack_size: Annotated[str, typer.Option(
        "--max-unpack-size", metavar="SIZE", help="Most bytes unpacking directory layers may write.")] = "32GiB",
    max_unpack_ratio: Annotated[int, typer.Option(
        "--max-unpack-ratio", min=1, help="Most a directory layer may expand (unpacked/compressed bytes).")] = 200,
    max_unpack_entries: Annotated[int, typer.Option(
        "--max-unpack-entries", min=1, help="Most files, directories and links unpacking may create.")] = 1_000_000,
    *,
    options: Options,
) -> None:
    """Pull an artifact's files, verifying every digest and unpacking directories safely.

    All or nothing: everything is staged next to the output and moved into place only when every layer is
    verified. Past an unpack limit the pull stops with exit 6 and writes nothing.
    """
    from ci_oras.archive import UnpackLimits, parse_size
    from ci_oras.emit.render import pull_text
    from ci_oras.steps.pull import PullOptions, pull as pull_step

    ref, name = require_reference(reference)
    limits = UnpackLimits(max_bytes=parse_size(max_unpack_size, "--max-unpack-size"), max_ratio=max_unpack_ratio,
                          max_entries=max_unpack_entries)
    pull_options = PullOptions(overwrite=overwrite, platform=platform, limits=limits)
    with runtime(options) as run:
        result = pull_step(run.open(ref), name, str(ref), output_dir, pull_options)
    report(options, result, lambda: pull_text(result))
