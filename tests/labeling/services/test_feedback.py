"""Ground-truth import and the feedback-delay SLO (labeling.services.feedback)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from labeling.models import (
    FeedbackState,
    GroundTruth,
    GroundTruthObservation,
    Item,
    ItemStatus,
    LabelChange,
)
from labeling.services.feedback import (
    feedback_demo_seed,
    feedback_slo_check,
    ground_truth_import,
    gt_observations_attach_pending,
)
from labeling.services.feedback_rollup import feedback_rollup_refresh
from labeling.services.ground_truth import ground_truth_set
from labeling.services.ingestion import items_ingest
from labeling.signals import feedback_slo_changed
from tests.labeling.factories import DAY, ProjectFactory
from tests.labeling.feedback_data import ingest, report


@pytest.mark.django_db
def test_import_sets_imported_truth_with_arrival_time_and_history(project, user, django_capture_on_commit_callbacks):
    at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    ingest(project, 3, at=at - timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=False):
        result = ground_truth_import(
            project=project,
            actor=user,
            rows=[
                {"external_id": "e0", "label": "neg", "observed_at": at.isoformat(), "source": "chargeback"},
                {"external_id": "e1", "label": "pos"},
            ],
        )
    assert [r["outcome"] for r in result.rows] == ["applied", "applied"]
    gt = GroundTruth.objects.get(item__external_id="e0", item__project=project)
    assert (gt.label, gt.method, gt.source, gt.first_arrived_at) == ("neg", "imported", "chargeback", at)
    change = LabelChange.objects.get(item=gt.item)
    assert (change.method, change.source, change.previous_label) == ("imported", "chargeback", "")
    assert Item.objects.get(pk=gt.item_id).status == ItemStatus.RESOLVED


@pytest.mark.django_db
def test_import_is_idempotent(project, user):
    ingest(project, 2, at=datetime(2026, 1, 1, tzinfo=UTC))
    rows = [{"external_id": "e0", "label": "neg", "source": "chargeback"}, {"external_id": "ghost", "label": "pos"}]
    ground_truth_import(project=project, rows=rows, actor=user)
    before = (GroundTruthObservation.objects.count(), LabelChange.objects.count(), GroundTruth.objects.count())
    again = ground_truth_import(project=project, rows=rows, actor=user)
    assert [r["outcome"] for r in again.rows] == ["unchanged", "unchanged"] and again.created == 0
    assert (GroundTruthObservation.objects.count(), LabelChange.objects.count(), GroundTruth.objects.count()) == before


@pytest.mark.django_db
def test_disagreeing_with_a_human_label_overwrites_nothing_and_sends_to_review(project, user):
    items = ingest(project, 2, at=datetime(2026, 1, 1, tzinfo=UTC))
    ground_truth_set(item=items[0], label="pos", method="adjudicated", actor=user)
    ground_truth_set(item=items[1], label="pos", method="consensus", actor=user)
    history = LabelChange.objects.count()
    result = ground_truth_import(
        project=project,
        actor=user,
        rows=[
            {"external_id": "e0", "label": "neg", "source": "chargeback"},
            {"external_id": "e1", "label": "pos", "source": "chargeback"},
        ],
    )
    assert [r["outcome"] for r in result.rows] == ["conflict", "confirmed"]
    assert "review" in result.rows[0]["message"]
    gt = GroundTruth.objects.get(item=items[0])
    assert (gt.label, gt.method) == ("pos", "adjudicated")  # the human decision stands
    assert Item.objects.get(pk=items[0].pk).status == ItemStatus.CONFLICT  # the review queue serves it
    assert Item.objects.get(pk=items[1].pk).status == ItemStatus.RESOLVED
    kept = GroundTruthObservation.objects.get(item=items[0])
    assert (kept.label, kept.outcome, kept.source) == ("neg", "conflict", "chargeback")  # nothing lost
    assert LabelChange.objects.count() == history  # no label changed


@pytest.mark.django_db
def test_a_later_import_replaces_an_earlier_one_an_older_one_is_superseded(project, user):
    items = ingest(project, 1, at=datetime(2026, 1, 1, tzinfo=UTC))
    t = datetime(2026, 1, 10, tzinfo=UTC)
    ground_truth_import(
        project=project, rows=[{"external_id": "e0", "label": "pos", "source": "a", "observed_at": t.isoformat()}]
    )
    later = ground_truth_import(
        project=project,
        rows=[{"external_id": "e0", "label": "neg", "source": "b", "observed_at": (t + timedelta(days=1)).isoformat()}],
    )
    older = ground_truth_import(
        project=project,
        rows=[{"external_id": "e0", "label": "neu", "source": "c", "observed_at": (t - timedelta(days=1)).isoformat()}],
    )
    assert (later.rows[0]["outcome"], older.rows[0]["outcome"]) == ("applied", "superseded")
    gt = GroundTruth.objects.get(item=items[0])
    assert (gt.label, gt.first_arrived_at) == ("neg", t)  # first arrival never moves
    assert list(LabelChange.objects.filter(item=items[0]).values_list("label", flat=True)) == ["pos", "neg"]


@pytest.mark.django_db
def test_unknown_external_id_is_kept_pending_and_applied_once_ingested(project, user):
    result = ground_truth_import(
        project=project,
        rows=[{"external_id": "later", "label": "neg", "source": "x", "observed_at": "2026-01-03T00:00:00Z"}],
        actor=user,
    )
    assert result.rows[0]["outcome"] == "pending" and "ingested" in result.rows[0]["message"]
    assert GroundTruthObservation.objects.get(external_id="later").item_id is None
    assert gt_observations_attach_pending(project_id=project.pk) == 0
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": "later",
                "payload": {},
                "prediction": {"model_version": "v1", "label": "pos", "predicted_at": "2026-01-01T00:00:00Z"},
            }
        ],
    )
    assert gt_observations_attach_pending(project_id=project.pk) == 1
    obs = GroundTruthObservation.objects.get(external_id="later")
    assert obs.outcome == "applied" and obs.item.external_id == "later"
    gt = GroundTruth.objects.get(item=obs.item)
    assert (gt.label, gt.first_arrived_at.isoformat()) == ("neg", "2026-01-03T00:00:00+00:00")


@pytest.mark.django_db
def test_slo_breach_and_recovery_each_fire_exactly_one_signal(project, django_capture_on_commit_callbacks):
    project.slo_quantile, project.slo_target_seconds = 0.9, DAY
    project.save()
    now = datetime.now(tz=UTC) - timedelta(minutes=1)
    ingest(project, 50, at=lambda i: now - timedelta(days=3 + i % 5))
    fired = []
    handler = lambda **kw: fired.append(kw)  # noqa: E731
    feedback_slo_changed.connect(handler)
    try:

        def check():
            with django_capture_on_commit_callbacks(execute=True):
                feedback_rollup_refresh(project_id=project.pk)
                return feedback_slo_check(project_id=project.pk)

        assert check().breached  # nothing labeled after 3+ days: breached
        assert check().breached and not check().changed  # still breached: no second signal
        assert len(fired) == 1 and fired[0]["breached"] is True
        assert (
            fired[0]["target_seconds"] == DAY and fired[0]["quantile"] == 0.9 and fired[0]["project_id"] == project.pk
        )

        preds = {it.external_id: it.first_predicted_at for it in Item.objects.filter(project=project)}
        with django_capture_on_commit_callbacks(execute=True):
            ground_truth_import(
                project=project,
                rows=[
                    {"external_id": ext, "label": "pos", "observed_at": (at + timedelta(hours=2)).isoformat()}
                    for ext, at in preds.items()
                ],
            )
        recovered = check()
        assert not recovered.breached and recovered.changed
        check()
        check()
    finally:
        feedback_slo_changed.disconnect(handler)
    assert [f["breached"] for f in fired] == [True, False]
    assert fired[1]["observed_seconds"] == pytest.approx(2 * 3600, rel=0.05)
    state = FeedbackState.objects.get(project=project)
    assert state.slo_breached is False and state.slo_checked_at is not None


@pytest.mark.django_db(transaction=True)
def test_concurrent_slo_checks_announce_a_breach_once(postgres_tx):
    project = ProjectFactory()
    project.slo_target_seconds = DAY
    project.save()
    ingest(project, 20, at=datetime.now(tz=UTC) - timedelta(days=5))
    feedback_rollup_refresh(project_id=project.pk)
    fired, errors = [], []
    handler = lambda **kw: fired.append(kw["breached"])  # noqa: E731
    feedback_slo_changed.connect(handler)

    def worker():
        try:
            feedback_slo_check(project_id=project.pk)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    try:
        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        feedback_slo_changed.disconnect(handler)
    assert not errors and fired == [True]


@pytest.mark.django_db
def test_demo_seed_is_idempotent(project):
    now = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ingest(project, 60, at=lambda i: now - timedelta(hours=11 * i))
    first = feedback_demo_seed(project=project)
    assert first.count("applied") > 10
    second = feedback_demo_seed(project=project)
    assert second.created == 0 and second.count("unchanged") == len(first.rows)
    assert report(project)["labeled"] == first.count("applied")
