"""``ci-oras delete REF``: one manifest, or with ``--graph`` its whole referrers graph."""

from __future__ import annotations

from typing import Annotated

import typer

from ci_oras.cli.app import Options, ReferrersOpt, app, command, referrers_mode, report, require_reference, runtime


@command(app)
def delete(
    reference: Annotated[str, typer.Argument(metavar="REF", help="The manifest to delete: REGISTRY/REPO:TAG or …@DIGEST.")],
    graph: Annotated[bool, typer.Option(
        "--graph", help="Also delete every referrer below it (signatures, SBOMs, their referrers) and, for "
                        "an index, its manifests.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would go; change nothing.")] = False,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Delete a manifest (every tag pointing at it goes too), or with --graph its whole referrers graph.

    A deleted referrer is also removed from its subject's referrers index. No prompt: this runs in CI.
    --graph deletes a listed referrer only when its manifest confirms the listing (it names the manifest
    above it as its subject, with the listed digest and type); other entries are skipped and reported.
    """
    from ci_oras.emit.render import delete_text, delete_warnings
    from ci_oras.emit.text import warn
    from ci_oras.steps.delete import DeleteOptions, delete as delete_step

    ref, name = require_reference(reference)
    mode = referrers_mode(referrers)
    with runtime(options) as run:
        result = delete_step(run.open(ref, referrers=mode), ref.repository_name, name, str(ref),
                             DeleteOptions(graph=graph, dry_run=dry_run))
    for warning in delete_warnings(result, ref.repository_name):
        warn(warning, emitter=options.emitter)
    report(options, result, lambda: delete_text(result))
