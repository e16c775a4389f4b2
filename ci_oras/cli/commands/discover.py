"""``ci-oras discover REF``: the referrers graph below a manifest, as a tree, table, Mermaid or JSON."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Optional

import typer

from ci_oras.cli.app import ArtifactTypeListOpt, Options, OutputFormat, ReferrersOpt, app, command, emit_result
from ci_oras.cli.app import referrers_mode, require_reference, runtime, write_json


class GraphFormat(str, Enum):
    tree = "tree"
    json = "json"
    table = "table"
    mermaid = "mermaid"


@command(app)
def discover(
    reference: Annotated[str, typer.Argument(metavar="REF", help="The subject: REF:TAG or REF@DIGEST.")],
    artifact_type: ArtifactTypeListOpt = None,
    depth: Annotated[Optional[int], typer.Option("--depth", min=1, help="Levels to follow (default: all).")] = None,
    graph_format: Annotated[GraphFormat, typer.Option("--format", help="How to print the graph on stdout.")] = GraphFormat.tree,
    include_children: Annotated[bool, typer.Option("--include-children", help="For an index, also its manifests' referrers.")] = False,
    show_annotations: Annotated[bool, typer.Option("--annotations", help="Show annotations in the tree.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Listing requests in flight at once.")] = 8,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Show the referrers graph below REF: signatures, SBOMs, and what refers to them."""
    from ci_oras.graph.discover import DiscoverOptions
    from ci_oras.steps.discover import discover_graph

    ref, name = require_reference(reference)
    mode = referrers_mode(referrers)
    discover_options = DiscoverOptions(artifact_types=tuple(artifact_type or ()), depth=depth,
                                       include_children=include_children, concurrency=concurrency)
    with runtime(options) as run:
        result = discover_graph(run.open(ref, referrers=mode), ref.repository_name, name, discover_options)
    if options.output is OutputFormat.json or graph_format is GraphFormat.json:
        write_json(options, result)
    else:
        from ci_oras.emit.graph import render_mermaid, render_table, render_tree

        render: dict[GraphFormat, Callable[[], str]] = {
            GraphFormat.tree: lambda: render_tree(result.root, annotations=show_annotations),
            GraphFormat.table: lambda: render_table(result.root),
            GraphFormat.mermaid: lambda: render_mermaid(result.root)}
        print(render[graph_format](), flush=True)
    emit_result(options, result)
