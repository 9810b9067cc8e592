"""Reading JSON request bodies, one way for every endpoint (DRF's parser, the batch reader, the
evaluation upload all call `json_loads`).

Beyond well-formed JSON it refuses what cannot be stored or safely walked afterwards: nesting deeper
than LOUPE_MAX_JSON_DEPTH; NUL characters in values and keys; lone UTF-16 surrogates and non-UTF-8
bodies; NaN and infinities. An error names where the bad value is, as a path from the root:
$[3].payload.text."""

import json
import math
import re

import orjson
from django.conf import settings


class JSONInputError(ValueError):
    """A body that is not JSON Loupe accepts. `path` locates the bad value ($[3].payload.text) when
    there is one; `row` is its index in a top-level array (a batch's row)."""

    def __init__(self, message: str, *, where=None):
        steps = _steps(where)
        self.path = _path(steps) if steps else None
        self.row = steps[0] if steps and isinstance(steps[0], int) else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


def max_depth() -> int:
    return settings.LOUPE_MAX_JSON_DEPTH


# orjson reads an integer beyond 64 bits as a float, losing digits. Such an integer has at least 19
# digits in a row, so a body with no run of 19 digits (anywhere, strings included) is safe for it.
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")
# A string can hold a NUL or a lone surrogate only through an escape (\u0000, \ud800-\udfff): strict
# UTF-8 has no surrogates and JSON forbids raw control characters. Without such an escape the strings
# need no look.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def json_loads(data: bytes):
    """Parse one JSON document (bytes); raise JSONInputError (a ValueError) when Loupe cannot take it."""
    limit = max_depth()
    value = _parse(data)
    # A document with no more brackets than the limit cannot nest deeper than it.
    deep = data.count(b"[") + data.count(b"{") > limit
    strings = _SUSPECT_ESCAPE.search(data) is not None
    if deep or strings:
        _check(value, limit=limit, strings=strings)
    return value


def _parse(data: bytes):
    if not _LONG_DIGIT_RUN.search(data):
        try:
            return orjson.loads(data)  # several times faster; refuses NaN, infinities and raw surrogates
        except orjson.JSONDecodeError:
            pass  # the standard library's messages say more, and it reads what orjson cannot
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONInputError(f"The body is not valid UTF-8 (byte {exc.start}).")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise JSONInputError(f"JSON nested deeper than {max_depth()} levels.")


def _check(value, *, limit: int, strings: bool):
    """Walk the parsed document without recursion: its depth, and with `strings` every key and string."""
    if type(value) is str:
        if strings:
            _check_string(value, None)
        return
    stack = [(value, 1, None)]
    while stack:
        node, depth, where = stack.pop()
        if depth > limit:
            raise JSONInputError(f"JSON nested deeper than {limit} levels.", where=where)
        pairs = node.items() if type(node) is dict else enumerate(node)
        for step, child in pairs:
            if strings and type(step) is str:
                _check_string(step, where, key=True)
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1, (where, step)))
            elif strings and kind is str:
                _check_string(child, (where, step))


def _check_string(text: str, where, *, key: bool = False):
    what = "a key" if key else "a string"
    if "\x00" in text:
        raise JSONInputError(f"{what} holds a NUL character (\\u0000), which cannot be stored.", where=where)
    if not text.isascii() and _SURROGATE.search(text):
        raise JSONInputError(f"{what} holds a lone surrogate (\\ud800-\\udfff), which is not text.", where=where)


def _steps(where) -> list:
    """(((None, 3), 'payload'), 'text') -> [3, 'payload', 'text']"""
    steps = []
    while where is not None:
        where, step = where
        steps.append(step)
    return steps[::-1]


def _path(steps) -> str:
    """[3, 'payload', 'text'] -> $[3].payload.text"""
    parts = []
    for step in steps:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", step):
            parts.append(f".{step}")
        else:
            parts.append(f"[{json.dumps(step[:60])}]")  # ASCII-escaped: safe to echo whatever the key holds
    return "$" + "".join(parts)
