"""The accept rule's arithmetic: the ranker and isotonic calibration, threshold derivation, the
default rule, audits."""

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from labeling.stats import calibration as cal


def true_curve(s):
    return np.minimum(1.0, 0.4 + 0.7 * s)  # P(consensus right | score): increasing, sure above 0.857


def synthetic(n, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, n)
    right = rng.uniform(0, 1, n) < true_curve(scores)
    return scores, right


def test_isotonic_recovers_a_known_curve():
    scores, right = synthetic(20_000)
    fit = cal.calibrate(scores, right)
    grid = np.linspace(0.05, 0.95, 19)
    assert np.abs(fit.p_right(grid) - true_curve(grid)).max() < 0.05
    assert (np.diff(fit.p_right(grid)) >= 0).all()  # increasing


def test_threshold_meets_the_target_on_synthetic_data():
    scores, right = synthetic(20_000, seed=1)
    fit = cal.calibrate(scores, right)
    cand_scores, cand_right = synthetic(5_000, seed=2)  # the run's items, with their true outcome
    for target in (0.01, 0.02, 0.05, 0.10):
        t = cal.derive_threshold(cand_scores, fit, target)
        assert t is not None
        accepted = cand_scores >= t
        true_error = 1 - true_curve(cand_scores[accepted]).mean()
        assert true_error <= target * 1.25 + 0.002, (target, t, true_error)
        # The lowest such threshold: one step lower breaks the estimated target.
        below = cand_scores[cand_scores < t]
        if len(below):
            t2 = below.max()
            est2 = (1 - fit.p_right(cand_scores[cand_scores >= t2])).mean()
            assert est2 > target
    # Looser targets accept more.
    counts = [cal.accepted_count(cand_scores, cal.derive_threshold(cand_scores, fit, t)) for t in cal.OTHER_TARGETS]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_no_threshold_when_nothing_is_sure_enough():
    fit = cal.calibrate(np.array([0.1, 0.5, 0.9] * 20), np.array([True, False, False] * 20))
    assert cal.derive_threshold(np.array([0.2, 0.6, 0.95]), fit, 0.02) is None
    assert cal.derive_threshold(np.array([]), fit, 0.02) is None


def test_default_rule_accepts_model_backed_4_of_5_not_3_of_5():
    # items: 4/5 + model agrees, 4/5 + model disagrees, 3/5 + model agrees, 3/3, 2/3, score 0.95 on a 3/5 split
    agreement = np.array([0.8, 0.8, 0.6, 1.0, 2 / 3, 0.6])
    n = np.array([5, 5, 5, 3, 3, 5])
    quality = np.array([0.699, 0.699, 0.6, 0.8, 0.5, 0.95])
    consensus = np.array([0, 0, 1, 2, 1, 0])
    model = np.array([0, 1, 1, 2, 1, 1])
    got = cal.default_accept(
        quality=quality, agreement=agreement, num_annotations=n, consensus=consensus, model_pred=model
    )
    assert got.tolist() == [True, False, False, True, False, True]
    # Without a model, the majority alone decides.
    got = cal.default_accept(
        quality=quality, agreement=agreement, num_annotations=n, consensus=consensus, model_pred=None
    )
    assert got.tolist() == [True, True, False, True, False, True]


def test_calibrated_rule_uses_the_default_until_enough_decisions():
    quality = np.array([0.699, 0.6])
    kw = dict(
        quality=quality,
        candidates=np.array([True, True]),
        agreement=np.array([0.8, 0.6]),
        num_annotations=np.array([5, 5]),
        consensus=np.array([0, 0]),
        model_pred=np.array([0, 0]),
        audit_right=np.array([], dtype=bool),
        max_error=0.02,
    )
    few = cal.calibrated_rule(
        decision_features=cal.item_features(
            np.full(cal.MIN_DECISIONS - 1, 0.5), np.full(cal.MIN_DECISIONS - 1, 0.6), 5
        ),
        decision_right=np.ones(cal.MIN_DECISIONS - 1, bool),
        **kw,
    )
    assert few.record["rule"] == "default" and few.threshold is None
    assert few.accept.tolist() == [True, False]
    assert few.record["decisions"] == cal.MIN_DECISIONS - 1
    scores, right = synthetic(400, seed=3)
    many = cal.calibrated_rule(decision_features=cal.item_features(scores, 0.6, 5), decision_right=right, **kw)
    assert many.record["rule"] == "calibrated"
    assert many.record["decisions"] == 400
    assert sum(p["count"] for p in many.record["curve"]) == 400
    assert set(many.record["would_accept"]) == {"0.01", "0.02", "0.05", "0.1"}


def test_audits_are_deterministic_and_near_the_rate():
    ids = np.arange(1, 20_001)
    a = cal.audit_draw(ids, seed=42, rate=0.02)
    assert (a == cal.audit_draw(ids, seed=42, rate=0.02)).all()
    # Independent of the order the items come in.
    perm = np.random.default_rng(0).permutation(len(ids))
    assert (cal.audit_draw(ids[perm], seed=42, rate=0.02) == a[perm]).all()
    assert 0.017 < a.mean() < 0.023
    assert not (a == cal.audit_draw(ids, seed=43, rate=0.02)).all()
    assert not cal.audit_draw(ids, seed=42, rate=0.0).any()


def test_audited_error_has_a_wilson_interval():
    right = np.array([True] * 47 + [False] * 3)
    got = cal.audited_error(right)
    low, high = proportion_confint(3, 50, alpha=0.05, method="wilson")
    assert got["error"] == pytest.approx(0.06)
    assert (got["low"], got["high"]) == pytest.approx((low, high))
    assert cal.audited_error(np.array([], dtype=bool))["error"] is None


def crowd_features(n, seed):
    """Items at 3 or 5 annotations with the share agreeing on the consensus; the true chance the
    consensus is right grows with agreement much more than with the score (as on simulated crowds)."""
    rng = np.random.default_rng(seed)
    num = rng.choice([3, 5], n)
    agree = np.where(num == 3, rng.choice([1 / 3, 2 / 3], n), rng.choice([0.4, 0.6, 0.8], n))
    quality = np.clip(0.3 + 0.4 * rng.uniform(0, 1, n) + 0.1 * agree, 0, 1)
    p_true = np.clip(0.3 + 1.45 * (agree - 1 / 3) + 0.05 * quality, 0, 0.998)
    return cal.item_features(quality, agree, num), rng.uniform(0, 1, n) < p_true, p_true


def test_ranker_orders_by_agreement_when_the_score_alone_would_not():
    features, right, _ = crowd_features(3000, seed=4)
    ranker = cal.fit_ranker(features, right)
    assert ranker.coef[1] > 0 and ranker.coef[0] >= 0
    four_of_five_low = cal.item_features(0.45, 0.8, 5)
    two_of_three_high = cal.item_features(0.75, 2 / 3, 3)
    assert ranker(four_of_five_low)[0] > ranker(two_of_three_high)[0]
    # One outcome only: the score alone orders.
    assert cal.fit_ranker(features, np.ones(len(right), bool)).coef.tolist() == [1.0, 0.0, 0.0]


def test_reopenable_items_need_their_own_estimate_within_the_target():
    features, right, _ = crowd_features(3000, seed=5)
    items, _, p_true = crowd_features(1000, seed=6)
    reopenable = items[:, 2] == 3
    kw = dict(
        quality=items[:, 0],
        candidates=np.ones(len(items), bool),
        agreement=items[:, 1],
        num_annotations=items[:, 2],
        consensus=np.zeros(len(items), int),
        model_pred=None,
        decision_features=features,
        decision_right=right,
        audit_right=np.array([], dtype=bool),
    )
    for target in (0.02, 0.05, 0.10):
        rule = cal.calibrated_rule(max_error=target, reopenable=reopenable, **kw)
        assert rule.record["rule"] == "calibrated" and rule.record["threshold_on"] == "p_right"
        assert rule.p_right is not None and len(rule.p_right) == len(items)
        assert (rule.p_right[rule.accept & reopenable] >= 1 - target - 1e-9).all()
        assert rule.accept.any() and rule.record["estimated_error"] <= target + 1e-9
        # Measured against the true chance: the accepted items' error is near the target.
        assert 1 - p_true[rule.accept].mean() <= target * 1.5 + 0.01, target
    # Without reopenable items the budget may admit items less sure than 1 - target one by one.
    flat = cal.calibrated_rule(max_error=0.05, **kw)
    assert (flat.p_right[flat.accept] < 0.95).any()
