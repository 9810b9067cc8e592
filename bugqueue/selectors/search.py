"""The bug stream's search syntax: one box on /bugs, the `q` parameter of GET /api/bugs and the
`query` of a bulk action. `search_parse` is a pure function (no database): text in, a list of
terms out, or a ValidationFailed naming what is wrong (an unknown key lists the known ones).

Grammar (terms are separated by spaces; every term must hold):
    is:unresolved | is:open | is:resolved | is:closed | is:regressed | is:snoozed
       | is:new | is:triaged | is:in_progress | is:wont_fix | is:duplicate
    assigned:me | assigned:none | assigned:<username>
    tag:<slug>   kind:<kind>   model:<model version>
    priority:p1 | priority:p0..p1 (a range) | priority:p0,p2 (a list)
    "free text" or bare words (each must appear in the title or description; one word may also be
    an exact fingerprint)
A comma separates alternatives (`tag:a,b`: either tag); a leading `-` negates a key term
(`-tag:label_flip`); a value may be quoted (`model:"v3 beta"`). is:unresolved means open (new,
triaged, in progress) and not snoozed; is:open includes snoozed bugs; is:closed is resolved, won't
fix or duplicate.
"""

import re
from dataclasses import dataclass

from bugqueue.models import BugKind, BugStatus, Priority
from common.errors import ValidationFailed

MAX_QUERY_CHARS = 500
IS_VALUES = tuple(
    dict.fromkeys(("unresolved", "open", "resolved", "closed", "regressed", "snoozed", *BugStatus.values))
)
KEYS = ("is", "assigned", "tag", "kind", "model", "priority")
GRAMMAR = (
    "is:unresolved|open|resolved|closed|regressed|snoozed|<status>, assigned:me|none|<username>, tag:<slug>, "
    'kind:<kind>, model:<version>, priority:p1 or p0..p1, "free text"; a comma lists alternatives '
    "(tag:a,b), a leading - negates a key term (-tag:x)."
)

# A term: optional "-", optional key:, then a quoted or bare value.
_TOKEN = re.compile(r'\s*(-?)(?:([A-Za-z_]+):)?(?:"([^"]*)"|(\S+))')


@dataclass(frozen=True)
class Term:
    key: str
    values: tuple
    negated: bool = False


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple = ()
    text: tuple = ()  # free-text chunks (a quoted phrase is one chunk)

    def values(self, key: str, *, negated: bool = False) -> list:
        return [v for t in self.terms if t.key == key and t.negated == negated for v in t.values]

    @property
    def has_status(self) -> bool:
        """Whether the query says which bugs by state (is:...) it wants."""
        return any(t.key == "is" for t in self.terms)


def _fail(message: str):
    raise ValidationFailed(message, fields={"q": [message]})


def _priority_values(raw: str) -> tuple:
    out = []
    for part in raw.split(","):
        part = part.strip().lower()
        if ".." in part:
            lo, _, hi = part.partition("..")
            if lo not in Priority.values or hi not in Priority.values:
                _fail(f"priority:{part}: a range goes from one of {', '.join(Priority.values)} to another.")
            lo_i, hi_i = sorted((Priority.values.index(lo), Priority.values.index(hi)))
            out += Priority.values[lo_i : hi_i + 1]
        elif part in Priority.values:
            out.append(part)
        else:
            _fail(f"priority:{part}: use one of {', '.join(Priority.values)} or a range like p0..p1.")
    return tuple(dict.fromkeys(out))


def _term(key: str, raw: str, negated: bool) -> Term:
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    if not values:
        _fail(f"{key}: needs a value.")
    if key == "is":
        values = tuple(v.lower() for v in values)
        bad = [v for v in values if v not in IS_VALUES]
        if bad:
            _fail(f"is:{bad[0]} is not known: use is:{', is:'.join(IS_VALUES)}.")
    elif key == "kind":
        bad = [v for v in values if v not in BugKind.values]
        if bad:
            _fail(f"kind:{bad[0]} is not known: use one of {', '.join(BugKind.values)}.")
    elif key == "priority":
        values = _priority_values(raw)
    elif key == "assigned":
        values = tuple(v.lower() if v.lower() in ("me", "none") else v for v in values)
    return Term(key, values, negated)


def search_parse(q: str) -> ParsedQuery:
    """Parse the search box (see the module's grammar). Raises ValidationFailed (400) for an unknown
    key (the message lists the known keys), a bad value, an unclosed quote or a query too long."""
    if not isinstance(q, str):
        _fail("q must be a string.")
    if len(q) > MAX_QUERY_CHARS:
        _fail(f"A search holds at most {MAX_QUERY_CHARS} characters.")
    if q.count('"') % 2:
        _fail('A quote is not closed: free text goes in "double quotes".')
    terms, text = [], []
    pos, q = 0, q.strip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if m is None or m.end() == pos:  # only whitespace left
            break
        pos = m.end()
        negated, key, quoted, bare = m.group(1) == "-", m.group(2), m.group(3), m.group(4)
        value = quoted if quoted is not None else bare
        if key is None and re.fullmatch(r"[A-Za-z_]+:", value or ""):
            key, value = value[:-1], ""  # "tag:" with nothing after it
        if key is None:
            chunk = ("-" if negated else "") + value
            if chunk.strip():
                text.append(chunk.strip())
            continue
        key = key.lower()
        if key not in KEYS:
            _fail(f"Unknown search key {key!r}: the known keys are {', '.join(KEYS)} (put free text in quotes).")
        if not value.strip():
            _fail(f"{key}: needs a value.")
        terms.append(_term(key, value, negated))
    return ParsedQuery(tuple(terms), tuple(text))
