"""The CLI's time-limit defaults are the library's: the help text and the README must not drift from them."""

from __future__ import annotations

from ci_oras.cli import app as cli  # the module: shared options and their defaults
from ci_oras.registry.transport import TransportOptions


def test_cli_time_limit_defaults_match_the_transport() -> None:
    options = TransportOptions()
    assert (cli.REQUEST_TIMEOUT, cli.MIN_RATE, cli.MIN_RATE_WINDOW) == (
        options.request_timeout, options.min_rate, options.min_rate_window)
