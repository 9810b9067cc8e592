"""Labeled-delta export at scale (PostgreSQL): a full JSON Lines export and a 10,000-row delta of a
project with 1,000,000 label changes, served over HTTP by a gunicorn worker on 127.0.0.1, against a
deliberately naive export that builds everything in memory (model instances -> dicts -> one body).

    DATABASE_URL=postgres://... python benchmarks/export.py [--rows 1000000] [--delta 10000]

Each case runs on a fresh gunicorn worker (one sync worker): after a small warm-up request we read
the worker's VmHWM (peak RSS so far) from /proc, run the request, and read VmHWM again; the growth
is the memory the export itself needed. rows/s is end to end: first byte asked to last byte read.
Prints one table. The data set (bulk SQL, no ORM) is kept between runs; --rebuild makes it again.
"""

import os as _os
import sys as _sys  # benchmarks/queue.py must not shadow the standard library's queue module

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Production settings (DEBUG off) for the benchmark and its server; only DATABASE_URL must be given.
for _key, _value in {
    "SECRET_KEY": "benchmark-only-secret-key",
    "ALLOWED_HOSTS": "127.0.0.1",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}.items():
    os.environ.setdefault(_key, _value)

BENCH_PROJECT = "bench: export ({rows} label changes)"
NAIVE_PREFIX = "/naive/"


# --- the naive export, served by the same gunicorn (see naive_application) ----------------------


def naive_export(project_id: int, since_seq: int) -> bytes:
    """What many export endpoints do: load model instances with their item, build dicts, then one body."""
    from django.contrib.auth import get_user_model

    from labeling.models import LabelChange

    usernames = dict(get_user_model().objects.values_list("pk", "username"))
    rows = []
    for ch in (
        LabelChange.objects.filter(project_id=project_id, seq__gt=since_seq).select_related("item").order_by("seq")
    ):
        row = {
            "seq": ch.seq,
            "external_id": ch.item.external_id,
            "label": ch.label,
            "previous_label": ch.previous_label or None,
            "method": ch.method,
            "score": ch.score,
        }
        if ch.model_version:
            row["model_version"] = ch.model_version
        row["annotators"] = [usernames.get(a, a) for a in ch.annotators]
        row["changed_at"] = ch.changed_at.isoformat()
        rows.append(row)
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n").encode()


def naive_application(environ, start_response):
    """WSGI entry for the benchmark's gunicorn: /naive/<project>?since=<seq> is the naive export,
    everything else is Loupe itself."""
    global _django_app
    if "_django_app" not in globals():
        from django.core.wsgi import get_wsgi_application

        _django_app = get_wsgi_application()
    path = environ.get("PATH_INFO", "")
    if not path.startswith(NAIVE_PREFIX):
        return _django_app(environ, start_response)
    from urllib.parse import parse_qs

    from django.db import close_old_connections

    project_id = int(path[len(NAIVE_PREFIX) :])
    since = int(parse_qs(environ.get("QUERY_STRING", "")).get("since", ["0"])[0])
    try:
        body = naive_export(project_id, since)
    finally:
        close_old_connections()
    start_response("200 OK", [("Content-Type", "application/x-ndjson"), ("Content-Length", str(len(body)))])
    return [body]


# --- data ---------------------------------------------------------------------------------------


def build_data(rows: int, rebuild: bool):
    """A project with `rows` label changes over rows/2 items (each item labeled, then relabeled)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from labeling.models import LabelSequence, Project
    from labeling.services.accounts import token_issue_login
    from labeling.services.projects import LabelSpec, project_create

    User = get_user_model()
    name = BENCH_PROJECT.format(rows=f"{rows:,}")
    project = Project.objects.filter(name=name).first()
    if project and not rebuild and LabelSequence.objects.get(project=project).last_seq == rows:
        manager = User.objects.get(username="bench-export-manager")
        return project, token_issue_login(user=manager)[1]
    if project:
        project.delete()
    manager, _ = User.objects.get_or_create(username="bench-export-manager")
    annotators = [User.objects.get_or_create(username=f"bench-annotator-{i}")[0].pk for i in range(8)]
    labels = [LabelSpec(k, k.title()) for k in ("billing", "bug", "feature", "account", "shipping")]
    n_items = max(rows // 2, 1)
    t0 = time.monotonic()
    with transaction.atomic():
        project = project_create(creator=manager, name=name, labels=labels, annotations_per_item=3)
        with connection.cursor() as cur:
            cur.execute(
                """INSERT INTO labeling_item (project_id, external_id, payload, priority, status, required_annotations,
                       annotation_count, created_at, updated_at)
                   SELECT %s, 'ticket-' || lpad(g::text, 8, '0'), jsonb_build_object('text', 'ticket ' || g), 0,
                          'resolved', 3, 3, now(), now()
                   FROM generate_series(1, %s) g""",
                [project.pk, n_items],
            )
            cur.execute("SELECT min(id) FROM labeling_item WHERE project_id = %s", [project.pk])
            first_item = cur.fetchone()[0]
            cur.execute(
                """INSERT INTO labeling_labelchange (project_id, seq, item_id, external_id, label, previous_label, method,
                       score, actor_id, annotators, model_version, source, note, changed_at)
                   SELECT %(p)s, g, %(first)s + (g - 1) %% %(n)s, 'ticket-' || lpad((1 + (g - 1) %% %(n)s)::text, 8, '0'),
                          (ARRAY['billing','bug','feature','account','shipping'])[1 + g %% 5],
                          CASE WHEN g > %(n)s THEN (ARRAY['billing','bug','feature','account','shipping'])[1 + (g - %(n)s) %% 5]
                               ELSE '' END,
                          CASE WHEN g %% 7 = 0 THEN 'adjudicated' ELSE 'consensus' END,
                          round((0.5 + (g %% 500) / 1000.0)::numeric, 3)::float8, NULL,
                          jsonb_build_array((%(a)s)[1 + g %% 8], (%(a)s)[1 + (g + 3) %% 8], (%(a)s)[1 + (g + 5) %% 8]),
                          CASE WHEN g %% 3 = 0 THEN 'tickets-v2' ELSE '' END, '', '',
                          now() - make_interval(secs => %(rows)s - g)
                   FROM generate_series(1, %(rows)s) g""",
                {"p": project.pk, "first": first_item, "n": n_items, "a": annotators, "rows": rows},
            )
        LabelSequence.objects.filter(project=project).update(last_seq=rows)
    with connection.cursor() as cur:
        cur.execute("ANALYZE labeling_item")
        cur.execute("ANALYZE labeling_labelchange")
    print(f"built {rows:,} label changes over {n_items:,} items in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return project, token_issue_login(user=manager)[1]


# --- the server -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class Gunicorn:
    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self):
        env = dict(os.environ)
        env.pop("LOUPE_TESTING", None)
        env.pop("DEBUG", None)
        # benchmarks/ must not be on the server's sys.path (its queue.py would shadow the standard
        # library's queue): the launcher loads this file by path, then starts gunicorn in-process.
        paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(PYTHONPATH=os.pathsep.join(paths), CONN_MAX_AGE="60")
        launcher = (
            "import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('loupe_bench_export', {str(Path(__file__).resolve())!r})\n"
            "module = importlib.util.module_from_spec(spec); sys.modules['loupe_bench_export'] = module\n"
            "spec.loader.exec_module(module)\n"
            "from gunicorn.app.wsgiapp import run\n"
            "sys.argv = ['gunicorn', *sys.argv[1:]]\n"
            "run()\n"
        )
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                launcher,
                "loupe_bench_export:naive_application",
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "900",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            self.log.seek(0)
            sys.stderr.write(self.log.read().decode(errors="replace")[-3000:])
            raise
        return self

    def _wait_ready(self):
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:  # an API call that needs no static files (DEBUG is off, nothing collected)
                if requests.get(f"{self.url}/api/me", timeout=10).status_code in (200, 401):
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {children}")
        self.worker = int(children[0])

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure(server: Gunicorn, path: str, token: str, expect_rows: int, warmup: str, repeat: int = 1) -> dict:
    """Run `path` `repeat` times on one worker; rows/s of the median run, VmHWM growth over all runs."""
    import requests

    headers = {"Authorization": f"Token {token}"}
    requests.get(server.url + warmup, headers=headers, timeout=60).raise_for_status()
    hwm_before = status_kb(server.worker, "VmHWM")
    cpu_before = cpu_seconds(server.worker)
    runs = []
    for _ in range(repeat):
        t0 = time.monotonic()
        lines = size = 0
        with requests.get(server.url + path, headers=headers, stream=True, timeout=900) as res:
            res.raise_for_status()
            next_cursor = res.headers.get("X-Next-Cursor")
            for chunk in res.iter_content(chunk_size=1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
        elapsed = time.monotonic() - t0
        # A streamed export ends with its trailer line; CSV also starts with a header row.
        rows = lines - (1 if next_cursor else 0) - (1 if "format=csv" in path else 0)
        assert rows == expect_rows, (path, rows, expect_rows)
        runs.append(elapsed)
    elapsed = sorted(runs)[len(runs) // 2]
    hwm_after = status_kb(server.worker, "VmHWM")
    cpu = (cpu_seconds(server.worker) - cpu_before) / repeat
    return {
        "rows": rows,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "mb": size / 1e6,
        "runs": repeat,
        "cpu": cpu,
        "rows_per_cpu_s": rows / cpu if cpu else float("inf"),
        "rss_before_mb": hwm_before / 1024,
        "peak_mb": hwm_after / 1024,
        "growth_mb": (hwm_after - hwm_before) / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--delta", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=18_808)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--skip-naive-full", action="store_true", help="skip the in-memory export of everything")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    from labeling.selectors.export import cursor_encode

    if connection.vendor != "postgresql":
        sys.exit("benchmarks/export.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    project, token = build_data(args.rows, args.rebuild)
    pid, rows, delta = project.pk, args.rows, min(args.delta, args.rows)
    since_delta = cursor_encode(project_id=pid, seq=rows - delta)
    warmup = f"/api/projects/{pid}/labels?format=jsonl&limit=10"
    cases = [
        ("streamed JSON Lines, full", f"/api/projects/{pid}/labels?format=jsonl", rows),
        (
            f"streamed JSON Lines, {delta:,}-row delta",
            f"/api/projects/{pid}/labels?format=jsonl&since={since_delta}",
            delta,
        ),
        ("streamed CSV, full", f"/api/projects/{pid}/labels?format=csv", rows),
        (
            "streamed JSON Lines, full, compact",
            f"/api/projects/{pid}/labels?format=jsonl&compact=true",
            max(rows // 2, 1),
        ),
        (f"naive in-memory, {delta:,}-row delta", f"{NAIVE_PREFIX}{pid}?since={rows - delta}", delta),
    ]
    if not args.skip_naive_full:
        cases.append(("naive in-memory, full", f"{NAIVE_PREFIX}{pid}?since=0", rows))
    results = []
    for name, path, expect in cases:
        with Gunicorn(args.port) as server:
            r = measure(server, path, token, expect, warmup, repeat=3 if "delta" in name else 1)
        results.append((name, r))
        print(f"  {name}: {r['rows_per_s']:,.0f} rows/s, +{r['growth_mb']:.0f} MB", file=sys.stderr)

    print(
        f"\nLabeled-delta export: {rows:,} label changes, PostgreSQL, gunicorn 1 sync worker on 127.0.0.1 "
        f"({os.cpu_count()} cores, shared)\n"
    )
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"(load average when the table was printed: {load})\n")
    head = (
        f"| {'case':<40} | {'rows':>9} | {'runs':>4} | {'seconds':>7} | {'rows/s':>9} | {'worker CPU s':>12} "
        f"| {'rows per worker CPU s':>21} | {'MB sent':>7} "
        f"| {'worker RSS before (MB)':>22} | {'peak RSS (MB)':>13} | {'growth (MB)':>11} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for name, r in results:
        print(
            f"| {name:<40} | {r['rows']:>9,} | {r['runs']:>4} | {r['seconds']:>7.2f} | {r['rows_per_s']:>9,.0f} "
            f"| {r['cpu']:>12.2f} | {r['rows_per_cpu_s']:>21,.0f} | {r['mb']:>7.1f} "
            f"| {r['rss_before_mb']:>22.0f} | {r['peak_mb']:>13.0f} | {r['growth_mb']:>11.0f} |"
        )
    print(
        "\nseconds: first byte asked to last byte read (the median of the runs); worker CPU s: the gunicorn worker's "
        "user+system time per run (what the export costs the server, whatever else runs on the machine); growth: the "
        "worker's VmHWM after the runs minus before them.\n"
        "Targets: >= 100,000 rows/s streamed; worker memory growth < 100 MB whatever the size."
    )


if __name__ == "__main__":
    main()
