"""Quality runs: requesting, claiming, failing, recovering, pruning and the automatic trigger."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from common.errors import Conflict
from labeling.models import (
    Item,
    QualityItemResult,
    QualityRun,
    QualitySettings,
)
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import (
    quality_on_item_disputed,
    quality_results_prune,
    quality_run_execute,
    quality_run_request,
    quality_runs_recover,
)
from labeling.stats import consensus
from labeling.tasks import quality_run_task
from tests.labeling.factories import (
    annotate,
    annotators,
    crowd_project,
)
from tests.labeling.services.quality.helpers import run_now


@pytest.mark.django_db
def test_a_project_without_annotations_scores_nothing():
    project, _ = crowd_project(k=3)
    run = run_now(project)
    assert (run.status, run.method, run.scored) == ("done", "none", 0)


@pytest.mark.django_db
def test_a_second_request_while_one_is_queued_is_a_conflict(django_capture_on_commit_callbacks):
    project, manager = crowd_project()
    with mock.patch.object(quality_run_task, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            first = quality_run_request(project_id=project.pk, requested_by=manager)
        with pytest.raises(Conflict) as exc:
            quality_run_request(project_id=project.pk, requested_by=manager)
    assert exc.value.fields == {"run_id": first.pk} and exc.value.code == "run_in_progress"
    delay.assert_called_once_with(first.pk)  # enqueued after commit, once
    quality_run_execute(run_id=first.pk)
    with mock.patch.object(quality_service, "_enqueue"):
        assert quality_run_request(project_id=project.pk).pk != first.pk  # done: a new one may start


@pytest.mark.django_db(transaction=True)
def test_two_runs_requested_at_once_start_one(postgres_tx):
    project, manager = crowd_project()
    barrier = threading.Barrier(4)
    outcomes = []

    def request():
        try:
            barrier.wait()
            outcomes.append(("run", quality_run_request(project_id=project.pk, requested_by=manager).pk))
        except Conflict as exc:
            outcomes.append(("conflict", exc.fields and exc.fields.get("run_id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    # Patched once, here: patching in each thread let one thread "restore" another's mock for good.
    with mock.patch.object(quality_service, "_enqueue"):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    runs = [v for kind, v in outcomes if kind == "run"]
    assert len(runs) == 1 and len(outcomes) == 4
    assert QualityRun.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_task_is_idempotent_and_failures_are_recorded():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    it = Item.objects.create(project=project, external_id="a", required_annotations=3)
    annotate(it, [(users[0], "c0"), (users[1], "c1"), (users[2], "c0")])
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk)
    quality_run_task(run.pk)
    quality_run_task(run.pk)  # a redelivered message: nothing to do
    run.refresh_from_db()
    assert (run.status, run.attempts, QualityItemResult.objects.filter(run=run).count()) == ("done", 1, 1)

    with mock.patch.object(quality_service, "_enqueue"):
        failing = quality_run_request(project_id=project.pk)
    with mock.patch.object(consensus, "score_crowd", side_effect=consensus.ScoringError("boom")):
        quality_run_task(failing.pk)
    failing.refresh_from_db()
    assert failing.status == "failed" and "ScoringError: boom" in failing.error and failing.finished_at


@pytest.mark.django_db
def test_recover_fails_runs_whose_worker_died_and_resends_lost_messages(settings):
    project, _ = crowd_project()
    other, _ = crowd_project()
    long_ago = timezone.now() - timedelta(hours=3)
    stuck = QualityRun.objects.create(project=project, status="running", started_at=long_ago)
    lost = QualityRun.objects.create(project=other, status="queued")
    QualityRun.objects.filter(pk=lost.pk).update(created_at=long_ago)
    with mock.patch.object(quality_run_task, "delay") as delay:
        assert quality_runs_recover() == {"requeued": 0, "failed": 1, "resent": 1}
    delay.assert_called_once_with(lost.pk)
    stuck.refresh_from_db()
    assert stuck.status == "failed" and "TIMEOUT" in stuck.error


@pytest.mark.django_db
def test_a_run_starts_after_the_configured_number_of_disputed_items(django_capture_on_commit_callbacks):
    project, _ = crowd_project()
    QualitySettings.objects.create(project=project, auto_run_after_disputed=3)
    with mock.patch.object(quality_run_task, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert quality_on_item_disputed(project_id=project.pk) is None
            assert quality_on_item_disputed(project_id=project.pk) is None
            run = quality_on_item_disputed(project_id=project.pk)
        assert run is not None and run.trigger == "auto"
        assert len(callbacks) == 1
        delay.assert_called_once_with(run.pk)
        assert QualitySettings.objects.get(project=project).disputed_since_run == 0
        # While it is queued, more disputes are counted but start nothing.
        for _ in range(4):
            assert quality_on_item_disputed(project_id=project.pk) is None
        assert QualityRun.objects.filter(project=project).count() == 1
        assert QualitySettings.objects.get(project=project).disputed_since_run == 4


@pytest.mark.django_db
def test_runs_are_not_started_automatically_when_the_setting_is_zero():
    project, _ = crowd_project()
    QualitySettings.objects.create(project=project, auto_run_after_disputed=0)
    with mock.patch.object(quality_run_task, "delay"):
        for _ in range(50):
            assert quality_on_item_disputed(project_id=project.pk) is None
    assert not QualityRun.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_old_runs_keep_their_summary_but_not_their_per_item_results():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    it = Item.objects.create(project=project, external_id="a", required_annotations=3)
    annotate(it, [(users[0], "c0"), (users[1], "c1"), (users[2], "c0")])
    runs = [run_now(project) for _ in range(4)]
    assert quality_results_prune(keep_runs=2) == 2
    assert list(QualityItemResult.objects.values_list("run_id", flat=True).order_by("run_id")) == [
        r.pk for r in runs[2:]
    ]
    assert QualityRun.objects.filter(project=project).count() == 4
    assert quality_results_prune(keep_runs=2) == 0
