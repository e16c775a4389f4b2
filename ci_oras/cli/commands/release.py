"""``ci-oras release plan|copy|commit``: a whole release moved as one, sharded over the CI platform's matrix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ci_oras.cli.app import Options, OutputFormat, ReferrersOpt, command, emit_result, parse, referrers_mode
from ci_oras.cli.app import release_app, runtime, write_json

#: The child pipeline's shard file that ``release plan --emit gitlab`` writes beside the dotenv file.
SHARD_FILE = "ci-oras-release-copy.yml"

if TYPE_CHECKING:
    from ci_oras.registry.referrers import ReferrersMode
    from ci_oras.runtime import Runtime
    from ci_oras.steps.release import Openers


@command(release_app, "plan")
def release_plan(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The release file (YAML).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="PATH", help="Where to write the plan (JSON).")
                   ] = Path("release-plan.json"),
    shards: Annotated[int, typer.Option("--shards", min=1, max=256,
                                        help="Copy jobs to split the release over (only shards with work run).")
                      ] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64,
                                             help="Images planned at once.")] = 4,
    copy_job: Annotated[str, typer.Option(
        "--copy-job", metavar="NAME",
        help="--emit gitlab: the release-copy job that ci-oras-release-copy.yml (the child pipeline's shard "
             "file) extends.")] = "ci-oras-release-copy",
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Pin every image of FILE to its digest, gate it with its requirements, size its graph, and write the plan.

    Each source tag is resolved once: a tag moved after planning changes nothing. Every image is checked
    against the release's and its own requirements (the verify language), and its graph is walked with a dry
    run of promote against the destination. The plan balances the images over at most --shards copy jobs by
    bytes and requests; its "matrix" lists the shards to run.

    With --emit gitlab it also writes ci-oras-release-copy.yml beside the dotenv file: include it after the
    release-copy template in the child pipeline's trigger:include, and it runs that job once per shard (a
    parallel:matrix setting CI_ORAS_RELEASE_SHARD) with this job's artifacts.

    The plan is written even when a gate fails, so the reason can be read; then the command exits 1 and
    release copy refuses the plan.
    """
    from ci_oras.emit.render import release_plan_text
    from ci_oras.emit.text import say
    from ci_oras.errors import VerificationFailed
    from ci_oras.files import write_atomically
    from ci_oras.release.matrix import check_gitlab_shards, gitlab_shard_file
    from ci_oras.release.spec import read_release_file
    from ci_oras.steps.common import refuse_login_across_registries
    from ci_oras.steps.release import PlanOptions, plan_release
    from ci_oras.steps.verify import gate_missing

    gitlab = options.emitter is not None and options.emitter.platform == "gitlab"
    if gitlab:
        check_gitlab_shards(shards)
    release = read_release_file(file)
    if options.has_login_flags:
        refuse_login_across_registries(entry.destination for entry in release.entries)
    mode = referrers_mode(referrers)
    with runtime(options) as run:
        plan = plan_release(release, _openers(run, mode, write=False), gate_missing,
                            PlanOptions(shards=shards, concurrency=concurrency))
    write_atomically(out, _json_bytes(plan.document()))
    if gitlab and plan.ok:
        from ci_oras.emit.gitlab import GitLabEmitter

        assert isinstance(options.emitter, GitLabEmitter)
        options.emitter.write_file(SHARD_FILE, gitlab_shard_file(plan.release, plan.shards, copy_job, os.environ))
    if options.output is OutputFormat.json:
        write_json(options, plan)
    else:
        say(release_plan_text(plan, out))
    emit_result(options, plan)
    if not plan.ok:
        failed = [image for image in plan.images if not image.gate.ok]
        raise VerificationFailed(
            f"release gate failed for {len(failed)} of {len(plan.images)} images: " + "; ".join(
                f"{image.id} ({image.source}@{image.digest[:19]}) missing {', '.join(image.gate.missing)}"
                for image in failed[:5]) + (" …" if len(failed) > 5 else ""),
            hint="attach what is missing to those images (or fix the release file), then plan again")


def _openers(run: Runtime, mode: ReferrersMode, *, write: bool, watch_listings: bool = True) -> Openers:
    """Sources are read with the docker config and CI_ORAS_* credentials; login flags go to destinations only,
    as with promote. ``write``: the destinations are about to be written (push access asked up front).
    ``watch_listings=False`` (release copy): release commit reads every planned listing before any tag moves,
    so a tag-schema listing the copy wrote is read back once instead of watched for other writers."""
    from ci_oras.steps.release import Openers

    return Openers(source=lambda reference: run.open(reference, use_login_flags=False, referrers=mode),
                   destination=lambda reference: run.open(reference, create=write, referrers=mode,
                                                          watch_listings=watch_listings))


def _json_bytes(document: object) -> bytes:
    import json

    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


@command(release_app, "copy")
def release_copy(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan release plan wrote.")],
    shard: Annotated[int, typer.Option("--shard", min=1, max=256, envvar="CI_ORAS_RELEASE_SHARD",
                                       help="Which shard of the plan's matrix to copy.")],
    images: Annotated[int, typer.Option("--images", min=1, max=64, help="Images copied side by side.")] = 8,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64,
                                             help="Copy requests in flight per image at its destination.")] = 4,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Copy the graphs of one shard of a release plan by digest, moving no tag.

    Anything the destination already has is skipped, so a re-run after a failure or a kill copies only what
    is missing. A plan whose gate failed is refused (exit 1).
    """
    from ci_oras.emit.render import release_copy_text
    from ci_oras.emit.text import say
    from ci_oras.release.plan import read_plan
    from ci_oras.steps.common import refuse_login_across_registries
    from ci_oras.steps.release import copy_shard

    plan = read_plan(plan_file)
    if options.has_login_flags:
        refuse_login_across_registries(parse(image.destination) for image in plan.images)
    mode = referrers_mode(referrers)
    with runtime(options) as run:
        result = copy_shard(plan, shard, _openers(run, mode, write=True, watch_listings=False), parse, concurrency,
                            images)
    if options.output is OutputFormat.json:
        write_json(options, result)
    else:
        say(release_copy_text(result))
    emit_result(options, result)


@command(release_app, "commit")
def release_commit(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan release plan wrote.")],
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64,
                                             help="Checks and tag writes in flight.")] = 8,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Check that every graph of the plan is complete at its destination, then move the tags, tags last.

    Per image the root is read by digest and each planned subject's referrers listing once. If any graph is
    incomplete no tag moves (exit 1, with what is missing); run the copy of its shard again, then commit.
    """
    from ci_oras.emit.render import release_commit_text
    from ci_oras.emit.text import say
    from ci_oras.errors import VerificationFailed
    from ci_oras.release.plan import read_plan
    from ci_oras.steps.common import refuse_login_across_registries
    from ci_oras.steps.release import commit_release

    plan = read_plan(plan_file)
    if options.has_login_flags:
        refuse_login_across_registries(parse(image.destination) for image in plan.images)
    mode = referrers_mode(referrers)
    with runtime(options) as run:
        result = commit_release(plan, _openers(run, mode, write=True), parse, concurrency)
    if options.output is OutputFormat.json:
        write_json(options, result)
    else:
        say(release_commit_text(result))
    emit_result(options, result)
    if not result.ok:
        incomplete = result.incomplete
        raise VerificationFailed(
            f"release {plan.release} is incomplete at its destinations; no tag moved: " + "; ".join(
                f"{image.image.id} ({image.image.destination}@{image.image.digest[:19]}) lacks "
                f"{len(image.missing)} manifests" for image in incomplete[:5]) + (" …" if len(incomplete) > 5 else ""),
            hint="run release copy again for the shards of those images, then commit")
