"""One module per step; importing one registers its commands on ``ci_oras.cli.app.app``.

Every module imports only ``ci_oras.cli.app`` (and ``ci_oras.errors``) at module level: steps, stores, httpx and
renderers are imported inside the command body, so registering all of them for ``--help`` stays cheap. The
order here is the order ``--help`` lists them in.
"""

from ci_oras.cli.commands import (  # noqa: F401
    push,
    attach,
    sign,
    discover,
    pull,
    manifest,
    tags,
    delete,
    login,
    promote,
    verify,
)
