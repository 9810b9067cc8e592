"""Feedback-delay report at scale: N predictions (M with ground truth) loaded with bulk SQL
(generate_series), the rollups rebuilt, then GET /api/projects/{id}/feedback-delay timed over HTTP
(gunicorn, one worker, production settings) with and without filters (stage and slice splits too:
the project declares slice fields, v1 is in production and v2 in shadow), the dashboard page timed
in-process, and an incremental refresh after a 10,000-row ground-truth import. Prints one table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench python benchmarks/delay.py \
        [--predictions 5000000] [--labeled 3000000] [--days 180] [--calls 7] [--keep]

The project it creates is deleted at the end unless --keep is given.
"""

import os as _os
import sys as _sys  # benchmarks/queue.py must not shadow the standard library's queue module

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from _server import gunicorn, setup_django


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def load(cur, project_id, n, labeled, days):
    """Items (payload: channel, 200 values; customer_tier), one prediction each (70% v1, 30% v2) over
    `days`, ground truth for `labeled` of them with
    lognormal delays (median 3 days), half decided by people, half imported as chargebacks."""
    # A bulk load of rows consistent by construction: skip the per-row foreign-key triggers (needs a
    # superuser; this transaction only). The feature's own writes never do this.
    cur.execute("SET LOCAL session_replication_role = replica")
    cur.execute("SELECT setseed(0.42)")
    cur.execute(
        """INSERT INTO labeling_item (project_id, external_id, payload, priority, status, required_annotations,
               annotation_count, created_at, updated_at)
           SELECT %s, 'b' || g,
                  jsonb_build_object('channel', 'c' || (g %% 200), 'customer_tier', 't' || (g %% 3)),
                  0, 'open', 3, 0, now(), now() FROM generate_series(1, %s) g""",
        [project_id, n],
    )
    cur.execute(
        """INSERT INTO labeling_prediction (item_id, model_version, label, probabilities, predicted_at, created_at)
           SELECT id, CASE WHEN r1 < 0.7 THEN 'v1' ELSE 'v2' END, 'pos',
                  jsonb_build_object('pos', round(c::numeric, 4), 'neg', round(((1 - c) / 2)::numeric, 4),
                                     'neu', round((1 - round(c::numeric, 4) - round(((1 - c) / 2)::numeric, 4))::numeric, 4)),
                  now() - r2 * %s * interval '1 day', now()
           FROM (SELECT id, random() r1, random() r2, 0.5 + 0.49 * random() c
                 FROM labeling_item WHERE project_id = %s) i""",
        [days, project_id],
    )
    cur.execute(
        """CREATE TEMP TABLE bench_gt AS
           SELECT item_id, arrived, correct, human FROM (
               SELECT p.item_id,
                      p.predicted_at + make_interval(secs => exp(ln(3 * 86400) + sqrt(-2 * ln(1 - random()))
                                                              * cos(2 * pi() * random()))) AS arrived,
                      random() < (p.probabilities ->> 'pos')::float8 AS correct,
                      random() < 0.5 AS human, random() AS keep
               FROM labeling_prediction p JOIN labeling_item i ON i.id = p.item_id WHERE i.project_id = %s) x
           WHERE arrived <= now() AND keep < 0.66
           LIMIT %s""",
        [project_id, labeled],
    )
    cur.execute(
        """INSERT INTO labeling_groundtruth (item_id, label, method, decided_at, source, note, first_arrived_at)
           SELECT item_id, CASE WHEN correct THEN 'pos' ELSE 'neg' END,
                  CASE WHEN human THEN 'unanimous' ELSE 'imported' END, arrived,
                  CASE WHEN human THEN '' ELSE 'chargeback' END, '', arrived FROM bench_gt"""
    )
    cur.execute(
        """INSERT INTO labeling_labelchange (project_id, seq, item_id, external_id, label, previous_label, method,
               annotators, model_version, source, note, changed_at)
           SELECT %s, row_number() OVER (ORDER BY arrived, g.item_id), g.item_id, i.external_id,
                  CASE WHEN correct THEN 'pos' ELSE 'neg' END,
                  '', CASE WHEN human THEN 'unanimous' ELSE 'imported' END, '[]'::jsonb, '',
                  CASE WHEN human THEN '' ELSE 'chargeback' END, '', arrived
           FROM bench_gt g JOIN labeling_item i ON i.id = g.item_id""",
        [project_id],
    )
    cur.execute(
        "UPDATE labeling_labelsequence SET last_seq = (SELECT count(*) FROM bench_gt) WHERE project_id = %s",
        [project_id],
    )
    cur.execute("UPDATE labeling_item SET status = 'resolved' WHERE id IN (SELECT item_id FROM bench_gt)")
    cur.execute("SELECT count(*) FROM bench_gt")
    got = cur.fetchone()[0]
    cur.execute("DROP TABLE bench_gt")
    return got


def drop(cur, project_id):
    cur.execute("SET LOCAL session_replication_role = replica")  # no per-row foreign-key checks at commit
    for sql in (
        "DELETE FROM labeling_feedbackdelaybin WHERE project_id = %s",
        "DELETE FROM labeling_feedbackbacklogbin WHERE project_id = %s",
        "DELETE FROM labeling_feedbackdirtyday WHERE project_id = %s",
        "DELETE FROM labeling_feedbackstate WHERE project_id = %s",
        "DELETE FROM labeling_groundtruthobservation WHERE project_id = %s",
        "DELETE FROM labeling_labelchange WHERE project_id = %s",
        "DELETE FROM labeling_groundtruth WHERE item_id IN (SELECT id FROM labeling_item WHERE project_id = %s)",
        "DELETE FROM labeling_prediction WHERE item_id IN (SELECT id FROM labeling_item WHERE project_id = %s)",
        "DELETE FROM labeling_item WHERE project_id = %s",
        "DELETE FROM labeling_labelsequence WHERE project_id = %s",
        "DELETE FROM labeling_modelstagechange WHERE model_id IN (SELECT id FROM labeling_modelversion WHERE project_id = %s)",
        "DELETE FROM labeling_modelversion WHERE project_id = %s",
        "DELETE FROM labeling_membership WHERE project_id = %s",
        "DELETE FROM labeling_labelclass WHERE project_id = %s",
        "DELETE FROM labeling_project WHERE id = %s",
    ):
        cur.execute(sql, [project_id])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--predictions", type=int, default=5_000_000)
    ap.add_argument("--labeled", type=int, default=3_000_000)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--calls", type=int, default=7)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    setup_django()
    import requests
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client

    from labeling.models import FeedbackBacklogBin, FeedbackDelayBin, Item
    from labeling.services.accounts import token_issue_login
    from labeling.services.feedback import ground_truth_import
    from labeling.services.feedback_rollup import feedback_rollup_rebuild, feedback_rollup_refresh
    from labeling.services.projects import LabelSpec, project_create, user_create
    from labeling.services.registry import model_register, model_stage_write

    call_command("migrate", verbosity=0)
    user = user_create(username=f"bench-{uuid.uuid4().hex[:8]}", password="bench-password-123", is_staff=True)
    project = project_create(
        creator=user,
        name="delay bench",
        labels=[LabelSpec("pos", "Pos"), LabelSpec("neg", "Neg"), LabelSpec("neu", "Neu")],
        slice_fields=["channel", "customer_tier"],
    )
    model_stage_write(
        model=model_register(project=project, actor=user, version="v1"), to_stage="production", actor=user
    )
    model_stage_write(model=model_register(project=project, actor=user, version="v2"), to_stage="shadow", actor=user)
    token = token_issue_login(user=user)[1]
    rows = []
    try:
        with transaction.atomic(), connection.cursor() as cur:
            t_load, got = timed(lambda: load(cur, project.pk, args.predictions, args.labeled, args.days))
        with connection.cursor() as cur:
            for table in ("labeling_item", "labeling_prediction", "labeling_groundtruth", "labeling_labelchange"):
                cur.execute(f"VACUUM ANALYZE {table}")
        rows.append([f"load {args.predictions:,} predictions, {got:,} with ground truth (SQL)", f"{t_load:.1f} s", ""])

        t_rebuild, _ = timed(lambda: feedback_rollup_rebuild(project_id=project.pk))
        n_bins = FeedbackDelayBin.objects.filter(project=project).count()
        n_backlog = FeedbackBacklogBin.objects.filter(project=project).count()
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE labeling_feedbackdelaybin")
            cur.execute("VACUUM ANALYZE labeling_feedbackbacklogbin")
        rows.append(
            [
                "rollup rebuild (full, one statement)",
                f"{t_rebuild:.1f} s",
                f"{n_bins:,} delay bins + {n_backlog:,} backlog bins",
            ]
        )

        since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 28 * 86400))
        scenarios = [
            ("GET feedback-delay (no filters)", {}),
            ("GET feedback-delay ?model_version=v1", {"model_version": "v1"}),
            ("GET feedback-delay ?source=chargeback", {"source": "chargeback"}),
            ("GET feedback-delay ?since=<28 days ago>", {"since": since}),
            ("GET feedback-delay all filters", {"model_version": "v2", "source": "human", "since": since}),
            ("GET feedback-delay ?stage=shadow", {"stage": "shadow"}),
            ("GET feedback-delay ?slice=channel (200 values)", {"slice": "channel"}),
            (
                "GET feedback-delay ?slice=customer_tier&stage=production",
                {"slice": "customer_tier", "stage": "production"},
            ),
            ("GET feedback-delay ?slice=channel&source=chargeback", {"slice": "channel", "source": "chargeback"}),
            ("GET feedback-delay ?slice=channel&since=<28 days ago>", {"slice": "channel", "since": since}),
        ]
        with gunicorn(workers=1) as server:
            url = server.url
            s = requests.Session()
            s.headers["Authorization"] = f"Token {token}"
            endpoint = f"{url}/api/projects/{project.pk}/feedback-delay"
            first = s.get(endpoint, timeout=300)
            assert first.status_code == 200, first.text[:500]
            body = first.json()
            for name, params in scenarios:
                times = []
                for _ in range(args.calls):
                    dt, res = timed(lambda: s.get(endpoint, params=params, timeout=300))  # noqa: B023 (called at once)
                    assert res.status_code == 200, res.text[:500]
                    times.append(dt * 1000)
                rows.append(
                    [
                        name,
                        f"median {statistics.median(times):.0f} ms, max {max(times):.0f} ms",
                        f"{args.calls} calls, {len(res.content):,} bytes",
                    ]
                )

        client = Client()
        client.force_login(user)
        page = f"/projects/{project.pk}/delay"
        client.get(page)
        times = []
        for _ in range(3):
            dt, res = timed(lambda: client.get(page))
            assert res.status_code == 200
            times.append(dt * 1000)
        rows.append(
            ["dashboard page /projects/{id}/delay (in-process)", f"median {statistics.median(times):.0f} ms", "3 calls"]
        )

        week_ago = datetime.now(tz=UTC) - timedelta(days=7)
        for label, qs in (
            ("predicted in the last 7 days", Item.objects.filter(predictions__predicted_at__gte=week_ago)),
            ("predicted any day (worst case)", Item.objects.all()),
        ):
            ext_ids = list(qs.filter(project=project, status="open").values_list("external_id", flat=True)[:10_000])
            batch = [{"external_id": ext, "label": "pos", "source": "chargeback"} for ext in ext_ids]
            t_import, result = timed(lambda: ground_truth_import(project=project, rows=batch))  # noqa: B023 (called at once)
            rows.append(
                [
                    f"import {len(batch):,} ground-truth rows, {label}",
                    f"{t_import:.1f} s",
                    f"{result.count('applied'):,} applied (service, one transaction)",
                ]
            )
            t_refresh, refreshed = timed(lambda: feedback_rollup_refresh(project_id=project.pk))
            rows.append(
                [
                    "  then incremental rollup refresh",
                    f"{t_refresh:.1f} s",
                    f"{refreshed.days} prediction days recomputed",
                ]
            )
        km = body["delay_seconds"]
        naive = body["naive_delay_seconds"]
        d = lambda v: "not reached" if v is None else f"{v / 86400:.2f} d"  # noqa: E731
        rows.append(
            [
                "report (no filters): KM p50 / p90",
                f"{d(km['p50'])} / {d(km['p90'])}",
                f"naive {d(naive['p50'])} / {d(naive['p90'])}; {body['labeled']:,} of {body['predictions']:,} labeled",
            ]
        )
    finally:
        if not args.keep:
            with transaction.atomic(), connection.cursor() as cur:
                drop(cur, project.pk)

    headers = ["step", "time", "notes"]
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\nFeedback delay at scale ({os.cpu_count()} cores, PostgreSQL)")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


if __name__ == "__main__":
    main()
