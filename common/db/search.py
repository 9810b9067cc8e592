"""Full-text search over item payloads. On PostgreSQL a payload matches a query through the GIN index
`item_payload_fts` on `jsonb_to_tsvector('simple', payload, '["string"]')` (every string value of the
payload, any depth; the 'simple' configuration: lower-cased words, no stemming, no stop words), and the
query is read as a web search (`websearch_to_tsquery`: words, "quoted phrases", -excluded, or). The
expression here and the index's must stay identical, or the planner cannot use the index.

SQLite, the zero-setup default, has no such index: there every word of the query must appear in the
payload's JSON text, case-insensitively (a scan; fine for a demo's few thousand items)."""

from __future__ import annotations

import re

from django.db.models import BooleanField, Expression, Q, TextField
from django.db.models.functions import Cast

INDEX_NAME = "item_payload_fts"
TSVECTOR = "jsonb_to_tsvector('simple', {col}, '[\"string\"]')"
CREATE_INDEX = (
    f'CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON "labeling_item" USING gin ({TSVECTOR.format(col="payload")})'
)
DROP_INDEX = f"DROP INDEX IF EXISTS {INDEX_NAME}"

_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(q: str) -> list[str]:
    """The words of a query, as the page highlights them and the SQLite fallback matches them."""
    return [w.lower() for w in _WORD.findall(q or "")]


class PayloadMatches(Expression):
    """`payload @@ query` over the indexed tsvector expression (PostgreSQL)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, query: str, column: str = "payload"):
        super().__init__()
        self.query = query
        self.column = column

    def as_sql(self, compiler, connection):
        col = f"{compiler.quote_name_unless_alias(compiler.query.get_initial_alias())}.{connection.ops.quote_name(self.column)}"
        return f"{TSVECTOR.format(col=col)} @@ websearch_to_tsquery('simple', %s)", [self.query]


def payload_search_q(q: str, *, postgres: bool) -> Q:
    """A filter over items whose payload matches `q` (see the module docstring for each database)."""
    if postgres:
        return Q(PayloadMatches(q))
    words = query_words(q)
    cond = Q()
    for w in words:
        cond &= Q(payload_text__icontains=w)
    return cond


def payload_text():
    """The payload as text, for the SQLite fallback (annotate as `payload_text`)."""
    return Cast("payload", TextField())
