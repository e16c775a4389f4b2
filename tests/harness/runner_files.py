"""The files a CI runner reads back after a step, read the way the runner reads them.

The emitters write them; a test that parsed them with the emitter's own rules could not catch a value the
runner would split or cut, so the runner's reading is written out here once.
"""

from __future__ import annotations

__all__ = ["parse_github_outputs"]


def parse_github_outputs(text: str) -> dict[str, str]:
    """Read ``$GITHUB_OUTPUT`` as the runner does: ``name=value`` or ``name<<DELIM`` … ``DELIM`` (a later
    value of a name wins)."""
    lines = text.split("\n")
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            out[line[:equals]] = line[equals + 1:]
            continue
        name, delimiter = line[:heredoc], line[heredoc + 2:]
        value: list[str] = []
        while lines[i] != delimiter:
            value.append(lines[i])
            i += 1
        i += 1
        out[name] = "\n".join(value)
    return out
