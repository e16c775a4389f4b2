"""Pictures of a referrers graph: ORAS-style tree, a flat table, and Mermaid for job summaries."""

from __future__ import annotations

from ci_oras.graph.discover import Node

_BRANCH, _LAST, _PIPE, _SPACE = "├── ", "└── ", "│   ", "    "


def render_tree(root: Node, *, annotations: bool = False) -> str:
    """Like ``oras discover``: the root, then per artifact type its referrers' digests, recursively."""
    lines = [root.reference]
    _tree_children(root, "", lines, annotations)
    return "\n".join(lines)


def _tree_children(node: Node, prefix: str, lines: list[str], annotations: bool) -> None:
    groups: dict[str, list[Node]] = {}
    for child in node.children:
        groups.setdefault("[manifests]", []).append(child)
    for referrer in node.referrers:
        groups.setdefault(referrer.descriptor.artifact_type or referrer.descriptor.media_type, []).append(referrer)
    for group_no, (label, members) in enumerate(groups.items()):
        last_group = group_no == len(groups) - 1
        lines.append(prefix + (_LAST if last_group else _BRANCH) + label)
        inner = prefix + (_SPACE if last_group else _PIPE)
        for member_no, member in enumerate(members):
            last = member_no == len(members) - 1
            suffix = " (shown above)" if member.repeated else ""
            platform = f" [{member.descriptor.platform}]" if member.descriptor.platform else ""
            lines.append(inner + (_LAST if last else _BRANCH) + member.descriptor.digest + platform + suffix)
            deeper = inner + (_SPACE if last else _PIPE)
            if annotations and member.descriptor.annotations:
                has_more = bool(member.referrers or member.children)
                for key, value in sorted(member.descriptor.annotations.items()):
                    lines.append(deeper + (_PIPE if has_more else _SPACE) + f"{key}: {value}")
            _tree_children(member, deeper, lines, annotations)


def render_table(root: Node) -> str:
    rows = [("DEPTH", "ARTIFACT TYPE", "DIGEST", "SUBJECT")]
    for depth, node, subject in root.walk():
        rows.append((str(depth), node.descriptor.artifact_type or node.descriptor.media_type, node.descriptor.digest,
                     subject.descriptor.digest if subject else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip() for row in rows
    )


def render_mermaid(root: Node) -> str:
    """A ``graph TD`` Mermaid diagram; digests shortened, labels quoted so any text is safe."""
    ids: dict[str, str] = {}

    def node_id(node: Node) -> str:
        key = node.descriptor.digest
        if key not in ids:
            ids[key] = f"n{len(ids)}"
        return ids[key]

    lines = ["graph TD"]
    lines.append(f'  {node_id(root)}["{_label(root.reference)}"]')
    for _depth, node, subject in root.walk():
        if node.descriptor.digest not in ids:
            kind = node.descriptor.artifact_type or node.descriptor.media_type
            lines.append(f'  {node_id(node)}["{_label(kind)}<br/>{_short(node.descriptor.digest)}"]')
        if subject is not None:
            lines.append(f"  {node_id(subject)} --> {node_id(node)}")
    return "\n".join(lines)


def _short(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:12]}"


def _label(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
