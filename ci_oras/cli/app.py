"""What every command shares: the Typer app, the shared option types, the ``command`` decorator, ``runtime()``
and ``report()``.

Commands live one per step in ``ci_oras.cli.commands`` and import only this module, their step and ``emit``
renderers (docs/architecture.md, "Layers"). Nothing here imports httpx, a store or a step at module level, so
``ci-oras --help`` and ``--version`` start fast; ``runtime()`` imports them when a command runs.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer

from ci_oras import __version__
from ci_oras.cli.helppage import HelpCommand, HelpGroup
from ci_oras.errors import CiOrasError, UsageError

if TYPE_CHECKING:
    from ci_oras.emit.base import Documented as Result
    from ci_oras.emit.base import Emitter
    from ci_oras.oci.reference import Reference
    from ci_oras.registry.referrers import ReferrersMode
    from ci_oras.runtime import Runtime

app = typer.Typer(
    name="ci-oras",
    help="Supply-chain steps for CI/CD pipelines on OCI registries and OCI image layouts.\n\n"
    "References: REGISTRY/REPO[:TAG][@DIGEST], or oci:PATH[:TAG|@DIGEST] for an OCI layout on disk.\n\n"
    "Exit codes: 0 ok, 1 verification failed, 2 usage or bad input, 3 not found, "
    "4 authentication denied, 5 registry or network error, 6 integrity error, "
    "70 internal error (a bug in ci-oras, never a verdict).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help pages and usage errors, not typer's rich panels (docs/architecture.md, "Start-up")
    rich_markup_mode=None,
    cls=HelpGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
manifest_app = typer.Typer(help="Manifest commands.", no_args_is_help=True, rich_markup_mode=None, cls=HelpGroup)
app.add_typer(manifest_app, name="manifest")
release_app = typer.Typer(help="Release: plan, copy shards, commit tags.", no_args_is_help=True,
                          rich_markup_mode=None, cls=HelpGroup)
app.add_typer(release_app, name="release")


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
#: Defaults of the time limits (the same as ``TransportOptions``'s; that module is not imported at start-up).
REQUEST_TIMEOUT, MIN_RATE, MIN_RATE_WINDOW = 30.0, 1024.0, 30.0
RequestTimeoutOpt = Annotated[
    float, typer.Option("--request-timeout", metavar="SECONDS", min=0,
                        help="Deadline of each attempt of a request without a blob body (manifests, listings, "
                             "tokens); 0: none. Blob transfers are bounded by --min-rate instead.")]
MinRateOpt = Annotated[
    float, typer.Option("--min-rate", metavar="BYTES/S", min=0,
                        help="Abort an attempt whose body (blobs too) moves slower than this, averaged over "
                             "--min-rate-window; 0: no minimum.")]
MinRateWindowOpt = Annotated[
    float, typer.Option("--min-rate-window", metavar="SECONDS", min=0.1,
                        help="The window --min-rate is measured over; no byte for this long is a stall.")]


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

    The platform emitter (``--emit``) is opened before, and handed in, so that a password read here is masked
    on the platform before the command prints anything else; commands pass ``emitter`` on explicitly.
    """

    def __init__(self, output: OutputFormat = OutputFormat.text, plain_http: bool | None = None,
                 insecure: bool = False, ca_file: str | None = None, username: str | None = None,
                 password: str | None = None, password_stdin: bool = False, emitter: Emitter | None = None,
                 request_timeout: float = REQUEST_TIMEOUT, min_rate: float = MIN_RATE,
                 min_rate_window: float = MIN_RATE_WINDOW) -> None:
        self.output = output
        self.plain_http = plain_http
        self.insecure = insecure
        self.ca_file = ca_file
        self.request_timeout = request_timeout
        self.min_rate = min_rate
        self.min_rate_window = min_rate_window
        self.username = username
        self.emitter = emitter
        #: Set once the command's result document is on stdout: a later failure prints no error document.
        self.document_printed = False
        self.password = _read_password(password, password_stdin, emitter)
        if self.emitter is not None:
            self.emitter.protect(self.password, os.environ.get("CI_ORAS_PASSWORD"))

    @property
    def has_login_flags(self) -> bool:
        """--username or a password was given: they go to one registry host only."""
        return self.username is not None or self.password is not None


def _open_emitter(emit: EmitTarget, step: str, emit_file: str | None) -> Emitter | None:
    """Nothing is imported for ``--emit none``, nor for ``auto`` outside CI beyond the small channel module."""
    if emit is EmitTarget.none:
        return None
    from ci_oras.emit.channel import open_emitter

    return open_emitter(emit.value, step=step, emit_file=emit_file)


def _read_password(password: str | None, password_stdin: bool, emitter: Emitter | None) -> str | None:
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
             "use --password-stdin", emitter=emitter)
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
        ("request_timeout", RequestTimeoutOpt, REQUEST_TIMEOUT),
        ("min_rate", MinRateOpt, MIN_RATE),
        ("min_rate_window", MinRateWindowOpt, MIN_RATE_WINDOW),
    )
]


def command(group: typer.Typer, name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a command that takes the shared output and connection flags as one ``options: Options``.

    The flags are appended to the command's own parameters in its signature, so typer shows and parses them
    after the subcommand like every other option, and the command body receives them gathered. The wrapper
    opens the ``--emit`` emitter before anything else and reports a failure with it (``exit_with``).
    """

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "options"]
        parameters = own + _CONNECTION_PARAMETERS
        step = name or func.__name__.replace("_", "-")
        if group is manifest_app:
            step = f"manifest {step}"
        elif group is release_app:
            step = f"release {step}"

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> None:
            shared = {p.name: kwargs.pop(p.name) for p in _CONNECTION_PARAMETERS}
            emitter = _open_emitter(shared.pop("emit"), step, shared.pop("emit_file"))
            options: Options | None = None

            def fail(error: CiOrasError) -> NoReturn:
                printed = options is not None and options.document_printed
                document = shared["output"] is OutputFormat.json and not printed
                exit_with(error, emitter, step=step, error_document=document)

            try:
                options = Options(**shared, emitter=emitter)
                func(options=options, **kwargs)
            except CiOrasError as exc:
                fail(exc)
            except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
                raise  # the parser's own exits and usage errors
            except BrokenPipeError:  # answered here: the parser would turn both into exit 1
                reader_gone()
            except KeyboardInterrupt:
                interrupted(emitter)
            except Exception as exc:  # noqa: BLE001 - the one place a crash becomes exit 70, never a verdict
                fail(crashed(exc, step))

        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        group.command(name, help=help_text(func.__doc__), cls=HelpCommand)(wrapper)
        return wrapper

    return decorate


def help_text(docstring: str | None) -> str | None:
    """A command's docstring as ``--help`` should show it: each paragraph one run of text the terminal wraps.

    The help renderer keeps every line break of a paragraph after the first, so a docstring hard-wrapped at
    the source's width would break mid-sentence on any other terminal. Line breaks are kept only where a line
    ends with ``:`` or ``;`` (a list introduced or continued: verify's aliases), and paragraphs stay apart.
    """
    if docstring is None:
        return None
    paragraphs = []
    for paragraph in inspect.cleandoc(docstring).split("\n\n"):
        text = ""
        for line in paragraph.splitlines():
            joiner = "\n" if text.endswith((":", ";")) else " "
            text = f"{text}{joiner}{line.strip()}" if text else line.strip()
        paragraphs.append(text)
    return "\n\n".join(paragraphs)


@contextmanager
def runtime(options: Options) -> Iterator[Runtime]:
    from ci_oras.registry.transport import TransportOptions
    from ci_oras.runtime import LoginFlags, Runtime

    transport = TransportOptions(plain_http=options.plain_http, insecure=options.insecure, ca_file=options.ca_file,
                                 request_timeout=options.request_timeout, min_rate=options.min_rate,
                                 min_rate_window=options.min_rate_window)
    if options.insecure:
        from ci_oras.emit.text import warn

        warn("--insecure: TLS certificates are NOT verified; anyone on the network path can read and change "
             "what you push and pull. Use --ca-file instead.", emitter=options.emitter)
    run = Runtime(transport, LoginFlags(options.username, options.password), os.environ)
    try:
        yield run
    finally:
        run.close()


def report(options: Options, result: Result, text: Callable[[], str]) -> None:
    """JSON document on stdout, or the short text on stderr; then the platform outputs (``--emit``)."""
    if options.output is OutputFormat.json:
        write_json(options, result)
    else:
        from ci_oras.emit.text import say

        say(text())
    emit_result(options, result)


def emit_result(options: Options, result: Result) -> None:
    """Step outputs and job summary on the CI platform, if one is active; for commands printing their own."""
    if options.emitter is not None:
        options.emitter.result(result)


def exit_with(error: CiOrasError, emitter: Emitter | None, *, step: str | None = None,
              error_document: bool = False) -> NoReturn:
    """The one error handler: a one-line message (and the platform's error annotation), then its exit code.

    ``error_document``: with ``--output json`` stdout still carries exactly one document, the step's own when
    it printed one before failing (verify does, whether the gate passes or not), else the error document.
    """
    from ci_oras.emit.text import error as say_error

    say_error(str(error))
    if error_document:
        from ci_oras.emit.json_output import error_document as document_of, write_document

        write_document(document_of(step, error))
    if emitter is not None:
        emitter.error(str(error))
    sys.exit(error.exit_code)


def crashed(exc: Exception, step: str | None) -> CiOrasError:
    """An unexpected exception as the internal error it is (exit 70); its traceback only with CI_ORAS_DEBUG=1."""
    from ci_oras.errors import InternalError

    if debugging():
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return InternalError.of(exc, step)


def reader_gone() -> NoReturn:
    """stdout's reader went away (``ci-oras tags R | head -1``): end as a tool killed by SIGPIPE would, 141.

    Never 0 nor 1: a gate whose document nobody read has neither passed nor failed. stdout is pointed at the
    null device first, so the interpreter's own flush at exit does not fail a second time.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(141)


def interrupted(emitter: Emitter | None) -> NoReturn:
    """^C (SIGINT): 130, as a shell reports it, never 1, the gate's "no"."""
    from ci_oras.emit.text import error as say_error

    say_error("interrupted")
    if emitter is not None:
        emitter.error("interrupted")
    sys.exit(130)


def debugging() -> bool:
    """``CI_ORAS_DEBUG`` set to anything but empty, 0, false or no."""
    return os.environ.get("CI_ORAS_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def parse(reference: str) -> Reference:
    from ci_oras.oci.reference import parse_reference

    return parse_reference(reference)


def write_json(options: Options, result: Result) -> None:
    """The result document on stdout, for commands whose text output is not one short report."""
    from ci_oras.emit.json_output import write_document

    write_document(result.document())
    options.document_printed = True


def source_date_epoch() -> str | None:
    """The reproducible-build timestamp, read here: steps never read the environment."""
    return os.environ.get("SOURCE_DATE_EPOCH")


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


ReferrersOpt = Annotated[
    str, typer.Option("--referrers", metavar="auto|api|tag",
                      help="Referrers API or tag-schema fallback; auto probes the registry once per repository."),
]
ArtifactTypeListOpt = Annotated[
    Optional[list[str]], typer.Option("--artifact-type", help="Only referrers of this type (repeatable).")
]


def referrers_mode(value: str) -> ReferrersMode:
    from ci_oras.registry.referrers import ReferrersMode

    try:
        return ReferrersMode(value)
    except ValueError:
        raise UsageError(f"invalid --referrers {value!r}", hint="use auto, api or tag") from None


def require_reference(reference: str) -> tuple[Reference, str]:
    """A reference naming exactly one manifest, as every command but push needs; and that tag or digest."""
    ref = parse(reference)
    if ref.reference is None:
        raise UsageError(f"reference {reference!r} names no tag or digest", hint="add :TAG or @sha256:...")
    if len(ref.tags) > 1:
        raise UsageError(f"reference {reference!r} names several tags", hint="name one tag or a digest")
    return ref, ref.reference
