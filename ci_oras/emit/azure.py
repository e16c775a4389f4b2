"""Azure Pipelines: ``##vso[…]`` logging commands (output variables, issues, secrets, the summary).

Escaping follows azure-pipelines-task-lib: in property values ``%`` -> ``%AZP25``, CR -> ``%0D``, LF ->
``%0A``, ``;`` -> ``%3B``, ``]`` -> ``%5D``; in the data after ``]`` only ``%``, CR and LF. The summary is a
markdown file under ``$AGENT_TEMPDIRECTORY`` (else the system temp directory) handed to
``task.uploadsummary``. Commands go to stderr (see ``ci_oras.emit.channel``).
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from ci_oras.emit.base import Emitter
from ci_oras.emit.outputs import camel_case
from ci_oras.errors import UsageError


class AzureEmitter(Emitter):
    platform = "azure"

    def mask(self, secret: str) -> None:
        self.command(f"##vso[task.setsecret]{escape_data(secret)}")

    def annotate(self, level: str, message: str) -> None:
        self.command(f"##vso[task.logissue type={level}]{escape_data(message)}")

    def write_outputs(self, outputs: Mapping[str, str]) -> None:
        for name, value in outputs.items():
            self.command(f"##vso[task.setvariable variable={escape_property(camel_case(name))};isOutput=true]"
                         f"{escape_data(value)}")

    def write_summary(self, markdown: str) -> None:
        directory = Path(self.env.get("AGENT_TEMPDIRECTORY") or tempfile.gettempdir())
        slug = re.sub(r"[^a-z0-9-]+", "-", self.step.lower()).strip("-") or "step"
        path = directory / f"ci-oras-{slug}-{uuid.uuid4().hex[:12]}.md"
        try:
            path.write_text(markdown, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the job summary to {path}: {exc.strerror or exc}",
                             hint="check AGENT_TEMPDIRECTORY") from exc
        self.command(f"##vso[task.uploadsummary]{escape_data(str(path))}")


def escape_data(text: str) -> str:
    return text.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(";", "%3B").replace("]", "%5D")
