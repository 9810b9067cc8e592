from datetime import timedelta

import pytest
from django.utils import timezone

from bugqueue.models import Bug, BugEvent, BugOccurrence, BugProjectSettings, BugStatus, Comment, FailureExample
from bugqueue.services.autofile import (
    failed_prediction_fingerprint,
    failures_file_pending,
    feedback_slo_record,
    projects_with_unfiled_changes,
)
from bugqueue.services.bug_settings import bug_settings_update
from bugqueue.tasks import file_failed_predictions, file_failed_predictions_sweep
from labeling.models import LabelChange
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.ingestion import items_ingest
from tests.bugqueue.factories import ingest_items, resolve, run_threads, update
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def set_truth(project, items, label, method="imported"):
    return ground_truth_set_many(project_id=project.pk, decisions=[Decision(it.pk, label, method) for it in items])


def test_disagreement_files_one_bug_per_model_version_and_confusion(project):
    items = ingest_items(project, 6, label="pos")
    # a second model version predicted on two of the items
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": it.external_id,
                "payload": it.payload,
                "prediction": {"model_version": "v2", "label": "neu"},
            }
            for it in items[:2]
        ],
    )
    set_truth(project, items[:4], "neg")  # v1 wrong on 4 (pos->neg), v2 wrong on 2 (neu->neg)
    set_truth(project, items[4:], "pos")  # v1 right: no failure
    summary = failures_file_pending(project_id=project.pk)
    assert summary["failures"] == 6 and summary["created"] == 2
    v1 = Bug.objects.get(fingerprint=failed_prediction_fingerprint(model_version="v1", predicted="pos", actual="neg"))
    v2 = Bug.objects.get(fingerprint=failed_prediction_fingerprint(model_version="v2", predicted="neu", actual="neg"))
    assert v1.kind == "failed_prediction" and v1.model_version == "v1" and v1.occurrences == 4
    assert v1.title == "v1 predicts Positive where the truth is Negative"
    assert v2.occurrences == 2
    f = FailureExample.objects.filter(bug=v1).first()
    assert f.item_id == items[0].pk and f.predicted_label == "pos" and f.expected_label == "neg"
    assert f.source == "ground_truth" and f.label_change_seq is not None and f.predicted_at is not None
    # idempotent: running again (a retried task, the sweep) files nothing more
    assert failures_file_pending(project_id=project.pk)["failures"] == 0
    assert Bug.objects.get(pk=v1.pk).occurrences == 4 and FailureExample.objects.count() == 6


def test_a_burst_of_thousands_makes_a_handful_of_bugs_in_few_queries(project, django_assert_max_num_queries):
    items = ingest_items(project, 3000, label="pos")
    labels = ["neg", "neu", "pos"]
    set_truth(project, [it for i, it in enumerate(items) if i % 3 == 0], "neg")
    set_truth(project, [it for i, it in enumerate(items) if i % 3 == 1], "neu")
    set_truth(project, [it for i, it in enumerate(items) if i % 3 == 2], "pos")
    assert LabelChange.objects.filter(project=project).count() == 3000 and labels
    from django.db import connection

    # Independent of the number of changes; SQLite only splits the bulk inserts into more statements.
    with django_assert_max_num_queries(40 if connection.vendor == "postgresql" else 80):
        summary = failures_file_pending(project_id=project.pk)
    assert summary["failures"] == 2000 and summary["changes"] == 3000
    assert Bug.objects.filter(project=project).count() == 2
    assert sorted(Bug.objects.values_list("occurrences", flat=True)) == [1000, 1000]
    assert BugOccurrence.objects.count() == 2  # one occurrence row per bug and batch, not per failure


def test_batches_are_bounded_and_resume_from_the_cursor(project):
    items = ingest_items(project, 25)
    set_truth(project, items, "neg")
    first = failures_file_pending(project_id=project.pk, batch_size=10, max_batches=1)
    assert first["changes"] == 10 and BugProjectSettings.objects.get(project=project).filed_through_seq == 10
    rest = failures_file_pending(project_id=project.pk, batch_size=10)
    assert rest["changes"] == 15 and Bug.objects.get().occurrences == 25


def test_newest_change_of_an_item_in_a_batch_wins(project):
    items = ingest_items(project, 1)
    set_truth(project, items, "neg")
    set_truth(project, items, "pos", method="adjudicated")  # corrected: the model was right after all
    assert failures_file_pending(project_id=project.pk)["failures"] == 0
    assert Bug.objects.count() == 0


def test_a_retracted_label_files_nothing(project):
    from labeling.services.ground_truth import ground_truth_retract

    items = ingest_items(project, 1)
    set_truth(project, items, "neg")
    ground_truth_retract(item=items[0])  # a reviewer's decision undone: no ground truth any more
    assert LabelChange.objects.filter(item=items[0]).latest("seq").method == "retracted"
    assert failures_file_pending(project_id=project.pk)["failures"] == 0
    assert Bug.objects.count() == 0


def test_switch_off_skips_and_switching_on_files_from_then_on(user, project):
    bug_settings_update(project=project, actor=user, auto_file_failed_predictions=False)
    items = ingest_items(project, 4)
    set_truth(project, items[:2], "neg")
    assert failures_file_pending(project_id=project.pk)["failures"] == 0 and Bug.objects.count() == 0
    bug_settings_update(project=project, actor=user, auto_file_failed_predictions=True)
    set_truth(project, items[2:], "neg")
    assert failures_file_pending(project_id=project.pk)["failures"] == 2
    assert Bug.objects.get().occurrences == 2


def test_late_label_for_old_prediction_does_not_reopen_but_a_new_prediction_does(project):
    old = timezone.now() - timedelta(days=10)
    items = ingest_items(project, 3, predicted_at=old)
    set_truth(project, items[:1], "neg")
    failures_file_pending(project_id=project.pk)
    bug = Bug.objects.get()
    update(bug, status="triaged")
    resolve(bug)
    # the label for another old prediction arrives late: recorded, not a regression
    set_truth(project, items[1:2], "neg")
    failures_file_pending(project_id=project.pk)
    bug.refresh_from_db()
    assert bug.status == BugStatus.RESOLVED and not bug.regressed and bug.occurrences == 2
    # production predicts again after the fix and is wrong again: a regression
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": items[2].external_id,
                "payload": items[2].payload,
                "prediction": {"model_version": "v1", "label": "pos", "predicted_at": timezone.now().isoformat()},
            }
        ],
    )
    set_truth(project, items[2:], "neg")
    failures_file_pending(project_id=project.pk)
    bug.refresh_from_db()
    assert bug.status == BugStatus.NEW and bug.regressed and bug.occurrences == 3
    assert BugEvent.objects.filter(bug=bug, field="regressed").count() == 1


def test_signal_enqueues_after_commit_and_the_task_files(project, eager_celery, django_capture_on_commit_callbacks):
    items = ingest_items(project, 3)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        set_truth(project, items, "neg")
    assert callbacks  # labeling announces after commit; bugqueue enqueues after commit too
    bug = Bug.objects.get(project=project)
    assert bug.occurrences == 3 and bug.kind == "failed_prediction"


def test_task_and_sweep_are_idempotent(project, eager_celery):
    items = ingest_items(project, 5)
    set_truth(project, items, "neg")  # on_commit callbacks do not run in this test: no nudge was sent
    assert projects_with_unfiled_changes() == [project.pk]
    assert file_failed_predictions_sweep() == 1  # the sweep finds the project and files it
    assert Bug.objects.get().occurrences == 5 and projects_with_unfiled_changes() == []
    assert file_failed_predictions(project.pk) == 0
    assert Bug.objects.get().occurrences == 5


# --- feedback-delay SLO -----------------------------------------------------------------------
def test_slo_breach_files_then_counts_and_recovery_comments(project):
    first = feedback_slo_record(
        project_id=project.pk, breached=True, observed_seconds=9 * 86400, target_seconds=7 * 86400, quantile=0.9
    )
    assert first.created
    bug = Bug.objects.get(pk=first.bug.pk)
    assert (
        bug.kind == "feedback_delay"
        and bug.priority == "p1"
        and list(bug.tags.values_list("slug", flat=True)) == ["feedback_delay"]
    )
    assert "9.0 d" in bug.description and "7.0 d" in bug.description
    second = feedback_slo_record(
        project_id=project.pk, breached=True, observed_seconds=10 * 86400, target_seconds=7 * 86400, quantile=0.9
    )
    assert second.bug.pk == bug.pk and second.occurrences == 2
    feedback_slo_record(
        project_id=project.pk, breached=False, observed_seconds=5 * 86400, target_seconds=7 * 86400, quantile=0.9
    )
    events = list(BugEvent.objects.filter(bug=bug, field="slo").values_list("to_value", flat=True))
    assert events == ["breached", "recovered"]
    assert "recovered" in Comment.objects.get(bug=bug).body
    assert Bug.objects.get(pk=bug.pk).status == "new"  # people decide when to resolve


def test_recovery_without_an_open_bug_does_nothing(project):
    assert (
        feedback_slo_record(project_id=project.pk, breached=False, observed_seconds=1, target_seconds=2, quantile=0.9)
        is None
    )
    assert Bug.objects.count() == 0


def test_slo_signal_sent_by_the_delay_engineer_files_a_bug(project, eager_celery, django_capture_on_commit_callbacks):
    from labeling.models import Project
    from labeling.signals import feedback_slo_changed

    with django_capture_on_commit_callbacks(execute=True):
        feedback_slo_changed.send(
            sender=Project,
            project_id=project.pk,
            breached=True,
            observed_seconds=800000.0,
            target_seconds=604800,
            quantile=0.9,
        )
    bug = Bug.objects.get(project=project, kind="feedback_delay")
    with django_capture_on_commit_callbacks(execute=True):
        feedback_slo_changed.send(
            sender=Project,
            project_id=project.pk,
            breached=False,
            observed_seconds=timedelta(days=5),
            target_seconds=604800,
            quantile=0.9,
        )
    assert BugEvent.objects.filter(bug=bug, field="slo", to_value="recovered").exists()
    # a breach after the bug was resolved is a regression
    resolve(bug)
    with django_capture_on_commit_callbacks(execute=True):
        feedback_slo_changed.send(
            sender=Project,
            project_id=project.pk,
            breached=True,
            observed_seconds=900000,
            target_seconds=604800,
            quantile=0.9,
        )
    bug.refresh_from_db()
    assert bug.status == "new" and bug.regressed


@pytest.mark.services
def test_concurrent_filers_of_one_project_file_each_failure_once(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    items = ingest_items(project, 400)
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(it.pk, "neg", "imported") for it in items])

    run_threads(4, lambda i: failures_file_pending(project_id=project.pk, batch_size=50))
    assert FailureExample.objects.filter(project=project).count() == 400
    assert Bug.objects.get(project=project).occurrences == 400
