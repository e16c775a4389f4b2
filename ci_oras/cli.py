"""The ``ci-oras`` command line: parse flags, open targets, call one step, report the result.

Each command is a thin shell around one step in ``ci_oras.steps``. Step modules, httpx and the stores are
imported inside the commands so that ``ci-oras --help`` and layout-only runs start fast. Errors are mapped to
exit codes in one place, ``main()``.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ci_oras import __version__
from ci_oras.errors import CiOrasError, UsageError

if TYPE_CHECKING:
    from ci_oras.emit.channel import Emitter

app = typer.Typer(
    name="ci-oras",
    help="Supply-chain steps for CI/CD pipelines on OCI registries and OCI image layouts.\n\n"
    "References: REGISTRY/REPO[:TAG][@DIGEST], or oci:PATH[:TAG|@DIGEST] for an OCI layout on disk.\n\n"
    "Exit codes: 0 ok, 1 verification failed, 2 usage or bad input, 3 not found, "
    "4 authentication denied, 5 registry or network error, 6 integrity error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
manifest_app = typer.Typer(help="Manifest commands.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


OutputOpt = Annotated[
    OutputFormat, typer.Option("--output", "-O", help="text: a short human result; json: one JSON document on stdout.")
]
PlainHttpOpt = Annotated[
    Optional[bool],
    typer.Option("--plain-http/--no-plain-http",
                 help="Use HTTP instead of HTTPS. Default: plain HTTP for localhost/127.0.0.1 only."),
]
InsecureOpt = Annotated[bool, typer.Option("--insecure", help="Skip TLS verification (testing only; loud warning).")]
CaFileOpt = Annotated[Optional[str], typer.Option("--ca-file", help="PEM file of CA certificates to trust.")]
UsernameOpt = Annotated[Optional[str], typer.Option(
    "--username", "-u", help="Registry username; sent only to the registry named on the command line.")]
PasswordOpt = Annotated[
    Optional[str], typer.Option("--password", "-p", help="Registry password (prefer --password-stdin).")
]
PasswordStdinOpt = Annotated[bool, typer.Option("--password-stdin", help="Read the password or token from stdin.")]


class EmitTarget(str, Enum):
    auto = "auto"
    github = "github"
    gitlab = "gitlab"
    azure = "azure"
    none = "none"


EmitOpt = Annotated[
    EmitTarget,
    typer.Option("--emit", help="CI platform side channels (step outputs, job summary, annotations); auto "
                                "detects GITHUB_ACTIONS, GITLAB_CI, TF_BUILD. Independent of --output."),
]
EmitFileOpt = Annotated[
    Optional[str],
    typer.Option("--emit-file", metavar="PATH",
                 help="gitlab: the dotenv file to write (default $CI_ORAS_DOTENV, else ci-oras.env)."),
]


class Options:
    """The output and connection flags every registry command shares, gathered once.

    The platform emitter (``--emit``) is opened first, so that a password read here is masked on the platform
    before the command prints anything else.
    """

    def __init__(self, output: OutputFormat = OutputFormat.text, plain_http: bool | None = None,
                 insecure: bool = False, ca_file: str | None = None, username: str | None = None,
                 password: str | None = None, password_stdin: bool = False, emit: EmitTarget = EmitTarget.none,
                 emit_file: str | None = None, step: str = "") -> None:
        self.output = output
        self.plain_http = plain_http
        self.insecure = insecure
        self.ca_file = ca_file
        self.username = username
        self.emitter = _open_emitter(emit, step, emit_file)
        self.password = _read_password(password, password_stdin)
        if self.emitter is not None:
            self.emitter.protect(self.password, os.environ.get("CI_ORAS_PASSWORD"))


def _open_emitter(emit: EmitTarget, step: str, emit_file: str | None) -> Emitter | None:
    """Nothing is imported for ``--emit none``, nor for ``auto`` outside CI beyond the small channel module."""
    if emit is EmitTarget.none:
        if "ci_oras.emit.channel" in sys.modules:  # an earlier command in this process may have activated one
            sys.modules["ci_oras.emit.channel"].activate(None)
        return None
    from ci_oras.emit.channel import open_emitter

    return open_emitter(emit.value, step=step, emit_file=emit_file)


def _read_password(password: str | None, password_stdin: bool) -> str | None:
    if password_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive", hint="use --password-stdin")
        value = sys.stdin.read().rstrip("\r\n")
        if not value:
            raise UsageError("--password-stdin read an empty password", hint="pipe the password into ci-oras")
        return value
    if password is not None:
        from ci_oras.emit.text import warn

        warn("using --password on the command line is insecure (shell history, process list); "
             "use --password-stdin")
    return password


_CONNECTION_PARAMETERS = [
    inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
    for name, annotation, default in (
        ("output", OutputOpt, OutputFormat.text),
        ("plain_http", PlainHttpOpt, None),
        ("insecure", InsecureOpt, False),
        ("ca_file", CaFileOpt, None),
        ("username", UsernameOpt, None),
        ("password", PasswordOpt, None),
        ("password_stdin", PasswordStdinOpt, False),
        ("emit", EmitOpt, EmitTarget.auto),
        ("emit_file", EmitFileOpt, None),
    )
]


def command(group: typer.Typer, name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a command that takes the shared output and connection flags as one ``options: Options``.

    The flags are appended to the command's own parameters in its signature, so typer shows and parses them
    after the subcommand like every other option, and the command body receives them gathered.
    """

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "options"]
        parameters = own + _CONNECTION_PARAMETERS
        step = name or func.__name__.replace("_", "-")
        if group is manifest_app:
            step = f"manifest {step}"

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> None:
            shared = {p.name: kwargs.pop(p.name) for p in _CONNECTION_PARAMETERS}
            func(options=Options(**shared, step=step), **kwargs)

        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        group.command(name)(wrapper)
        return wrapper

    return decorate


@contextmanager
def runtime(options: Options) -> Iterator[Any]:
    from ci_oras.registry.transport import TransportOptions
    from ci_oras.runtime import LoginFlags, Runtime

    transport = TransportOptions(plain_http=options.plain_http, insecure=options.insecure, ca_file=options.ca_file)
    if options.insecure:
        from ci_oras.emit.text import warn

        warn("--insecure: TLS certificates are NOT verified; anyone on the network path can read and change "
             "what you push and pull. Use --ca-file instead.")
    run = Runtime(transport, LoginFlags(options.username, options.password), os.environ)
    try:
        yield run
    finally:
        run.close()


def report(options: Options, result: Any, text: Callable[[], str]) -> None:
    """JSON document on stdout, or the short text on stderr; then the platform outputs (``--emit``)."""
    if options.output is OutputFormat.json:
        from ci_oras.emit.json_output import write_document

        write_document(result.document())
    else:
        from ci_oras.emit.text import say

        say(text())
    emit_result(options, result)


def emit_result(options: Options, result: Any) -> None:
    """Step outputs and job summary on the CI platform, if one is active; for commands printing their own."""
    if options.emitter is not None:
        options.emitter.result(result)


def _parse(reference: str) -> Any:
    from ci_oras.oci.reference import parse_reference

    return parse_reference(reference)


def _version_callback(value: bool) -> None:
    if value:
        print(f"ci-oras {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Supply-chain steps for CI/CD pipelines on OCI registries."""


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
    from ci_oras.files import load_annotation_file, parse_annotations, parse_file_argument
    from ci_oras.steps.push import PushOptions
    from ci_oras.steps.push import push as push_step

    ref = _parse(reference)
    if ref.digest:
        raise UsageError(f"cannot push to a digest reference {reference!r}", hint="push to a tag or a bare repository")
    specs = [parse_file_argument(item) for item in files or []]
    from_file = load_annotation_file(annotation_file) if annotation_file else None
    manifest_annotations = {**(from_file.manifest if from_file else {}), **parse_annotations(annotation or [])}
    created, mtime = _creation_time()
    push_options = PushOptions(
        artifact_type=artifact_type, annotations=manifest_annotations,
        config_annotations=from_file.config if from_file else None,
        file_annotations=from_file.files if from_file else None, created=created, mtime=mtime,
    )
    with runtime(options) as run:
        result = push_step(run.open(ref, create=True), ref.repository_name, ref.tags, specs, push_options)
    report(options, result, lambda: f"Pushed {result.reference}\nDigest: {result.digest}")


ReferrersOpt = Annotated[
    str, typer.Option("--referrers", metavar="auto|api|tag",
                      help="Referrers API or tag-schema fallback; auto probes the registry once per repository."),
]
ArtifactTypeListOpt = Annotated[
    Optional[list[str]], typer.Option("--artifact-type", help="Only referrers of this type (repeatable).")
]


def _referrers_mode(value: str) -> Any:
    from ci_oras.registry.referrers import ReferrersMode

    try:
        return ReferrersMode(value)
    except ValueError:
        raise UsageError(f"invalid --referrers {value!r}", hint="use auto, api or tag") from None


@command(app)
def attach(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="What to attach to: REF:TAG or REF@DIGEST.")],
    files: Annotated[Optional[list[str]], typer.Argument(metavar="FILE[:MEDIA_TYPE]...", help="Files; directories are packed.")] = None,
    artifact_type: Annotated[str, typer.Option("--artifact-type", help="The referrer's artifact type (required).")] = "",
    annotation: Annotated[Optional[list[str]], typer.Option("--annotation", "-a", help="Manifest annotation KEY=VALUE.")] = None,
    annotation_file: Annotated[Optional[str], typer.Option("--annotation-file", help="ORAS-style annotation JSON.")] = None,
    platform: Annotated[Optional[str], typer.Option("--platform", help="Attach to this OS/ARCH child of an index.")] = None,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Attach files to SUBJECT as an OCI 1.1 referrer (like 'oras attach')."""
    from ci_oras.files import load_annotation_file, parse_annotations, parse_file_argument

    if not artifact_type:
        raise UsageError("attach needs --artifact-type", hint="e.g. --artifact-type application/vnd.acme.report.v1")
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
    annotation: Annotated[Optional[list[str]], typer.Option("--annotation", "-a", help="Extra annotation KEY=VALUE.")] = None,
    platform: Annotated[Optional[str], typer.Option("--platform", help="Attach to this OS/ARCH child of an index.")] = None,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Attach an SBOM, detecting its format and recording spec version, creation time and tool."""
    from ci_oras.files import parse_annotations
    from ci_oras.formats.sbom import detect_sbom

    _require_file(sbom)
    if artifact_type:
        detected_type, media_type, detected, fmt = artifact_type, None, {}, None
    else:
        found = detect_sbom(sbom)
        detected_type, media_type, detected, fmt = found.artifact_type, found.media_type, found.annotations, found.format
    annotations = {**detected, **parse_annotations(annotation or [])}
    _attach(options, subject, [_single_file(sbom, media_type)], detected_type, annotations, platform, referrers,
            "attach-sbom", fmt, None)


@command(app, "attach-signature")
def attach_signature(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="What is signed: REF:TAG or REF@DIGEST.")],
    signature: Annotated[Path, typer.Argument(metavar="FILE", help="Notary JWS/COSE envelope or Sigstore bundle.")],
    artifact_type: Annotated[Optional[str], typer.Option("--artifact-type", help="For other signature formats.")] = None,
    media_type: Annotated[Optional[str], typer.Option("--media-type", help="Layer media type for other formats.")] = None,
    annotation: Annotated[Optional[list[str]], typer.Option("--annotation", "-a", help="Extra annotation KEY=VALUE.")] = None,
    platform: Annotated[Optional[str], typer.Option("--platform", help="Attach to this OS/ARCH child of an index.")] = None,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Attach a signature: Notary Project (JWS, COSE) and Sigstore bundles are recognised."""
    from ci_oras.files import parse_annotations
    from ci_oras.formats.signature import detect_signature

    _require_file(signature)
    if artifact_type and media_type:
        detected_type, layer_type, detected, fmt = artifact_type, media_type, {}, None
    elif artifact_type or media_type:
        raise UsageError("--artifact-type and --media-type go together",
                         hint="give both to attach a signature format ci-oras does not recognise")
    else:
        found = detect_signature(signature)
        detected_type, layer_type, detected, fmt = found.artifact_type, found.media_type, found.annotations, found.format
    annotations = {**detected, **parse_annotations(annotation or [])}
    _attach(options, subject, [_single_file(signature, layer_type)], detected_type, annotations, platform,
            referrers, "attach-signature", fmt, None)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise UsageError(f"file not found: {path}", hint="check the path")


def _single_file(path: Path, media_type: str | None) -> Any:
    """SBOMs and signatures are titled by their file name: CI tools write them anywhere (/tmp, build/…)."""
    from ci_oras.files import FileSpec

    return FileSpec(path=path, title=path.name, media_type=media_type)


def _attach(options: Options, subject: str, specs: list[Any], artifact_type: str, annotations: dict[str, str],
            platform: str | None, referrers: str, step: str, detected_format: str | None,
            file_annotations: dict[str, dict[str, str]] | None) -> None:
    from ci_oras.steps.attach import AttachOptions, attach as attach_step, resolve_subject

    ref = _require_reference(subject)
    mode = _referrers_mode(referrers)
    created, mtime = _creation_time()
    attach_options = AttachOptions(artifact_type=artifact_type, annotations=annotations,
                                   file_annotations=file_annotations, created=created, mtime=mtime, platform=platform)
    with runtime(options) as run:
        target = run.open(ref, create=True, referrers=mode)
        subject_desc = resolve_subject(target, ref.reference, str(ref), platform)
        result = attach_step(target, ref.repository_name, subject_desc, specs, attach_options, step=step,
                             detected_format=detected_format)
    report(options, result, lambda: "\n".join(
        ([f"Detected {result.format}"] if result.format else [])
        + [f"Attached to {ref.repository_name}@{result.subject.digest}", f"Reference: {result.reference}",
           f"Digest: {result.digest}"]))


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
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Parallel listings per level.")] = 8,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Show the referrers graph below REF: signatures, SBOMs, and what refers to them."""
    from ci_oras.emit.graph import render_mermaid, render_table, render_tree
    from ci_oras.graph.discover import DiscoverOptions
    from ci_oras.steps.discover import discover_graph

    ref = _require_reference(reference)
    mode = _referrers_mode(referrers)
    discover_options = DiscoverOptions(artifact_types=tuple(artifact_type or ()), depth=depth,
                                       include_children=include_children, concurrency=concurrency)
    with runtime(options) as run:
        result = discover_graph(run.open(ref, referrers=mode), ref.repository_name, ref.reference, discover_options)
    if options.output is OutputFormat.json or graph_format is GraphFormat.json:
        from ci_oras.emit.json_output import write_document

        write_document(result.document())
    else:
        render: dict[GraphFormat, Callable[[], str]] = {
            GraphFormat.tree: lambda: render_tree(result.root, annotations=show_annotations),
            GraphFormat.table: lambda: render_table(result.root),
            GraphFormat.mermaid: lambda: render_mermaid(result.root)}
        print(render[graph_format](), flush=True)
    emit_result(options, result)


def _creation_time() -> tuple[str, int | None]:
    """``SOURCE_DATE_EPOCH`` when set (reproducible builds), else now; RFC 3339 in UTC like ORAS writes it."""
    from datetime import datetime, timezone

    epoch_text = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch_text:
        if not epoch_text.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH={epoch_text!r} is not a number of seconds",
                             hint="set it to a Unix timestamp, e.g. $(git log -1 --format=%ct)")
        epoch = int(epoch_text)
        return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), epoch
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), None


@command(app)
def pull(
    reference: Annotated[str, typer.Argument(metavar="REF", help="What to pull: REGISTRY/REPO:TAG, …@DIGEST or oci:PATH:TAG.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Directory to write files into.")] = Path("."),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files with different content.")] = False,
    *,
    options: Options,
) -> None:
    """Pull an artifact's files, verifying every digest and unpacking directories safely."""
    from ci_oras.steps.pull import pull as pull_step

    ref = _require_reference(reference)
    with runtime(options) as run:
        result = pull_step(run.open(ref), ref.reference, str(ref), output_dir, overwrite=overwrite)
    report(options, result, lambda: "\n".join(
        [f"{'Skipped (identical)' if f.skipped else 'Pulled'} {f.path}" for f in result.files]
        + [f"Pulled {result.reference}", f"Digest: {result.digest}"]))


def _require_reference(reference: str) -> Any:
    ref = _parse(reference)
    if ref.reference is None:
        raise UsageError(f"reference {reference!r} names no tag or digest", hint="add :TAG or @sha256:...")
    if len(ref.tags) > 1:
        raise UsageError(f"reference {reference!r} names several tags", hint="name one tag or a digest")
    return ref


@command(manifest_app, "fetch")
def manifest_fetch(
    reference: Annotated[str, typer.Argument(metavar="REF", help="REGISTRY/REPO:TAG, …@DIGEST or oci:PATH:TAG.")],
    *,
    options: Options,
) -> None:
    """Print the exact manifest bytes (text) or a JSON document describing it (--output json)."""
    from ci_oras.steps.manifest import fetch_manifest

    ref = _require_reference(reference)
    with runtime(options) as run:
        result = fetch_manifest(run.open(ref), ref.reference, str(ref))
    if options.output is OutputFormat.json:
        report(options, result, str)
    else:
        sys.stdout.buffer.write(result.manifest.raw)
        sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
        emit_result(options, result)


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

    ref = _parse(repository)
    with runtime(options) as run:
        result = list_tags(run.open(ref), ref.repository_name, exclude_digest_tags=exclude_digest_tags)
    if options.output is OutputFormat.json:
        report(options, result, str)
    else:
        for tag in result.tags:
            print(tag)
        sys.stdout.flush()
        emit_result(options, result)


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
    """
    from ci_oras.emit.text import warn
    from ci_oras.steps.delete import DeleteOptions, delete as delete_step

    ref = _require_reference(reference)
    mode = _referrers_mode(referrers)
    with runtime(options) as run:
        result = delete_step(run.open(ref, referrers=mode), ref.repository_name, ref.reference, str(ref),
                             DeleteOptions(graph=graph, dry_run=dry_run))
    outcome = result.outcome
    if result.orphaned:
        count = len(result.orphaned)
        verb = "would be" if dry_run else ("is" if count == 1 else "are")
        warn(f"{count} referrer{'s' if count != 1 else ''} of {result.digest} {verb} left without "
             f"{'its' if count == 1 else 'their'} subject; delete {'it' if count == 1 else 'them'} with "
             f"'ci-oras delete --graph {ref.repository_name}@{result.digest}'")

    def text() -> str:
        def kind(desc: Any) -> str:
            return str(desc.artifact_type or desc.media_type)

        if dry_run:
            lines = [f"{'  ' * depth}{action.descriptor.digest}  {kind(action.descriptor)}"
                     for depth, action in result.tree_order()]
            lines += [f"Would delete the referrers index of {d.digest}" for d in outcome.indexes_deleted]
            lines += [f"Would update the referrers index of {d.digest}" for d in outcome.indexes_updated]
            count = len(outcome.deleted)
            return "\n".join([f"Dry run: would delete {count} manifest{'s' if count != 1 else ''}:", *lines])
        lines = [f"Deleted {a.descriptor.digest}  {kind(a.descriptor)}" for a in outcome.deleted]
        lines += [f"Already deleted {a.descriptor.digest}" for a in outcome.already_deleted]
        lines += [f"Deleted the referrers index of {d.digest}" for d in outcome.indexes_deleted]
        lines += [f"Updated the referrers index of {d.digest}" for d in outcome.indexes_updated]
        count, gone = len(outcome.deleted), len(outcome.already_deleted)
        lines.append(f"Deleted {result.reference} ({count} manifest{'s' if count != 1 else ''}"
                     f"{f', {gone} already gone' if gone else ''})")
        return "\n".join([*lines, f"Digest: {result.digest}"])

    report(options, result, text)


@command(app)
def login(
    registry: Annotated[str, typer.Argument(metavar="HOST", help="Registry host, e.g. ghcr.io or 127.0.0.1:5000.")],
    *,
    options: Options,
) -> None:
    """Check the credentials against the registry, then store them in the docker config like 'docker login'."""
    from ci_oras.steps.login import login as login_step

    if not options.username or options.password is None:
        raise UsageError("login needs --username and a password", hint="use -u USER --password-stdin")
    with runtime(options) as run:
        result = login_step(run, registry, options.username, options.password)
    report(options, result, lambda: f"Login succeeded for {result.registry} (stored in {result.stored_in})")


@app.command()
def logout(
    registry: Annotated[str, typer.Argument(metavar="HOST", help="Registry host to forget.")],
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Remove stored credentials for a registry from the docker config."""
    from ci_oras.steps.login import logout as logout_step

    options = Options(output)  # no --emit: logout has no outputs worth a pipeline's attention
    result = logout_step(registry, os.environ)
    report(options, result, lambda: f"{'Removed' if result.removed else 'No'} credentials for {result.registry}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one handler maps every ci-oras error to its exit code and a one-line message.

    The command-line parser itself reports usage errors (exit 2) in its standalone mode.
    """
    from ci_oras.emit.text import error

    try:
        app(args=argv)
    except CiOrasError as exc:
        error(str(exc))
        if "ci_oras.emit.channel" in sys.modules:  # a platform emitter may be active (--emit)
            from ci_oras.emit.channel import report_error

            report_error(str(exc))
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)

# Commands that live in their own modules register themselves on `app` when imported.
from ci_oras.commands import promote as _promote  # noqa: E402,F401
from ci_oras.commands import verify as _verify  # noqa: E402,F401
