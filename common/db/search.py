"""Full-text search over item payloads. On PostgreSQL every item row carries `search_vector`, a stored
generated column holding `jsonb_to_tsvector('simple', payload, '["string"]')` (every string value of the
payload, any depth; the 'simple' configuration: lower-cased words, no stemming, no stop words), with the
GIN index `item_search_vector` on it; a query is read as a web search (`websearch_to_tsquery`: words,
"quoted phrases", -excluded, or).

The vector is stored, not computed in the query, because the index alone cannot answer a phrase (nor
`-excluded` words): PostgreSQL rechecks each candidate row, and recomputing the vector from the jsonb
for each of them made phrase searches slow. PostgreSQL keeps the column in step with the payload on
every INSERT and UPDATE, whichever code writes it. The column is not a field of the Item model: no ORM
read fetches it, and SQLite (which has no tsvector) has no such column.

SQLite, the zero-setup default, has no such index: there every word of the query must appear in the
payload's JSON text, case-insensitively (a scan; fine for a demo's few thousand items)."""

from __future__ import annotations

import re

from django.db.models import BooleanField, Expression, Q, TextField
from django.db.models.functions import Cast

COLUMN = "search_vector"
INDEX_NAME = "item_search_vector"
TSVECTOR = "jsonb_to_tsvector('simple', payload, '[\"string\"]')"
# Adding the column rewrites the table (every row's vector is computed) under an exclusive lock.
ADD_COLUMN = (
    f'ALTER TABLE "labeling_item" ADD COLUMN IF NOT EXISTS {COLUMN} tsvector GENERATED ALWAYS AS ({TSVECTOR}) STORED'
)
DROP_COLUMN = f'ALTER TABLE "labeling_item" DROP COLUMN IF EXISTS {COLUMN}'
CREATE_INDEX = f'CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON "labeling_item" USING gin ({COLUMN})'
DROP_INDEX = f"DROP INDEX IF EXISTS {INDEX_NAME}"

_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(q: str) -> list[str]:
    """The words of a query, as the page highlights them and the SQLite fallback matches them."""
    return [w.lower() for w in _WORD.findall(q or "")]


class PayloadMatches(Expression):
    """`search_vector @@ query` on the item table of the query (PostgreSQL)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, query: str):
        super().__init__()
        self.query = query

    def as_sql(self, compiler, connection):
        table = compiler.quote_name_unless_alias(compiler.query.get_initial_alias())
        match = f"{table}.{connection.ops.quote_name(COLUMN)} @@ websearch_to_tsquery('simple', %s)"
        if '"' in self.query:
            # PostgreSQL estimates a phrase's matches as if it asked only for its words anywhere in the
            # text, far too many for a phrase whose words are common but seldom side by side. Then it
            # walks the items in page order checking each one, through the whole project when few
            # match. The same condition twice squares that estimate: phrases of uncommon words are then
            # answered from the index (their words' rows, each checked), while phrases of very common
            # words, whose matches are many, keep the walk that finds a page in the first rows.
            return f"({match} AND {match})", [self.query, self.query]
        return match, [self.query]


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
