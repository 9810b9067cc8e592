"""Datasets at scale (PostgreSQL): a version adding 1,000 items to a 200,000-item dataset, reading a
version as JSON Lines over HTTP (rows/s and server memory, for two dataset sizes), evaluating
1,000,000 predictions over 20 datasets, and mine_similar over 1,000,000 items.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench python benchmarks/datasets.py [--items 1000000]
"""

import os as _os  # benchmarks/queue.py must not shadow the standard library's queue module
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import os
import time
import tracemalloc
import uuid

from _server import gunicorn, print_table, setup_django

LABELS = ["billing", "bug", "feature", "account", "shipping"]
WORDS = [
    "refund",
    "charge",
    "invoice",
    "card",
    "crash",
    "error",
    "export",
    "login",
    "password",
    "parcel",
    "courier",
    "tracking",
    "damaged",
    "feature",
    "request",
    "dark",
    "mode",
    "api",
    "sync",
    "calendar",
    "account",
    "delete",
    "merge",
    "admin",
    "price",
    "plan",
]


def load(project_id, n_items):
    """Items with text payloads and ground truth, inserted with set-based SQL."""
    from common.db import sql

    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    labels = "ARRAY[" + ",".join(f"'{k}'" for k in LABELS) + "]"
    sql.execute_many(
        [
            (
                f"""
            INSERT INTO labeling_item (project_id, external_id, payload, priority, status, required_annotations,
                                       annotation_count, created_at, updated_at)
            SELECT %s, 'it-' || g, jsonb_build_object('text',
                     ({words})[1 + g %% 24] || ' ' || ({words})[1 + (g / 24) %% 24] || ' ' ||
                     ({words})[1 + (g / 576) %% 24] || ' order ' || g),
                   0, 'resolved', 3, 3, now(), now()
            FROM generate_series(1, %s) g""",
                [project_id, n_items],
            ),
            (
                f"""
            INSERT INTO labeling_groundtruth (item_id, label, method, decided_at, first_arrived_at, source, note)
            SELECT id, ({labels})[1 + (id %% 5)], 'imported', now(), now(), '', '' FROM labeling_item WHERE project_id = %s""",
                [project_id],
            ),
            ("ANALYZE labeling_item; ANALYZE labeling_groundtruth", None),
        ]
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--datasets", type=int, default=20)
    args = ap.parse_args()
    setup_django()
    from django.core.management import call_command

    from bugqueue.models import Bug, Dataset, DatasetVersion, FailureExample
    from bugqueue.services.datasets import (
        Addition,
        bug_datasets_flow_run,
        bug_datasets_flow_start,
        dataset_version_create,
    )
    from bugqueue.services.evaluations import evaluation_run, predictions_parse
    from common.db import sql
    from labeling.models import Item
    from labeling.services.accounts import token_issue_login
    from labeling.services.projects import LabelSpec, project_create, user_create
    from labeling.services.similarity import similarity_index_update

    call_command("migrate", verbosity=0)
    user = user_create(username=f"ds-{uuid.uuid4().hex[:8]}", password="bench-password-123")
    project = project_create(creator=user, name="datasets bench", labels=[LabelSpec(k, k.title()) for k in LABELS])
    token = token_issue_login(user=user)[1]
    rows = []

    t0 = time.perf_counter()
    load(project.pk, args.items)
    rows.append(["load items + ground truth (SQL)", f"{args.items:,}", f"{time.perf_counter() - t0:.1f}", ""])
    ids = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    label_of = {k: LABELS[k % 5] for k in ids}

    # A 200k dataset (one big version via SQL), then a version adding 1,000 items through the service.
    big = Dataset.objects.create(project=project, name="big")
    sql.execute(
        """INSERT INTO bugqueue_datasetmember (dataset_id, item_id, label, added_in)
                   SELECT %s, i.id, g.label, 1 FROM labeling_item i JOIN labeling_groundtruth g ON g.item_id = i.id
                   WHERE i.project_id = %s ORDER BY i.id LIMIT 200000""",
        [big.pk, project.pk],
    )
    DatasetVersion.objects.create(dataset=big, number=1, reason="manual", added=200_000, size=200_000)
    big.latest_version = 1
    big.save()
    extra = [Addition(i, label_of[i]) for i in ids[200_000:201_000]]
    t0 = time.perf_counter()
    dataset_version_create(dataset_id=big.pk, add=extra, note="bench")
    rows.append(["version adding 1,000 items to 200,000", "1,000", f"{time.perf_counter() - t0:.3f}", "1 version"])

    small = Dataset.objects.create(project=project, name="small")
    dataset_version_create(dataset_id=small.pk, add=[Addition(i, label_of[i]) for i in ids[:10_000]])

    # Read versions as JSON Lines over HTTP: rows/s and worker memory for 10k vs 201k rows.
    import requests

    with gunicorn(workers=1) as server:
        for ds, n in ((small, 10_000), (big, 201_000)):
            url = f"{server.url}/api/datasets/{ds.pk}/versions/{1 if ds.pk == small.pk else 2}/items?format=jsonl"
            before = server.worker_rss_mb()
            t0 = time.perf_counter()
            got = 0
            with requests.get(url, headers={"Authorization": f"Token {token}"}, stream=True, timeout=600) as res:
                res.raise_for_status()
                for line in res.iter_lines():
                    if line:
                        got += 1
            dt = time.perf_counter() - t0
            rows.append(
                [
                    f"read version as JSON Lines ({n:,} rows)",
                    f"{got:,}",
                    f"{dt:.2f}",
                    f"{got / dt:,.0f} rows/s; worker RSS {before:.0f} -> peak {server.peak_worker_rss_mb():.0f} MB",
                ]
            )

    # 20 datasets of 50,000 items each (1,000,000 memberships), then evaluate 1,000,000 predictions.
    per = max(1, args.items // args.datasets)
    datasets = []
    for k in range(args.datasets):
        d = Dataset.objects.create(project=project, name=f"slice-{k:02d}", min_accuracy=0.5)
        sql.execute(
            """INSERT INTO bugqueue_datasetmember (dataset_id, item_id, label, added_in)
                       SELECT %s, i.id, g.label, 1 FROM labeling_item i JOIN labeling_groundtruth g ON g.item_id = i.id
                       WHERE i.project_id = %s ORDER BY i.id OFFSET %s LIMIT %s""",
            [d.pk, project.pk, k * per, per],
        )
        DatasetVersion.objects.create(dataset=d, number=1, reason="manual", added=per, size=per)
        d.latest_version = 1
        d.save()
        datasets.append(d.pk)
    external = [f"it-{g}" for g in range(1, args.items + 1)]
    preds = [
        {"external_id": e, "label": LABELS[(g + (g % 7 == 0)) % 5]} for g, e in zip(range(1, args.items + 1), external)
    ]
    tracemalloc.start()
    t0 = time.perf_counter()
    batch = predictions_parse(project=project, rows=preds)
    t_parse = time.perf_counter() - t0
    ev = evaluation_run(project=project, actor=user, model_version="bench-m1", batch=batch, dataset_ids=datasets)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    acc = ev.results.first().accuracy
    rows.append(
        [
            f"evaluate {args.items:,} predictions over {args.datasets} datasets",
            f"{args.items:,}",
            f"{dt:.1f}",
            f"parse {t_parse:.1f} s; accuracy {acc:.3f}; Python peak {peak / 1e6:.0f} MB (excl. input list)",
        ]
    )
    del preds

    # mine_similar over the 1M items: index build (Celery work), then the query inside a bug flow.
    t0 = time.perf_counter()
    similarity_index_update(project_id=project.pk)
    rows.append(
        [
            f"similarity index build ({args.items:,} items)",
            f"{args.items:,}",
            f"{time.perf_counter() - t0:.1f}",
            "once; then appended",
        ]
    )
    now = project.created_at
    bug = Bug.objects.create(
        project=project, title="bench bug", kind="failed_prediction", fingerprint="bench", first_seen=now, last_seen=now
    )
    FailureExample.objects.bulk_create(
        [FailureExample(bug=bug, project=project, item_id=i, expected_label=label_of[i]) for i in ids[500_000:500_010]]
    )
    target = Dataset.objects.create(project=project, name="mined")
    flow = bug_datasets_flow_start(bug=bug, actor=user, dataset_ids=[target.pk], mine_similar=1000)
    t0 = time.perf_counter()
    flow = bug_datasets_flow_run(flow_id=flow.pk)
    rows.append(
        [
            f"mine_similar 1,000 over {args.items:,} items (+ version)",
            f"{flow.mined:,}",
            f"{time.perf_counter() - t0:.2f}",
            f"added {flow.added}, pending {flow.pending}",
        ]
    )
    print_table(
        f"Validation datasets on PostgreSQL ({os.cpu_count()} cores)", ["operation", "rows", "seconds", "notes"], rows
    )


if __name__ == "__main__":
    main()
