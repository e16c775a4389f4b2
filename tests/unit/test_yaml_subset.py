"""The release file's YAML reader: what it accepts it reads as a YAML 1.2 reader does (ruamel.yaml, every scalar
as text, is the reference), what it refuses it names with line and column, and nothing but its own error ever
escapes, whatever the text."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from ci_oras.release.yaml_subset import MAX_DEPTH, YamlSubsetError, load


def reference(text: str) -> object:
    """What YAML 1.2 says the text holds, every scalar as text."""
    return YAML(typ="base", pure=True).load(text)


ACCEPTED = [
    ("", None),
    ("# only a comment\n\n", None),
    ("---\n", ""),
    ("release: 1.10\ntags: [no, 'on', \"1e3\"]", {"release": "1.10", "tags": ["no", "on", "1e3"]}),
    ("images:\n- a\n-\n- b: c\n  d: e\n- - f\n  - g\nnext: x",
     {"images": ["a", "", {"b": "c", "d": "e"}, ["f", "g"]], "next": "x"}),
    ("  indented: mapping\n  second: key\n", {"indented": "mapping", "second": "key"}),
    ("a:\n  b:\n    - c # comment\n# between\n  d: e:f  # colon without a space is text\n",
     {"a": {"b": ["c"], "d": "e:f"}}),
    ("x: [a, {b: [c, d]}, 'e''s', \"f\\u00e9\\t\\\"\", ]", {"x": ["a", {"b": ["c", "d"]}, "e's", 'f\u00e9\t"']}),
    ('{"json": ["is", "yaml"], "nested": {"k": "v"}}', {"json": ["is", "yaml"], "nested": {"k": "v"}}),
    ("k: [a,\n  b,  # comment\n  c]\n", {"k": ["a", "b", "c"]}),
    ("{a, b: , c: d}", {"a": "", "b": "", "c": "d"}),
    ("pattern: 'v1\\.4\\.\\d+'\nurl: a.example/x:1#frag", {"pattern": "v1\\.4\\.\\d+", "url": "a.example/x:1#frag"}),
    ("a: b\r\nc: d\r\n", {"a": "b", "c": "d"}),
    ("\ufeffa: b\n...\n# after the end\n", {"a": "b"}),
    ("--- {a: b}\n", {"a": "b"}),
    ("'quoted key': -1\n\"k2\": ~\n", {"quoted key": "-1", "k2": "~"}),
    ("a: [-1, a:b, x#y]", {"a": ["-1", "a:b", "x#y"]}),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[repr(text)[:40] for text, _ in ACCEPTED])
def test_accepted_text_reads_as_yaml_reads_it(text: str, expected: object) -> None:
    assert load(text) == expected
    assert reference(text) == expected, "the reference reader disagrees: the expectation is wrong"


REFUSED = [
    ("a: &x b", "anchors (&name) are not accepted", 1, 4),
    ("a: b\nc: *x", "aliases (*name) are not accepted", 2, 4),
    ("a: !!str b", "tags (!tag) are not accepted", 1, 4),
    ("a: |\n  text", "block scalars", 1, 4),
    ("a: b\na: c", "the key 'a' appears twice in one mapping", 2, 1),
    ("{a: b, a: c}", "the key 'a' appears twice", 1, 8),
    ("? a\n: b", "complex keys", 1, 1),
    ("a: b\n  c", "unexpected indentation", 2, 3),
    ("a: 'x\n  y'", "a quoted value does not end on its line", 1, 6),
    ("a: [b,\n", "'[' is never closed", 1, 4),
    ("a: [b c", "'[' is never closed", 1, 4),
    ("a: b: c", "unexpected ':' after a value", 1, 5),
    ("a: - b", "a list cannot start on its key's line", 1, 4),
    ("a:\tb", "a tab character", 1, 3),
    ("a:\n\t- b", "a tab in indentation", 2, 1),
    ("a: b\n---\nc: d", "more than one YAML document", 2, 1),
    ("%YAML 1.2\n---\na: b", "YAML directives are not accepted", 1, 1),
    ("a: \"\\ud83d\"", "needs 4 hex digits of a character (not a surrogate)", 1, 5),
    ("a: \"\\q\"", "unknown escape", 1, 5),
    ("a: x\u2028y", "U+2028 is not accepted", 1, 5),
    ("a: \x07", "U+0007 is not accepted", 1, 4),
    ("a: [b: c]", "'key: value' inside [...]", 1, 6),
    ("- a\nb: c", "continues no mapping or list above it", 2, 1),
    ("a: 'x'#c", "a comment needs a space before its '#'", 1, 7),
    ("a: @b", "a plain value cannot start with '@'", 1, 4),
    ("...", "a document end ('...') with no document before it", 1, 1),
    ("[" * (MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} deep", 1, MAX_DEPTH + 1),
]


@pytest.mark.parametrize(("text", "problem", "line", "column"), REFUSED, ids=[p for _, p, _, _ in REFUSED])
def test_refused_text_is_named_with_line_and_column(text: str, problem: str, line: int, column: int) -> None:
    with pytest.raises(YamlSubsetError) as caught:
        load(text)
    assert problem in caught.value.problem
    assert (caught.value.line, caught.value.column) == (line, column)
    assert caught.value.hint, "every refusal says how to write it instead"


def test_deep_nesting_is_refused_before_it_can_exhaust_the_stack() -> None:
    for text in ("[" * 100_000, "{a: " * 100_000, "".join(f"{' ' * depth}- \n" for depth in range(2_000))):
        with pytest.raises(YamlSubsetError, match="nested more than"):
            load(text)


# -- generated documents -------------------------------------------------------------------------------------

# Text a release may hold: any printable character but line breaks (YAML 1.1 readers take U+0085, U+2028 and
# U+2029 for one) and surrogates.
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85\ufeff"),
                max_size=12)
_VALUES = st.recursive(_TEXT, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=20)


def _block_yaml(value: object) -> str:
    """The value as YAML in block style, as a person or a generator would write it."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    stream = io.StringIO()
    yaml.dump(value, stream)
    return stream.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_VALUES)
def test_generated_block_yaml_and_json_read_back_as_the_value(value: object) -> None:
    assert load(json.dumps(value, ensure_ascii=False)) == value
    assert load(json.dumps(value, ensure_ascii=False, indent=2)) == value
    text = _block_yaml(value)
    assert reference(text) == value, "the generator wrote what the reference reads back"
    try:
        assert load(text) == value
    except YamlSubsetError as refused:
        # Only what the subset refuses by design may be refused: a value the generator could only write over
        # several lines, or with a tab or a comment-like '#' it left plain.
        assert any(mark in refused.problem for mark in ("tab", "does not end on its line", "block scalars",
                                                        "complex keys")), (text, refused)


_YAMLISH_TEXT = st.lists(st.sampled_from(list("ab -:#,[]{}'\"\n\t?&*!|>%@\\.~0é") + ["  ", "---", "...", "- ",
                                                                                       ": "]),
                         max_size=30).map("".join)


@settings(max_examples=2_000, deadline=None)
@given(_YAMLISH_TEXT)
@example("a: [b,\n---\n]")
@example("{a\n: b}")
@example("[a\n b]")
@example("- a\n -b")
def test_whatever_it_accepts_it_reads_as_yaml_does(text: str) -> None:
    """Any text: refused with our error, or read exactly as the reference reads it (which must accept it)."""
    try:
        ours = load(text)
    except YamlSubsetError:
        return
    assert reference(text) == ours, text


@given(st.text(max_size=200))
def test_any_text_is_read_or_refused_with_our_error(text: str) -> None:
    try:
        load(text)
    except YamlSubsetError:
        pass


def test_the_largest_release_reads_whole() -> None:
    """10,000 entries, the most a release may list (the time it takes is in benchmarks/)."""
    text = "release: v1\nimages:\n" + "".join(_ENTRY.format(n=n) for n in range(10_000))
    document = load(text)
    assert isinstance(document, dict) and len(document["images"]) == 10_000
    assert document["images"][-1] == {"source": "staging.example.com/shop/api9999:v1.4.0",
                                      "destination": "prod.example.com/shop/api9999", "tags": ["v1.4.0", "stable"]}


_ENTRY = ("  - source: staging.example.com/shop/api{n}:v1.4.0\n    destination: prod.example.com/shop/api{n}\n"
          "    tags: [v1.4.0, stable]\n")
