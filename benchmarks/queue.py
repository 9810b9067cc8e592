"""Annotator queue throughput and latency on PostgreSQL, at 10,000 and 1,000,000 items.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
        python benchmarks/queue.py [--sizes 10000,1000000] [--explain] [--keep]

1. Service level: N worker processes, each a different annotator, call assignment_claim_next then
   annotation_submit in a bounded loop (projects with annotations_per_item=3, random labels, so items
   finish unanimous or disputed). 1 and 16 workers on each project size.
2. HTTP level: gunicorn on 127.0.0.1; 32 annotators (token auth, 4 client processes x 8 threads) do
   POST queue/next + POST submit in a bounded loop, back to back ("saturated": latency is mostly
   queueing, by Little's law), then with 2-6 s of think time per item ("paced": annotators at work).
Every run ends with an over-assignment check: no item may have more counted annotations plus unexpired
active leases than it needs, and no stored counter may have drifted.

Items are made with INSERT ... SELECT generate_series (not through the API). Prints one table.
"""

import os
import sys

# This file is named queue.py, like the standard library module that threading and multiprocessing
# import: keep its own folder off sys.path and load the shared helpers by file path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

_spec = importlib.util.spec_from_file_location("_server", os.path.join(_HERE, "_server.py"))
_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_server)
gunicorn, print_table, setup_django = _server.gunicorn, _server.print_table, _server.setup_django

LABELS = ["billing", "bug", "feature"]


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(q / 100 * (len(values) - 1)))))
    return values[k]


def ms(x):
    return f"{x * 1000:.1f}"


# ---- data ---------------------------------------------------------------------------------------


def make_project(n_items: int, tag: str):
    from django.db import connection

    from labeling.models import Item
    from labeling.services.projects import LabelSpec, project_create, user_create

    owner = user_create(username=f"qb-owner-{tag}", password="bench-password-123")
    project = project_create(
        creator=owner,
        name=f"queue bench {n_items:,} ({tag})",
        labels=[LabelSpec(k, k.title(), f"{k} tickets", str(i + 1)) for i, k in enumerate(LABELS)],
        annotations_per_item=3,
        queue_order="priority",
    )
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {Item._meta.db_table} (project_id, external_id, payload, priority, status,
                    required_annotations, annotation_count, uncertainty, first_predicted_at, reopen_rank, touchers,
                    queue_order, created_at, updated_at)
                SELECT %s, 'q-' || g, jsonb_build_object('text', 'ticket ' || g || ': my parcel never arrived', 'channel', 'email'),
                       (g::bigint * 7919) %% 4, 'open', 3, 0, ((g::bigint * 104729) %% 1000) / 1000.0,
                       now() - ((g %% 86400) || ' seconds')::interval, NULL, NULL, %s, now(), now()
                FROM generate_series(1, %s) g""",
            [project.pk, project.queue_order, n_items],
        )
    # A freshly loaded project, as autovacuum leaves it (visibility map set, statistics current).
    with connection.cursor() as cur:
        cur.execute(f"VACUUM ANALYZE {Item._meta.db_table}")
    return project, time.perf_counter() - t0


def make_annotators(project, n: int, tag: str):
    from labeling.services.accounts import token_issue_login
    from labeling.services.projects import member_add, user_create

    users = []
    for i in range(n):
        u = user_create(username=f"qb-{tag}-{i}", password="bench-password-123")
        member_add(project=project, username=u.username, role="annotator")
        users.append((u.pk, token_issue_login(user=u)[1]))
    return users


def check(project_id: int) -> dict:
    """Over-assignment and counter drift over every item that was ever leased."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """SELECT
                 count(*) FILTER (WHERE counted + active > required_annotations),
                 count(*) FILTER (WHERE all_ann <> annotation_count),
                 coalesce(sum(surplus), 0),
                 count(*) FILTER (WHERE status <> 'open')
               FROM (
                 SELECT i.required_annotations, i.annotation_count, i.status,
                   (SELECT count(*) FROM labeling_annotation a WHERE a.item_id = i.id AND NOT a.is_surplus) AS counted,
                   (SELECT count(*) FROM labeling_annotation a WHERE a.item_id = i.id) AS all_ann,
                   (SELECT count(*) FROM labeling_annotation a WHERE a.item_id = i.id AND a.is_surplus) AS surplus,
                   (SELECT count(*) FROM labeling_assignment s WHERE s.item_id = i.id AND s.status = 'active'
                      AND s.expires_at > now()) AS active
                 FROM labeling_item i WHERE i.project_id = %s AND i.touchers IS NOT NULL) t""",
            [project_id],
        )
        over, drift, surplus, finished = cur.fetchone()
    return {"over": over, "drift": drift, "surplus": surplus, "finished": finished}


def cleanup(project_ids):
    from django.db import connection

    from labeling.models import Project

    with connection.cursor() as cur:
        for pid in project_ids:
            items = "SELECT id FROM labeling_item WHERE project_id = %s"
            for table in (
                "labeling_labelchange",
                "labeling_groundtruth",
                "labeling_annotation",
                "labeling_assignment",
                "labeling_prediction",
            ):
                cur.execute(f"DELETE FROM {table} WHERE item_id IN ({items})", [pid])
            cur.execute("DELETE FROM labeling_item WHERE project_id = %s", [pid])
    Project.objects.filter(pk__in=project_ids).delete()  # labels, members, counters (items are gone)


# ---- service level ------------------------------------------------------------------------------


def service_worker(args):
    project_id, user_id, cycles, seed = args
    from django.contrib.auth import get_user_model
    from django.db import connection

    from config.celery import warm_broker
    from labeling.models import Project
    from labeling.services.annotations import annotation_submit
    from labeling.services.queue.claim import assignment_claim_next

    warm_broker()  # as a web worker does when it starts (config/wsgi.py)
    rng = random.Random(seed)
    project = Project.objects.get(pk=project_id)
    user = get_user_model().objects.get(pk=user_id)
    claims, submits, errors, done = [], [], [], 0
    for _ in range(cycles):
        try:
            t0 = time.perf_counter()
            c = assignment_claim_next(project=project, annotator=user)
            t1 = time.perf_counter()
            if c is None:
                break
            annotation_submit(
                assignment_id=c.assignment_id,
                annotator=user,
                label=rng.choice(LABELS),
                seconds_spent=rng.uniform(2, 20),
            )
            t2 = time.perf_counter()
            claims.append(t1 - t0)
            submits.append(t2 - t1)
            done += 1
        except Exception as exc:  # counted and reported
            errors.append(repr(exc))
    connection.close()
    return claims, submits, errors, done


def run_service(project, workers: int, cycles: int, tag: str, pool_ctx):
    from django.db import connections

    users = make_annotators(project, workers, tag)
    # warm up each worker process's connection and plan cache outside the timed run
    connections.close_all()
    with pool_ctx.Pool(workers) as pool:
        pool.map(service_worker, [(project.pk, uid, 3, i) for i, (uid, _) in enumerate(users)])
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        results = pool.map(service_worker, [(project.pk, uid, cycles, 1000 + i) for i, (uid, _) in enumerate(users)])
        wall = time.perf_counter() - t0
    claims = [x for r in results for x in r[0]]
    submits = [x for r in results for x in r[1]]
    errors = [e for r in results for e in r[2]]
    done = sum(r[3] for r in results)
    return {"wall": wall, "done": done, "claims": claims, "submits": submits, "errors": errors, "load": load}


def merge(parts):
    return {
        "wall": sum(p["wall"] for p in parts),
        "done": sum(p["done"] for p in parts),
        "claims": [x for p in parts for x in p["claims"]],
        "submits": [x for p in parts for x in p["submits"]],
        "errors": [e for p in parts for e in p["errors"]],
        "load": sum(p["load"] for p in parts) / len(parts),
    }


# ---- HTTP level ---------------------------------------------------------------------------------


def http_client_proc(args):
    url, project_id, tokens, cycles, think, seed = args
    import requests

    out = {"next": [], "submit": [], "errors": [], "done": 0}
    lock = threading.Lock()

    def annotator(token, rng):
        s = requests.Session()
        s.headers.update({"Authorization": f"Token {token}", "Content-Type": "application/json"})
        if think:
            # Annotators at work are spread out in time: each starts somewhere within one think time,
            # instead of all 32 asking at the same instant (a thundering herd no real team produces).
            time.sleep(rng.uniform(0, think[1]))
        for _ in range(cycles):
            try:
                t0 = time.perf_counter()
                r = s.post(f"{url}/api/projects/{project_id}/queue/next", data="{}", timeout=60)
                t1 = time.perf_counter()
                if r.status_code == 204:
                    return
                if r.status_code != 200:
                    raise RuntimeError(f"next {r.status_code} {r.text[:200]}")
                aid = r.json()["assignment"]["id"]
                if think:
                    time.sleep(rng.uniform(*think))  # an annotator reading the item
                t2 = time.perf_counter()
                r2 = s.post(
                    f"{url}/api/assignments/{aid}/submit",
                    data=json.dumps({"label": rng.choice(LABELS), "seconds_spent": 3.0}),
                    timeout=60,
                )
                t3 = time.perf_counter()
                if r2.status_code != 201:
                    raise RuntimeError(f"submit {r2.status_code} {r2.text[:200]}")
                with lock:
                    out["next"].append(t1 - t0)
                    out["submit"].append(t3 - t2)
                    out["done"] += 1
            except Exception as exc:  # counted and reported
                with lock:
                    out["errors"].append(repr(exc))
                return

    threads = [threading.Thread(target=annotator, args=(t, random.Random(seed + i))) for i, t in enumerate(tokens)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["wall"] = time.perf_counter() - t0
    return out


def run_http(server, project, annotators: int, cycles: int, think, tag: str, pool_ctx, procs: int = 4):
    from django.db import connections

    users = make_annotators(project, annotators, tag)
    connections.close_all()
    tokens = [tok for _, tok in users]
    chunks = [tokens[i::procs] for i in range(procs)]
    with pool_ctx.Pool(procs) as pool:
        pool.map(http_client_proc, [(server.url, project.pk, c[:1], 2, None, 7) for c in chunks])  # warm-up
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        results = pool.map(
            http_client_proc, [(server.url, project.pk, c, cycles, think, 100 * i) for i, c in enumerate(chunks)]
        )
        wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "done": sum(r["done"] for r in results),
        "load": load,
        "claims": [x for r in results for x in r["next"]],
        "submits": [x for r in results for x in r["submit"]],
        "errors": [e for r in results for e in r["errors"]],
    }


# ---- EXPLAIN ----------------------------------------------------------------------------------------


def explain(project):
    """EXPLAIN (ANALYZE, BUFFERS) of the claim's candidate query for a fresh annotator."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from labeling.services.queue import claim

    users = make_annotators(project, 1, f"explain-{uuid.uuid4().hex[:6]}")
    with transaction.atomic():
        with CaptureQueriesContext(connection) as cap:
            claim._find(project=project, me=users[0][0], now=timezone.now(), lock=True)
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + cap.captured_queries[0]["sql"])
            plan = "\n".join(r[0] for r in cur.fetchall())
        transaction.set_rollback(True)
    return plan


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--service-cycles-1", type=int, default=800, help="cycles of the single service worker")
    ap.add_argument("--service-cycles-16", type=int, default=120, help="cycles of each of the 16 service workers")
    ap.add_argument("--http-annotators", type=int, default=32)
    ap.add_argument("--http-cycles", type=int, default=30, help="cycles per annotator, back to back")
    ap.add_argument("--paced-cycles", type=int, default=20, help="cycles per annotator with think time")
    ap.add_argument("--think", default="2,6", help="seconds an annotator spends on an item in the paced run (min,max)")
    ap.add_argument("--gunicorn-workers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds per size (cycles are split across them)")
    ap.add_argument("--explain", action="store_true", help="also print the claim query plan on the largest project")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark projects")
    ap.add_argument(
        "--levels",
        default="service,saturated,paced",
        help="which parts to run (comma-separated: service, saturated, paced)",
    )
    args = ap.parse_args()
    levels = set(args.levels.split(","))

    setup_django()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    ctx = mp.get_context("fork")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, projects, plans = [], [], []
    run = uuid.uuid4().hex[:6]

    def row(level, size, workers, res, chk, extra=""):
        rate = res["done"] / res["wall"] if res["wall"] else 0
        rows.append(
            [
                level,
                f"{size:,}",
                workers,
                res["done"],
                f"{res['wall']:.1f}",
                f"{rate:.1f}",
                ms(pct(res["claims"], 50)),
                ms(pct(res["claims"], 95)),
                ms(pct(res["claims"], 99)),
                ms(pct(res["submits"], 50)),
                ms(pct(res["submits"], 95)),
                ms(pct(res["submits"], 99)),
                len(res["errors"]),
                chk["over"],
                chk["drift"],
                f"{res['load']:.1f}" + extra,
            ]
        )
        if res["errors"]:
            print(f"  {level} {size}: first errors: {res['errors'][:3]}", flush=True)

    try:
        made = {}
        for size in sizes:
            project, secs = make_project(size, f"{run}-{size}")
            projects.append(project.pk)
            made[size] = project
            print(f"made {size:,} items in {secs:.1f} s (project {project.pk})", flush=True)

        # Sizes alternate within rounds so that the shared machine's load drifts over both alike.
        def rounds(n):
            for r in range(n):
                yield from (sizes if r % 2 == 0 else list(reversed(sizes)))

        for workers, cycles in (
            ((1, args.service_cycles_1), (16, args.service_cycles_16)) if "service" in levels else ()
        ):
            parts = {size: [] for size in sizes}
            for i, size in enumerate(rounds(args.rounds)):
                connections.close_all()
                res = run_service(
                    made[size], workers, max(1, cycles // args.rounds), f"{run}-s{size}-{workers}-{i}", ctx
                )
                parts[size].append(res)
                print(
                    f"service {size:,} x{workers} round: {res['done'] / res['wall']:.1f} cycles/s "
                    f"(load {res['load']:.1f})",
                    flush=True,
                )
            for size in sizes:
                row("service", size, workers, merge(parts[size]), check(made[size].pk))

        with gunicorn(workers=args.gunicorn_workers) as server:
            parts = {size: [] for size in sizes}
            for i, size in enumerate(rounds(args.rounds) if "saturated" in levels else ()):
                connections.close_all()
                res = run_http(
                    server,
                    made[size],
                    args.http_annotators,
                    max(1, args.http_cycles // args.rounds),
                    None,
                    f"{run}-h{size}-{i}",
                    ctx,
                )
                parts[size].append(res)
                print(
                    f"http {size:,} round: {res['done'] / res['wall']:.1f} cycles/s (load {res['load']:.1f})",
                    flush=True,
                )
            for size in sizes if "saturated" in levels else ():
                row("http saturated", size, args.http_annotators, merge(parts[size]), check(made[size].pk))
            big = made[max(sizes)]
            connections.close_all()
            think = tuple(float(x) for x in args.think.split(","))
            if "paced" in levels:
                res = run_http(server, big, args.http_annotators, args.paced_cycles, think, f"{run}-p", ctx)
                row(
                    f"http paced (think {think[0]:g}-{think[1]:g} s)",
                    max(sizes),
                    args.http_annotators,
                    res,
                    check(big.pk),
                )

        if args.explain:
            plans.append(explain(made[max(sizes)]))
    finally:
        if not args.keep:
            connections.close_all()
            cleanup(projects)

    cpu = os.cpu_count()
    print_table(
        f"Annotator queue on PostgreSQL (annotations_per_item=3, priority order; {cpu} CPUs shared; {args.rounds} "
        f"alternating rounds per size; "
        f"gunicorn {args.gunicorn_workers} sync workers; latencies in ms; 'cycle' = next + submit)",
        [
            "level",
            "items",
            "annotators",
            "cycles",
            "seconds",
            "cycles/s",
            "next p50",
            "next p95",
            "next p99",
            "submit p50",
            "submit p95",
            "submit p99",
            "failed calls",
            "over-assigned items",
            "counter drift",
            "load avg 1m",
        ],
        rows,
    )
    rate = {(r[0], r[1], r[2]): float(r[5]) for r in rows}
    if len(sizes) > 1:
        small, large = f"{min(sizes):,}", f"{max(sizes):,}"
        for workers in (1, 16):
            a, b = rate.get(("service", small, workers)), rate.get(("service", large, workers))
            if a and b:
                print(f"service rate at {large} items / at {small} items, {workers} worker(s): {b / a:.2f}")
    for plan in plans:
        print("\nClaim candidate query, fresh annotator, largest project:\n" + plan)


if __name__ == "__main__":
    main()
