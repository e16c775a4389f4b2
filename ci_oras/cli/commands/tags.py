"""``ci-oras tags REPO``: one tag per line on stdout."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ci_oras.cli.app import Options, OutputFormat, app, command, emit_result, parse, report, runtime


@command(app)
def tags(
    repository: Annotated[str, typer.Argument(metavar="REPO", help="REGISTRY/REPO or oci:PATH.")],
    exclude_digest_tags: Annotated[bool, typer.Option("--exclude-digest-tags",
                                                      help="Hide referrers fallback tags (sha256-<hex>).")] = False,
    *,
    options: Options,
) -> None:
    """List tags, one per line on stdout."""
    from ci_oras.steps.tags import list_tags

    ref = parse(repository)
    with runtime(options) as run:
        result = list_tags(run.open(ref), ref.repository_name, exclude_digest_tags=exclude_digest_tags)
    if options.output is OutputFormat.json:
        report(options, result, str)
    else:
        for tag in result.tags:
            print(tag)
        sys.stdout.flush()
        emit_result(options, result)
