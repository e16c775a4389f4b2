"""The release file: what it means, every malformed one refused as a usage error naming the field, and the
shard balance of a plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_oras.errors import UsageError
from ci_oras.oci.descriptor import Descriptor
from ci_oras.release.plan import (
    REQUEST_COST_BYTES,
    Estimate,
    GateResult,
    PlannedGraph,
    PlannedImage,
    balance,
    expand,
)
from ci_oras.release.spec import MAX_FILE_BYTES, CopyFilters, ImageEntry, PatternEntry, parse_release, read_release_file

GOOD = """
release: 1.10
require: [sbom]
defaults: {platform: linux/amd64, exclude-artifact-types: application/vnd.example.scan}
images:
  - source: staging.example.com/shop/api:v1.4.0
    destination: prod.example.com/shop/api
    tags: [v1.4.0, stable]
    require: signature
  - source: staging.example.com/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    destination: prod.example.com/shop/web:v2,latest
    platform: linux/arm64
  - source: staging.example.com/shop/db:v9
    destination: prod.example.com/shop/db
  - source-repository: staging.example.com/shop/tools
    tag-pattern: 'v1\\.4\\.\\d+'
    destination: prod.example.com/shop/tools
"""


def test_a_release_file_means_what_it_says() -> None:
    release = parse_release(GOOD, "release.yaml")
    assert release.name == "1.10", "every scalar is text: a version is not a float"
    api, web, db, tools = release.entries
    assert isinstance(api, ImageEntry) and isinstance(web, ImageEntry) and isinstance(db, ImageEntry)
    assert api.tags == ("v1.4.0", "stable")
    assert [r.spec for r in api.requirements] == ["sbom", "signature"], "the release's and the image's own"
    assert api.filters == CopyFilters("linux/amd64", (), ("application/vnd.example.scan",))
    assert api.destination.tags == () and str(api.destination) == "prod.example.com/shop/api"
    assert web.tags == ("v2", "latest") and web.filters.platform == "linux/arm64"
    assert db.tags == ("v9",), "without tags, the source's tag"
    assert isinstance(tools, PatternEntry) and tools.pattern.fullmatch("v1.4.12")
    assert not tools.pattern.fullmatch("v1.4.1-rc")


BAD = [
    ("images: []", "'release' (the release's name) is missing"),
    ("release: v1", "'images' lists no image"),
    ("release: v1\nimages: {a: 1}", "images must be a list"),
    ("release: [v1]\nimages: []", "release must be a single value"),
    ("- release", "the file must be a mapping"),
    ("release: v1\ncolour: red\nimages: []", "colour: unknown field"),
    ("release: v1\nimages: [5]", "images[1] must be a mapping"),
    ("release: v1\nimages: [{destination: a.example/x}]", "images[1].source is missing"),
    ("release: v1\nimages: [{source: a.example/x:1}]", "images[1].destination is missing"),
    ("release: v1\nimages: [{source: a.example/x, destination: b.example/x}]", "name the image by tag or digest"),
    ("release: v1\nimages: [{source: 'a.example/x:1', destination: 'b.example/x@sha256:"
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}]", "a repository, not a digest"),
    ("release: v1\nimages: [{source: a.example/x:1, destination: b.example/x:2, tags: [3]}]", "names tags and"),
    ("release: v1\nimages: [{source: a.example/x:1, destination: b.example/x, tags: ['-x']}]", "not a valid tag"),
    ("release: v1\nimages: [{source: a.example/x:1, destination: b.example/x, tags: {a: 1}}]", "list of values"),
    ("release: v1\nimages: [{source: 'a.example/X:1', destination: b.example/x}]", "images[1].source:"),
    ("release: v1\nimages: [{source: a.example/x:1, source-repository: a.example/x, destination: b.example/x}]",
     "both 'source' and"),
    ("release: v1\nimages: [{source-repository: a.example/x, destination: b.example/x}]", "tag-pattern is missing"),
    ("release: v1\nimages: [{source-repository: a.example/x, tag-pattern: '(', destination: b.example/x}]",
     "not a regular expression"),
    ("release: v1\nimages: [{source-repository: a.example/x, tag-pattern: v1, destination: b.example/x, "
     "tags: [y]}]", "keeps each tag's name"),
    ("release: v1\nimages: [{source: a.example/x:1, destination: b.example/x, require: 'sbom>>'}]",
     "images[1].require: invalid requirement"),
    ("release: v1\nimages:\n - {source: a.example/x:1, destination: b.example/x}\n"
     " - {source: a.example/y:1, destination: b.example/x}", "images[1] and images[2] both tag b.example/x:1"),
    ("release: v1\nimages: &all [{source: a.example/x:1, destination: b.example/x}]\nagain: *all",
     "not accepted YAML: anchors (&name) are not accepted at line 2, column 9"),
    ("release: v1\nrelease: v2\nimages: []", "not accepted YAML: the key 'release' appears twice in one mapping "
                                            "at line 2, column 1"),
    ("release: v1\nimages:\n - source: a:1\n  bad: [", "not accepted YAML: unexpected indentation at line 4, column 3"),
    ("release: v1\ndefaults: {colour: red}\nimages: []", "defaults.colour: unknown field"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[expected for _text, expected in BAD])
def test_a_malformed_release_file_is_a_usage_error_naming_the_field(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_release(text, "r.yaml")
    assert caught.value.message.startswith("r.yaml: ") and expected in caught.value.message
    assert caught.value.hint


def test_a_file_too_large_or_unreadable_is_refused_before_parsing(tmp_path: Path) -> None:
    large = tmp_path / "large.yaml"
    large.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(UsageError, match="more than a release file may hold"):
        read_release_file(large)
    with pytest.raises(UsageError, match="cannot read release file"):
        read_release_file(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="UTF-8"):
        read_release_file(binary)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                     st.sampled_from(["release", "images", "source", "destination", "tags", "require",
                                      "a.example/x:1", "b.example/y", "sbom", "v1", "tag-pattern", "defaults"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["release", "images", "source", "destination", "tags", "require",
                                     "source-repository", "tag-pattern", "defaults", "platform",
                                     "artifact-types", "x"]), inner, max_size=5)), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(_VALUES)
def test_any_shape_is_read_or_refused_as_a_usage_error(value: object) -> None:
    """JSON is YAML: every generated document either parses or fails with a UsageError, nothing else."""
    try:
        parse_release(json.dumps(value), "r.yaml")
    except UsageError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_read_or_refused_as_a_usage_error(text: str) -> None:
    try:
        parse_release(text, "r.yaml")
    except UsageError:
        pass


def _image(number: int, size: int, requests_worth: int = 0, source: str | None = None) -> PlannedImage:
    """Image ``number``, of its own source unless ``source`` names a shared one (same repository and digest)."""
    return PlannedImage(
        id=f"images[{number}]", source=source or f"s.example/x{number}", source_tag="v1",
        digest="sha256:" + "0" * 64,
        media_type="application/vnd.oci.image.manifest.v1+json", destination="d.example/x", tags=("v1",),
        filters=CopyFilters(), gate=GateResult((), ()),
        graph=PlannedGraph((Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "0" * 64, 2),), {}),
        estimate=Estimate(bytes=size, blobs=requests_worth, manifests=0))


def test_shards_are_balanced_costliest_first_and_only_used_shards_run() -> None:
    sizes = [900, 800, 400, 300, 300, 100]
    placed, used = balance([_image(n, size * REQUEST_COST_BYTES) for n, size in enumerate(sizes, 1)], 3)
    loads = {shard: sum(i.estimate.cost for i in placed if i.shard == shard) for shard in used}
    assert used == (1, 2, 3) and [i.id for i in placed] == [f"images[{n}]" for n in range(1, 7)], "plan order kept"
    assert max(loads.values()) - min(loads.values()) <= 200 * REQUEST_COST_BYTES + 300 * REQUEST_COST_BYTES
    assert balance([_image(1, 10)], 4)[1] == (1,), "no empty shard in the matrix"
    assert balance([_image(1, 10), _image(2, 10)], 2) == balance([_image(1, 10), _image(2, 10)], 2), "deterministic"
    with pytest.raises(UsageError):
        balance([_image(1, 10)], 0)


def test_images_of_one_source_share_a_shard_so_it_is_read_once() -> None:
    """A mirror: the same source to three destinations stays on one shard, weighing as their sum."""
    mirror = [_image(n, 100 * REQUEST_COST_BYTES, source="s.example/app") for n in (1, 2, 3)]
    placed, used = balance([*mirror, _image(4, 250 * REQUEST_COST_BYTES), _image(5, 40 * REQUEST_COST_BYTES)], 3)
    assert len({image.shard for image in placed[:3]}) == 1 and used == (1, 2, 3)
    assert placed[0].shard == 1, "300 together is the costliest group: placed first"


def test_requests_weigh_like_bytes_when_balancing() -> None:
    many_requests = _image(1, 0, requests_worth=100)  # 300 requests, no bytes
    placed, _used = balance([many_requests, _image(2, 250 * REQUEST_COST_BYTES), _image(3, 50 * REQUEST_COST_BYTES)], 2)
    assert placed[0].shard != placed[1].shard and placed[2].shard == placed[1].shard


def test_tag_patterns_expand_sorted_and_conflicts_across_entries_are_refused() -> None:
    release = parse_release(GOOD, "release.yaml")
    pinned = expand(release, lambda _repository: ["v1.4.2", "v1.4.10", "v1.5.0", "latest"])
    assert [p.id for p in pinned][-2:] == ["images[4]:v1.4.10", "images[4]:v1.4.2"]
    assert pinned[-1].source.tag == "v1.4.2" and pinned[-1].tags == ("v1.4.2",)
    with pytest.raises(UsageError, match="no tag of .* matches"):
        expand(release, lambda _repository: ["v2"])
    clash = parse_release("release: r\nimages:\n - {source: a.example/t:v1.4.0, destination: b.example/t}\n"
                          " - {source-repository: a.example/t, tag-pattern: 'v1.*', destination: b.example/t}", "r")
    with pytest.raises(UsageError, match=r"images\[1\] and images\[2\]:v1.4.0 both tag b.example/t:v1.4.0"):
        expand(clash, lambda _repository: ["v1.4.0"])


def test_the_shipped_schema_describes_the_file_format() -> None:
    """Editors validate release files with ``schemas/release-file.json``: what the reader accepts, it accepts,
    and a field the reader refuses, it refuses."""
    import jsonschema

    from ci_oras.release.yaml_subset import load
    from ci_oras.schemas import load_schema

    schema = load_schema("release-file")
    jsonschema.Draft202012Validator.check_schema(schema)
    document = load(GOOD)
    assert isinstance(document, dict)
    jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "colour": "red"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "images": [{"source": "a.example/x:1"}]}, schema)


def _plan_document() -> dict[str, object]:
    from ci_oras.release.plan import Plan

    subject = "sha256:" + "1" * 64
    referrer = "sha256:" + "2" * 64
    image = _image(1, 10)
    graph = PlannedGraph((Descriptor("application/vnd.oci.image.manifest.v1+json", subject, 100),
                          Descriptor("application/vnd.oci.image.manifest.v1+json", referrer, 50)),
                         {subject: (referrer,)})
    from dataclasses import replace

    placed, used = balance([replace(image, digest=subject, graph=graph)], 2)
    return Plan("v1", placed, 2, used).document()


def test_a_plan_reads_back_as_written() -> None:
    from ci_oras.release.plan import parse_plan

    document = _plan_document()
    plan = parse_plan(json.loads(json.dumps(document)), lambda problem: UsageError(problem, hint="h"))
    assert plan.document() == document


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_tampered_plan_is_refused_as_a_usage_error(data: st.DataObject) -> None:
    """A plan travels between jobs as an artifact: any field replaced by any shape reads or is refused."""
    from ci_oras.release.plan import parse_plan

    document = json.loads(json.dumps(_plan_document()))
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    replacement = data.draw(_VALUES)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = replacement
    try:
        parse_plan(document, lambda problem: UsageError(problem, hint="h"))
    except UsageError:
        pass
