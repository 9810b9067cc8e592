"""Bug-queue filing at scale: N failure reports (each with one failing item) into F fingerprints
from C concurrent HTTP clients against gunicorn on 127.0.0.1 and PostgreSQL, one report per request
(`--batch 1`) or B per request (POST /api/bugs with a JSON array). Checks that exactly F bugs were
created and that no occurrence was lost, then counts the queries of the triage and list endpoints
with 10 bugs and with F bugs (they must not grow). Before that, in-process through the API client
(no HTTP), it measures reports/s and queries per report of single and batched reports. Prints one
table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench python benchmarks/bug_reports.py \
        [--reports 100000] [--fingerprints 1000] [--clients 8] [--workers 4] [--batch 200] \
        [--api-reports 2000] [--keep]
"""

import os as _os  # benchmarks/queue.py must not shadow the standard library's queue module
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOUPE_TESTING", "true")  # lets the script itself run without production secrets
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL=postgres://... (the benchmark measures PostgreSQL)")
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn on 127.0.0.1 serving config.wsgi with production settings (DEBUG off)."""

    def __init__(self, workers: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            LOUPE_TESTING="false",
            DEBUG="false",
            SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SESSION_COOKIE_SECURE="false",
            CSRF_COOKIE_SECURE="false",
            CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
            LOG_LEVEL="WARNING",
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                str(workers),
                "--timeout",
                "120",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def print_table(title, headers, rows):
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def count_queries(client, url) -> tuple[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    connection.queries_log.clear()  # the log keeps 9,000 queries: a full one captures nothing
    with CaptureQueriesContext(connection) as ctx:
        res = client.get(url)
    assert res.status_code == 200, res.content[:300]
    return len(ctx.captured_queries), res.status_code


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--fingerprints", type=int, default=1_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=200, help="reports per HTTP request (1: one object per request)")
    ap.add_argument("--api-reports", type=int, default=2000, help="reports filed in-process through the API client")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark projects")
    args = ap.parse_args()

    setup_django()
    import requests
    from django.core.management import call_command
    from django.db.models import Sum
    from django.test import Client
    from django.utils import timezone

    from bugqueue.models import Bug, FailureExample
    from bugqueue.services.occurrences import occurrences_reconcile
    from bugqueue.services.report import bug_report
    from bugqueue.services.tags import tags_seed
    from labeling.services.accounts import token_issue_login
    from labeling.services.ingestion import items_ingest
    from labeling.services.projects import LabelSpec, project_create, user_create

    call_command("migrate", verbosity=0)
    tags_seed()
    run = uuid.uuid4().hex[:8]
    user = user_create(username=f"bench-bugs-{run}", password="bench-password-123")
    labels = [LabelSpec("pos", "Positive"), LabelSpec("neg", "Negative"), LabelSpec("neu", "Neutral")]
    project = project_create(creator=user, name=f"bugs bench {run}", labels=labels)
    small = project_create(creator=user, name=f"bugs bench small {run}", labels=labels)
    token = token_issue_login(user=user)[1]
    t0 = time.monotonic()
    for start in range(0, args.items, 5000):
        items_ingest(
            project=project,
            rows=[
                {
                    "external_id": f"item-{i}",
                    "payload": {"text": f"production input {i}"},
                    "prediction": {"model_version": "m-1", "label": "pos"},
                }
                for i in range(start, min(args.items, start + 5000))
            ],
        )
    print(f"set-up: {args.items:,} items in {time.monotonic() - t0:.1f} s", flush=True)

    # Every fingerprint is reported reports/fingerprints times, in a shuffled order: the first
    # report of many fingerprints arrives from several clients at once (the race under test).
    rng = random.Random(42)
    plan = [k % args.fingerprints for k in range(args.reports)]
    rng.shuffle(plan)
    chunks = [plan[i :: args.clients] for i in range(args.clients)]
    base_time = timezone.now() - timedelta(days=2)
    tags = ["label_flip", "data_drift", "schema_change", "missing_feature_values", "dropped_special_characters"]

    status_counts, latencies, errors = {}, [], []
    lock = threading.Lock()

    def report_body(k, r, *, project_pk=None, prefix="bench", items=None):
        return {
            "project": project_pk or project.pk,
            "title": f"Failure group {k}",
            "kind": "failed_prediction",
            "fingerprint": f"{prefix}-{k}",
            "model_version": "m-1",
            "tags": [tags[k % len(tags)]],
            "priority": f"p{k % 4}",
            "failures": [
                {
                    "external_id": f"item-{r.randrange(items or args.items)}",
                    "predicted_label": "pos",
                    "expected_label": "neg",
                    "predicted_at": (base_time + timedelta(seconds=r.randrange(86400))).isoformat(),
                }
            ],
        }

    # In-process through the API client: single reports, then batches, into one project of their own.
    api_rows = []
    if args.api_reports:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from rest_framework.test import APIClient

        api_project = project_create(creator=user, name=f"bugs bench api {run}", labels=labels)
        items_ingest(
            project=api_project,
            rows=[{"external_id": f"item-{i}", "payload": {"text": f"input {i}"}} for i in range(2000)],
        )
        api = APIClient()
        api.force_authenticate(user=user)
        r = random.Random(7)
        api_fps = max(1, args.fingerprints // 10)
        for label, size, n in (("single", 1, min(500, args.api_reports)), ("batched", args.batch, args.api_reports)):
            ks = [r.randrange(api_fps) for _ in range(n)]
            queries, t0 = 0, time.perf_counter()
            for start in range(0, n, size):
                bodies = [
                    report_body(k, r, project_pk=api_project.pk, prefix=f"api-{label}", items=2000)
                    for k in ks[start : start + size]
                ]
                connection.queries_log.clear()  # the log keeps 9,000 queries: a full one captures nothing
                with CaptureQueriesContext(connection) as ctx:
                    res = api.post("/api/bugs", bodies if size > 1 else bodies[0], format="json")
                assert res.status_code in (200, 201), res.content[:300]
                queries += len(ctx.captured_queries)
            elapsed_api = time.perf_counter() - t0
            api_rows.append(
                [
                    f"API client, {label} ({size} per request, {n:,} reports into {api_fps} fingerprints)",
                    f"{n / elapsed_api:,.0f} reports/s, {queries / n:.2f} queries/report",
                ]
            )
            print(api_rows[-1], flush=True)

    def client(chunk, seed):
        r = random.Random(seed)
        session = requests.Session()
        session.headers.update({"Authorization": f"Token {token}"})
        local_status, local_lat = {}, []
        for start in range(0, len(chunk), args.batch):
            bodies = [report_body(k, r) for k in chunk[start : start + args.batch]]
            t = time.perf_counter()
            try:
                res = session.post(f"{server.url}/api/bugs", json=bodies if args.batch > 1 else bodies[0], timeout=300)
                code = res.status_code
                if code not in (200, 201):
                    with lock:
                        errors.append((code, res.text[:200]))
                elif args.batch > 1:
                    failed = [x for x in res.json()["results"] if "error" in x]
                    if failed:
                        code = "report refused"
                        with lock:
                            errors.append((code, str(failed[:2])[:200]))
            except requests.RequestException as exc:
                code = "exception"
                with lock:
                    errors.append((code, str(exc)[:200]))
            local_lat.append(time.perf_counter() - t)
            local_status[code] = local_status.get(code, 0) + len(bodies)
        with lock:
            latencies.extend(local_lat)
            for c, n in local_status.items():
                status_counts[c] = status_counts.get(c, 0) + n

    server = Gunicorn(args.workers)
    try:
        threads = [threading.Thread(target=client, args=(chunk, i)) for i, chunk in enumerate(chunks)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    finally:
        server.stop()

    bugs = Bug.objects.filter(project=project)
    n_bugs = bugs.count()
    total_occ = bugs.aggregate(s=Sum("occurrences"))["s"] or 0
    n_failures = FailureExample.objects.filter(project=project).count()
    drift = [d for d in occurrences_reconcile(fix=False) if d[0] in set(bugs.values_list("pk", flat=True))]

    # Query counts of the read endpoints: 10 bugs vs all of them (in-process, same database).
    for i in range(10):
        bug_report(project=small, reporter=user, title=f"small {i}", kind="other", tags=[tags[i % len(tags)]])
    c = Client()
    c.force_login(user)
    week = timezone.now().isocalendar()
    week = f"{week[0]}-W{week[1]:02d}"
    q = {}
    for name, p in (("10", small), (str(n_bugs), project)):
        q[("triage", name)] = count_queries(c, f"/api/triage?project={p.pk}&week={week}")[0]
        q[("list", name)] = count_queries(c, f"/api/bugs?project={p.pk}&page_size=100")[0]
        q[("page", name)] = count_queries(c, f"/triage?project={p.pk}&week={week}")[0]

    lat = sorted(latencies)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
    ok = n_bugs == args.fingerprints and total_occ == args.reports and n_failures == args.reports and not drift
    rows = [
        *api_rows,
        ["failure reports (HTTP POST /api/bugs)", f"{args.reports:,} ({args.batch} per request)"],
        ["fingerprints", f"{args.fingerprints:,}"],
        ["concurrent clients / gunicorn workers", f"{args.clients} / {args.workers}"],
        ["wall time", f"{elapsed:.1f} s"],
        ["reports/s", f"{args.reports / elapsed:,.0f}"],
        ["request latency p50 / p95 / p99", f"{pct(0.5):.1f} / {pct(0.95):.1f} / {pct(0.99):.1f} ms"],
        ["responses", ", ".join(f"{k}: {v:,}" for k, v in sorted(status_counts.items(), key=str))],
        ["bugs created (must equal fingerprints)", f"{n_bugs:,}"],
        ["sum of occurrences (must equal reports)", f"{total_occ:,}"],
        ["failures recorded", f"{n_failures:,}"],
        ["occurrence drift found by reconcile", f"{len(drift)}"],
        [
            "GET /api/triage queries, 10 bugs / " + f"{n_bugs:,} bugs",
            f"{q[('triage', '10')]} / {q[('triage', str(n_bugs))]}",
        ],
        [
            "GET /api/bugs queries (page of 100), 10 / " + f"{n_bugs:,} bugs",
            f"{q[('list', '10')]} / {q[('list', str(n_bugs))]}",
        ],
        ["GET /triage page queries, 10 / " + f"{n_bugs:,} bugs", f"{q[('page', '10')]} / {q[('page', str(n_bugs))]}"],
        ["all checks", "PASS" if ok else "FAIL"],
    ]
    print_table("benchmarks/bug_reports.py (PostgreSQL, gunicorn on 127.0.0.1)", ["measure", "value"], rows)
    if errors:
        print(f"\n{len(errors)} errors, first: {errors[:3]}")
    if not args.keep:
        small.delete()
        project.delete()
        user.delete()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
