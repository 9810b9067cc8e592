"""Integration: a real Celery worker process, on the real broker, writes to the test database."""

import os
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection

from labeling.models import HealthCheck
from tests.conftest import require
from tests.private_broker import broker_reachable, start_worker, stop_worker


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_health_task_against_real_broker():
    broker = os.environ.get("CELERY_BROKER_URL", "")
    require(broker and not broker.startswith("memory"), "set CELERY_BROKER_URL to a real broker (redis://...)")
    require(broker_reachable(broker), f"the broker at {broker} is not reachable")
    require(
        connection.vendor == "postgresql", "the worker test needs PostgreSQL (a file database shared by two processes)"
    )

    queue = f"loupe-test-{uuid.uuid4().hex[:8]}"
    worker = start_worker(broker, queue=queue, loglevel="WARNING")
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
        out = stop_worker(worker)
    assert "Traceback" not in (out or ""), out
