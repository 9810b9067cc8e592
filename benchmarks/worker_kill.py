"""Recovery after `kill -9` of a worker, with the production settings (heartbeat every 15 s, stale
after 90 s, sweep every minute from a real `celery beat`): a quality run and an export build are
held mid-task (the tables they read are locked), their worker is killed, a second worker is started,
and the script prints how long after the kill each one was queued again and finished.

    DATABASE_URL=postgres://.../loupe_bench python benchmarks/worker_kill.py

Runs on a private redis-server (a free port on 127.0.0.1) and the database of DATABASE_URL (migrated
here); stops what it started by PID.
"""

import os as _os
import sys as _sys  # benchmarks/queue.py must not shadow the standard library's queue module

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from _server import ROOT, free_port, setup_django  # noqa: E402

setup_django()

import psycopg  # noqa: E402
from django.core.management import call_command  # noqa: E402

from labeling.models import Annotation, Export, LabelChange, QualityRun  # noqa: E402


def main():
    call_command("migrate", verbosity=0)
    from labeling.services.export import export_request
    from labeling.services.quality.runs import quality_run_request
    from tests.labeling.factories import annotate, annotators, crowd_project, make_items, resolve

    port = free_port()
    broker_url = f"redis://127.0.0.1:{port}/0"
    procs = []
    env = dict(os.environ, CELERY_BROKER_URL=broker_url, CELERY_TASK_ALWAYS_EAGER="false", LOUPE_TESTING="true")
    for key in ("LOUPE_HEARTBEAT_SECONDS", "LOUPE_HEARTBEAT_STALE_SECONDS", "LOUPE_WORK_RESEND_SECONDS"):
        env.pop(key, None)  # the defaults, as in production
    logdir = tempfile.mkdtemp(prefix="loupe-worker-kill-")

    def start(name, *args):
        log = open(os.path.join(logdir, f"{name}.log"), "w")  # noqa: SIM115 (the child writes it until stopped)
        p = subprocess.Popen([*args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    def celery(name, *args):
        return start(name, sys.executable, "-m", "celery", "-A", "config", *args, "-l", "INFO")

    start("redis", "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
    from config.celery import app

    app.conf.update(broker_url=broker_url, broker_write_url=broker_url, broker_read_url=broker_url)
    hold = psycopg.connect(os.environ["DATABASE_URL"], autocommit=False)
    try:
        time.sleep(0.5)  # redis-server start-up (a benchmark, not a test)
        from django.contrib.auth import get_user_model

        from tests.labeling.factories import UserFactory

        UserFactory.reset_sequence(get_user_model().objects.count() + 1_000_000)  # users of earlier runs stay
        project, manager = crowd_project()
        users = annotators(project, 3)
        for i in range(200):
            item = project.items.create(external_id=f"i{i}", required_annotations=3)
            annotate(
                item, [(users[0], "c0"), (users[1], "c1" if i % 3 == 0 else "c0"), (users[2], "c0")], settle_item=False
            )
        other, manager2 = crowd_project()
        resolve(other, make_items(other, 2000), labels=("c0", "c1"))
        app.connection_for_write().default_channel.client.flushdb()
        hold.execute(f"LOCK TABLE {Annotation._meta.db_table}, {LabelChange._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        run = quality_run_request(project_id=project.pk, requested_by=manager)
        export, _ = export_request(project=other, actor=manager2)
        beat = celery("beat", "beat", "-s", os.path.join(logdir, "beat-schedule"))
        first = [celery(f"worker1-{n}", "worker", "-c", "1", "--pool", "solo", "-n", f"first{n}@%h") for n in range(2)]
        rows = {
            "quality run": QualityRun.objects.filter(pk=run.pk),
            "export build": Export.objects.filter(pk=export.pk),
        }
        deadline = time.monotonic() + 120
        while not all(r.filter(status="running").exists() for r in rows.values()):
            assert time.monotonic() < deadline, "the first workers never claimed the work"
            time.sleep(0.2)
        time.sleep(20)  # let a few heartbeats happen, as in a real run that was some way in
        for w in first:
            os.kill(w.pid, signal.SIGKILL)
        killed = time.monotonic()
        hold.rollback()
        celery("worker2", "worker", "-c", "2", "-n", "second@%h")
        seen = {}
        while len([k for k in seen if k[1] == "done"]) < 2 and time.monotonic() - killed < 600:
            for name, row in rows.items():
                status, attempts = row.values_list("status", "attempts").first()
                # Queued again by the sweep, then claimed by the second worker (attempt 2).
                state = (
                    "done" if status == "done" else "again" if status in ("queued", "pending") or attempts > 1 else ""
                )
                if state and (name, state) not in seen:
                    seen[(name, state)] = time.monotonic() - killed
            time.sleep(0.05)
        print(f"{'work':<14}{'queued again after':>20}{'done after':>14}  (seconds after kill -9)")
        for name in rows:
            again, done = seen.get((name, "again")), seen.get((name, "done"))
            print(f"{name:<14}{again or float('nan'):>20.0f}{done or float('nan'):>14.0f}")
        print(f"logs: {logdir}")
        _ = beat
    finally:
        hold.close()
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
