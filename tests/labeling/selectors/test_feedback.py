"""The feedback-delay report (labeling.selectors.feedback, labeling.stats.delay_report) against known
distributions and direct computations, and the dashboard's attention counts."""

import math
from datetime import UTC, date, datetime

import numpy as np
import pytest
from scipy import integrate, stats

from labeling.selectors.feedback import feedback_attention_counts
from labeling.services.feedback import ground_truth_import
from labeling.services.feedback_rollup import feedback_rollup_refresh
from labeling.services.ground_truth import ground_truth_set
from tests.labeling.factories import DAY, ProjectFactory, cutoff_now, lognormal, synthetic_traffic
from tests.labeling.feedback_data import ingest, report


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
    pred_day = np.array([datetime.fromtimestamp(t, tz=UTC).date().toordinal() for t in syn.predicted])
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
        start_last = datetime.fromordinal(last).replace(tzinfo=UTC).timestamp()
        complete = int(min(max(math.floor((end - start_last) / DAY) - 1, 0), 56))
        within = [
            round(float((syn.labeled[sel] & (syn.delay[sel] < (d + 1) * DAY)).sum() / sel.sum()), 4)
            for d in range(complete)
        ]
        expected_cohorts.append(
            {"week": date.fromordinal(w).isoformat(), "predictions": int(sel.sum()), "fraction_labeled_by_day": within}
        )
    # Fractions are rounded to 4 places on both sides; a value on a rounding boundary (e.g. 0.55625)
    # may round either way depending on how the float was reached, so compare within one unit.
    assert [(c["week"], c["predictions"], len(c["fraction_labeled_by_day"])) for c in r["cohorts"]] == [
        (c["week"], c["predictions"], len(c["fraction_labeled_by_day"])) for c in expected_cohorts
    ]
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
    assert (
        r["live_performance"][-1]["interval"][1] - r["live_performance"][-1]["interval"][0]
        > r["live_performance"][0]["interval"][1] - r["live_performance"][0]["interval"][0]
    )  # fewer labels, wider


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


@pytest.mark.django_db
def test_attention_counts_are_conflicted_items_and_pending_observations(project, user, django_assert_num_queries):
    items = ingest(project, 3, at=datetime(2026, 1, 5, tzinfo=UTC))
    assert feedback_attention_counts(project=project) == {"conflict": 0, "pending": 0}
    ground_truth_set(item=items[0], label="pos", method="unanimous", actor=user)
    ground_truth_import(
        project=project,
        rows=[
            {"external_id": "e0", "label": "neg"},  # disagrees with people: the item goes to review
            {"external_id": "later1", "label": "pos"},  # no such item yet: pending
            {"external_id": "later2", "label": "neg", "source": "chargeback"},
        ],
    )
    with django_assert_num_queries(2):
        assert feedback_attention_counts(project=project) == {"conflict": 1, "pending": 2}
    assert feedback_attention_counts(project=ProjectFactory(creator=user)) == {"conflict": 0, "pending": 0}
