"""How many generated documents each parser property test fed its parser, printed after the run.

The property tests (``tests/unit/test_parser_shapes.py``) record the count as the ``shapes`` user property
of their report; user properties travel from xdist workers to the controller, so the table is complete under
``-n``. The root conftest calls :func:`summary` (the controller loads only that conftest).
"""

from __future__ import annotations

import pytest


def summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = [(report.nodeid.rpartition("::")[2], value)
            for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
            if report.when == "call"
            for name, value in report.user_properties if name == "shapes"]
    if not rows:
        return
    terminalreporter.section("generated shapes per parser")
    for test, count in sorted(rows):
        terminalreporter.write_line(f"{count:6d}  {test}")
    terminalreporter.write_line(f"{sum(int(count) for _test, count in rows):6d}  in all")
