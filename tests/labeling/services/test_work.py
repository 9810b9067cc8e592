"""The work sweep, heartbeats and the after-commit enqueue helper (labeling.services.work)."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from labeling.models import DeferredTask, Export, ExportStatus, QualityRun, QualityRunStatus
from labeling.services.export import exports_recover
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute, quality_runs_recover
from labeling.services.sweep import work_sweep
from labeling.services.work import (
    Heartbeat,
    WorkTakenOver,
    deferred_tasks_send,
    enqueue,
    enqueue_on_commit,
)
from labeling.tasks import export_build, quality_run_task, similarity_index_update_task
from tests.labeling.factories import annotate, annotators, crowd_project, make_items, resolve


def ago(seconds):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.mark.django_db
def test_a_run_whose_heartbeat_stopped_is_queued_again_then_failed_after_the_last_attempt(settings):
    settings.LOUPE_HEARTBEAT_STALE_SECONDS = 90
    settings.LOUPE_WORK_MAX_ATTEMPTS = 3
    projects = [crowd_project()[0] for _ in range(3)]
    silent = QualityRun.objects.create(
        project=projects[0], status="running", attempts=1, started_at=ago(300), heartbeat_at=ago(120)
    )
    alive = QualityRun.objects.create(
        project=projects[1], status="running", attempts=1, started_at=ago(3000), heartbeat_at=ago(10)
    )
    last = QualityRun.objects.create(
        project=projects[2], status="running", attempts=3, started_at=ago(300), heartbeat_at=ago(100)
    )
    with mock.patch.object(quality_run_task, "delay") as delay:
        assert quality_runs_recover() == {"requeued": 1, "failed": 1, "resent": 0}
    delay.assert_called_once_with(silent.pk)
    silent.refresh_from_db(), alive.refresh_from_db(), last.refresh_from_db()
    assert silent.status == "queued" and "no heartbeat for 120 s" in silent.error and silent.attempts == 1
    assert alive.status == "running"  # beating: left alone, however long it has run (up to the run timeout)
    assert last.status == "failed" and "attempt 3 of 3" in last.error and last.finished_at

    # Queued again just now: not re-sent at once, but once nobody picked it up for the resend delay.
    with mock.patch.object(quality_run_task, "delay") as delay:
        assert quality_runs_recover()["resent"] == 0
        QualityRun.objects.filter(pk=silent.pk).update(heartbeat_at=ago(settings.LOUPE_WORK_RESEND_SECONDS + 1))
        assert quality_runs_recover()["resent"] == 1
        assert quality_runs_recover()["resent"] == 0  # sent once per resend delay, not on every sweep
    delay.assert_called_once_with(silent.pk)


@pytest.mark.django_db
def test_an_export_whose_builder_died_is_built_by_the_next_attempt(project, user, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    resolve(project, make_items(project, 3))
    export = Export.objects.create(
        project=project,
        until_seq=3,
        status=ExportStatus.RUNNING,
        attempts=1,
        started_at=ago(200),
        heartbeat_at=ago(200),
    )
    export_build(export.pk)  # a redelivered message while its heartbeat is stale: taken over at once
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE and export.attempts == 2

    alive = Export.objects.create(
        project=project,
        since_seq=1,
        until_seq=3,
        status=ExportStatus.RUNNING,
        attempts=1,
        started_at=ago(5000),
        heartbeat_at=ago(5),
    )
    export_build(alive.pk)  # its builder is beating: a duplicate message does nothing
    assert Export.objects.get(pk=alive.pk).status == ExportStatus.RUNNING
    with mock.patch.object(export_build, "delay") as delay:
        assert exports_recover() == {"requeued": 0, "failed": 0, "resent": 0}
    delay.assert_not_called()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stamps_the_row_and_notices_a_takeover(settings):
    project, _ = crowd_project()
    run = QualityRun.objects.create(
        project=project, status="running", attempts=1, started_at=ago(60), heartbeat_at=ago(60)
    )
    stamped = threading.Event()
    with Heartbeat(QualityRun, run.pk, 1, interval=0.05) as beat:
        for _ in range(200):
            if QualityRun.objects.get(pk=run.pk).heartbeat_at > ago(5):
                stamped.set()
                break
            beat._stop.wait(0.05)
        assert stamped.is_set()
        beat.check()  # still ours
        QualityRun.objects.filter(pk=run.pk).update(attempts=2)  # the sweep handed it to another attempt
        assert beat.lost.wait(10)
        with pytest.raises(WorkTakenOver):
            beat.check()


@pytest.mark.django_db
def test_an_attempt_that_was_taken_over_does_not_record_its_result(settings):
    project, _ = crowd_project()
    users = annotators(project, 3)
    item = project.items.create(external_id="a", required_annotations=3)
    annotate(item, [(users[0], "c0"), (users[1], "c1"), (users[2], "c0")])
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_service.quality_run_request(project_id=project.pk)
    real_score = quality_service.consensus.score_crowd

    def taken_over_while_scoring(*a, **kw):
        # The sweep thought this attempt dead and a second attempt claimed the run meanwhile.
        QualityRun.objects.filter(pk=run.pk).update(attempts=2)
        return real_score(*a, **kw)

    with mock.patch.object(quality_service.consensus, "score_crowd", taken_over_while_scoring):
        quality_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == QualityRunStatus.RUNNING and run.finished_at is None  # left to its new owner


@pytest.mark.django_db(transaction=True)
def test_a_failed_send_is_recorded_once_and_sent_by_the_sweep():
    with mock.patch.object(similarity_index_update_task, "delay", side_effect=BrokerError("down")):
        assert enqueue(similarity_index_update_task, 7) is False
        enqueue_on_commit(similarity_index_update_task, 7)  # outside a transaction: at once
    with mock.patch.object(quality_run_task, "delay", side_effect=BrokerError("down")):
        assert enqueue(quality_run_task, 8, record=False) is False  # its own row is the record
    assert list(DeferredTask.objects.values_list("task_name", "args")) == [("loupe.similarity_index_update", [7])]
    with mock.patch.object(similarity_index_update_task, "delay", side_effect=BrokerError("still down")):
        assert deferred_tasks_send() == 0
    assert DeferredTask.objects.get().attempts == 1
    with mock.patch.object(similarity_index_update_task, "delay") as delay:
        assert work_sweep()["deferred_sent"] == 1
    delay.assert_called_once_with(7)
    assert not DeferredTask.objects.exists()


def test_a_task_can_be_sent_by_its_registered_name():
    """Services name their task (they do not import labeling.tasks); an unknown name is a bug, raised."""
    with mock.patch.object(similarity_index_update_task, "delay") as delay:
        assert enqueue("loupe.similarity_index_update", 5) is True
    delay.assert_called_once_with(5)
    with pytest.raises(KeyError):
        enqueue("loupe.no_such_task", 1)


@pytest.mark.django_db
def test_in_process_tasks_still_raise_their_own_errors(eager_celery):
    """The demo runs tasks in-process: a task's failure is a bug to see, not a broker outage to hide."""
    with mock.patch.object(similarity_index_update_task, "delay", side_effect=ValueError("bug")):
        with pytest.raises(ValueError):
            enqueue(similarity_index_update_task, 1)
    assert not DeferredTask.objects.exists()


def test_tasks_are_acknowledged_late_and_redelivery_waits_longer_than_the_longest_task(settings):
    """With acks_late, a message taken by a worker that dies is delivered again after the broker's
    visibility timeout: it must outlast the longest task (else a live run would get a second copy).
    The sweep, every minute, is what brings dead work back quickly."""
    from config.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.broker_transport_options["visibility_timeout"] > settings.LOUPE_QUALITY_RUN_TIMEOUT
    assert app.conf.broker_connection_timeout <= 5 and app.conf.task_publish_retry_policy["max_retries"] <= 1
    sweep = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "loupe.work_sweep"]
    assert sweep and sweep[0]["schedule"] <= 60
    assert settings.LOUPE_HEARTBEAT_STALE_SECONDS + 60 + 60 < 5 * 60  # stale + one sweep period + a run: < 5 min
