"""The order verify examines candidates in: newest first by the listing's creation time, then listing order."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_oras.graph.match import ANNOTATION_CREATED, examination_order
from ci_oras.oci.descriptor import Descriptor


def entry(name: str, created: object = None) -> Descriptor:
    annotations = {} if created is None else {ANNOTATION_CREATED: created}
    return Descriptor(media_type="application/vnd.oci.image.manifest.v1+json",
                      digest="sha256:" + hashlib.sha256(name.encode()).hexdigest(), size=1,
                      annotations=annotations, artifact_type="application/example")  # type: ignore[arg-type]


def names(order: list[Descriptor], entries: dict[str, Descriptor]) -> list[str]:
    by_digest = {desc.digest: name for name, desc in entries.items()}
    return [by_digest[desc.digest] for desc in order]


def test_newest_first_then_undated_in_listing_order() -> None:
    entries = {
        "a": entry("a"),
        "b": entry("b", "2026-03-01T10:00:00Z"),
        "c": entry("c", "not a time"),
        "d": entry("d", "2026-03-01T12:00:00+01:00"),  # 11:00 UTC: newer than b
        "e": entry("e", "2026-03-01T10:00:00.5z"),  # half a second after b
        "f": entry("f", "2026-03-01T10:00:00Z"),  # as old as b, listed after it
    }
    assert names(examination_order(list(entries.values())), entries) == ["d", "e", "b", "f", "a", "c"]


@pytest.mark.parametrize("text", ["2026-02-30T00:00:00Z", "2026-03-01T10:00:00+25:00", "2026-03-01", "",
                                  "2026-03-01T10:00:00", "٢٠٩٩-03-01T10:00:00Z"])
def test_what_is_not_an_rfc3339_time_counts_as_undated(text: str) -> None:
    entries = {"undated": entry("undated", text), "dated": entry("dated", "2000-01-01T00:00:00Z")}
    assert names(examination_order(list(entries.values())), entries) == ["dated", "undated"]


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40), st.integers(), st.datetimes(
    timezones=st.timezones()).map(lambda moment: moment.isoformat())), max_size=12))
def test_any_annotations_give_a_permutation(values: list[object]) -> None:
    """Whatever a listing claims, every candidate is examined exactly once (the order never drops one)."""
    entries = [entry(str(n), value) for n, value in enumerate(values)]
    assert sorted(d.digest for d in examination_order(entries)) == sorted(d.digest for d in entries)
