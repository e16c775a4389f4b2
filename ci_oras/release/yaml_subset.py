"""Read the YAML a release file is written in: a strict subset of YAML 1.2, every scalar read as text.

A release file needs block and flow mappings and lists, plain and quoted values, and comments. It must not
let anything change its meaning or its size behind a reviewer's back, so this reader refuses, naming the line
and column: anchors, aliases and tags, several documents, duplicate keys, complex keys, block scalars (``|``
and ``>``), values continued over several lines, tabs outside quotes, and nesting deeper than
``MAX_DEPTH``. Every scalar is text (``release: 1.10`` is ``"1.10"``, ``tags: [no]`` the tag ``no``) and an
empty value is ``""``, as a YAML 1.2 reader with every scalar as text reads them: what this reader accepts, it
reads as YAML does (the tests hold it to that), and what it does not accept it names. One module, no
dependency for every wrapper to install, and no configuration of a general YAML library to get it strict.
"""

from __future__ import annotations

import re
from typing import NoReturn

#: Lists and mappings nested deeper than this are refused (a release file is four levels deep).
MAX_DEPTH = 64

# YAML's printable characters, less the three that YAML 1.1 readers take for line breaks (a value holding one
# would read differently in another tool); a tab is checked where it stands.
_NOT_ALLOWED = re.compile("[^\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FLOW_INDICATORS = ",[]{}"
_TOKEN = re.compile("[^ \t\n]")
_SPACE_OR_END = " \t\n"
_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
            "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0",
            "L": "\u2028", "P": "\u2029"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_ONE_LINE = "keep each value on one line (quote it if it holds ': ' or ' #')"


class YamlSubsetError(ValueError):
    """Why the text is refused, where (1-based line and column), and how to write it instead."""

    def __init__(self, problem: str, line: int, column: int, hint: str) -> None:
        super().__init__(f"{problem} at line {line}, column {column}")
        self.problem = problem
        self.line = line
        self.column = column
        self.hint = hint


def load(text: str) -> object:
    """The one document in ``text``: ``dict``/``list``/``str`` nested, or ``None`` when it holds none."""
    return _Reader(text).document()


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        self.pos = 0
        self.depth = 0

    # -- where we are, and failing there --------------------------------------------------------------

    def _fail(self, problem: str, hint: str, at: int | None = None) -> NoReturn:
        at = self.pos if at is None else at
        line_start = self.text.rfind("\n", 0, at) + 1
        raise YamlSubsetError(problem, self.text.count("\n", 0, at) + 1, at - line_start + 1, hint)

    def _column(self, at: int | None = None) -> int:
        at = self.pos if at is None else at
        return at - (self.text.rfind("\n", 0, at) + 1)

    def _char(self, offset: int = 0) -> str:
        """The character at pos + offset, ``"\\n"`` past the end (the end of the text ends a line too)."""
        at = self.pos + offset
        return self.text[at] if at < len(self.text) else "\n"

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self._fail(f"lists and mappings nested more than {MAX_DEPTH} deep",
                       "a release file is a few levels deep")

    # -- lines ------------------------------------------------------------------------------------------

    def _skip_space(self) -> None:
        while self._char() == " ":
            self.pos += 1
        if self._char() == "\t":
            self._fail("a tab character", "use spaces (a tab may stand only inside quotes or a comment)")

    def _comment_here(self) -> bool:
        return self._char() == "#" and (self.pos == 0 or self.text[self.pos - 1] in _SPACE_OR_END)

    def _at_line_end(self) -> bool:
        self._skip_space()
        return self.pos >= len(self.text) or self._char() == "\n" or self._comment_here()

    def _end_line(self) -> None:
        """Past the rest of this line, which may hold only spaces and a comment."""
        if not self._at_line_end():
            if self._char() == "#":
                self._fail("a comment needs a space before its '#'", "write ' # comment'")
            self._fail(f"unexpected {self._char()!r} after a value", _ONE_LINE)
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1

    def _next_content(self) -> bool:
        """Move to the first character of the next line holding content (or stay on it); False at the end of
        the text or at a document marker (``---``/``...`` in column 0)."""
        text, size = self.text, len(self.text)
        at = self.pos
        while at < size:
            while at < size and text[at] == " ":
                at += 1
            if at < size and text[at] == "\t":
                self._fail("a tab in indentation", "indent with spaces (a tab may stand only inside quotes or a "
                           "comment)", at=at)
            if at >= size:
                break
            if text[at] in "\n#" and (text[at] == "\n" or at == 0 or text[at - 1] in _SPACE_OR_END):
                end = text.find("\n", at)
                at = size if end < 0 else end + 1
                continue
            self.pos = at
            return not (self._column() == 0 and text.startswith(("---", "..."), at)
                        and self._char(3) in _SPACE_OR_END)
        self.pos = size
        return False

    # -- the document -----------------------------------------------------------------------------------

    def document(self) -> object:
        refused = _NOT_ALLOWED.search(self.text)
        if refused is not None:
            self._fail(f"the character U+{ord(refused.group()):04X} is not accepted",
                       'write it as an escape inside double quotes, e.g. "\\u00a0"', at=refused.start())
        node: object = None
        if self._next_content():
            if self._char() == "%":
                self._fail("YAML directives are not accepted", "start the file with its first field")
            node = self._block_node_at(self._column())
        elif self.text.startswith("---", self.pos):
            self.pos += 3
            if self._at_line_end():
                self._end_line()
                node = self._block_node(-1)
            else:
                node = self._inline_value()
                self._end_line()
        elif self.pos < len(self.text):
            self._fail("a document end ('...') with no document before it", "remove the '...'")
        if self._next_content():
            self._fail(f"unexpected {self._char()!r}: this line continues no mapping or list above it",
                       "align the lines of one mapping or list")
        if self.pos < len(self.text) and self.text.startswith("...", self.pos):
            self.pos += 3
            self._end_line()
            if self._next_content() or self.pos < len(self.text):
                self._fail("more than one YAML document", "a release file is one document")
        elif self.pos < len(self.text):
            self._fail("more than one YAML document", "a release file is one document: remove the '---'")
        return node

    # -- block structure --------------------------------------------------------------------------------

    def _block_node(self, parent: int, *, sequence_at_parent: bool = False) -> object:
        """The node on the following lines, indented more than ``parent`` (a list of a mapping's key may stand
        at the key's own column); ``""`` when there is none. pos is at a line start or at content."""
        if not self._next_content():
            return ""
        column = self._column()
        if column > parent:
            return self._block_node_at(column)
        if column == parent and sequence_at_parent and self._sequence_entry():
            return self._block_sequence(column)
        return ""

    def _block_node_at(self, column: int) -> object:
        if self._sequence_entry():
            return self._block_sequence(column)
        if self._looks_like_key():
            return self._block_mapping(column)
        value = self._inline_value()
        self._end_line()
        return value

    def _sequence_entry(self) -> bool:
        return self._char() == "-" and self._char(1) in _SPACE_OR_END

    def _block_sequence(self, column: int) -> list[object]:
        self._enter()
        items: list[object] = []
        while True:
            self.pos += 1  # the '-'
            if self._at_line_end():
                self._end_line()
                items.append(self._block_node(column))
            else:
                items.append(self._block_node_at(self._column()))
            if not self._next_content() or self._column() < column:
                break
            if self._column() > column:
                self._fail_indented()
            if not self._sequence_entry():
                break
        self.depth -= 1
        return items

    def _block_mapping(self, column: int) -> dict[str, object]:
        self._enter()
        mapping: dict[str, object] = {}
        while True:
            key_at = self.pos
            key = self._block_key()
            if key in mapping:
                self._fail(f"the key {key!r} appears twice in one mapping", "give each key once", at=key_at)
            if self._at_line_end():
                self._end_line()
                mapping[key] = self._block_node(column, sequence_at_parent=True)
            else:
                if self._sequence_entry():
                    self._fail("a list cannot start on its key's line",
                               "put each '- item' on a line of its own below the key, or write [a, b]")
                mapping[key] = self._inline_value()
                self._end_line()
            if not self._next_content() or self._column() < column:
                break
            if self._column() > column:
                self._fail_indented()
        self.depth -= 1
        return mapping

    def _fail_indented(self) -> NoReturn:
        self._fail("unexpected indentation", f"align the lines of one mapping or list, and {_ONE_LINE}")

    def _looks_like_key(self) -> bool:
        start = self.pos
        try:
            self._block_key()
        except YamlSubsetError:
            return False
        else:
            return True
        finally:
            self.pos = start

    def _block_key(self) -> str:
        """``KEY:`` followed by a space or the line's end; pos after the ':'."""
        if self._char() in "'\"":
            key = self._quoted()
            self._skip_space()
        else:
            self._refuse_indicator(flow=False)
            key = self._plain(flow=False)
        if self._char() != ":" or self._char(1) not in _SPACE_OR_END:
            self._fail("expected 'key: value'", "write each field as 'key: value'")
        self.pos += 1
        return key

    # -- values on one line -------------------------------------------------------------------------------

    def _inline_value(self) -> object:
        char = self._char()
        if char in "[{":
            return self._flow_collection()
        if char in "'\"":
            return self._quoted()
        self._refuse_indicator(flow=False)
        return self._plain(flow=False)

    def _refuse_indicator(self, *, flow: bool) -> None:
        """Fail on what cannot start a plain value: YAML features this reader refuses, and indicators."""
        char, after = self._char(), self._char(1)
        safe_after = after not in _SPACE_OR_END and not (flow and after in _FLOW_INDICATORS)
        if char == "&":
            self._fail("anchors (&name) are not accepted", "write each value out where it is used")
        if char == "*":
            self._fail("aliases (*name) are not accepted", "write each value out where it is used")
        if char == "!":
            self._fail("tags (!tag) are not accepted", "every value is text already: leave the tag out")
        if char in "|>":
            self._fail("block scalars ('|' and '>') are not accepted", _ONE_LINE)
        if char == "?" and after in _SPACE_OR_END:
            self._fail("complex keys ('? ') are not accepted", "write 'key: value'")
        if char in "-?:" and not safe_after:
            self._fail(f"{char!r} here starts no value", "quote the value")
        if char in "\n#":
            self._fail("a value is missing", "write a value, or \"\" for an empty one")
        if char in _FLOW_INDICATORS + "%@`":
            self._fail(f"a plain value cannot start with {char!r}", "quote the value")

    def _plain(self, *, flow: bool) -> str:
        text, size = self.text, len(self.text)
        start = at = self.pos
        while at < size:
            char = text[at]
            if char == "\n":
                break
            if char == ":":
                after = text[at + 1] if at + 1 < size else "\n"
                if after in _SPACE_OR_END or (flow and after in _FLOW_INDICATORS):
                    break
            elif char == "#" and text[at - 1] == " ":
                break
            elif char == "\t":
                self._fail("a tab character", "quote a value that holds a tab", at=at)
            elif flow and char in _FLOW_INDICATORS:
                break
            at += 1
        value = text[start:at].rstrip(" ")
        self.pos = at
        return value

    def _quoted(self) -> str:
        quote = self._char()
        text, size = self.text, len(self.text)
        at = self.pos + 1
        parts: list[str] = []
        while True:
            if at >= size or text[at] == "\n":
                self._fail("a quoted value does not end on its line", f"close the quote; {_ONE_LINE}", at=at)
            char = text[at]
            if char == quote:
                if quote == "'" and text.startswith("''", at):
                    parts.append("'")
                    at += 2
                    continue
                self.pos = at + 1
                return "".join(parts)
            if char == "\\" and quote == '"':
                escape, at = self._escape(at + 1)
                parts.append(escape)
                continue
            parts.append(char)
            at += 1

    def _escape(self, at: int) -> tuple[str, int]:
        code = self.text[at] if at < len(self.text) else "\n"
        if code == "\n":
            self._fail("a quoted value does not end on its line", _ONE_LINE, at=at - 1)
        if code in _ESCAPES:
            return _ESCAPES[code], at + 1
        digits = _HEX_ESCAPES.get(code)
        if digits is not None:
            hex_text = self.text[at + 1:at + 1 + digits]
            if len(hex_text) == digits and all(c in "0123456789abcdefABCDEF" for c in hex_text):
                point = int(hex_text, 16)
                if point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF:
                    return chr(point), at + 1 + digits
            self._fail(f"'\\{code}' needs {digits} hex digits of a character (not a surrogate)",
                       "write the character itself, or e.g. \\u00e9", at=at - 1)
        self._fail(f"unknown escape '\\{code.strip()}'", "write a backslash as \\\\", at=at - 1)

    # -- flow collections ---------------------------------------------------------------------------------

    def _skip_flow_space(self, opened_at: int) -> None:
        """Past spaces, line breaks and comments inside ``[...]``/``{...}``; the text may not end there."""
        text, size = self.text, len(self.text)
        while True:
            while self.pos < size and text[self.pos] in " \t":
                self.pos += 1
            if self.pos >= size:
                self._fail(f"{text[opened_at]!r} is never closed", f"close it with {_closing(text[opened_at])!r}",
                           at=opened_at)
            if self._column() == 0 and text.startswith(("---", "..."), self.pos) and self._char(3) in _SPACE_OR_END:
                self._fail("a document marker inside [...] or {...}", f"close it with {_closing(text[opened_at])!r}")
            if text[self.pos] == "\n" or self._comment_here():
                end = text.find("\n", self.pos)
                self.pos = size if end < 0 else end + 1
                continue
            return

    def _flow_collection(self) -> list[object] | dict[str, object]:
        self._enter()
        opened_at = self.pos
        closing = _closing(self._char())
        self.pos += 1
        sequence: list[object] = []
        mapping: dict[str, object] = {}
        while True:
            self._skip_flow_space(opened_at)
            if self._char() == closing:
                break
            if closing == "]":
                sequence.append(self._flow_node(opened_at))
                self._skip_flow_space(opened_at)
                if self._char() == ":":
                    self._fail("'key: value' inside [...]", "write a mapping as {key: value}")
            else:
                key_at = self.pos
                key = self._flow_key(opened_at)
                if key in mapping:
                    self._fail(f"the key {key!r} appears twice in one mapping", "give each key once", at=key_at)
                mapping[key] = ""
                if self._char() == ":":
                    self.pos += 1
                    self._skip_flow_space(opened_at)
                    if self._char() not in ",}":
                        mapping[key] = self._flow_node(opened_at)
                        self._skip_flow_space(opened_at)
            if self._char() == ",":
                self.pos += 1
                continue
            if self._char() != closing:
                self._fail(f"expected ',' or {closing!r}", "separate the items with ', '")
            break
        self.pos += 1
        self.depth -= 1
        return sequence if closing == "]" else mapping

    def _flow_key(self, opened_at: int) -> str:
        char = self._char()
        if char == "?" and self._char(1) in _SPACE_OR_END + _FLOW_INDICATORS:
            self._fail("complex keys ('? ') are not accepted", "write 'key: value'")
        if char in "[{":
            self._fail("a key must be text, not a list or mapping", "write 'key: value'")
        key = self._quoted() if char in "'\"" else self._flow_plain()
        key_line_end = self.text.find("\n", self.pos)
        self._skip_flow_space(opened_at)
        if self._char() == ":" and 0 <= key_line_end < self.pos:
            self._fail("a key and its ':' on different lines", "write 'key: value' on one line")
        return key

    def _flow_node(self, opened_at: int) -> object:
        char = self._char()
        if char in "[{":
            return self._flow_collection()
        if char in "'\"":
            return self._quoted()
        return self._flow_plain()

    def _flow_plain(self) -> str:
        self._refuse_indicator(flow=True)
        value = self._plain(flow=True)
        if self._char() == "\n" and self.pos < len(self.text):
            following = _TOKEN.search(self.text, self.pos + 1)
            if following is not None and following.group() not in _FLOW_INDICATORS + ":#":
                self._fail("a value continues on the next line", _ONE_LINE)
        return value


def _closing(opening: str) -> str:
    return "]" if opening == "[" else "}"
