"""Item explorer search at scale: N items with text payloads (16 to 31 words drawn from a 5,000-word
vocabulary with a Zipf-like spread, plus a channel field) and one prediction each, loaded with bulk SQL
(generate_series), the full-text index rebuilt, then `q=` searches timed through the selector
(labeling.selectors.items_explorer, the first page of 100 as the API reads it) and over HTTP (GET
/api/projects/{id}/items, gunicorn, one worker, production settings). Prints p50/p95 per query.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench python benchmarks/search.py \
        [--items 1000000] [--calls 20] [--keep]

The project it creates is deleted at the end unless --keep is given.
"""

import os as _os
import sys as _sys  # benchmarks/queue.py must not shadow the standard library's queue module

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import random
import time
import uuid

from _server import gunicorn, print_table, setup_django

REAL = [
    "the",
    "a",
    "to",
    "and",
    "i",
    "my",
    "is",
    "it",
    "for",
    "of",
    "was",
    "not",
    "in",
    "order",
    "refund",
    "phone",
    "card",
    "account",
    "app",
    "payment",
    "delivery",
    "late",
    "broken",
    "screen",
    "battery",
    "charge",
    "charged",
    "twice",
    "cancel",
    "subscription",
    "help",
    "please",
    "thanks",
    "great",
    "terrible",
    "slow",
    "fast",
    "support",
    "agent",
    "email",
    "password",
    "login",
    "reset",
    "error",
    "crash",
    "update",
    "price",
    "discount",
    "coupon",
    "code",
    "shipping",
    "parcel",
    "package",
    "arrived",
    "missing",
    "wrong",
    "size",
    "colour",
    "return",
    "exchange",
    "store",
    "online",
    "website",
    "checkout",
    "cart",
    "invoice",
    "receipt",
    "bank",
    "transfer",
    "fraud",
    "blocked",
    "locked",
    "verify",
    "identity",
    "address",
    "change",
    "delivery",
    "courier",
    "tracking",
    "number",
    "waiting",
    "days",
    "weeks",
    "months",
    "still",
    "never",
    "again",
    "love",
    "hate",
    "recommend",
    "review",
    "star",
    "quality",
]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "nu",
    "pe",
    "ra",
    "si",
    "to",
    "vu",
    "xe",
    "za",
    "bo",
    "ce",
    "di",
    "fu",
    "ga",
    "he",
    "ji",
    "ko",
    "lu",
]
WORDS_PER_TEXT = (16, 31)


def vocabulary(n: int = 5000) -> list[str]:
    rng = random.Random(7)
    words = list(dict.fromkeys(REAL))
    seen = set(words)
    while len(words) < n:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def word_expr() -> str:
    # Rank drawn log-uniformly over the vocabulary: a few words are everywhere, most are rare.
    return "v[floor(exp(random() * ln(array_length(v, 1))))::int]"


def load(execute, project_id: int, n: int, vocab: list[str]):
    """Items and predictions in two INSERT ... SELECT generate_series statements."""
    lo, hi = WORDS_PER_TEXT
    parts = " || ' ' || ".join(word_expr() for _ in range(lo))
    extra = " || ".join(f"CASE WHEN k > {j} THEN ' ' || {word_expr()} ELSE '' END" for j in range(hi - lo))
    execute("SET LOCAL session_replication_role = replica")
    execute("SELECT setseed(0.21)")
    execute(
        f"""INSERT INTO labeling_item (project_id, external_id, payload, priority, status, required_annotations,
               annotation_count, uncertainty, first_predicted_at, queue_order, created_at, updated_at)
           SELECT %s, 's' || g,
                  jsonb_build_object('text', {parts} || {extra}, 'channel', 'c' || (g %% 20)),
                  g %% 5, CASE WHEN g %% 3 = 0 THEN 'resolved' ELSE 'open' END, 3, 0, 0.5 * random(),
                  now() - (g || ' seconds')::interval, 'fifo',
                  now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval
           FROM (SELECT g, floor(random() * {hi - lo + 1})::int AS k, %s::text[] AS v
                 FROM generate_series(1, %s) g) s""",
        [project_id, vocab, n],
    )
    execute(
        """INSERT INTO labeling_prediction (item_id, model_version, label, probabilities, predicted_at, created_at)
           SELECT id, 'v1', (ARRAY['pos','neg','neu'])[1 + id %% 3],
                  jsonb_build_object('pos', 1 - uncertainty), first_predicted_at, now()
           FROM labeling_item WHERE project_id = %s""",
        [project_id],
    )


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    setup_django()

    import requests
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from common.db.search import COLUMN, CREATE_INDEX, DROP_INDEX, INDEX_NAME
    from common.db.sql import execute
    from labeling.models import Item, Project
    from labeling.selectors.items_explorer import ItemFilters, item_explore
    from labeling.services.accounts import token_issue_login
    from labeling.services.projects import LabelSpec, project_create, user_create

    call_command("migrate", verbosity=0)
    user = user_create(username=f"bench-{uuid.uuid4().hex[:8]}", password="bench-password-123", is_staff=True)
    project = project_create(
        creator=user,
        name="search bench",
        labels=[LabelSpec("pos", "Pos"), LabelSpec("neg", "Neg"), LabelSpec("neu", "Neu")],
    )
    token = token_issue_login(user=user)[1]
    vocab = vocabulary()
    rows = []
    try:
        t = time.perf_counter()
        execute(DROP_INDEX)
        with transaction.atomic():
            load(execute, project.pk, args.items, vocab)
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        execute(CREATE_INDEX)
        t_index = time.perf_counter() - t
        execute("VACUUM ANALYZE labeling_item")
        execute("VACUUM ANALYZE labeling_prediction")
        with connection.cursor() as cur:
            cur.execute("SELECT pg_size_pretty(pg_relation_size(%s))", [INDEX_NAME])
            index_size = cur.fetchone()[0]
        rows.append([f"load {args.items:,} items + predictions (SQL)", f"{t_load:.1f} s", "", ""])
        rows.append(["build the GIN index", f"{t_index:.1f} s", index_size, ""])

        # Words by how often they occur: vocabulary rank 1 is in most texts, rank ~4,000 in a few hundred.
        queries = [
            ("frequent word", {"q": vocab[3]}),
            ("medium word", {"q": vocab[60]}),
            ("rare word", {"q": vocab[4000]}),
            ("two words", {"q": f"{vocab[30]} {vocab[200]}"}),
            ("phrase", {"q": f'"{vocab[10]} {vocab[20]}"'}),
            ("rare phrase of medium words", {"q": f'"{vocab[60]} {vocab[30]}"'}),
            ("phrase of frequent words", {"q": f'"{vocab[2]} {vocab[1]}"'}),
            ("three-word phrase", {"q": f'"{vocab[1]} {vocab[10]} {vocab[20]}"'}),
            ("partial word (no prefix search)", {"q": vocab[60][:3]}),
            ("word or word", {"q": f"{vocab[200]} or {vocab[4000]}"}),
            ("word, -excluded", {"q": f"{vocab[60]} -{vocab[3]}"}),
            ("no match", {"q": "zzzznotaword"}),
            ("word + status=open", {"q": vocab[200], "status": "open"}),
            ("word + field.channel=c7", {"q": vocab[200], "field.channel": "c7"}),
            ("word, ordering=-confidence", {"q": vocab[200], "ordering": "-confidence"}),
            (
                "phrase + status=open, ordering=-priority",
                {"q": f'"{vocab[10]} {vocab[20]}"', "status": "open", "ordering": "-priority"},
            ),
            ("rare word, ordering=-updated", {"q": vocab[4000], "ordering": "-updated"}),
        ]
        total = Item.objects.filter(project=project)

        def matches(q):
            with connection.cursor() as cur:
                cur.execute(
                    f"SELECT count(*) FROM labeling_item WHERE project_id = %s AND "
                    f"{COLUMN} @@ websearch_to_tsquery('simple', %s)",
                    [project.pk, q],
                )
                return cur.fetchone()[0]

        with gunicorn(workers=1) as server:
            s = requests.Session()
            s.headers["Authorization"] = f"Token {token}"
            endpoint = f"{server.url}/api/projects/{project.pk}/items"
            assert s.get(endpoint, timeout=300).status_code == 200
            for name, params in queries:
                filters = ItemFilters(
                    q=params.get("q"),
                    status=params.get("status"),
                    fields={k[6:]: v for k, v in params.items() if k.startswith("field.")},
                )
                sel, http = [], []
                for _ in range(args.calls):
                    t = time.perf_counter()
                    qs, order = item_explore(
                        project=project, user=user, filters=filters, ordering=params.get("ordering")
                    )
                    got = list(qs.order_by(*order)[:101])
                    sel.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    res = s.get(endpoint, params=params, timeout=300)
                    http.append((time.perf_counter() - t) * 1000)
                    assert res.status_code == 200, res.text[:300]
                rows.append(
                    [
                        f"{name}: q={params['q']!r}" + "".join(f" {k}={v}" for k, v in params.items() if k != "q"),
                        f"p50 {percentile(sel, 0.5):.0f} / p95 {percentile(sel, 0.95):.0f} ms",
                        f"p50 {percentile(http, 0.5):.0f} / p95 {percentile(http, 0.95):.0f} ms",
                        f"{matches(params['q']):,}, {len(got[:100])}",
                    ]
                )
        assert total.count() == args.items
    finally:
        if not args.keep:
            with connection.cursor() as cur:
                cur.execute("SET session_replication_role = replica")
                cur.execute(
                    "DELETE FROM labeling_prediction WHERE item_id IN (SELECT id FROM labeling_item WHERE project_id = %s)",
                    [project.pk],
                )
                cur.execute("DELETE FROM labeling_item WHERE project_id = %s", [project.pk])
                cur.execute("SET session_replication_role = DEFAULT")
            Project.objects.filter(pk=project.pk).delete()
            get_user_model().objects.filter(pk=user.pk).delete()
    print_table(
        f"Item search, {args.items:,} items, {args.calls} calls each (first page of 100)",
        ["what", "selector", "HTTP (gunicorn, 1 worker)", "q matches, first page"],
        rows,
    )


if __name__ == "__main__":
    main()
