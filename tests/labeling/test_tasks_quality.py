"""Integration: a real Celery worker, on the real broker, executes a quality run on PostgreSQL."""

import os
import time
import uuid

import numpy as np
import pytest
from django.conf import settings
from django.db import connection

from labeling.models import QualityRun
from labeling.services.quality.runs import quality_run_request
from labeling.tasks import quality_run_task
from tests.conftest import require
from tests.labeling.factories import annotators, crowd_project, load_crowd, simulate_crowd
from tests.private_broker import broker_reachable, start_worker, stop_worker


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_quality_run(monkeypatch):
    broker = os.environ.get("CELERY_BROKER_URL", "")
    require(broker and not broker.startswith("memory"), "set CELERY_BROKER_URL to a real broker (redis://...)")
    require(broker_reachable(broker), f"the broker at {broker} is not reachable")
    require(connection.vendor == "postgresql", "the worker test needs PostgreSQL")

    project, manager = crowd_project(k=3)
    users = annotators(project, 5)
    crowd = simulate_crowd(n_items=60, accuracies=np.linspace(0.6, 0.95, 5), n_classes=3, per_item=3, seed=3)
    load_crowd(project, users, crowd)

    queue = f"loupe-test-{uuid.uuid4().hex[:8]}"
    sent = []
    # Send the after-commit message to this test's own queue, on the real broker.
    monkeypatch.setattr(
        "labeling.services.quality.runs._enqueue",
        lambda run_id: sent.append(quality_run_task.apply_async(args=[run_id], queue=queue)),
    )
    worker = start_worker(broker, queue=queue, loglevel="WARNING")
    try:
        assert not settings.CELERY_TASK_ALWAYS_EAGER
        run = quality_run_request(project_id=project.pk, requested_by=manager)  # commits: the message goes out
        assert len(sent) == 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and QualityRun.objects.get(pk=run.pk).status in ("queued", "running"):
            if worker.poll() is not None:
                break
            time.sleep(0.2)
        run.refresh_from_db()
        assert run.status == "done", run.error or "the worker never finished the run"
        assert run.scored == 60 and run.snapshot_at is not None and run.attempts == 1
    finally:
        out = stop_worker(worker)
    assert "Traceback" not in (out or ""), out
