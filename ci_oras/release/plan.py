"""``release plan``: pin every image of a release to a digest, gate it, size its graph, and split the work.

The plan is what the copy jobs and the commit job read, so it holds everything they need and nothing that can
move: each image by digest (a source tag moved after planning changes nothing), its graph as planned (the
manifests and which referrers list under which subject, for the commit's completeness check), the
destination tags, the copy filters, and the shard it belongs to.

Shards are balanced by cost, longest first onto the least loaded shard (greedy, deterministic): an image costs
its bytes still to copy plus ``REQUEST_COST_BYTES`` per request it will make, because at registry distances a
request's round trip takes about as long as moving that many bytes (a few milliseconds at 100 MB/s). Only
shards that receive work are emitted, so a matrix never runs an empty job.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_oras.errors import UsageError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.reference import Reference
from ci_oras.release.spec import CopyFilters, ImageEntry, PatternEntry, ReleaseFile, refuse_conflicts

if TYPE_CHECKING:
    from ci_oras.oci.shape import Fields

SCHEMA = "ci-oras/release-plan/v1"
#: What one request weighs against bytes when shards are balanced (module docstring).
REQUEST_COST_BYTES = 256 * 1024
#: Images one release may expand to, tag patterns included.
MAX_IMAGES = 10_000
MAX_SHARDS = 256


@dataclass(frozen=True)
class PlannedGraph:
    """The graph as planned: every manifest (root first), and the referrers listed under each subject that has
    any."""

    manifests: tuple[Descriptor, ...]
    referrers: dict[str, tuple[str, ...]]

    def manifest(self, digest: str) -> Descriptor:
        return next(desc for desc in self.manifests if desc.digest == digest)

    def to_dict(self) -> dict[str, Any]:
        return {"manifests": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size} for d in self.manifests],
                "referrers": {subject: list(listed) for subject, listed in self.referrers.items()}}


@dataclass(frozen=True)
class Estimate:
    """What the copy will do, as a dry run against the destination saw it when planning."""

    bytes: int
    blobs: int
    manifests: int

    @property
    def requests(self) -> int:
        """A blob upload is a check, a start and a PUT; a manifest a check and a PUT."""
        return 3 * self.blobs + 2 * self.manifests

    @property
    def cost(self) -> int:
        return self.bytes + REQUEST_COST_BYTES * self.requests

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "blobs": self.blobs, "manifests": self.manifests, "requests": self.requests}


@dataclass(frozen=True)
class GateResult:
    required: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "required": list(self.required), "missing": list(self.missing)}


@dataclass(frozen=True)
class PlannedImage:
    id: str
    source: str
    source_tag: str | None
    digest: str
    media_type: str
    destination: str
    tags: tuple[str, ...]
    filters: CopyFilters
    gate: GateResult
    graph: PlannedGraph
    estimate: Estimate
    shard: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "sourceTag": self.source_tag,
            "digest": self.digest,
            "mediaType": self.media_type,
            "destination": self.destination,
            "tags": list(self.tags),
            "platform": self.filters.platform,
            "artifactTypes": list(self.filters.artifact_types),
            "excludeArtifactTypes": list(self.filters.exclude_artifact_types),
            "gate": self.gate.to_dict(),
            "graph": self.graph.to_dict(),
            "estimate": self.estimate.to_dict(),
            "shard": self.shard,
        }


@dataclass(frozen=True)
class Plan:
    release: str
    images: tuple[PlannedImage, ...]
    shards_asked: int
    shards: tuple[int, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(image.gate.ok for image in self.images)

    @property
    def failed(self) -> tuple[str, ...]:
        """The ids of the images whose gate failed."""
        return tuple(image.id for image in self.images if not image.gate.ok)

    def document(self) -> dict[str, Any]:
        totals = []
        for shard in self.shards:
            mine = [image for image in self.images if image.shard == shard]
            totals.append({"shard": shard, "images": len(mine), "bytes": sum(i.estimate.bytes for i in mine),
                           "requests": sum(i.estimate.requests for i in mine)})
        return {
            "schema": SCHEMA,
            "release": self.release,
            "ok": self.ok,
            "failed": list(self.failed),
            "shardsAsked": self.shards_asked,
            "shards": totals,
            "matrix": {"shard": list(self.shards)},
            "images": [image.to_dict() for image in self.images],
        }


def source_key(image: PlannedImage) -> tuple[str, str]:
    """What one read of the source serves: its repository and the pinned digest."""
    return image.source, image.digest


def balance(images: Sequence[PlannedImage], shards: int) -> tuple[tuple[PlannedImage, ...], tuple[int, ...]]:
    """Assign shards 1..``shards``, costliest image first onto the least loaded shard (ties: lowest number),
    images of one source together (``source_key``); returns the images in plan order and the shards that got
    any."""
    if not 1 <= shards <= MAX_SHARDS:
        raise UsageError(f"--shards {shards} is out of range", hint=f"give 1 to {MAX_SHARDS}")
    loads = [(0, shard) for shard in range(1, shards + 1)]
    heapq.heapify(loads)
    # Images of one source (repository and digest) going to several destinations stay together: their copy
    # reads each source blob once (``release copy``), which it can only do within one job.
    groups: dict[tuple[str, str], list[int]] = {}
    for number, image in enumerate(images):
        groups.setdefault(source_key(image), []).append(number)
    costs = {key: sum(images[n].estimate.cost for n in members) for key, members in groups.items()}
    assigned: dict[int, int] = {}
    for key in sorted(groups, key=lambda key: (-costs[key], groups[key][0])):
        load, shard = heapq.heappop(loads)
        for number in groups[key]:
            assigned[number] = shard
        heapq.heappush(loads, (load + costs[key], shard))
    from dataclasses import replace

    placed = tuple(replace(image, shard=assigned[number]) for number, image in enumerate(images))
    return placed, tuple(sorted({image.shard for image in placed}))


@dataclass(frozen=True)
class Pinned:
    """One image of the release, its source resolved to a digest."""

    entry: ImageEntry | PatternEntry
    id: str
    source: Reference
    source_tag: str | None
    tags: tuple[str, ...]


def expand(release: ReleaseFile, list_tags: Callable[[Reference], list[str]]) -> list[Pinned]:
    """Every image the release names, tag patterns expanded against their repository's tags (sorted)."""
    images: list[Pinned] = []
    for entry in release.entries:
        if isinstance(entry, ImageEntry):
            images.append(Pinned(entry, entry.where, entry.source, entry.source.tag, entry.tags))
            continue
        matched = sorted(tag for tag in list_tags(entry.repository) if entry.pattern.fullmatch(tag))
        if not matched:
            raise UsageError(f"{entry.where}: no tag of {entry.repository} matches {entry.pattern.pattern!r}",
                             hint="check the pattern; it must match the whole tag")
        images.extend(Pinned(entry, f"{entry.where}:{tag}", entry.repository.with_tags((tag,)), tag, (tag,))
                      for tag in matched)
        if len(images) > MAX_IMAGES:
            break
    if len(images) > MAX_IMAGES:
        raise UsageError(f"the release expands to more than {MAX_IMAGES} images",
                         hint="split the release, or narrow the tag patterns")
    refuse_conflicts((image.id, image.entry.destination.repository_name, image.tags) for image in images)
    return images


#: A plan file larger than this is refused before it is decoded (10,000 images with their graphs fit well).
MAX_PLAN_BYTES = 64 * 1024 * 1024


def read_plan(path: Path) -> Plan:
    """The plan ``release plan`` wrote, checked field by field (a plan travels between jobs as an artifact:
    whatever it holds is read as outside data). A plan that does not read is a usage error naming the field."""
    from ci_oras.oci.shape import load_json

    def fail(problem: str) -> UsageError:
        return UsageError(f"{path}: {problem}", hint="pass the file release plan wrote (-o), unchanged")

    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise fail(f"larger than a plan may be ({MAX_PLAN_BYTES} bytes)")
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read plan {path}: {exc.strerror or exc}",
                         hint="pass the file release plan wrote (-o)") from exc
    return parse_plan(load_json(data, fail), fail)


def parse_plan(document: object, fail: Callable[[str], UsageError]) -> Plan:
    from ci_oras.oci.shape import Fields

    fields = Fields.of(document, fail)
    if fields.raw("schema") != SCHEMA:
        raise fail(f'"schema" must be "{SCHEMA}", not {json_text(fields.raw("schema"))}')
    images = tuple(_image(item, fail) for item in fields.children("images"))
    shards_asked = fields.integer("shardsAsked")
    if not 1 <= shards_asked <= MAX_SHARDS:
        raise fail(f'"shardsAsked" must be 1 to {MAX_SHARDS}')
    if not images:
        raise fail('"images" lists no image')
    if len(images) > MAX_IMAGES:
        raise fail(f'"images" lists more than {MAX_IMAGES} images')
    if len({image.id for image in images}) != len(images):
        raise fail('"images" lists an id twice')
    used = tuple(sorted({image.shard for image in images}))
    if used[-1] > shards_asked:
        raise fail(f"an image is in shard {used[-1]} of {shards_asked}")
    return Plan(fields.string("release"), images, shards_asked, used)


def _image(fields: Fields, fail: Callable[[str], UsageError]) -> PlannedImage:
    from ci_oras.oci.digest import is_digest
    from ci_oras.oci.reference import TAG_RE
    from ci_oras.oci.shape import Fields

    def digest(value: str, where: str) -> str:
        if not is_digest(value):
            raise fail(f'"{where}" is not a digest: {json_text(value)}')
        return value

    root = digest(fields.string("digest"), fields.name("digest"))
    tags = tuple(fields.strings("tags"))
    for tag in tags:
        if not TAG_RE.fullmatch(tag):
            raise fail(f'"{fields.name("tags")}" holds an invalid tag: {json_text(tag)}')
    gate = Fields.of(fields.raw("gate"), fail, fields.name("gate"))
    graph = Fields.of(fields.raw("graph"), fail, fields.name("graph"))
    estimate = Fields.of(fields.raw("estimate"), fail, fields.name("estimate"))
    manifests = tuple(_manifest(item, digest) for item in graph.children("manifests"))
    known = {desc.digest for desc in manifests}
    if root not in known:
        raise fail(f'"{graph.name("manifests")}" does not hold the image\'s own digest')
    referrers: dict[str, tuple[str, ...]] = {}
    listed = Fields.of(graph.raw("referrers") or {}, fail, graph.name("referrers"))
    for subject in listed.doc:
        digest(subject, listed.name(subject))
        referrers[subject] = tuple(digest(value, listed.name(subject)) for value in listed.strings(subject))
        if subject not in known or not set(referrers[subject]) <= known:
            raise fail(f'"{listed.name(subject)}" names a manifest the graph does not hold')
    shard = fields.integer("shard")
    if shard < 1:
        raise fail(f'"{fields.name("shard")}" must be 1 or more')
    counts = {key: estimate.integer(key) for key in ("bytes", "blobs", "manifests")}
    if any(value < 0 for value in counts.values()):
        raise fail(f'"{estimate.path}" holds a negative count')
    gate_ok = gate.raw("ok")
    if not isinstance(gate_ok, bool):
        raise fail(f'"{gate.name("ok")}" must be true or false')
    missing = tuple(gate.strings("missing"))
    if gate_ok == bool(missing):
        raise fail(f'"{gate.name("ok")}" contradicts "{gate.name("missing")}"')
    return PlannedImage(
        id=fields.string("id"),
        source=fields.string("source"),
        source_tag=fields.optional_string("sourceTag"),
        digest=root,
        media_type=fields.string("mediaType"),
        destination=fields.string("destination"),
        tags=tags,
        filters=CopyFilters(fields.optional_string("platform"), tuple(fields.strings("artifactTypes")),
                            tuple(fields.strings("excludeArtifactTypes"))),
        gate=GateResult(tuple(gate.strings("required")), missing),
        graph=PlannedGraph(manifests, referrers),
        estimate=Estimate(bytes=counts["bytes"], blobs=counts["blobs"], manifests=counts["manifests"]),
        shard=shard,
    )


def _manifest(fields: Fields, digest: Callable[[str, str], str]) -> Descriptor:
    size = fields.integer("size")
    if size < 0:
        raise fields.fail(f'"{fields.name("size")}" must not be negative')
    return Descriptor(fields.string("mediaType"), digest(fields.string("digest"), fields.name("digest")), size)


def json_text(value: object) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
