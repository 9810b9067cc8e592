"""The delay rollups (labeling.services.feedback_rollup): incremental refresh, the two recompute paths,
reconcile, and the refresh sent after commit."""

from datetime import UTC, datetime, timedelta

import pytest

from labeling.models import (
    FeedbackBacklogBin,
    FeedbackDelayBin,
    FeedbackDirtyDay,
    GroundTruth,
    Item,
)
from labeling.services import feedback_rollup
from labeling.services.feedback import (
    ground_truth_import,
)
from labeling.services.feedback_rollup import bins_snapshot, feedback_rollup_rebuild, feedback_rollup_refresh
from labeling.services.ground_truth import ground_truth_set
from tests.labeling.feedback_data import ingest, report


@pytest.mark.django_db
def test_rollups_follow_ingestion_and_the_label_history_incrementally(postgres, project, user):
    now = datetime.now(tz=UTC)
    items = ingest(project, 30, at=lambda i: now - timedelta(days=i % 10, hours=3))
    assert FeedbackDirtyDay.objects.filter(project=project).count() == 10
    first = feedback_rollup_refresh(project_id=project.pk)
    assert first.full  # first refresh builds everything
    assert report(project)["backlog"]["unlabeled"] == 30
    assert feedback_rollup_refresh(project_id=project.pk).days == 0  # nothing new: nothing recomputed

    ground_truth_set(item=items[0], label="pos", method="unanimous", actor=user)
    ground_truth_set(item=items[1], label="neg", method="adjudicated", actor=user)
    step = feedback_rollup_refresh(project_id=project.pk)
    assert not step.full and step.days == 2 and step.label_seq == 2
    r = report(project)
    assert (r["labeled"], r["backlog"]["unlabeled"]) == (2, 28)
    assert r["live_performance"][-1]["accuracy_on_labeled"] is not None

    ingest(project, 5, at=now - timedelta(days=40), prefix="late")  # a day never seen before
    feedback_rollup_refresh(project_id=project.pk)
    incremental = bins_snapshot(project.pk)
    feedback_rollup_rebuild(project_id=project.pk)
    assert bins_snapshot(project.pk) == incremental  # incremental == rebuilt from scratch
    assert report(project)["predictions"] == 35


@pytest.mark.django_db
def test_sql_and_python_rollups_are_the_same(postgres, project, user):
    now = datetime.now(tz=UTC) - timedelta(minutes=1)
    items = ingest(project, 40, at=lambda i: now - timedelta(days=i % 7, minutes=37 * i))
    ingest(project, 10, at=lambda i: now - timedelta(days=i), prefix="e", model_version="v2", probs=None)
    for it in items[:8]:
        ground_truth_set(item=it, label="pos" if it.pk % 2 else "neg", method="unanimous", actor=user)
    ground_truth_import(
        project=project,
        rows=[
            {
                "external_id": f"e{i}",
                "label": "neg",
                "source": "chargeback",
                "observed_at": (now - timedelta(hours=i)).isoformat(),
            }
            for i in range(8, 20)
        ]
        + [{"external_id": "e20", "label": "pos"}],
    )
    ground_truth_set(item=items[9], label="pos", method="adjudicated", actor=user)  # later change: first channel stays
    feedback_rollup_rebuild(project_id=project.pk)
    sql = bins_snapshot(project.pk)
    FeedbackDelayBin.objects.filter(project=project).delete()
    FeedbackBacklogBin.objects.filter(project=project).delete()
    feedback_rollup._recompute_portable(project.pk, None)
    python = bins_snapshot(project.pk)
    for got, want in zip(python, sql):  # the same keys and counts; float sums equal up to summation order
        assert [row[:-2] for row in got] == [row[:-2] for row in want]
        assert [x for row in got for x in row[-2:]] == pytest.approx([x for row in want for x in row[-2:]], abs=1e-6)
    channels = {row[1] for row in sql[0]}
    assert channels == {"human", "chargeback", "imported"}


@pytest.mark.django_db
def test_reconcile_finds_and_repairs_drift(postgres, project):
    now = datetime.now(tz=UTC)
    ingest(project, 12, at=lambda i: now - timedelta(days=i % 4))
    feedback_rollup_refresh(project_id=project.pk)
    assert feedback_rollup.feedback_rollup_reconcile(project_id=project.pk) == []
    FeedbackBacklogBin.objects.filter(project=project).order_by("pred_hour").first().delete()  # simulate drift
    drifted = feedback_rollup.feedback_rollup_reconcile(project_id=project.pk)
    assert len(drifted) == 1
    feedback_rollup_refresh(project_id=project.pk)
    assert report(project)["predictions"] == 12


@pytest.mark.django_db
def test_ingestion_and_ground_truth_changes_enqueue_a_refresh_after_commit(
    project, user, monkeypatch, django_capture_on_commit_callbacks
):
    from labeling import tasks

    sent = []
    monkeypatch.setattr(tasks.feedback_refresh, "apply_async", lambda args, countdown: sent.append((args, countdown)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        items = ingest(project, 2, at=datetime(2026, 1, 1, tzinfo=UTC))
    assert sent == []  # nothing before commit
    for cb in callbacks:
        cb()
    assert sent == [((project.pk,), 10)]
    with django_capture_on_commit_callbacks(execute=True):
        ground_truth_set(item=items[0], label="pos", method="unanimous", actor=user)
    assert len(sent) == 2

    def broker_down(args, countdown):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.feedback_refresh, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):  # logged, not raised: the periodic check catches up
        ground_truth_set(item=items[1], label="neg", method="unanimous", actor=user)
    assert GroundTruth.objects.filter(item=items[1]).exists()


@pytest.mark.django_db
def test_deleting_a_project_deletes_its_rollups(project, user):
    ingest(project, 3, at=datetime.now(tz=UTC) - timedelta(days=2))
    ground_truth_set(item=Item.objects.filter(project=project).first(), label="pos", method="unanimous", actor=user)
    feedback_rollup_refresh(project_id=project.pk)
    assert FeedbackDelayBin.objects.filter(project=project).exists()
    pk = project.pk
    project.delete()
    assert not FeedbackDelayBin.objects.filter(project_id=pk).exists()
    assert not FeedbackBacklogBin.objects.filter(project_id=pk).exists()


@pytest.mark.django_db
def test_a_refresh_touching_most_days_recomputes_everything_in_one_pass(project, user):
    now = datetime.now(tz=UTC)
    items = ingest(project, 40, at=lambda i: now - timedelta(days=i % 20, hours=1))
    feedback_rollup_refresh(project_id=project.pk)
    for it in items[:3]:
        ground_truth_set(item=it, label="pos", method="unanimous", actor=user)
    assert not feedback_rollup_refresh(project_id=project.pk).full  # 3 days of 20: day ranges
    for it in items[3:20]:
        ground_truth_set(item=it, label="neg", method="unanimous", actor=user)
    step = feedback_rollup_refresh(project_id=project.pk)
    assert step.full and step.days == 17  # 17 of 20 days: one full pass
    assert report(project)["labeled"] == 20
