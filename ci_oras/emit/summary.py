"""The markdown job summary of a step: a heading with the step and reference, a table of outputs, a picture.

Shared by every platform (GitHub's step summary, GitLab's summary file, Azure's uploaded summary). Discover
draws its graph with ``render_mermaid``; attach a subject -> referrer edge; promote source -> destination.
Mermaid diagrams larger than GitHub renders are left out with a note.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ci_oras.emit.outputs import step_of

#: GitHub refuses to render Mermaid sources above ~50 000 characters; stay clearly below.
MAX_MERMAID_CHARS = 40_000
#: Long values (a JSON list of many digests) are cut in the table; the output itself is whole.
MAX_CELL_CHARS = 300
_NOT_IN_TABLE = ("result", "graph")


def result_summary(document: Mapping[str, Any], outputs: Mapping[str, str], result: Any = None) -> str:
    step = step_of(document)
    lines = [_heading(step, document), ""]
    if document.get("dryRun"):
        lines += ["_Dry run: nothing was changed._", ""]
    if step == "verify":
        lines += _verify_lines(document)
    if step in _RELEASE_LINES:
        lines += _RELEASE_LINES[step](document)
    rows = [(name, value) for name, value in outputs.items() if name not in _NOT_IN_TABLE]
    if rows:
        lines += ["| output | value |", "| --- | --- |"]
        lines += [f"| {_code(name)} | {_code(_cut(value)) if value else ''} |" for name, value in rows]
        lines.append("")
    diagram = _mermaid(step, document, result)
    if diagram is not None:
        if len(diagram) <= MAX_MERMAID_CHARS:
            lines += ["```mermaid", diagram, "```", ""]
        else:
            lines += ["_The graph is too large to draw here; the `graph` output holds it as JSON._", ""]
    return "\n".join(lines) + "\n"


def error_summary(step: str, message: str) -> str:
    return "\n".join([f"### ci-oras {step}: failed", "", _code(message), "", ""])


def _heading(step: str, document: Mapping[str, Any]) -> str:
    if step.startswith("release-"):
        return f"### ci-oras release {step.removeprefix('release-')} {_code(str(document.get('release', '')))}"
    if step == "promote":
        return f"### ci-oras promote {_code(str(document.get('source', '')))} → " \
               f"{_code(str(document.get('destination', '')))}"
    reference = document.get("reference") or document.get("repository") or document.get("registry") or ""
    return f"### ci-oras {step} {_code(str(reference))}" if reference else f"### ci-oras {step}"


def _verify_lines(document: Mapping[str, Any]) -> list[str]:
    if document.get("ok"):
        lines = ["**Passed**: every requirement holds.", ""]
    else:
        missing = ", ".join(_code(str(spec)) for spec in document.get("missing", []))
        lines = [f"**Failed**: missing {missing}.", ""]
    requirements = document.get("requirements", [])
    if requirements:
        lines += ["| requirement | platform | found | needed | |", "| --- | --- | --- | --- | --- |"]
        for item in requirements:
            platform = _code(str(item["platform"])) if item.get("platform") else ""
            mark = "✅" if item.get("satisfied") else "❌"
            lines.append(f"| {_code(str(item.get('spec', '')))} | {platform} | {len(item.get('found', []))} "
                         f"| {item.get('needed', '')} | {mark} |")
        lines.append("")
    if "signatures" in document:
        lines += _signature_lines(document)
    return lines


def _image_cell(image: Mapping[str, Any]) -> str:
    return f"{_code(str(image.get('id', '')))} {_code(_cut(str(image.get('destination', ''))))}"


def _release_plan_lines(document: Mapping[str, Any]) -> list[str]:
    """Each image with its gate: the one to fix is named with what it misses, not only by its entry number."""
    images = document.get("images", [])
    failed = [image for image in images if not image.get("gate", {}).get("ok")]
    lines = [f"**Gate failed** for {len(failed)} of {len(images)} images: nothing will be copied." if failed else
             f"**Planned**: {len(images)} images over {len(document.get('shards', []))} shards.", ""]
    lines += ["| image | source | shard | to copy | gate |", "| --- | --- | --- | --- | --- |"]
    for image in images:
        gate = image.get("gate", {})
        verdict = "✅" if gate.get("ok") else "❌ missing " + ", ".join(_code(str(s)) for s in gate.get("missing", []))
        source = f"{image.get('source', '')}@{str(image.get('digest', ''))[:19]}"
        estimate = image.get("estimate", {})
        lines.append(f"| {_image_cell(image)} | {_code(_cut(source))} | {image.get('shard', '')} "
                     f"| {estimate.get('manifests', 0)} manifests, {estimate.get('bytes', 0)} bytes | {verdict} |")
    return [*lines, ""]


def _release_copy_lines(document: Mapping[str, Any]) -> list[str]:
    lines = [f"Shard {document.get('shard', '')}: {len(document.get('images', []))} images copied by digest, "
             "no tag moved.", "", "| image | copied | mounted | already there | bytes |",
             "| --- | --- | --- | --- | --- |"]
    for image in document.get("images", []):
        copied, skipped = image.get("copied", {}), image.get("skipped", {})
        lines.append(f"| {_image_cell(image)} | {copied.get('manifests', 0)} manifests, {copied.get('blobs', 0)} "
                     f"blobs | {image.get('mounted', 0)} | {skipped.get('manifests', 0)} manifests, "
                     f"{skipped.get('blobs', 0)} blobs | {image.get('bytes', 0)} |")
    return [*lines, ""]


def _release_commit_lines(document: Mapping[str, Any]) -> list[str]:
    images = document.get("images", [])
    incomplete = [image for image in images if not image.get("complete")]
    lines = [f"**Incomplete**: {len(incomplete)} of {len(images)} graphs; no tag moved." if incomplete else
             f"**Committed**: {len(images)} graphs complete, {document.get('tagsWritten', 0)} tags moved.", "",
             "| image | tags | graph |", "| --- | --- | --- |"]
    for image in images:
        missing = image.get("missing", [])
        verdict = "✅ complete" if not missing else f"❌ {len(missing)} manifests missing"
        tags = ", ".join(_code(str(tag)) for tag in image.get("tags", []))
        lines.append(f"| {_image_cell(image)} | {tags} | {verdict} |")
    return [*lines, ""]


_RELEASE_LINES = {"release-plan": _release_plan_lines, "release-copy": _release_copy_lines,
                  "release-commit": _release_commit_lines}


def _signature_lines(document: Mapping[str, Any]) -> list[str]:
    """Each signature judged under the trust policy: verified, or the check that refused it and why."""
    signatures = document.get("signatures", [])
    lines = [f"Signatures judged by the trust policy for {_code(str(document.get('trustScope', '')))}: "
             f"{len(signatures) or 'none found'}.", ""]
    if signatures:
        lines += ["| signature | of | result | signer | reason |", "| --- | --- | --- | --- | --- |"]
        for item in signatures:
            mark = "❌" if item.get("result") == "failed" else "✅"
            reason = f"{item['failedCheck']}: {item.get('reason', '')}" if item.get("failedCheck") else ""
            signer = str(item.get("signer", ""))
            lines.append(f"| {_code(str(item.get('digest', '')))} | {_code(str(item.get('subject', '')))} "
                         f"| {mark} {item.get('result', '')} | {_code(_cut(signer)) if signer else ''} "
                         f"| {_code(_cut(reason)) if reason else ''} |")
        lines.append("")
    return lines


def _mermaid(step: str, document: Mapping[str, Any], result: Any) -> str | None:
    from ci_oras.emit.graph import render_mermaid

    if step == "discover":
        root = getattr(result, "root", None)
        return render_mermaid(root) if root is not None else None
    if step in ("attach", "attach-sbom", "attach-signature", "sign"):
        return render_mermaid(_attach_graph(document))
    if step == "promote":
        return _promote_graph(document)
    return None


def _attach_graph(document: Mapping[str, Any]) -> Any:
    """The subject with its one new referrer, as a discover graph, so the picture looks the same."""
    from ci_oras.graph.discover import Node
    from ci_oras.oci.descriptor import Descriptor

    subject = document["subject"]
    repository = str(document["reference"]).rsplit("@", 1)[0]
    root = Node(Descriptor(media_type=subject["mediaType"], digest=subject["digest"], size=subject["size"]),
                f"{repository}@{subject['digest']}")
    referrer = Descriptor(media_type=document["mediaType"], digest=document["digest"], size=document["size"],
                          artifact_type=document.get("artifactType"))
    root.referrers.append(Node(referrer, str(document["reference"])))
    return root


def _promote_graph(document: Mapping[str, Any]) -> str:
    from ci_oras.emit.graph import _label, _short

    copied, skipped = document["copied"], document["skipped"]
    verb = "would copy" if document.get("dryRun") else "copied"
    edge = (f"{verb} {copied['manifests']} manifests, {copied['blobs']} blobs; mounted {document['mounted']}; "
            f"already there {skipped['manifests'] + skipped['blobs']}")
    source = _label(str(document["source"]))
    destination = f'{_label(str(document["destination"]))}<br/>{_short(str(document["digest"]))}'
    return f'graph LR\n  src["{source}"] -->|"{_label(edge)}"| dst["{destination}"]'


def _cut(value: str) -> str:
    return value if len(value) <= MAX_CELL_CHARS else value[:MAX_CELL_CHARS] + "…"


def _code(text: str) -> str:
    """A markdown code span safe inside a table cell: one line, ``|`` escaped, fenced past any backticks."""
    text = " ".join(text.splitlines()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
