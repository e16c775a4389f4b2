"""``ci-oras login HOST`` and ``logout HOST``: credentials checked, then kept in the docker config."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ci_oras.cli.app import Options, OutputFormat, OutputOpt, app, command, report, runtime
from ci_oras.cli.helppage import HelpCommand
from ci_oras.errors import UsageError


@command(app)
def login(
    registry: Annotated[str, typer.Argument(metavar="HOST", help="Registry host, e.g. ghcr.io or 127.0.0.1:5000.")],
    *,
    options: Options,
) -> None:
    """Check the credentials against the registry, then store them in the docker config like 'docker login'."""
    from ci_oras.emit.render import login_text
    from ci_oras.steps.login import login as login_step

    if not options.username or options.password is None:
        raise UsageError("login needs --username and a password", hint="use -u USER --password-stdin")
    with runtime(options) as run:
        result = login_step(run, registry, options.username, options.password)
    report(options, result, lambda: login_text(result))


@app.command(cls=HelpCommand)
def logout(
    registry: Annotated[str, typer.Argument(metavar="HOST", help="Registry host to forget.")],
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Remove stored credentials for a registry from the docker config."""
    from ci_oras.emit.render import logout_text
    from ci_oras.steps.login import logout as logout_step

    options = Options(output)  # no --emit: logout has no outputs worth a pipeline's attention
    result = logout_step(registry, os.environ)
    report(options, result, lambda: logout_text(result))
