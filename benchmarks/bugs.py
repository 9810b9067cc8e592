"""The bug stream at scale: one project with B bugs (heavy-tailed: a bug's failures fall off as 1/rank,
so the largest holds about a twelfth of them) and F failure examples, their occurrence rows (one per
filing of up to ten failures), history, tags and assignees. Bugs are written with COPY (common.db),
the failures, occurrences and items with INSERT ... SELECT generate_series on the server. Then it
times, through the selectors' HTTP callers (gunicorn, one worker, production settings), p50/p95 of:
the stream's first page (GET /api/bugs and the /bugs page), a free-text search and a filter
combination, the largest bug's page (/bugs/{id}, GET /api/bugs/{id}), and a bulk action on 1,000
bugs when POST /api/bugs/bulk exists. Prints one table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bugs_bench python benchmarks/bugs.py \
        [--bugs 100000] [--failures 10000000] [--calls 20] [--keep]

Use a database of its own: with --keep the project stays and the next run with the same sizes
reuses it (generation is skipped); without it the project is deleted at the end.
"""

import os as _os
import sys as _sys  # benchmarks/queue.py must not shadow the standard library's queue module

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

from _server import ROOT, gunicorn, print_table, setup_django

TARGET_READ_MS = 300
TARGET_BULK_MS = 2000
ITEMS = 200_000
STATUSES = [  # (status, share)
    ("new", 0.25),
    ("triaged", 0.10),
    ("in_progress", 0.05),
    ("resolved", 0.45),
    ("wont_fix", 0.10),
    ("duplicate", 0.05),
]
KINDS = ["failed_prediction", "failed_prediction", "failed_prediction", "user_report", "data_quality", "other"]
LABELS = ["pos", "neg", "neu"]


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def collect_static():
    """The HTML pages under production settings need the collected, hashed static files."""
    root = os.environ.setdefault("STATIC_ROOT", os.path.join(tempfile.gettempdir(), "loupe-bench-static"))
    env = dict(
        os.environ,
        LOUPE_TESTING="false",
        DEBUG="false",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-" + "x" * 40),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        STATIC_ROOT=root,
    )
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


def failure_counts(bugs: int, failures: int, rng) -> list[int]:
    """Failures per bug, heavy-tailed (weight 1/rank), at least one each, summing to `failures`,
    shuffled over the bugs."""
    harmonic = sum(1 / r for r in range(1, bugs + 1))
    counts = [max(1, int(failures / (r * harmonic))) for r in range(1, bugs + 1)]
    counts[0] += failures - sum(counts)
    rng.shuffle(counts)
    return counts


def generate(*, project, user, other, bugs: int, failures: int, out):
    """Write the project's bugs, failures, occurrences, events and tags (one transaction)."""
    from django.db import transaction
    from django.utils import timezone
    from search import vocabulary

    from bugqueue.models import Tag
    from common.db.copy import copy_rows
    from common.db.sql import execute, fetchall

    rng = random.Random(22)
    vocab = vocabulary(2000)
    now = timezone.now()
    counts = failure_counts(bugs, failures, rng)
    tag_ids = list(Tag.objects.order_by("position").values_list("pk", flat=True))
    cum, bounds = 0, []
    for status, share in STATUSES:
        cum += share
        bounds.append((cum, status))

    def status_of(u):
        return next(s for c, s in bounds if u <= c)

    with transaction.atomic():
        execute("SET LOCAL session_replication_role = replica")  # no FK triggers while bulk loading
        execute("SELECT setseed(0.22)")
        t = time.perf_counter()
        execute(
            """INSERT INTO labeling_item (project_id, external_id, payload, priority, status, required_annotations,
                   annotation_count, uncertainty, first_predicted_at, queue_order, created_at, updated_at)
               SELECT %s, 'bi' || g, jsonb_build_object('text', 'production input ' || g), 0, 'open', 3, 0, 0.5,
                      now() - (g || ' seconds')::interval, 'fifo', now(), now()
               FROM generate_series(1, %s) g""",
            [project.pk, ITEMS],
        )
        first_item = fetchall("SELECT min(id) FROM labeling_item WHERE project_id = %s", [project.pk])[0][0]
        out.append([f"{ITEMS:,} items (SQL)", f"{time.perf_counter() - t:.1f} s"])

        t = time.perf_counter()
        rows = []
        for i, n in enumerate(counts):
            status = status_of(rng.random())
            age = rng.uniform(0, 90)
            first_seen = now - timedelta(days=age)
            last_seen = now - timedelta(days=rng.uniform(0, age))
            closed = status in ("resolved", "wont_fix", "duplicate")
            words = " ".join(vocab[min(len(vocab) - 1, int(rng.paretovariate(0.6)))] for _ in range(3))
            label, wrong = rng.sample(LABELS, 2)
            title = f"{words}: {wrong} predicted for {label} ({i})"
            rows.append(
                (
                    project.pk,
                    title,
                    f"Seen on {rng.choice(vocab)} inputs of channel c{i % 20}.",
                    KINDS[i % len(KINDS)],
                    status,
                    f"p{min(3, int(rng.expovariate(1.2)))}",
                    (user.pk if i % 3 == 0 else other.pk if i % 3 == 1 else None),
                    user.pk,
                    f"bench-fp-{i}",
                    f"v{1 + i % 4}",
                    n,
                    first_seen,
                    last_seen,
                    i % 17 == 0,
                    now - timedelta(days=rng.uniform(0, 30)) if closed else None,
                    {"resolved": "fixed", "wont_fix": "wont_fix", "duplicate": "duplicate"}.get(status, ""),
                    "",
                    f"v{1 + i % 4}" if closed else "",
                    first_seen,
                    now,
                    False,
                )
            )
        copy_rows(
            "bugqueue_bug",
            [
                "project_id",
                "title",
                "description",
                "kind",
                "status",
                "priority",
                "assignee_id",
                "reporter_id",
                "fingerprint",
                "model_version",
                "occurrences",
                "first_seen",
                "last_seen",
                "regressed",
                "resolved_at",
                "resolution",
                "resolution_note",
                "resolved_model_version",
                "created_at",
                "updated_at",
                "snoozed",
            ],
            rows,
        )
        out.append([f"{bugs:,} bugs (COPY)", f"{time.perf_counter() - t:.1f} s"])

        t = time.perf_counter()
        execute(
            """INSERT INTO bugqueue_bug_tags (bug_id, tag_id)
               SELECT b.id, (%s::bigint[])[1 + b.id %% array_length(%s::bigint[], 1)] FROM bugqueue_bug b
               WHERE b.project_id = %s
               UNION
               SELECT b.id, (%s::bigint[])[1 + (b.id / 3) %% array_length(%s::bigint[], 1)] FROM bugqueue_bug b
               WHERE b.project_id = %s AND b.id %% 3 = 0""",
            [tag_ids, tag_ids, project.pk, tag_ids, tag_ids, project.pk],
        )
        execute(
            """INSERT INTO bugqueue_bugevent (bug_id, actor_id, field, from_value, to_value, note, created_at)
               SELECT id, reporter_id, 'created', '', 'new', 'Reported.', created_at
               FROM bugqueue_bug WHERE project_id = %s
               UNION ALL
               SELECT id, reporter_id, 'status', 'new', status, '', updated_at
               FROM bugqueue_bug WHERE project_id = %s AND status <> 'new'""",
            [project.pk, project.pk],
        )
        out.append(["tags and history (SQL)", f"{time.perf_counter() - t:.1f} s"])

        # Failures in ten passes, each taking the next tenth of every bug's failures: a bug's
        # failures are spread over the table as reports arriving over time would be.
        t = time.perf_counter()
        passes = 10
        for k in range(passes):
            execute(
                """INSERT INTO bugqueue_failureexample (bug_id, project_id, item_id, external_id, payload,
                       model_version, predicted_label, expected_label, predicted_at, occurred_at, source,
                       created_at)
                   SELECT b.id, b.project_id, %s + i, 'bi' || (i + 1), NULL,
                          'v' || (1 + (b.id + g) %% 4),
                          (ARRAY['pos','neg','neu'])[1 + (b.id + g) %% 3],
                          CASE WHEN g %% 7 = 0 THEN NULL ELSE (ARRAY['pos','neg','neu'])[1 + (b.id + g + 1) %% 3] END,
                          b.first_seen + (b.last_seen - b.first_seen) * (g::float / b.occurrences),
                          b.first_seen + (b.last_seen - b.first_seen) * (g::float / b.occurrences),
                          'report', b.first_seen + (b.last_seen - b.first_seen) * (g::float / b.occurrences)
                   FROM bugqueue_bug b
                   CROSS JOIN LATERAL generate_series(
                       1 + (b.occurrences * %s) / %s, (b.occurrences * (%s + 1)) / %s) g
                   CROSS JOIN LATERAL (SELECT ((b.id * 7919 + g) %% %s)::bigint AS i) x
                   WHERE b.project_id = %s""",
                [first_item, k, passes, k, passes, ITEMS, project.pk],
            )
            print(f"  failures pass {k + 1}/{passes}: {time.perf_counter() - t:.0f} s", flush=True)
        out.append([f"{failures:,} failures (SQL, {passes} passes)", f"{time.perf_counter() - t:.1f} s"])

        t = time.perf_counter()
        execute(
            """INSERT INTO bugqueue_bugoccurrence (bug_id, count, seen_at)
               SELECT b.id, least(10, b.occurrences - (g - 1) * 10),
                      b.first_seen + (b.last_seen - b.first_seen) * (g::float / ceil(b.occurrences / 10.0))
               FROM bugqueue_bug b CROSS JOIN LATERAL generate_series(1, ceil(b.occurrences / 10.0)::int) g
               WHERE b.project_id = %s""",
            [project.pk],
        )
        out.append(["occurrence rows (SQL)", f"{time.perf_counter() - t:.1f} s"])
    t = time.perf_counter()
    for name in ("labeling_item", "bugqueue_bug", "bugqueue_bug_tags", "bugqueue_bugevent"):
        execute(f"VACUUM ANALYZE {name}")
    for name in ("bugqueue_failureexample", "bugqueue_bugoccurrence"):
        execute(f"VACUUM ANALYZE {name}")
    out.append(["VACUUM ANALYZE", f"{time.perf_counter() - t:.1f} s"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bugs", type=int, default=100_000)
    parser.add_argument("--failures", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--bulk-calls", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the project; a later run of these sizes reuses it")
    args = parser.parse_args()
    setup_django()

    import requests
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    from bugqueue.models import Bug, FailureExample
    from bugqueue.services.tags import tags_seed
    from common.db.sql import execute, fetchall
    from labeling.models import Project
    from labeling.services.accounts import token_issue_login
    from labeling.services.projects import LabelSpec, member_add, project_create, user_create

    call_command("migrate", verbosity=0)
    tags_seed()
    name = f"bugs bench {args.bugs}x{args.failures}"
    out = []
    User = get_user_model()
    project = Project.objects.filter(name=name).first()
    if project is not None and Bug.objects.filter(project=project).count() != args.bugs:
        sys_exit = f"project {name!r} exists but is incomplete: drop it (or the database) and run again"
        raise SystemExit(sys_exit)
    if project is None:
        user = user_create(username=f"bugs-bench-{args.bugs}-{args.failures}", password="bench-password-123")
        other = user_create(username=f"bugs-bench-other-{args.bugs}-{args.failures}", password="bench-password-123")
        project = project_create(creator=user, name=name, labels=[LabelSpec(k, k.title()) for k in LABELS])
        member_add(project=project, username=other.username, role="reviewer")
        t = time.perf_counter()
        generate(project=project, user=user, other=other, bugs=args.bugs, failures=args.failures, out=out)
        out.append(["generation in all", f"{time.perf_counter() - t:.1f} s"])
    else:
        user = User.objects.get(username=f"bugs-bench-{args.bugs}-{args.failures}")
        out.append(["generation", "reused (--keep)"])
    sizes = fetchall(
        "SELECT pg_size_pretty(pg_total_relation_size('bugqueue_failureexample')), "
        "pg_size_pretty(pg_database_size(current_database()))"
    )[0]
    out.append(["failures table with indexes / database", f"{sizes[0]} / {sizes[1]}"])
    largest = Bug.objects.filter(project=project).order_by("-occurrences").values_list("pk", "occurrences").first()
    n_failures = FailureExample.objects.filter(bug_id=largest[0]).count()
    token = token_issue_login(user=user)[1]
    p = project.pk
    reads = [
        ("stream first page: GET /api/bugs", f"/api/bugs?project={p}"),
        ("stream first page: /bugs page", f"/bugs?project={p}"),
        ("search: GET /api/bugs q=free text", f"/api/bugs?project={p}&q=refund"),
        (
            "filters: GET /api/bugs status=open priority=p0,p1 tag kind assignee",
            f"/api/bugs?project={p}&status=open&priority=p0,p1&tag=label_flip&kind=failed_prediction"
            f"&assignee={user.username}",
        ),
        (f"largest bug ({largest[1]:,} failures): /bugs/{{id}} page", f"/bugs/{largest[0]}"),
        ("largest bug: GET /api/bugs/{id}", f"/api/bugs/{largest[0]}"),
    ]
    try:
        bulk_url = reverse("api-bugs-bulk")
    except NoReverseMatch:
        bulk_url = None
    rows = []
    collect_static()
    try:
        with gunicorn(workers=1) as server:
            s = requests.Session()
            s.headers["Authorization"] = f"Token {token}"
            browser = Client()  # the HTML pages with a session, as a signed-in browser has
            browser.force_login(user)
            login = requests.Session()
            login.cookies.set(settings.SESSION_COOKIE_NAME, browser.cookies[settings.SESSION_COOKIE_NAME].value)
            for what, url in reads:
                client = login if not url.startswith("/api/") else s
                res = client.get(server.url + url, timeout=300)  # warm-up
                assert res.status_code == 200 and not res.history, (url, res.status_code, res.text[:300])
                ms = []
                for _ in range(args.calls):
                    t = time.perf_counter()
                    res = client.get(server.url + url, timeout=300)
                    ms.append((time.perf_counter() - t) * 1000)
                    assert res.status_code == 200, (url, res.status_code)
                p50, p95 = percentile(ms, 0.5), percentile(ms, 0.95)
                rows.append([what, f"{p50:.0f}", f"{p95:.0f}", "yes" if p95 < TARGET_READ_MS else "NO"])
            if bulk_url is None:
                rows.append(["bulk action on 1,000 bugs", "-", "-", "not available: no POST /api/bugs/bulk"])
            else:
                ids = list(
                    Bug.objects.filter(project=project, status="new").order_by("id").values_list("pk", flat=True)[:1000]
                )
                ms = []
                for k in range(args.bulk_calls):
                    body = {"bugs": ids, "action": "priority", "value": ["p1", "p2"][k % 2]}
                    t = time.perf_counter()
                    res = s.post(server.url + bulk_url, json=body, timeout=300)
                    ms.append((time.perf_counter() - t) * 1000)
                    if res.status_code >= 400:
                        rows.append(["bulk action on 1,000 bugs", "-", "-", f"{res.status_code}: {res.text[:120]}"])
                        break
                else:
                    p50, p95 = percentile(ms, 0.5), percentile(ms, 0.95)
                    ok = "yes" if p95 < TARGET_BULK_MS else "NO"
                    rows.append(["bulk action on 1,000 bugs (set priority)", f"{p50:.0f}", f"{p95:.0f}", ok])
    finally:
        if not args.keep:
            execute("DELETE FROM bugqueue_failureexample WHERE project_id = %s", [project.pk])
            with connection.cursor() as cur:
                cur.execute(
                    "DELETE FROM bugqueue_bugoccurrence WHERE bug_id IN (SELECT id FROM bugqueue_bug WHERE project_id = %s)",
                    [project.pk],
                )
            Project.objects.filter(pk=project.pk).delete()
            User.objects.filter(username__startswith="bugs-bench-").filter(
                username__endswith=f"{args.bugs}-{args.failures}"
            ).delete()
    print_table(
        f"Setup: {args.bugs:,} bugs, {args.failures:,} failures (largest bug: {n_failures:,} failures)",
        ["step", "value"],
        out,
    )
    print_table(
        f"Bug stream reads over HTTP (gunicorn, 1 worker), {args.calls} calls each; target p95 < {TARGET_READ_MS} ms "
        f"(bulk < {TARGET_BULK_MS} ms)",
        ["what", "p50 ms", "p95 ms", "meets target"],
        rows,
    )


if __name__ == "__main__":
    main()
