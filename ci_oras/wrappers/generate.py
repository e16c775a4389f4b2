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
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ci_oras import __version__, catalog
from ci_oras.emit.outputs import camel_case

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: The checkout this module lives in (``ci_oras/wrappers/generate.py`` -> the repository root).
DEFAULT_ROOT = Path(__file__).resolve().parents[2]
#: Where the hash-pinned runtime dependencies the wrappers install are (runtime.lock and its smaller variants,
#: written by requirements/lock.py; a step's ``lock`` names the one its templates carry).
LOCKS = DEFAULT_ROOT / "requirements"
#: Directories holding only generated files: anything else found there is reported as stale by ``--check``.
GENERATED_DIRS = ("actions", "gitlab")

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


# --- GitLab ------------------------------------------------------------------------------------------------

#: The default ``image`` input of the GitLab templates, pinned by digest like everything else a job fetches (a
#: moved tag would change what runs in a supply-chain step); bump it with the release.
GITLAB_IMAGE = "python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea"
_GITLAB_PREFIX = "CI_ORAS_INPUT_"


def _gitlab_kind(item: catalog.Input) -> str:
    """How a GitLab ``spec:inputs`` entry is typed.

    ``boolean`` (GitLab ``type: boolean``, so ``plain-http: true`` is written as YAML's boolean), ``options``
    (a string GitLab restricts to fixed values: a CHOICE) or ``string`` (free text, reaching the script only
    as a job variable).
    """
    if item.type is catalog.InputType.BOOLEAN:
        return "boolean"
    if item.type is catalog.InputType.CHOICE:
        return "options"
    return "string"


def _gitlab_options(item: catalog.Input) -> tuple[str, ...]:
    return item.options


def _gitlab_var(item: catalog.Input) -> str:
    """The job variable a free-text input arrives in: ``CI_ORAS_INPUT_ARTIFACT_TYPE``."""
    return _GITLAB_PREFIX + item.name.upper().replace("-", "_")


def _gitlab_word(item: catalog.Input) -> str:
    """The shell variable a validated (boolean or fixed-option) input is assigned to: ``plain_http``."""
    return item.name.replace("-", "_")


def _gitlab_input_description(item: catalog.Input) -> str:
    text = item.description
    if item.multiline:
        text = text.rstrip(".") + " (a multi-line string)."
    return text


def _gitlab_read_lines(item: catalog.Input, action: str) -> str:
    """POSIX sh running ``action`` (which uses ``$line``) for each trimmed non-blank line of the input."""
    var = "$" + _gitlab_var(item)
    lines = []
    if item.required:
        lines.append("count=0")
    lines += [
        'while IFS= read -r line || [ -n "$line" ]; do',
        '  line="${line#"${line%%[![:space:]]*}"}"',
        '  line="${line%"${line##*[![:space:]]}"}"',
        '  [ -n "$line" ] || continue',
        f"  {action}",
    ]
    if item.required:
        lines.append("  count=$((count + 1))")
    lines += ["done <<CI_ORAS_LINES", var, "CI_ORAS_LINES"]
    if item.required:
        lines.append(f"[ \"$count\" -gt 0 ] || fail \"input '{item.name}' needs at least one line\"")
    return "\n".join(lines)


def _gitlab_option(item: catalog.Input) -> str:
    """POSIX sh appending the options of ``item`` to ``"$@"`` (credentials are handled by the template)."""
    maps = item.maps
    if maps in (catalog.Maps.PASSWORD_STDIN, catalog.Maps.WRAPPER) or item.name == "username":
        return f"# {item.name}: see below" if maps is not catalog.Maps.WRAPPER else f"# {item.name}: read below"
    kind = _gitlab_kind(item)
    var = '"$' + _gitlab_var(item) + '"'
    word = '"$' + _gitlab_word(item) + '"'
    if maps is catalog.Maps.OPTION_PER_LINE:
        return _gitlab_read_lines(item, f'set -- "$@" {item.flag} "$line"')
    if maps is catalog.Maps.OPTION and kind == "options":
        return f'if [ -n {word} ]; then set -- "$@" {item.flag} {word}; fi'
    if maps is catalog.Maps.OPTION:
        lines = []
        if item.required:
            lines.append(f"[ -n {var} ] || fail \"input '{item.name}' is required\"")
        if item.type is catalog.InputType.INTEGER:
            lines += [f"case {var} in",
                      f"  *[!0-9]*) fail \"input '{item.name}' must be a whole number\" ;;",
                      "esac"]
        if item.type is catalog.InputType.PATH:
            # a quoted line break is the only POSIX sh pattern for one; the value itself is never printed
            lines += [f"case {var} in",
                      '  *"', f'"*|*-----BEGIN*) fail "input \'{item.name}\' must be the path of a file, not its '
                              'content" ;;',
                      "esac"]
        if item.type is catalog.InputType.ENV_NAME:
            lines += [f"case {var} in",
                      f"  [!A-Za-z_]*|*[!A-Za-z0-9_]*) fail \"input '{item.name}' must be the name of a variable "
                      "holding the secret, not its value\" ;;",
                      "esac"]
        lines.append(f'if [ -n {var} ]; then set -- "$@" {item.flag} {var}; fi')
        return "\n".join(lines)
    if maps is catalog.Maps.SWITCH:
        return f'if [ {word} = true ]; then set -- "$@" {item.flag}; fi'
    raise ValueError(f"cannot map input {item.name} to GitLab")


def _gitlab_argument(item: catalog.Input) -> str:
    """POSIX sh appending the positional arguments of ``item`` to ``"$@"``."""
    var = '"$' + _gitlab_var(item) + '"'
    if item.maps is catalog.Maps.ARGUMENTS:
        return _gitlab_read_lines(item, 'set -- "$@" "$line"')
    lines = []
    if item.required:
        lines.append(f"[ -n {var} ] || fail \"input '{item.name}' is required\"")
    lines.append(f'set -- "$@" {var}')
    return "\n".join(lines)


def _lock_requirements(name: str) -> list[str]:
    """The requirements of the lock ``name`` under requirements/ (a step's ``lock``), one line each
    (``name==version ; marker --hash=…``)."""
    text = (LOCKS / name).read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if any("'" in line for line in lines):
        raise ValueError("a lock line holds a single quote, which the templates' shell quoting cannot carry")
    return lines


def _fail_render(message: str) -> NoReturn:
    raise ValueError(message)


def environment() -> jinja2.Environment:
    # jinja2 is the ``wrappers`` extra, not a runtime dependency: imported only when wrappers are rendered
    import jinja2

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
    env.filters["json_pretty"] = _json_pretty
    env.filters["azure_variable"] = camel_case
    env.filters["gitlab_kind"] = _gitlab_kind
    env.filters["gitlab_options"] = _gitlab_options
    env.filters["gitlab_var"] = _gitlab_var
    env.filters["gitlab_word"] = _gitlab_word
    env.filters["gitlab_input_description"] = _gitlab_input_description
    env.globals["gitlab_option"] = _gitlab_option
    env.globals["gitlab_argument"] = _gitlab_argument
    env.globals["gh"] = _gh
    env.globals["fail_render"] = _fail_render
    # the self-contained GitLab and Azure YAML templates carry the lock inline (lock_install.sh.j2)
    env.globals["lock_requirements"] = _lock_requirements
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
    files["actions/install.sh"] = env.get_template("github_install.sh.j2").render()
    files["actions/README.md"] = env.get_template("github_readme.md.j2").render(
        steps=catalog.STEPS, setup_inputs=catalog.SETUP_INPUTS, setup_outputs=catalog.SETUP_OUTPUTS
    )
    job = env.get_template("gitlab_job.yml.j2")
    for step in catalog.STEPS:
        files[f"gitlab/{step.name}.yml"] = job.render(step=step, image=GITLAB_IMAGE, version=__version__)
    files["gitlab/README.md"] = env.get_template("gitlab_readme.md.j2").render(
        steps=catalog.STEPS, image=GITLAB_IMAGE, version=__version__)
    return files


# --- Azure Pipelines: azure-pipelines/ (extension manifest, one task per step, YAML step templates) ------

#: Generated-only directories of the Azure extension (azure-pipelines/ itself also holds hand-written files).
AZURE_GENERATED_DIRS = ("azure-pipelines/tasks", "azure-pipelines/templates")
AZURE_PUBLISHER = "ci-oras"
AZURE_EXTENSION_ID = "ci-oras"
#: Task ids are fixed forever once published: derived from the task name, never random.
_AZURE_ID_NAMESPACE = uuid.UUID("8c1f6f3e-5d3a-4b8e-9a6f-0c2b7d4e1a90")
#: Task inputs the Azure handler reads besides the catalog's.
AZURE_EXTRA_INPUTS = (
    {
        "name": "dockerRegistryServiceConnection",
        "type": "connectedService:dockerregistry",
        "label": "Docker registry service connection",
        "required": False,
        "helpMarkDown": "A Docker registry service connection: its username and password are sent only to the "
                        "registry its URL names (for example the source of a promote), as CI_ORAS_USERNAME/"
                        "CI_ORAS_PASSWORD with CI_ORAS_REGISTRY. The username and password inputs go to the "
                        "registry the step names (promote: the destination) and win where both apply.",
    },
    {
        "name": "package",
        "type": "string",
        "label": "ci-oras package",
        "defaultValue": "",
        "required": False,
        "helpMarkDown": "pip requirement to install when no ci-oras wheel is bundled with the task "
                        "(empty: use ci-oras from PATH).",
    },
)


def _json_pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def azure_task_name(step: catalog.Step) -> str:
    return "CiOras" + step.camel_name


def _ci_oras_version() -> str:
    from ci_oras import __version__

    return __version__


def _azure_version() -> dict[str, int]:
    major, minor, patch = (int(part) for part in _ci_oras_version().split(".")[:3])
    return {"Major": 0, "Minor": major * 1000 + minor, "Patch": patch}


def _azure_input(item: catalog.Input) -> dict[str, object]:
    data: dict[str, object] = {"name": item.camel_name, "label": item.camel_name}
    if item.type is catalog.InputType.BOOLEAN:
        data["type"] = "boolean"
    elif item.type is catalog.InputType.CHOICE:
        data["type"] = "pickList"
        data["options"] = {option: option for option in item.options}
    elif item.type is catalog.InputType.LINES:
        data["type"] = "multiLine"
    else:
        data["type"] = "string"
    if item.default is not None:
        data["defaultValue"] = item.default
    data["required"] = item.required
    text = item.description
    if item.secret:
        text += " Use a secret variable: $(registryPassword)."
    data["helpMarkDown"] = text
    return data


#: Stands in a step's index.js for ``catalog.CONNECTION``, which every step has: the shared handler holds those
#: inputs once (``CONNECTION_INPUTS`` in ci-oras-task.js) and puts them where the mark is, in catalog order.
AZURE_CONNECTION_MARK = "connection"


def _azure_handler_input(item: catalog.Input) -> dict[str, object]:
    """One input as the shared handler reads it."""
    return {
        "name": item.name, "azure": item.camel_name, "maps": item.maps.value, "type": item.type.value,
        "flag": item.flag, "required": item.required, "default": item.default, "options": list(item.options),
    }


def _azure_spec(step: catalog.Step) -> dict[str, object]:
    """What the shared handler needs to know about a step (embedded in its index.js)."""
    size = len(catalog.CONNECTION)
    start = next((at for at in range(len(step.inputs)) if step.inputs[at:at + size] == catalog.CONNECTION), None)
    if start is None:
        raise ValueError(f"step {step.name}: its inputs lack catalog.CONNECTION, which the Azure handler adds")
    soft = step.soft_failure
    return {
        "name": step.name,
        "command": list(step.command),
        "inputs": [_azure_handler_input(item) for item in step.inputs[:start]] + [AZURE_CONNECTION_MARK]
                  + [_azure_handler_input(item) for item in step.inputs[start + size:]],
        "softFailure": None if soft is None else {
            "exitCode": soft.exit_code, "input": soft.input, "message": soft.message,
        },
    }


def _azure_task(step: catalog.Step) -> dict[str, object]:
    first = step.arguments[0].camel_name if step.arguments else ""
    return {
        "$schema": "https://raw.githubusercontent.com/Microsoft/azure-pipelines-task-lib/master/tasks.schema.json",
        "id": str(uuid.uuid5(_AZURE_ID_NAMESPACE, azure_task_name(step))),
        "name": azure_task_name(step),
        "friendlyName": f"ci-oras {step.name}",
        "description": step.description,
        "helpMarkDown": "Generated from ci_oras/catalog.py; see the ci-oras README, section CI platforms.",
        "category": "Utility",
        "author": "ci-oras",
        "version": _azure_version(),
        "minimumAgentVersion": "3.232.1",
        "instanceNameFormat": f"ci-oras {step.name}" + (f" $({first})" if first else ""),
        "inputs": [_azure_input(item) for item in step.inputs] + list(AZURE_EXTRA_INPUTS),
        "outputVariables": [
            {"name": camel_case(output.name), "description": output.description} for output in step.outputs
        ],
        "execution": {"Node20_1": {"target": "index.js", "argumentFormat": ""}},
    }


def _azure_extension() -> dict[str, object]:
    from ci_oras import __version__

    return {
        "manifestVersion": 1,
        "id": AZURE_EXTENSION_ID,
        "publisher": AZURE_PUBLISHER,
        "version": __version__,
        "name": "ci-oras",
        "description": "OCI artifacts, SBOMs, signatures and referrers in pipelines: push, attach, discover, "
                       "verify, promote and delete with ci-oras.",
        "public": False,
        "categories": ["Azure Pipelines"],
        "targets": [{"id": "Microsoft.VisualStudio.Services"}],
        "files": [{"path": f"tasks/{azure_task_name(step)}V0"} for step in catalog.STEPS],
        "contributions": [
            {
                "id": f"{azure_task_name(step)}V0",
                "type": "ms.vss-distributed-task.task",
                "targets": ["ms.vss-distributed-task.tasks"],
                "properties": {"name": f"tasks/{azure_task_name(step)}V0"},
            }
            for step in catalog.STEPS
        ],
    }


def render_azure() -> dict[str, str]:
    """The Azure Pipelines files: ``azure-pipelines/vss-extension.json``, tasks and YAML step templates."""
    env = environment()
    files: dict[str, str] = {}
    as_json = env.get_template("azure_json.j2")
    handler = env.get_template("azure_handler.js.j2").render(
        connection=[_azure_handler_input(item) for item in catalog.CONNECTION], mark=AZURE_CONNECTION_MARK)
    index = env.get_template("azure_index.js.j2")
    template = env.get_template("azure_template.yml.j2")
    script = env.get_template("azure_script.sh.j2")
    files["azure-pipelines/vss-extension.json"] = as_json.render(data=_azure_extension())
    # one handler for every task: azure-pipelines/stage.sh copies it into each task folder it stages
    files["azure-pipelines/ci-oras-task.js"] = handler
    for step in catalog.STEPS:
        folder = f"azure-pipelines/tasks/{azure_task_name(step)}V0"
        files[f"{folder}/task.json"] = as_json.render(data=_azure_task(step))
        files[f"{folder}/index.js"] = index.render(step=step, task_name=azure_task_name(step),
                                                   spec=_azure_spec(step))
        files[f"azure-pipelines/templates/{step.name}.yml"] = template.render(
            step=step, default_name=azure_task_name(step), script=script.render(step=step).rstrip("\n"),
            version=_ci_oras_version(),
            # a step reading a secret from a variable it names needs that variable mapped into its env
            env_names=[item.camel_name for item in step.inputs if item.type is catalog.InputType.ENV_NAME],
        )
    return files


def render_generated() -> dict[str, str]:
    """Everything ``--check`` compares and ``write`` writes."""
    return {**render_all(), **render_azure()}


def stale(root: Path, files: dict[str, str] | None = None) -> list[str]:
    """What ``--check`` reports: ``missing: P``, ``differs: P`` or ``not generated: P``, sorted."""
    files = render_generated() if files is None else files
    problems = []
    for relative, content in files.items():
        path = root / relative
        if not path.is_file():
            problems.append(f"missing: {relative}")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"differs: {relative}")
    for directory in GENERATED_DIRS + AZURE_GENERATED_DIRS:
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
    files = render_generated() if files is None else files
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
        description="Render the CI wrappers (actions/*/action.yml, gitlab/*.yml) from ci_oras/catalog.py.",
    )
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files that are missing, differ or are not "
                             "generated")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="the repository root (default: the checkout holding this module)")
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        import jinja2  # noqa: F401
    except ImportError:
        print("rendering the wrappers needs jinja2: pip install -e '.[wrappers]'", file=sys.stderr)
        return 2
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
