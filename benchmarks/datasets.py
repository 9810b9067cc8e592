"""Datasets at scale (PostgreSQL): a version adding 1,000 items to a 200,000-item dataset, reading a
version as JSON Lines over HTTP (rows/s and server memory, for two dataset sizes), evaluating
1,000,000 predictions over 20 datasets, mine_similar over 1,000,000 items, and the gate's
evaluation of one 1,000,000-item dataset with 20 slice fields (plus the built-in bug slice)
against a production baseline: first evaluated from its production predictions, then reused,
then a re-evaluation from stored predictions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench python benchmarks/datasets.py \
        [--items 1000000] [--slices 20] [--parts versions,read,evaluate,mine,slices]
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


# Distinct values of slice field k (cycled): small and large fields; one above the 50-value cap.
CARDINALITY = [2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 30, 40, 50, 64, 80, 100, 200, 500, 1000]


def slice_sql(n_slices):
    """jsonb_build_object arguments for the slice fields s0..s{n-1}; s1 is missing on every 7th item."""
    parts = []
    for k in range(n_slices):
        card = CARDINALITY[k % len(CARDINALITY)]
        parts.append(f"'s{k}', CASE WHEN {k} = 1 AND g %% 7 = 0 THEN NULL ELSE 'v' || ((g * {k + 1}) %% {card}) END")
    return "".join(", " + p for p in parts)


def load(project_id, n_items, n_slices=0):
    """Items with text payloads (and slice fields s0..) and ground truth, inserted with set-based SQL.
    jsonb_strip_nulls drops a NULL slice value: the key is missing there."""
    from common.db import sql

    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    labels = "ARRAY[" + ",".join(f"'{k}'" for k in LABELS) + "]"
    sql.execute_many(
        [
            (
                f"""
            INSERT INTO labeling_item (project_id, external_id, payload, priority, status, required_annotations,
                                       annotation_count, created_at, updated_at)
            SELECT %s, 'it-' || g, jsonb_strip_nulls(jsonb_build_object('text',
                     ({words})[1 + g %% 24] || ' ' || ({words})[1 + (g / 24) %% 24] || ' ' ||
                     ({words})[1 + (g / 576) %% 24] || ' order ' || g{slice_sql(n_slices)})),
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


PARTS = ("versions", "read", "evaluate", "mine", "slices")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--datasets", type=int, default=20)
    ap.add_argument("--slices", type=int, default=20, help="slice fields of the project (payload keys)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        ap.error(f"unknown parts: {sorted(parts - set(PARTS))}")
    setup_django()
    from django.core.management import call_command

    from labeling.services.accounts import token_issue_login
    from labeling.services.projects import LabelSpec, project_create, user_create

    call_command("migrate", verbosity=0)
    user = user_create(username=f"ds-{uuid.uuid4().hex[:8]}", password="bench-password-123")
    project = project_create(creator=user, name="datasets bench", labels=[LabelSpec(k, k.title()) for k in LABELS])
    token = token_issue_login(user=user)[1]
    rows = []

    t0 = time.perf_counter()
    load(project.pk, args.items, args.slices if "slices" in parts else 0)
    rows.append(["load items + ground truth (SQL)", f"{args.items:,}", f"{time.perf_counter() - t0:.1f}", ""])
    if parts & {"versions", "read", "evaluate", "mine"}:
        rows.extend(other_parts(project, user, token, args, parts))
    if "slices" in parts:  # last: it promotes a production model, which the evaluations above would compare with
        rows.extend(slices_part(project, user, args.items, args.slices))
    print_table(
        f"Validation datasets on PostgreSQL ({os.cpu_count()} cores)", ["operation", "rows", "seconds", "notes"], rows
    )


def other_parts(project, user, token, args, parts):
    from bugqueue.models import Dataset, DatasetVersion
    from bugqueue.services.datasets import Addition, dataset_version_create
    from common.db import sql
    from labeling.models import Item

    rows = []
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

    if "read" in parts:
        rows.extend(read_part(server_datasets=(small, big), token=token))
    if "evaluate" in parts:
        rows.extend(evaluate_part(project, user, args))
    if "mine" in parts:
        rows.extend(mine_part(project, user, args, ids, label_of))
    return rows


def read_part(server_datasets, token):
    small, big = server_datasets
    rows = []
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

    return rows


def evaluate_part(project, user, args):
    from bugqueue.models import Dataset, DatasetVersion
    from bugqueue.services.evaluations import evaluation_run, predictions_parse
    from common.db import sql

    rows = []
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
    return rows


def mine_part(project, user, args, ids, label_of):
    from bugqueue.models import Bug, Dataset, FailureExample
    from bugqueue.services.datasets import bug_datasets_flow_run, bug_datasets_flow_start
    from labeling.services.similarity import similarity_index_update

    rows = []
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
    return rows


def slices_part(project, user, n_items, n_slices):
    """One gate dataset of every item (a tenth of them from 50 resolved bugs), the project's slice
    fields s0.., a production model whose predictions (90% right) are only in labeling's Prediction
    table, and two candidates of 1,000,000 predictions each (one breaks bug items and a slice)."""
    from django.utils import timezone

    from bugqueue.models import Bug, Dataset, DatasetVersion
    from bugqueue.services.evaluations import evaluation_rerun_stored, evaluation_run, predictions_parse
    from common.db import sql
    from labeling.models import Item, Project
    from labeling.services.registry import model_ensure, model_stage_write

    rows = []
    Project.objects.filter(pk=project.pk).update(slice_fields=[f"s{k}" for k in range(n_slices)])
    project.refresh_from_db()
    now = timezone.now()
    bugs = Bug.objects.bulk_create(
        [
            Bug(
                project=project,
                title=f"slice bug {k}",
                kind="failed_prediction",
                fingerprint=f"slice-{k}",
                first_seen=now,
                last_seen=now,
            )
            for k in range(50)
        ]
    )
    bug_ids = "{" + ",".join(str(b.pk) for b in bugs) + "}"
    labels = "ARRAY[" + ",".join(f"'{k}'" for k in LABELS) + "]"
    gate = Dataset.objects.create(project=project, name="gate", gate=True, min_accuracy=0.5)
    t0 = time.perf_counter()
    sql.execute_many(
        [
            (
                """INSERT INTO bugqueue_datasetmember (dataset_id, item_id, label, added_in, bug_id)
                SELECT %s, i.id, g.label, 1, CASE WHEN hashint8(i.id) %% 10 = 0 THEN (%s::bigint[])[1 + (i.id / 10) %% 50] END
                FROM labeling_item i JOIN labeling_groundtruth g ON g.item_id = i.id WHERE i.project_id = %s""",
                [gate.pk, bug_ids, project.pk],
            ),
            (
                f"""INSERT INTO labeling_prediction (item_id, model_version, label, predicted_at, created_at)
                SELECT i.id, 'bench-prod', CASE WHEN i.id %% 10 = 3 THEN ({labels})[1 + (i.id + 1) %% 5] ELSE g.label END,
                       now(), now()
                FROM labeling_item i JOIN labeling_groundtruth g ON g.item_id = i.id WHERE i.project_id = %s""",
                [project.pk],
            ),
            ("ANALYZE bugqueue_datasetmember; ANALYZE labeling_prediction", None),
        ]
    )
    DatasetVersion.objects.create(dataset=gate, number=1, reason="manual", added=n_items, size=n_items)
    gate.latest_version = 1
    gate.save()
    model_stage_write(
        model=model_ensure(project=project, version="bench-prod", actor=user), to_stage="production", actor=user
    )
    rows.append(["gate dataset + production predictions (SQL)", f"{n_items:,}", f"{time.perf_counter() - t0:.1f}", ""])

    ids = Item.objects.filter(project=project).values_list("external_id", "id")
    truth = dict(ids.iterator(chunk_size=20_000))

    def candidate(break_bugs):
        out = []
        for e, item_id in truth.items():
            g = int(e[3:])
            scattered = (g * 2654435761 >> 7) % 8 == 0  # an eighth, unrelated to the slice values
            # wrong where production is (a tenth), and on an eighth of slice s3=v1
            wrong = item_id % 10 == 3 or ((g * 4) % 5 == 1 and scattered)
            if break_bugs and g % 3 == 0:
                wrong = True  # and a third of everything, bug items included
            out.append({"external_id": e, "label": LABELS[(item_id + wrong) % 5]})
        return out

    for name, break_bugs in (("bench-c1", True), ("bench-c2", False)):
        preds = candidate(break_bugs)
        t0 = time.perf_counter()
        batch = predictions_parse(project=project, rows=preds)
        t_parse = time.perf_counter() - t0
        del preds
        t0 = time.perf_counter()
        ev = evaluation_run(project=project, actor=user, model_version=name, batch=batch, dataset_ids=[gate.pk])
        dt = time.perf_counter() - t0
        r = ev.results.get()
        base = "from production predictions (stored evaluation written)" if break_bugs else "stored result reused"
        rows.append(
            [
                f"gate evaluation {name}: {n_items:,} items x {n_slices} slices + bug, baseline {base}",
                f"{n_items:,}",
                f"{dt:.1f}",
                f"parse {t_parse:.1f} s before; accuracy {r.accuracy:.3f}; regressions {r.regressions:,} over "
                f"{len(r.regressions_by_bug)} bugs; {len(r.slices)} slice rows, "
                f"{sum(s['dropped'] for s in r.slices)} dropped; passed {r.passed}",
            ]
        )
    t0 = time.perf_counter()
    ev = evaluation_rerun_stored(project=project, model_version="bench-c1", actor=user, dataset_ids=[gate.pk])
    dt = time.perf_counter() - t0
    r = ev.results.get()
    rows.append(
        [
            f"rerun bench-c1 from stored predictions ({n_slices} slices + bug)",
            f"{n_items:,}",
            f"{dt:.1f}",
            f"accuracy {r.accuracy:.3f}; regressions {r.regressions:,}",
        ]
    )
    return rows


if __name__ == "__main__":
    main()
