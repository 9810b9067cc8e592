"""Integration: a real Celery worker process, on the real broker, writes to the test database."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from labeling.models import HealthCheck
from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent


def broker_reachable(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_health_task_against_real_broker():
    broker = os.environ.get("CELERY_BROKER_URL", "")
    require(broker and not broker.startswith("memory"), "set CELERY_BROKER_URL to a real broker (redis://...)")
    require(broker_reachable(broker), f"the broker at {broker} is not reachable")
    require(
        connection.vendor == "postgresql", "the worker test needs PostgreSQL (a file database shared by two processes)"
    )

    queue = f"loupe-test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DATABASE_URL=database_url(), LOUPE_TESTING="true", CELERY_TASK_ALWAYS_EAGER="false")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queue,
            "-c",
            "1",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        from labeling.tasks import health_ping

        token = uuid.uuid4().hex
        assert not settings.CELERY_TASK_ALWAYS_EAGER
        health_ping.apply_async(args=[token], queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not HealthCheck.objects.filter(token=token).exists():
            if worker.poll() is not None:
                break
            time.sleep(0.2)
        assert HealthCheck.objects.filter(token=token).exists(), "the worker never ran the task"
    finally:
        worker.terminate()
        try:
            out, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
    assert "Traceback" not in (out or ""), out
