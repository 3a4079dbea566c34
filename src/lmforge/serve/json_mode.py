"""Constrained decoding for ``response_format: {"type": "json_object"}``.

``JsonPrefix`` is a character-level state machine that accepts exactly the prefixes of
a JSON object. At each step the engine offers it candidate tokens (most likely first,
or sampled) and keeps the first whose text extends a valid prefix; once the object is
closed only the end token is allowed. So the answer is a valid JSON object unless
``max_tokens`` cuts it short (``finish_reason: "length"``, as with OpenAI).

Tokens are judged by their decoded text; a token that decodes to an incomplete UTF-8
character is allowed only inside strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

_WHITESPACE = " \t\n\r"
_MAX_WHITESPACE_RUN = 4  # keeps a model from padding forever with spaces
_LITERALS = ("true", "false", "null")
_NUMBER_CHARS = set("0123456789-+.eE")


@dataclass
class JsonPrefix:
    """The state after reading a prefix of one JSON object."""

    stack: list[str] = field(default_factory=list)  # "{" or "[" per open container
    state: str = "start"  # start, value, key, colon, after, string, escape, unicode, number,
    # literal, done
    in_key: bool = False
    pending: str = ""  # the literal or number being read; hex digits of \u
    whitespace: int = 0

    def copy(self) -> JsonPrefix:
        return JsonPrefix(list(self.stack), self.state, self.in_key, self.pending, self.whitespace)

    @property
    def done(self) -> bool:
        return self.state == "done"

    def feed_text(self, text: str) -> bool:
        """Read ``text``; False (state undefined) when it cannot continue a JSON object."""
        return all(self.feed(char) for char in text)

    def feed(self, char: str) -> bool:
        state = self.state
        if state == "string":
            if char == '"':
                self._end_value(key=self.in_key)
            elif char == "\\":
                self.state = "escape"
            elif char < " ":
                return False  # control characters must be escaped
            return True
        if state == "escape":
            if char == "u":
                self.state, self.pending = "unicode", ""
                return True
            self.state = "string"
            return char in '"\\/bfnrt'
        if state == "unicode":
            if char not in "0123456789abcdefABCDEF":
                return False
            self.pending += char
            if len(self.pending) == 4:
                self.state = "string"
            return True
        if state == "number":
            if char in _NUMBER_CHARS:
                self.pending += char
                return True
            if not _valid_number(self.pending):
                return False
            self._end_value()
            return self.feed(char)
        if state == "literal":
            self.pending += char
            matches = [lit for lit in _LITERALS if lit.startswith(self.pending)]
            if not matches:
                return False
            if self.pending in _LITERALS:
                self._end_value()
            return True
        if char in _WHITESPACE:
            self.whitespace += 1
            return state != "done" and self.whitespace <= _MAX_WHITESPACE_RUN
        self.whitespace = 0
        if state == "start":
            if char != "{":
                return False
            self.stack.append("{")
            self.state = "key_or_close"
            return True
        if state in {"key", "key_or_close"}:
            if char == "}" and state == "key_or_close":
                return self._close("{")
            if char != '"':
                return False
            self.state, self.in_key = "string", True
            return True
        if state == "colon":
            if char != ":":
                return False
            self.state = "value"
            return True
        if state in {"value", "value_or_close"}:
            return self._start_value(char, allow_close=state == "value_or_close")
        if state == "after":
            top = self.stack[-1]
            if char == ",":
                self.state = "key" if top == "{" else "value"
                return True
            return self._close(top) if char in "}]" and _closer(top) == char else False
        return False  # done: nothing may follow

    def _start_value(self, char: str, allow_close: bool) -> bool:
        if char == "]" and allow_close:
            return self._close("[")
        if char == '"':
            self.state, self.in_key = "string", False
        elif char == "{":
            self.stack.append("{")
            self.state = "key_or_close"
        elif char == "[":
            self.stack.append("[")
            self.state = "value_or_close"
        elif char in "-0123456789":
            self.state, self.pending = "number", char
        elif char in "tfn":
            self.state, self.pending = "literal", char
        else:
            return False
        return True

    def _end_value(self, key: bool = False) -> None:
        self.pending = ""
        self.state = "colon" if key else "after"
        self.in_key = False

    def _close(self, opener: str) -> bool:
        if not self.stack or self.stack[-1] != opener:
            return False
        self.stack.pop()
        self.state = "after" if self.stack else "done"
        return True


def _closer(opener: str) -> str:
    return "}" if opener == "{" else "]"


def _valid_number(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
