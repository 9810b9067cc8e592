"""Full-text search of the item explorer: PostgreSQL answers through the GIN index on the items' stored
search vector (a generated column of the payload's string values); the SQLite path (each word a
case-insensitive substring of the payload's JSON text) is exercised on whichever database runs the tests."""

import importlib
from unittest import mock

import pytest
from django.db import connection

from common.db.search import COLUMN, INDEX_NAME, payload_search_q, query_words
from labeling.models import Item
from labeling.selectors.items_explorer import ItemFilters, item_explore
from labeling.services.ingestion import items_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def searchable(project, user):
    items_ingest(
        project=project,
        rows=[
            {"external_id": "a", "payload": {"text": "Refund for a broken screen", "meta": {"note": "urgent"}}},
            {"external_id": "b", "payload": {"text": "Screen cracked, refunds take weeks"}},
            {"external_id": "c", "payload": {"title": "Coupon code", "body": "where do I put it"}},
            {"external_id": "d", "payload": {"text": "nothing here", "refund_key": 5}},
        ],
    )
    return project, user


def _search(project, user, q):
    qs, order = item_explore(project=project, user=user, filters=ItemFilters(q=q))
    return sorted(qs.values_list("external_id", flat=True))


def test_query_words():
    assert query_words('"Broken screen" -refund, OR coupon') == ["broken", "screen", "refund", "or", "coupon"]


def test_postgres_full_text(postgres, searchable):
    project, user = searchable
    assert _search(project, user, "refund") == ["a"]  # words, not substrings ("refunds" is another word)
    assert _search(project, user, "SCREEN") == ["a", "b"]
    assert _search(project, user, "screen -refund") == ["b"]
    assert _search(project, user, '"broken screen"') == ["a"]
    assert _search(project, user, '"screen broken"') == []
    assert _search(project, user, "urgent") == ["a"]  # nested string values are searched
    assert _search(project, user, "coupon or weeks") == ["b", "c"]
    assert _search(project, user, "refund_key") == []  # keys are not searched, only string values


def test_postgres_uses_the_index(postgres, searchable):
    """The selector's expression is the index's: the planner can answer it from the index alone."""
    project, user = searchable
    with connection.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")  # GIN answers through a bitmap scan
        plan = Item.objects.filter(payload_search_q("refund", postgres=True)).only("id").explain()
    assert INDEX_NAME in plan


def test_postgres_index_exists(postgres):
    with connection.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX_NAME])
        (definition,) = cur.fetchone()
        cur.execute(
            "SELECT is_generated, generation_expression FROM information_schema.columns "
            "WHERE table_name = 'labeling_item' AND column_name = %s",
            [COLUMN],
        )
        generated, expression = cur.fetchone()
        cur.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'item_payload_fts'")
        (old_index,) = cur.fetchone()
    assert "gin" in definition and f"({COLUMN})" in definition
    assert generated == "ALWAYS" and "jsonb_to_tsvector('simple'" in expression
    assert old_index == 0  # the expression index it replaces is gone


def test_postgres_phrase_rechecks_the_stored_vector(postgres, searchable):
    """A phrase needs a recheck of each candidate row: it reads the stored column, not the payload."""
    project, user = searchable
    with connection.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")
        plan = Item.objects.filter(payload_search_q('"broken screen"', postgres=True)).only("id").explain()
    assert INDEX_NAME in plan and COLUMN in plan and "jsonb_to_tsvector" not in plan


def test_postgres_vector_follows_payload_changes(postgres, searchable):
    project, user = searchable
    items_ingest(project=project, rows=[{"external_id": "d", "payload": {"text": "now about a parcel"}}])
    items_ingest(project=project, rows=[{"external_id": "e", "payload": {"text": "another parcel"}}])
    assert _search(project, user, "parcel") == ["d", "e"]
    assert _search(project, user, "nothing") == []
    Item.objects.filter(project=project, external_id="e").update(payload={"text": "a letter"})
    assert _search(project, user, "parcel") == ["d"]
    assert _search(project, user, "letter") == ["e"]


def test_postgres_migration_fills_the_vector_of_existing_items(postgres, searchable):
    """Migration 0033 on a database that has items: it adds the column and computes every row's vector."""
    project, user = searchable
    migration = importlib.import_module("labeling.migrations.0033_item_search_vector")
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses a table with checks pending
    with connection.schema_editor() as editor:
        migration.backwards(None, editor)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.columns WHERE column_name = %s", [COLUMN])
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'item_payload_fts'")
        assert cur.fetchone()[0] == 1
    Item.objects.filter(project=project, external_id="c").update(payload={"text": "added while it was away"})
    with connection.schema_editor() as editor:
        migration.forwards(None, editor)
    assert _search(project, user, '"broken screen"') == ["a"]
    assert _search(project, user, "away") == ["c"]
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM labeling_item WHERE {COLUMN} IS NULL OR {COLUMN} = ''::tsvector")
        assert cur.fetchone()[0] == 0


def test_substring_fallback_used_where_there_is_no_postgres(searchable):
    project, user = searchable
    with mock.patch("labeling.selectors.items_explorer.is_postgres", return_value=False):
        assert _search(project, user, "refund") == ["a", "b", "d"]  # substrings of the JSON text, keys too
        assert _search(project, user, "Screen broken") == ["a"]  # every word, any order
        assert _search(project, user, "coupon") == ["c"]
        assert _search(project, user, "zzz") == []
    assert Item.objects.filter(project=project).count() == 4


def test_postgres_phrase_condition_written_twice(postgres, searchable):
    """A phrase's condition appears twice (the planner's estimate of its matches squared, so that a
    phrase of uncommon words is answered from the index); a query without one, once."""
    project, user = searchable
    phrase = str(Item.objects.filter(payload_search_q('"broken screen"', postgres=True)).query)
    words = str(Item.objects.filter(payload_search_q("broken screen", postgres=True)).query)
    assert phrase.count(f'{COLUMN}" @@') == 2 and words.count(f'{COLUMN}" @@') == 1
    assert _search(project, user, '"broken screen" -urgent') == []
    assert _search(project, user, '"broken screen" or coupon') == ["a", "c"]
