"""Integration: the delayed absorb pass, sent through the real broker with its countdown, run by a
real worker once due: the waiting items join in one version per dataset."""

import os
import time
import uuid

import pytest
from django.db import connection

from bugqueue.models import BugProjectSettings, Dataset, DatasetMember, DatasetVersion
from bugqueue.services.absorb import datasets_absorb_schedule
from bugqueue.services.datasets import bug_datasets_flow_run, bug_datasets_flow_start
from tests.bugqueue.factories import failing_bug, label, make_items
from tests.conftest import require
from tests.labeling.factories import ProjectFactory, UserFactory
from tests.private_broker import broker_reachable, start_worker, stop_worker


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_the_absorb_pass_when_due():
    broker = os.environ.get("CELERY_BROKER_URL", "")
    require(broker and not broker.startswith("memory"), "set CELERY_BROKER_URL to a real broker (redis://...)")
    require(broker_reachable(broker), f"the broker at {broker} is not reachable")
    require(connection.vendor == "postgresql", "the worker test needs PostgreSQL")

    user = UserFactory()
    project = ProjectFactory(creator=user)
    datasets = [Dataset.objects.create(project=project, name=f"d{k}") for k in range(2)]
    items = make_items(project, 5, prefix="w")
    bug = failing_bug(project, failures=[(it, None) for it in items])
    flow = bug_datasets_flow_start(bug=bug, actor=user, dataset_ids=[d.pk for d in datasets])
    bug_datasets_flow_run(flow_id=flow.pk)
    BugProjectSettings.objects.update_or_create(project=project, defaults={"dataset_batch_seconds": 2})
    label(items, "pos")  # the receiver schedules a pass on the shared queue; replaced below
    BugProjectSettings.objects.filter(pk=project.pk).update(absorb_due_at=None)
    countdown = datasets_absorb_schedule(project_id=project.pk)
    assert countdown == 2

    queue = f"loupe-test-{uuid.uuid4().hex[:8]}"
    worker = start_worker(broker, queue=queue, loglevel="WARNING")
    try:
        from bugqueue.tasks import datasets_absorb_pass_task

        datasets_absorb_pass_task.apply_async(args=[project.pk], countdown=countdown, queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and DatasetVersion.objects.filter(dataset__in=datasets).count() < 2:
            if worker.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        out = stop_worker(worker)
    assert "Traceback" not in (out or ""), out
    for ds in datasets:
        assert list(DatasetVersion.objects.filter(dataset=ds).values_list("number", "added", "bug_id")) == [
            (1, 5, bug.pk)
        ]
        assert DatasetMember.objects.filter(dataset=ds, label="pos").count() == 5
    assert BugProjectSettings.objects.get(pk=project.pk).absorb_due_at is None
