"""One module per step; importing one registers its commands on ``ci_oras.cli.app.app``.

No command module is imported here at load time: :func:`load` imports only the module of the command being
run, so ``ci-oras attach …`` pays neither for the other modules nor for typer turning their functions into
click commands (about 25 ms together). ``--help``, no command and an unknown one load every module, so the
list and the "no such command" answer are the same as with everything loaded.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

#: The modules in the order ``--help`` lists their commands. A new command module goes here and its command
#: names in ``COMMANDS`` (tests/unit/test_startup.py checks both against what the modules register).
MODULES = ("push", "attach", "sign", "discover", "pull", "manifest", "tags", "delete", "login", "promote", "verify",
           "release")
#: Each command name (as typed after ``ci-oras``) and the module that registers it.
COMMANDS = {
    "push": "push", "attach": "attach", "attach-sbom": "attach", "attach-signature": "attach", "sign": "sign",
    "discover": "discover", "pull": "pull", "manifest": "manifest", "tags": "tags", "delete": "delete",
    "login": "login", "logout": "login", "promote": "promote", "verify": "verify", "release": "release",
}
_POSITION = {module: index for index, module in enumerate(MODULES)}
#: In-process runs in parallel threads (the test harness) load modules and reorder the list together.
_LOCK = threading.Lock()


def load(name: str | None) -> typer.Typer:
    """Register the commands of ``name``'s module, or of every module when ``name`` names no command.

    Returns the app. The registration list is kept in ``MODULES`` order whatever was loaded first, so a process
    that runs several commands (tests, in one process) lists them in the same order as a fresh one. It is
    replaced, not sorted in place, because another thread may be building its command from it.
    """
    from ci_oras.cli.app import app

    module = COMMANDS.get(name or "")
    with _LOCK:
        for each in (module,) if module else MODULES:
            # The import statement's own path, not importlib.import_module: only that path shows in
            # ``python -X importtime``, the tool to measure start-up with.
            __import__(f"{__name__}.{each}")
        app.registered_commands = sorted(app.registered_commands, key=_module_position)
    return app


def _module_position(info: typer.models.CommandInfo) -> int:
    callback = info.callback
    return _POSITION[(callback.__module__ if callback else "").rpartition(".")[2]]
