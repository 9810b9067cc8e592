import math
import threading
from datetime import date, datetime, timedelta, timezone as dt_timezone

import numpy as np
import pytest
from django.db import connection
from scipy import integrate, stats

from labeling.models import (
    FeedbackBacklogBin,
    FeedbackDelayBin,
    FeedbackDirtyDay,
    FeedbackState,
    GroundTruth,
    GroundTruthObservation,
    Item,
    ItemStatus,
    LabelChange,
)
from labeling.selectors.feedback import DelayFilters, feedback_delay_report
from labeling.services import feedback_rollup
from labeling.services.feedback import (
    feedback_demo_seed,
    feedback_slo_check,
    ground_truth_import,
    gt_observations_attach_pending,
)
from labeling.services.feedback_rollup import bins_snapshot, feedback_rollup_rebuild, feedback_rollup_refresh
from labeling.services.ground_truth import ground_truth_set
from labeling.services.ingestion import items_ingest
from labeling.signals import feedback_slo_changed
from tests.labeling.factories import ProjectFactory
from tests.labeling.factories import DAY, cutoff_now, lognormal, synthetic_traffic

PROBS = {"pos": 0.8, "neg": 0.15, "neu": 0.05}


def ingest(project, n, *, at, prefix="e", model_version="v1", probs=PROBS):
    rows = [{"external_id": f"{prefix}{i}", "payload": {"text": str(i)},
             "prediction": {"model_version": model_version, "label": "pos", "probabilities": probs,
                            "predicted_at": (at(i) if callable(at) else at).isoformat()}}
            for i in range(n)]
    items_ingest(project=project, rows=rows)
    return list(Item.objects.filter(project=project, external_id__startswith=prefix).order_by("id"))


def report(project, now=None, **filters):
    return feedback_delay_report(project=project, filters=DelayFilters(**filters), now=now)


# --- correctness against a known distribution ---------------------------------------------------

@pytest.mark.django_db
def test_km_percentiles_within_5_percent_of_the_true_quantiles_naive_ones_biased(postgres, project):
    cutoff = cutoff_now()
    median, sigma, window = 3 * DAY, 1.0, 30
    syn = synthetic_traffic(project, n=10_000, days=window, cutoff=cutoff, delays=lognormal(median, sigma), seed=3)
    feedback_rollup_refresh(project_id=project.pk)

    dist = stats.lognorm(s=sigma, scale=median)
    expected_censored = integrate.quad(dist.sf, 0, window * DAY)[0] / (window * DAY)
    censored = 1 - syn.labeled.mean()
    assert censored == pytest.approx(expected_censored, abs=0.015)  # the cut-off leaves a known share waiting

    r = report(project, now=cutoff)
    assert r["predictions"] == 10_000 and r["labeled"] == int(syn.labeled.sum())
    for key, q in (("p50", 0.5), ("p90", 0.9)):
        truth = dist.ppf(q)
        assert r["delay_seconds"][key] == pytest.approx(truth, rel=0.05), key
        assert r["naive_delay_seconds"][key] < 0.92 * truth, key  # visibly biased short
    assert r["naive_delay_seconds"]["p90"] < 0.85 * r["delay_seconds"]["p90"]


@pytest.mark.django_db
def test_coverage_cohorts_backlog_and_live_performance_match_a_direct_computation(postgres, project):
    cutoff = cutoff_now()
    syn = synthetic_traffic(project, n=3000, days=70, cutoff=cutoff, delays=lognormal(4 * DAY, 1.1), seed=5)
    feedback_rollup_refresh(project_id=project.pk)
    r = report(project, now=cutoff)

    end = cutoff.timestamp()
    pred_day = np.array([datetime.fromtimestamp(t, tz=dt_timezone.utc).date().toordinal() for t in syn.predicted])
    cut_day = cutoff.date().toordinal()
    age = cut_day - pred_day
    expected_coverage = [
        {"age_days": int(a), "fraction_labeled": round(float(syn.labeled[age == a].mean()), 4)}
        for a in sorted(set(age.tolist()))
    ]
    assert r["coverage"] == expected_coverage

    week = pred_day - (pred_day - 1) % 7
    expected_cohorts = []
    for w in sorted(set(week.tolist())):
        sel = week == w
        last = min(w + 6, cut_day)
        start_last = datetime.fromordinal(last).replace(tzinfo=dt_timezone.utc).timestamp()
        complete = int(min(max(math.floor((end - start_last) / DAY) - 1, 0), 56))
        within = [round(float((syn.labeled[sel] & (syn.delay[sel] < (d + 1) * DAY)).sum() / sel.sum()), 4)
                  for d in range(complete)]
        expected_cohorts.append({"week": date.fromordinal(w).isoformat(), "predictions": int(sel.sum()),
                                 "fraction_labeled_by_day": within})
    # Fractions are rounded to 4 places on both sides; a value on a rounding boundary (e.g. 0.55625)
    # may round either way depending on how the float was reached, so compare within one unit.
    assert [(c["week"], c["predictions"], len(c["fraction_labeled_by_day"])) for c in r["cohorts"]] == [
        (c["week"], c["predictions"], len(c["fraction_labeled_by_day"])) for c in expected_cohorts]
    for got, want in zip(r["cohorts"], expected_cohorts):
        assert got["fraction_labeled_by_day"] == pytest.approx(want["fraction_labeled_by_day"], abs=1.01e-4)
    assert any(len(c["fraction_labeled_by_day"]) == 56 for c in r["cohorts"])  # old weeks: full rows
    assert r["cohorts"][-1]["fraction_labeled_by_day"] == []  # this week: nothing complete yet (triangle)

    waiting = ~syn.labeled
    assert r["backlog"]["unlabeled"] == int(waiting.sum())
    assert r["backlog"]["oldest_age_seconds"] == pytest.approx(end - syn.predicted[waiting].min(), abs=1.0)

    for row in r["live_performance"]:
        sel = week == date.fromisoformat(row["week"]).toordinal()
        lab, unl = sel & syn.labeled, sel & waiting
        # A week with nothing labeled yet (the current week, on a Monday) has no observed accuracy.
        acc = syn.correct[lab].mean() if lab.any() else None
        est = (syn.correct[lab].sum() + syn.conf[unl].sum()) / sel.sum()
        half = 1.959964 * math.sqrt((syn.conf[unl] * (1 - syn.conf[unl])).sum()) / sel.sum()
        assert row["accuracy_on_labeled"] == pytest.approx(acc, abs=1e-4)
        assert row["fraction_labeled"] == pytest.approx(lab.sum() / sel.sum(), abs=1e-4)
        assert row["estimated_accuracy"] == pytest.approx(est, abs=1e-4)
        assert row["interval"] == pytest.approx([max(est - half, 0), min(est + half, 1)], abs=1e-4)
    assert r["live_performance"][-1]["interval"][1] - r["live_performance"][-1]["interval"][0] > \
        r["live_performance"][0]["interval"][1] - r["live_performance"][0]["interval"][0]  # fewer labels, wider


@pytest.mark.django_db
def test_source_filter_counts_one_channel_and_censors_the_others(postgres, project):
    cutoff = cutoff_now()
    syn = synthetic_traffic(project, n=800, days=20, cutoff=cutoff, delays=lognormal(2 * DAY, 0.8), seed=9)
    feedback_rollup_refresh(project_id=project.pk)
    everything = report(project, now=cutoff)
    charge = report(project, now=cutoff, source="chargeback")
    assert charge["predictions"] == everything["predictions"] == 800
    assert charge["labeled"] == int((syn.labeled & (syn.source == "chargeback")).sum())
    assert charge["backlog"] == everything["backlog"]  # the backlog is predictions with no truth at all
    assert report(project, now=cutoff, source="human")["labeled"] == 0


# --- rollups -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_rollups_follow_ingestion_and_the_label_history_incrementally(postgres, project, user):
    now = datetime.now(tz=dt_timezone.utc)
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
    now = datetime.now(tz=dt_timezone.utc) - timedelta(minutes=1)
    items = ingest(project, 40, at=lambda i: now - timedelta(days=i % 7, minutes=37 * i))
    ingest(project, 10, at=lambda i: now - timedelta(days=i), prefix="e", model_version="v2", probs=None)
    for it in items[:8]:
        ground_truth_set(item=it, label="pos" if it.pk % 2 else "neg", method="unanimous", actor=user)
    ground_truth_import(project=project, rows=[
        {"external_id": f"e{i}", "label": "neg", "source": "chargeback",
         "observed_at": (now - timedelta(hours=i)).isoformat()} for i in range(8, 20)
    ] + [{"external_id": "e20", "label": "pos"}])
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
    now = datetime.now(tz=dt_timezone.utc)
    ingest(project, 12, at=lambda i: now - timedelta(days=i % 4))
    feedback_rollup_refresh(project_id=project.pk)
    assert feedback_rollup.feedback_rollup_reconcile(project_id=project.pk) == []
    FeedbackBacklogBin.objects.filter(project=project).order_by("pred_hour").first().delete()  # simulate drift
    drifted = feedback_rollup.feedback_rollup_reconcile(project_id=project.pk)
    assert len(drifted) == 1
    feedback_rollup_refresh(project_id=project.pk)
    assert report(project)["predictions"] == 12


# --- import ------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_import_sets_imported_truth_with_arrival_time_and_history(project, user, django_capture_on_commit_callbacks):
    at = datetime(2026, 1, 5, 12, 0, tzinfo=dt_timezone.utc)
    ingest(project, 3, at=at - timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=False):
        result = ground_truth_import(project=project, actor=user, rows=[
            {"external_id": "e0", "label": "neg", "observed_at": at.isoformat(), "source": "chargeback"},
            {"external_id": "e1", "label": "pos"},
        ])
    assert [r["outcome"] for r in result.rows] == ["applied", "applied"]
    gt = GroundTruth.objects.get(item__external_id="e0", item__project=project)
    assert (gt.label, gt.method, gt.source, gt.first_arrived_at) == ("neg", "imported", "chargeback", at)
    change = LabelChange.objects.get(item=gt.item)
    assert (change.method, change.source, change.previous_label) == ("imported", "chargeback", "")
    assert Item.objects.get(pk=gt.item_id).status == ItemStatus.RESOLVED


@pytest.mark.django_db
def test_import_is_idempotent(project, user):
    ingest(project, 2, at=datetime(2026, 1, 1, tzinfo=dt_timezone.utc))
    rows = [{"external_id": "e0", "label": "neg", "source": "chargeback"}, {"external_id": "ghost", "label": "pos"}]
    ground_truth_import(project=project, rows=rows, actor=user)
    before = (GroundTruthObservation.objects.count(), LabelChange.objects.count(), GroundTruth.objects.count())
    again = ground_truth_import(project=project, rows=rows, actor=user)
    assert [r["outcome"] for r in again.rows] == ["unchanged", "unchanged"] and again.created == 0
    assert (GroundTruthObservation.objects.count(), LabelChange.objects.count(), GroundTruth.objects.count()) == before


@pytest.mark.django_db
def test_disagreeing_with_a_human_label_overwrites_nothing_and_sends_to_review(project, user):
    items = ingest(project, 2, at=datetime(2026, 1, 1, tzinfo=dt_timezone.utc))
    ground_truth_set(item=items[0], label="pos", method="adjudicated", actor=user)
    ground_truth_set(item=items[1], label="pos", method="consensus", actor=user)
    history = LabelChange.objects.count()
    result = ground_truth_import(project=project, actor=user, rows=[
        {"external_id": "e0", "label": "neg", "source": "chargeback"},
        {"external_id": "e1", "label": "pos", "source": "chargeback"},
    ])
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
    items = ingest(project, 1, at=datetime(2026, 1, 1, tzinfo=dt_timezone.utc))
    t = datetime(2026, 1, 10, tzinfo=dt_timezone.utc)
    ground_truth_import(project=project, rows=[{"external_id": "e0", "label": "pos", "source": "a",
                                                "observed_at": t.isoformat()}])
    later = ground_truth_import(project=project, rows=[{"external_id": "e0", "label": "neg", "source": "b",
                                                        "observed_at": (t + timedelta(days=1)).isoformat()}])
    older = ground_truth_import(project=project, rows=[{"external_id": "e0", "label": "neu", "source": "c",
                                                        "observed_at": (t - timedelta(days=1)).isoformat()}])
    assert (later.rows[0]["outcome"], older.rows[0]["outcome"]) == ("applied", "superseded")
    gt = GroundTruth.objects.get(item=items[0])
    assert (gt.label, gt.first_arrived_at) == ("neg", t)  # first arrival never moves
    assert list(LabelChange.objects.filter(item=items[0]).values_list("label", flat=True)) == ["pos", "neg"]


@pytest.mark.django_db
def test_unknown_external_id_is_kept_pending_and_applied_once_ingested(project, user):
    result = ground_truth_import(project=project, rows=[{"external_id": "later", "label": "neg", "source": "x",
                                                         "observed_at": "2026-01-03T00:00:00Z"}], actor=user)
    assert result.rows[0]["outcome"] == "pending" and "ingested" in result.rows[0]["message"]
    assert GroundTruthObservation.objects.get(external_id="later").item_id is None
    assert gt_observations_attach_pending(project_id=project.pk) == 0
    items_ingest(project=project, rows=[{"external_id": "later", "payload": {}, "prediction": {
        "model_version": "v1", "label": "pos", "predicted_at": "2026-01-01T00:00:00Z"}}])
    assert gt_observations_attach_pending(project_id=project.pk) == 1
    obs = GroundTruthObservation.objects.get(external_id="later")
    assert obs.outcome == "applied" and obs.item.external_id == "later"
    gt = GroundTruth.objects.get(item=obs.item)
    assert (gt.label, gt.first_arrived_at.isoformat()) == ("neg", "2026-01-03T00:00:00+00:00")


# --- SLO ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_slo_breach_and_recovery_each_fire_exactly_one_signal(project, django_capture_on_commit_callbacks):
    project.slo_quantile, project.slo_target_seconds = 0.9, DAY
    project.save()
    now = datetime.now(tz=dt_timezone.utc) - timedelta(minutes=1)
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
        assert fired[0]["target_seconds"] == DAY and fired[0]["quantile"] == 0.9 and fired[0]["project_id"] == project.pk

        preds = {it.external_id: it.first_predicted_at for it in Item.objects.filter(project=project)}
        with django_capture_on_commit_callbacks(execute=True):
            ground_truth_import(project=project, rows=[
                {"external_id": ext, "label": "pos", "observed_at": (at + timedelta(hours=2)).isoformat()}
                for ext, at in preds.items()
            ])
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
    ingest(project, 20, at=datetime.now(tz=dt_timezone.utc) - timedelta(days=5))
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
def test_tasks_run_the_whole_tick_for_a_project(project):
    from labeling.tasks import feedback_check, feedback_reconcile, feedback_refresh

    ingest(project, 5, at=datetime.now(tz=dt_timezone.utc) - timedelta(days=1))
    feedback_refresh(project.pk)
    feedback_check(project.pk)
    assert feedback_reconcile(project.pk) == 0
    assert FeedbackState.objects.get(project=project).slo_checked_at is not None
    feedback_refresh(999_999)  # a deleted project: nothing to do, no error


@pytest.mark.django_db
def test_demo_seed_is_idempotent(project):
    now = datetime.now(tz=dt_timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    ingest(project, 60, at=lambda i: now - timedelta(hours=11 * i))
    first = feedback_demo_seed(project=project)
    assert first.count("applied") > 10
    second = feedback_demo_seed(project=project)
    assert second.created == 0 and second.count("unchanged") == len(first.rows)
    assert report(project)["labeled"] == first.count("applied")


@pytest.mark.django_db
def test_ingestion_and_ground_truth_changes_enqueue_a_refresh_after_commit(project, user, monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    from labeling import tasks

    sent = []
    monkeypatch.setattr(tasks.feedback_refresh, "apply_async", lambda args, countdown: sent.append((args, countdown)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        items = ingest(project, 2, at=datetime(2026, 1, 1, tzinfo=dt_timezone.utc))
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
    ingest(project, 3, at=datetime.now(tz=dt_timezone.utc) - timedelta(days=2))
    ground_truth_set(item=Item.objects.filter(project=project).first(), label="pos", method="unanimous", actor=user)
    feedback_rollup_refresh(project_id=project.pk)
    assert FeedbackDelayBin.objects.filter(project=project).exists()
    pk = project.pk
    project.delete()
    assert not FeedbackDelayBin.objects.filter(project_id=pk).exists()
    assert not FeedbackBacklogBin.objects.filter(project_id=pk).exists()


@pytest.mark.django_db
def test_a_refresh_touching_most_days_recomputes_everything_in_one_pass(project, user):
    now = datetime.now(tz=dt_timezone.utc)
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
