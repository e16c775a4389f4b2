"""Render every CI wrapper file from :mod:`ci_oras.catalog` with the jinja2 templates beside this module.

``python -m ci_oras.wrappers.generate`` writes them into the checkout; ``--check`` writes nothing and exits 1
when a generated file is missing or differs from what the catalog renders (or when ``actions/`` holds an
action the catalog no longer has), listing each one. The generated files are committed, so that ``uses:``,
``include:`` and the Azure extension work straight from the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import jinja2

from ci_oras import catalog

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: The checkout this module lives in (``ci_oras/wrappers/generate.py`` -> the repository root).
DEFAULT_ROOT = Path(__file__).resolve().parents[2]
#: Directories holding only generated files: anything else found there is reported as stale by ``--check``.
GENERATED_DIRS = ("actions",)

_IDENTIFIER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _yaml(value: object) -> str:
    """A YAML scalar: JSON's double-quoted strings are valid YAML and need no further escaping rules."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(str(value), ensure_ascii=False)


def _gh(expression: str) -> str:
    """A GitHub Actions expression: ``gh("inputs.x")`` renders ``${{ inputs.x }}``."""
    return "${{ " + expression + " }}"


def _gh_property(name: str) -> str:
    """``.name``, or ``['name']`` for a name that is not a plain identifier (``artifact-type``)."""
    if name and set(name) <= _IDENTIFIER_CHARS and not name[0].isdigit():
        return "." + name
    return "['" + name + "']"


def _sh_var(item: catalog.Input) -> str:
    """The bash expansion of the environment variable an input arrives in: ``${INPUT_PLAIN_HTTP}``."""
    return "${" + item.env_name + "}"


def _github_input_description(item: catalog.Input) -> str:
    text = item.description
    if item.type is catalog.InputType.BOOLEAN and "true" not in text and "false" not in text:
        text += " true or false."
    if item.type is catalog.InputType.CHOICE:
        text += " One of: " + ", ".join(item.options) + "."
    return text


def _md_cell(text: str) -> str:
    """Text for a markdown table cell: pipes escaped, ``<...>`` kept literal."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _fail_render(message: str) -> NoReturn:
    raise ValueError(message)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        # bash's ${#x} would open jinja2's default comment
        comment_start_string="{##",
        comment_end_string="##}",
    )
    env.filters["yaml"] = _yaml
    env.filters["gh_property"] = _gh_property
    env.filters["sh_var"] = _sh_var
    env.filters["github_input_description"] = _github_input_description
    env.filters["md_cell"] = _md_cell
    env.globals["gh"] = _gh
    env.globals["fail_render"] = _fail_render
    return env


def render_all() -> dict[str, str]:
    """Every generated file: path relative to the repository root -> content."""
    env = environment()
    files: dict[str, str] = {}
    action = env.get_template("github_action.yml.j2")
    for step in catalog.STEPS:
        files[f"actions/{step.name}/action.yml"] = action.render(step=step)
    files["actions/setup/action.yml"] = env.get_template("github_setup_action.yml.j2").render(
        inputs=catalog.SETUP_INPUTS, outputs=catalog.SETUP_OUTPUTS
    )
    files["actions/README.md"] = env.get_template("github_readme.md.j2").render(
        steps=catalog.STEPS, setup_inputs=catalog.SETUP_INPUTS, setup_outputs=catalog.SETUP_OUTPUTS
    )
    return files


def stale(root: Path, files: dict[str, str] | None = None) -> list[str]:
    """What ``--check`` reports: ``missing: P``, ``differs: P`` or ``not generated: P``, sorted."""
    files = render_all() if files is None else files
    problems = []
    for relative, content in files.items():
        path = root / relative
        if not path.is_file():
            problems.append(f"missing: {relative}")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"differs: {relative}")
    for directory in GENERATED_DIRS:
        base = root / directory
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and relative not in files:
                problems.append(f"not generated: {relative}")
    return sorted(problems)


def write(root: Path, files: dict[str, str] | None = None) -> list[str]:
    """Write what differs; return the paths written."""
    files = render_all() if files is None else files
    written = []
    for relative, content in sorted(files.items()):
        path = root / relative
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(relative)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ci_oras.wrappers.generate",
        description="Render the CI wrappers (actions/*/action.yml) from ci_oras/catalog.py.",
    )
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files that are missing, differ or are not "
                             "generated")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="the repository root (default: the checkout holding this module)")
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.check:
        problems = stale(root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("generated wrappers are stale: run `python -m ci_oras.wrappers.generate`", file=sys.stderr)
            return 1
        print("generated wrappers are up to date", file=sys.stderr)
        return 0
    for relative in write(root):
        print(f"wrote {relative}", file=sys.stderr)
    extra = [problem for problem in stale(root) if problem.startswith("not generated:")]
    for problem in extra:
        print(f"{problem} (remove it if the catalog no longer has it)", file=sys.stderr)
    return 1 if extra else 0


if __name__ == "__main__":
    sys.exit(main())
