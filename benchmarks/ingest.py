"""Ingest N items with predictions through the HTTP API (gunicorn on 127.0.0.1, PostgreSQL), in batches,
then re-send the same batches (all unchanged). Prints items/s and peak server memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench python benchmarks/ingest.py [--items 200000]

With --checks: the cost of the data-quality checks instead. In process (items_ingest), 10,000-row
batches with five payload fields and predictions; a full reference (20 earlier batches) first, then
batches ingested alternately without and with checks, new and re-sent; prints the median time of
each and the checks' overhead.

    DATABASE_URL=... python benchmarks/ingest.py --checks [--batch 10000] [--reps 7]
"""

import os as _os
import sys as _sys  # benchmarks/queue.py must not shadow the standard library's queue module

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from _server import gunicorn, machine_busy_cpu_seconds, print_table, setup_django

LABELS = ["billing", "bug", "feature", "account", "shipping"]


def make_batch(start: int, size: int, rng: random.Random) -> bytes:
    rows = []
    for i in range(start, start + size):
        p = [rng.random() + 0.01 for _ in LABELS]
        total = sum(p)
        probs = {k: v / total for k, v in zip(LABELS, p)}
        rows.append(
            {
                "external_id": f"item-{i:08d}",
                "payload": {
                    "text": f"ticket {i}: my order number {rng.randint(1, 10**6)} never arrived",
                    "channel": "email",
                },
                "priority": rng.randint(0, 3),
                "prediction": {
                    "model_version": "m-1",
                    "label": max(probs, key=probs.get),
                    "probabilities": probs,
                    "predicted_at": f"2026-11-{1 + i % 20:02d}T{i % 24:02d}:00:00Z",
                },
            }
        )
    return json.dumps(rows).encode()


def check_rows(start: int, size: int, rng: random.Random) -> list[dict]:
    """Rows with a text, two categorical, a numeric and a sometimes-null field, and predictions."""
    rows = []
    for i in range(start, start + size):
        p = [rng.random() + 0.01 for _ in LABELS]
        total = sum(p)
        probs = {k: v / total for k, v in zip(LABELS, p)}
        rows.append(
            {
                "external_id": f"chk-{i:08d}",
                "payload": {
                    "text": f"ticket {i:08d}: order {rng.randint(1, 10**6)} " + "late " * rng.randint(0, 20),
                    "channel": rng.choice(["email", "chat", "phone"]),
                    "country": rng.choice(["us", "de", "fr", "br", "jp"]),
                    "amount": round(rng.lognormvariate(3, 1), 2),
                    "note": None if rng.random() < 0.2 else "vip",
                },
                "prediction": {
                    "model_version": "m-1",
                    "label": max(probs, key=probs.get),
                    "probabilities": probs,
                    "predicted_at": f"2026-11-{1 + i % 20:02d}T{i % 24:02d}:00:00Z",
                },
            }
        )
    return rows


def checks_overhead(args):
    import gc
    from statistics import median

    from labeling.models import BatchProfile
    from labeling.services import ingestion
    from labeling.services.data_checks import REFERENCE_BATCHES
    from labeling.services.ingestion import items_ingest

    inside = []  # seconds spent in the checks themselves, per checked batch
    check = ingestion.batch_data_check

    def timed_check(**kwargs):
        t0 = time.perf_counter()
        try:
            return check(**kwargs)
        finally:
            inside.append(time.perf_counter() - t0)

    ingestion.batch_data_check = timed_check
    from labeling.services.projects import LabelSpec, project_create, user_create

    user = user_create(username=f"bench-{uuid.uuid4().hex[:8]}", password="bench-password-123")
    project = project_create(creator=user, name="checks bench", labels=[LabelSpec(k, k.title()) for k in LABELS])
    rng = random.Random(2)
    start = 0
    for _ in range(REFERENCE_BATCHES):
        items_ingest(project=project, rows=check_rows(start, args.batch, rng))
        start += args.batch
    times = {(phase, on): [] for phase in ("new", "re-sent") for on in (False, True)}
    checks_in = {phase: [] for phase in ("new", "re-sent")}
    failed = []
    for rep in range(args.reps):
        for on in (False, True) if rep % 2 == 0 else (True, False):
            rows = check_rows(start, args.batch, rng)
            start += args.batch
            for phase in ("new", "re-sent"):
                gc.collect()
                inside.clear()
                t0 = time.perf_counter()
                result = items_ingest(project=project, rows=rows, check=on)
                times[(phase, on)].append(time.perf_counter() - t0)
                if on:
                    checks_in[phase].append(inside[0])
                failed += [f"{c['field']} {c['check']}" for c in result.checks]
    table = []
    for phase in ("new", "re-sent"):
        off, on = median(times[(phase, False)]), median(times[(phase, True)])
        own = median(checks_in[phase])
        table.append(
            [
                f"{args.batch:,} rows, {phase}",
                f"{off * 1000:.0f}",
                f"{on * 1000:.0f}",
                f"{(on - off) / off:+.1%}",
                f"{own * 1000:.0f}",
                f"{own / off:.1%}",
            ]
        )
    print_table(
        f"Data-quality checks: median of {args.reps} batches each, reference of {REFERENCE_BATCHES} batches "
        f"({BatchProfile.objects.filter(project=project).count()} profiles stored; failed checks on these batches of one "
        f"distribution: {', '.join(failed) or 'none'}), PostgreSQL",
        [
            "batch",
            "ingest ms without checks",
            "ingest ms with checks",
            "difference",
            "ms in the checks",
            "checks / ingest without",
        ],
        table,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=None, help="rows per batch (5,000; 10,000 with --checks)")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--checks", action="store_true", help="measure the data-quality checks' cost instead")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    if args.batch is None:
        args.batch = 10_000 if args.checks else 5_000

    setup_django()
    from django.core.management import call_command

    from labeling.services.accounts import token_issue_login
    from labeling.services.projects import LabelSpec, project_create, user_create

    call_command("migrate", verbosity=0)
    if args.checks:
        return checks_overhead(args)
    user = user_create(username=f"bench-{uuid.uuid4().hex[:8]}", password="bench-password-123")
    project = project_create(creator=user, name="ingest bench", labels=[LabelSpec(k, k.title()) for k in LABELS])
    token = token_issue_login(user=user)[1]

    import requests

    rng = random.Random(1)
    batches = [make_batch(s, min(args.batch, args.items - s), rng) for s in range(0, args.items, args.batch)]
    mb = sum(len(b) for b in batches) / 1e6

    results = []
    with gunicorn(workers=args.workers) as server:
        url = f"{server.url}/api/projects/{project.id}/items"
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        session_pool = [requests.Session() for _ in range(args.clients)]

        def send(i):
            res = session_pool[i % args.clients].post(url, data=batches[i], headers=headers, timeout=300)
            res.raise_for_status()
            return res.json()

        for phase in ("first load (all created)", "re-send (all unchanged)"):
            t0, busy0, workers0 = time.perf_counter(), machine_busy_cpu_seconds(), server.workers_cpu_seconds()
            with ThreadPoolExecutor(args.clients) as pool:
                answers = list(pool.map(send, range(len(batches))))
            dt = time.perf_counter() - t0
            busy, workers = machine_busy_cpu_seconds() - busy0, server.workers_cpu_seconds() - workers0
            totals = {k: sum(a[k] for a in answers) for k in ("created", "updated", "unchanged")}
            results.append(
                [
                    phase,
                    f"{args.items:,}",
                    f"{dt:.1f}",
                    f"{args.items / dt:,.0f}",
                    f"{totals['created']:,}/{totals['updated']:,}/{totals['unchanged']:,}",
                    f"{server.peak_worker_rss_mb():.0f}",
                    f"{busy:.1f}",
                    f"{workers:.1f}",
                ]
            )
    print_table(
        f"Ingestion over HTTP: {args.items:,} items in batches of {args.batch:,} ({mb:.0f} MB JSON), "
        f"{args.clients} clients, gunicorn {args.workers} workers, PostgreSQL",
        [
            "phase",
            "items",
            "seconds",
            "items/s",
            "created/updated/unchanged",
            "peak worker RSS MB",
            "machine CPU s",
            "workers CPU s",
        ],
        results,
    )


if __name__ == "__main__":
    main()
