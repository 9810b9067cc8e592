"""The queue's Celery tasks, called as functions, and their beat entries."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from labeling.models import Assignment, AssignmentStatus, Item
from labeling.services.queue.claim import assignment_claim_next
from labeling.tasks import queue_expire_leases, queue_reconcile_all, queue_reconcile_project
from tests.labeling.factories import annotators, queue_project


def test_beat_runs_the_expiry_sweep_every_minute_and_the_reconcile_nightly():
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["queue-expire-leases"]["task"] == "loupe.queue_expire_leases"
    assert schedule["queue-expire-leases"]["schedule"] == 60.0
    assert schedule["queue-reconcile-counters"]["task"] == "loupe.queue_reconcile_all"


@pytest.mark.django_db
def test_expire_task_marks_expired_leases(user):
    project, _ = queue_project(items=2, overlap=1)
    a, b = annotators(project, 2)
    la = assignment_claim_next(project=project, annotator=a)
    lb = assignment_claim_next(project=project, annotator=b)
    Assignment.objects.filter(pk=la.assignment_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert queue_expire_leases() == 1
    assert queue_expire_leases() == 0  # idempotent
    assert Assignment.objects.get(pk=la.assignment_id).status == AssignmentStatus.EXPIRED
    assert Assignment.objects.get(pk=lb.assignment_id).status == AssignmentStatus.ACTIVE


@pytest.mark.django_db
def test_reconcile_tasks(user, django_capture_on_commit_callbacks, monkeypatch):
    project, items = queue_project(items=2)
    Item.objects.filter(pk=items[0].pk).update(annotation_count=5)
    result = queue_reconcile_project(project.pk)
    assert result["counts_fixed"] == 1 and result["items_checked"] == 2
    assert Item.objects.get(pk=items[0].pk).annotation_count == 0
    sent = []
    monkeypatch.setattr(queue_reconcile_project, "delay", lambda pid: sent.append(pid))
    assert queue_reconcile_all() >= 1 and project.pk in sent
