"""``ci-oras promote SRC DST [DST...]``: copy an image or artifact with its referrers graph, the tags written last."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ci_oras.cli.app import Options, OutputFormat, ReferrersOpt, app, command, referrers_mode, report
from ci_oras.cli.app import require_reference, runtime

if TYPE_CHECKING:
    from ci_oras.emit.progress import CopyProgress


@command(app)
def promote(
    source: Annotated[str, typer.Argument(metavar="SRC", help="What to copy: REF:TAG, REF@DIGEST or oci:PATH:TAG.")],
    destination: Annotated[list[str], typer.Argument(
        metavar="DST...", help="Where: REPO[:TAG[,TAG...]] or oci:PATH[:TAG]; several: each source blob is read once.")],
    artifact_type: Annotated[Optional[list[str]], typer.Option(
        "--artifact-type", help="Copy only direct referrers of this type (and what refers to them); repeatable.")] = None,
    exclude_artifact_type: Annotated[Optional[list[str]], typer.Option(
        "--exclude-artifact-type", help="Never copy referrers of this type; repeatable.")] = None,
    no_referrers: Annotated[bool, typer.Option("--no-referrers", help="Copy the manifest and its blobs only.")] = False,
    platform: Annotated[Optional[str], typer.Option("--platform", help="Copy only this OS/ARCH child of an index.")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=64,
        help="Copy requests (blobs, manifests) in flight at DST; the walk runs 2x, referrers-list updates up to 4x."
    )] = 4,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be copied; write nothing.")] = False,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Promote SRC with its whole graph (index children, referrers, referrers of referrers) to DST.

    Blobs first, then manifests (subjects before their referrers), then the DST tags last: a tag never
    points at an incomplete graph. Anything DST already has is skipped, so a re-run writes nothing. Login
    flags (--username/--password-stdin) are sent to DST's registry only; SRC uses the docker config, or
    CI_ORAS_USERNAME/CI_ORAS_PASSWORD when CI_ORAS_REGISTRY names its registry.

    With several DSTs the copies run side by side and each source blob is read once (spooled to a temporary
    directory for the others); no DST is tagged until every copy is complete. Login flags then need every
    DST on one registry.

    A listed referrer is copied only when its manifest confirms the listing (it names the manifest it was
    listed under as its subject, with the listed digest and type); others are skipped and reported.
    """
    import sys

    from ci_oras.emit.progress import CopyProgress
    from ci_oras.emit.render import promote_text
    from ci_oras.emit.text import warn
    from ci_oras.graph.copy import CopyOptions
    from ci_oras.steps.common import mount_source
    from ci_oras.steps.promote import Endpoint, FanOutResult, PromoteResult, destination_reference, promote_fan_out
    from ci_oras.steps.promote import promote as promote_step

    src, _ = require_reference(source)
    targets = [destination_reference(src, text) for text in destination]
    _refuse_repeated(destination, [str(dst) for dst in targets])
    if len(targets) > 1 and options.has_login_flags:
        from ci_oras.steps.common import refuse_login_across_registries

        refuse_login_across_registries(targets)
    mode = referrers_mode(referrers)
    progress: list[CopyProgress] = []

    def on_plan(blobs: int, size: int) -> Callable[[str, int], None] | None:
        if options.output is OutputFormat.json and not sys.stderr.isatty():
            return None
        progress.append(CopyProgress(blobs, size))
        return progress[0].update

    copy_options = CopyOptions(referrers=not no_referrers, artifact_types=tuple(artifact_type or ()),
                               exclude_artifact_types=tuple(exclude_artifact_type or ()), concurrency=concurrency,
                               dry_run=dry_run)
    with runtime(options) as run:
        source_target = run.open(src, use_login_flags=False, referrers=mode)
        endpoints = [Endpoint(run.open(dst, create=not dry_run, referrers=mode, absent_layout_is_empty=dry_run),
                              dst.repository_name, dst.reference, dst.tags, dst.digest,
                              mount_from=mount_source(src, dst)) for dst in targets]
        source_endpoint = Endpoint(source_target, src.repository_name, src.reference)
        if len(endpoints) == 1:
            result: PromoteResult | FanOutResult = promote_step(source_endpoint, endpoints[0], copy_options,
                                                                platform=platform, on_plan=on_plan)
        else:
            result = promote_fan_out(source_endpoint, endpoints, copy_options, platform=platform)
    if progress:
        progress[0].finish()
    for one in (result.results if isinstance(result, FanOutResult) else (result,)):
        where = f" to {one.destination}" if isinstance(result, FanOutResult) else ""
        for rejected in one.rejected:
            warn(f"not copied{where}: {rejected}", emitter=options.emitter)
    report(options, result, lambda: promote_text(result))


def _refuse_repeated(given: list[str], destinations: list[str]) -> None:
    """The same DST twice would be two copies racing into one repository."""
    from ci_oras.errors import UsageError

    for index, name in enumerate(destinations):
        if name in destinations[:index]:
            raise UsageError(f"destination {given[index]} is given twice", hint="name each destination once")
