"""Integration: a snapshot requested through the API is built by a real Celery worker, reached through the
real broker after the request's transaction committed."""

import os
import time
from pathlib import Path

import pytest
from django.db import connection

from labeling.models import Export, ExportStatus
from tests.conftest import client_for, require
from tests.labeling.factories import ProjectFactory, UserFactory, make_items, resolve
from tests.private_broker import broker_reachable, start_worker, stop_worker

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_builds_the_snapshot(tmp_path, settings):
    broker = os.environ.get("CELERY_BROKER_URL", "")
    require(broker and not broker.startswith("memory"), "set CELERY_BROKER_URL to a real broker (redis://...)")
    require(broker_reachable(broker), f"the broker at {broker} is not reachable")
    require(connection.vendor == "postgresql", "the worker test needs PostgreSQL (a database shared by two processes)")
    settings.MEDIA_ROOT = str(tmp_path / "media")
    queue = f"loupe-test-export-{os.getpid()}"
    from config.celery import app

    before = app.conf.task_default_queue
    app.conf.task_default_queue = queue  # this test's worker listens only here
    worker = start_worker(broker, queue=queue, loglevel="WARNING", MEDIA_ROOT=settings.MEDIA_ROOT)
    try:
        manager = UserFactory()
        project = ProjectFactory(creator=manager)
        resolve(project, make_items(project, 40))
        assert not settings.CELERY_TASK_ALWAYS_EAGER
        res = client_for(manager).post(f"/api/projects/{project.pk}/exports", {"format": "csv"}, format="json")
        assert res.status_code == 202
        export_id = res.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and Export.objects.get(pk=export_id).status != ExportStatus.DONE:
            if worker.poll() is not None:
                break
            time.sleep(0.2)
        export = Export.objects.get(pk=export_id)
        assert export.status == ExportStatus.DONE, "the worker never built the export"
        assert export.row_count == 40 and (Path(settings.MEDIA_ROOT) / export.file_name).exists()
    finally:
        app.conf.task_default_queue = before
        out = stop_worker(worker)
    assert "Traceback" not in (out or ""), out
