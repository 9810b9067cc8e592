"""The calibrated accept rule in real runs: the default rule before enough decisions, audits, the
calibration fitted on reviewers' decisions and recorded on the run; raw-score projects unchanged."""

import numpy as np
import pytest

from labeling.models import GroundTruth, Item, Prediction, QualityItemResult
from labeling.services.resolution import item_resolve
from labeling.stats import calibration
from tests.labeling.factories import annotators, crowd_project, load_crowd, simulate_crowd
from tests.labeling.services.quality.helpers import ACCURACIES, results_by_item, run_now


def five_each(project_kw, *, n_items=300, seed=5):
    project, manager = crowd_project(
        k=4, annotations_per_item=5, max_annotations_per_item=5, accept_mode="calibrated", **project_kw
    )
    users = annotators(project, 10)
    crowd = simulate_crowd(n_items=n_items, accuracies=ACCURACIES, n_classes=4, per_item=5, seed=seed)
    items = load_crowd(project, users, crowd)
    return project, manager, crowd, items


def model_label(item_id):
    return Prediction.objects.filter(item_id=item_id).values_list("label", flat=True).first()


@pytest.mark.django_db
def test_default_rule_accepts_model_backed_4_of_5_and_not_3_of_5():
    project, _, crowd, items = five_each({"audit_rate": 0.0})
    disputed = set(Item.objects.filter(project=project, status="disputed").values_list("pk", flat=True))
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.calibration["mode"] == "calibrated" and run.calibration["rule"] == "default"
    assert run.calibration["decisions"] == 0 and run.accept_threshold is None
    res = results_by_item(run)
    four_of_five_low = three_of_five_low = 0
    for pk in disputed:
        r = res[pk]
        backed = r.agreement >= 0.75 and r.num_annotations >= 3 and model_label(pk) == r.consensus_label
        expected = (backed or r.quality >= 0.9) and r.agreement > 0
        assert (r.outcome == "accepted") == expected, (r.agreement, r.quality, r.outcome)
        if r.quality < 0.9 and round(r.agreement * 5) == 4 and expected:
            four_of_five_low += 1
        if r.quality < 0.9 and round(r.agreement * 5) == 3:
            three_of_five_low += 1
            assert r.outcome != "accepted"
    # Both cases occur: 4-of-5 backed majorities are accepted below 0.9, 3-of-5 splits are not.
    assert four_of_five_low > 0 and three_of_five_low > 0
    assert run.auto_accepted == sum(r.outcome == "accepted" for r in res.values())


@pytest.mark.django_db
def test_audits_send_the_audit_rate_to_review_deterministically():
    project, _, crowd, items = five_each({"audit_rate": 0.3}, n_items=400)
    disputed = np.array(sorted(Item.objects.filter(project=project, status="disputed").values_list("pk", flat=True)))
    run = run_now(project)
    assert run.status == "done", run.error
    res = results_by_item(run)
    audited = {pk for pk, r in res.items() if r.audit}
    assert audited and all(res[pk].outcome == "review" for pk in audited)
    # Exactly the items the run's seed draws among those the rule would have accepted.
    drawn = set(disputed[calibration.audit_draw(disputed, run.seed, 0.3)].tolist())
    would_accept = {pk for pk in disputed if pk in audited or res[pk].outcome == "accepted"}
    assert audited == drawn & would_accept
    share = len(audited) / len(would_accept)
    assert 0.15 < share < 0.45, share  # 0.3 ± 4 standard errors
    assert run.calibration["audits_sent"] == len(audited)


@pytest.mark.django_db
def test_an_audit_stays_in_review_until_a_reviewer_decides_it():
    project, manager, crowd, items = five_each({"audit_rate": 0.3}, n_items=300)
    truth = {it.pk: f"c{crowd.true[i]}" for i, it in enumerate(items)}
    first = run_now(project)
    audited = {pk for pk, r in results_by_item(first).items() if r.audit}
    assert len(audited) >= 4
    decided = sorted(audited)[:2]
    for pk in decided:
        item_resolve(item=Item.objects.get(pk=pk), reviewer=manager, label=truth[pk])
    # A second run (another seed, another draw) does not accept the audits nobody decided yet.
    second = run_now(project)
    res = results_by_item(second)
    for pk in audited - set(decided):
        assert res[pk].outcome == "review" and res[pk].audit, res[pk].outcome
    assert not GroundTruth.objects.filter(item_id__in=audited - set(decided)).exists()
    # Each audited item counts once, when decided.
    third = run_now(project)
    assert third.calibration["audit"]["audited"] == len(decided)


@pytest.mark.django_db
def test_calibration_on_reviewer_decisions_is_fitted_and_recorded():
    project, manager, crowd, items = five_each({"audit_rate": 0.2}, n_items=400, seed=6)
    truth = {it.pk: f"c{crowd.true[i]}" for i, it in enumerate(items)}
    first = run_now(project)
    to_review = [pk for pk, r in results_by_item(first).items() if r.outcome == "review"]
    assert len(to_review) >= calibration.MIN_DECISIONS
    audited = [pk for pk, r in results_by_item(first).items() if r.audit]
    assert audited
    for pk in to_review:  # reviewers decide with the true label
        item_resolve(item=Item.objects.get(pk=pk), reviewer=manager, label=truth[pk])
    res1 = results_by_item(first)
    second = run_now(project)
    assert second.status == "done", second.error
    cal = second.calibration
    assert cal["rule"] == "calibrated" and cal["decisions"] == len(to_review)
    # Every disputed item was decided: the threshold is weighed on the decided items' scores.
    assert cal["candidates"] == 0 and cal["weighed_on"] == "decisions"
    assert sum(p["count"] for p in cal["curve"]) == len(to_review)
    assert sum(p["right"] for p in cal["curve"]) == sum(res1[pk].consensus_label == truth[pk] for pk in to_review)
    assert set(cal["would_accept"]) == {"0.01", "0.02", "0.05", "0.1"}
    # The audited error: audited items whose reviewer decision differs from the run's consensus.
    wrong = sum(res1[pk].consensus_label != truth[pk] for pk in audited)
    assert cal["audit"]["audited"] == len(audited) and cal["audit"]["wrong"] == wrong
    assert cal["audit"]["low"] <= cal["audit"]["error"] <= cal["audit"]["high"]
    assert second.accept_threshold == cal["threshold"]
    assert cal["threshold_on"] == "p_right" and set(cal["ranker"]) == {
        "quality",
        "agreement",
        "num_annotations",
        "intercept",
    }
    for r in results_by_item(second).values():
        assert r.p_right is not None and 0.0 <= r.p_right <= 1.0  # every scored item has its estimate
        if r.outcome == "accepted":
            assert r.p_right >= cal["threshold"]
    assert GroundTruth.objects.filter(item__project=project, method="adjudicated").count() == len(to_review)


@pytest.mark.django_db
def test_raw_score_projects_keep_their_threshold_and_audit_nothing():
    project, _ = crowd_project(k=4, accept_threshold=0.7)
    assert project.accept_mode == "raw_score"
    users = annotators(project, 10)
    load_crowd(project, users, simulate_crowd(n_items=300, accuracies=ACCURACIES, n_classes=4, per_item=3, seed=3))
    run = run_now(project)
    assert run.calibration == {"mode": "raw_score", "threshold": 0.7, "audits_sent": 0}
    assert run.accept_threshold == 0.7
    res = results_by_item(run).values()
    assert not any(r.audit for r in res)
    assert all(r.quality >= 0.7 for r in res if r.outcome == "accepted")
    assert QualityItemResult.objects.filter(run=run, audit=True).count() == 0


@pytest.mark.django_db
def test_single_labels_are_doubted_against_the_raw_threshold_in_calibrated_mode():
    project, _ = crowd_project(
        k=3, annotations_per_item=1, max_annotations_per_item=2, accept_threshold=0.5, accept_mode="calibrated"
    )
    users = annotators(project, 4)
    crowd = simulate_crowd(
        n_items=300, accuracies=[0.95, 0.9, 0.6, 0.5], n_classes=3, per_item=1, seed=2, model_accuracy=0.9
    )
    load_crowd(project, users, crowd)
    run = run_now(project)
    assert run.status == "done", run.error
    res = results_by_item(run).values()
    doubted = [r for r in res if r.outcome in ("reopened", "review")]
    assert doubted and all(r.quality < 0.5 or r.label_issue for r in doubted)
    # Between the raw threshold and the default rule's 0.9, a single label is kept (not doubted).
    assert any(0.5 <= r.quality < 0.9 and r.outcome == "kept" for r in res)
    assert not any(r.audit for r in res)
