"""``ci-oras promote SRC DST``: copy an image or artifact with its referrers graph, the tag written last."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from ci_oras.cli import Options, ReferrersOpt, _referrers_mode, _require_reference, app, command, report, runtime
from ci_oras.errors import UsageError


@command(app)
def promote(
    source: Annotated[str, typer.Argument(metavar="SRC", help="What to copy: REF:TAG, REF@DIGEST or oci:PATH:TAG.")],
    destination: Annotated[str, typer.Argument(metavar="DST", help="Where: REPO[:TAG[,TAG...]] or oci:PATH[:TAG].")],
    artifact_type: Annotated[Optional[list[str]], typer.Option(
        "--artifact-type", help="Copy only direct referrers of this type (and what refers to them); repeatable.")] = None,
    exclude_artifact_type: Annotated[Optional[list[str]], typer.Option(
        "--exclude-artifact-type", help="Never copy referrers of this type; repeatable.")] = None,
    no_referrers: Annotated[bool, typer.Option("--no-referrers", help="Copy the manifest and its blobs only.")] = False,
    platform: Annotated[Optional[str], typer.Option("--platform", help="Copy only this OS/ARCH child of an index.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Parallel blob copies.")] = 4,
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
    """
    from ci_oras.emit.progress import Progress
    from ci_oras.graph.copy import CopyOptions
    from ci_oras.oci.reference import RegistryReference
    from ci_oras.steps.promote import Endpoint, promote as promote_step

    src = _require_reference(source)
    dst = _parse_destination(destination, src)
    mode = _referrers_mode(referrers)
    progress: list[Progress] = []

    def on_plan(blobs: int, size: int) -> Any:
        if options.output.value == "json" and not _stderr_is_tty():
            return None
        progress.append(Progress(blobs, size))
        return progress[0].update

    copy_options = CopyOptions(referrers=not no_referrers, artifact_types=tuple(artifact_type or ()),
                               exclude_artifact_types=tuple(exclude_artifact_type or ()), concurrency=concurrency,
                               dry_run=dry_run)
    with runtime(options) as run:
        source_target = run.open(src, use_login_flags=False, referrers=mode)
        destination_target = run.open(dst, create=not dry_run, referrers=mode)
        same_registry = (isinstance(src, RegistryReference) and isinstance(dst, RegistryReference)
                         and src.registry == dst.registry and src.repository != dst.repository)
        result = promote_step(
            Endpoint(source_target, src.repository_name, src.reference),
            Endpoint(destination_target, dst.repository_name, dst.reference, dst.tags, dst.digest,
                     mount_from=src.repository if same_registry else None),
            copy_options, platform=platform, on_plan=on_plan)
    if progress:
        progress[0].finish()
    s = result.stats
    verb = "Would copy" if dry_run else "Copied"
    report(options, result, lambda: "\n".join([
        f"{verb} {result.source} -> {result.destination}",
        f"Digest: {result.digest}",
        f"{verb}: {s.manifests_copied} manifests, {s.blobs_copied} blobs ({s.bytes_copied / 1e6:.1f} MB); "
        f"mounted {s.blobs_mounted}; already there: {s.manifests_skipped} manifests, {s.blobs_skipped} blobs; "
        f"referrers {s.referrers}",
    ] + ([f"Tagged: {', '.join(result.tags_written)}"] if result.tags_written and not dry_run else [])))


def _parse_destination(text: str, src: Any) -> Any:
    """DST without a tag or digest takes SRC's tag (as `oras cp` does); by digest, it gets no tag."""
    from ci_oras.oci.reference import parse_reference

    dst = parse_reference(text)
    if not dst.tags and not dst.digest and src.tags:
        dst = dst.with_tags(src.tags)
    if str(dst) == str(src):
        raise UsageError(f"source and destination are the same: {text}", hint="name another repository or tag")
    return dst


def _stderr_is_tty() -> bool:
    import sys

    return sys.stderr.isatty()
