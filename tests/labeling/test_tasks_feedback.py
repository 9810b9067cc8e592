"""The feedback-delay Celery tasks, called as functions."""

from datetime import UTC, datetime, timedelta

import pytest

from labeling.models import (
    FeedbackState,
)
from tests.labeling.feedback_data import ingest


@pytest.mark.django_db
def test_tasks_run_the_whole_tick_for_a_project(project):
    from labeling.tasks import feedback_check, feedback_reconcile, feedback_refresh

    ingest(project, 5, at=datetime.now(tz=UTC) - timedelta(days=1))
    feedback_refresh(project.pk)
    feedback_check(project.pk)
    assert feedback_reconcile(project.pk) == 0
    assert FeedbackState.objects.get(project=project).slo_checked_at is not None
    feedback_refresh(999_999)  # a deleted project: nothing to do, no error
