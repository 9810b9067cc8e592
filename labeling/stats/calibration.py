"""The accept rule of a quality run: which consensus labels may become ground truth without a person.

CROWDLAB's consensus quality score ranks items; it is not a probability. Every reviewer decision on
an item whose consensus a run scored says whether that consensus was right, so the probability
that a consensus is right is fitted as an increasing function of the score (scikit-learn's isotonic
regression), and the score threshold is the lowest one at which the estimated error rate of the
items it would accept (this run's items, with their scores) stays within the project's target.

Until MIN_DECISIONS decisions exist, the default rule (documented in default_accept) applies. A
deterministic share of would-be-accepted items (the audit rate) goes to review instead, and the
share of audited items whose reviewer decision differs from the consensus is the measured error of
accepted items (with a Wilson 95% interval). Arrays in, arrays out; no database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from statsmodels.stats.proportion import proportion_confint

MIN_DECISIONS = 50
OTHER_TARGETS = (0.01, 0.02, 0.05, 0.10)
CURVE_BINS = 10
# Default rule (fewer than MIN_DECISIONS decisions): a clear majority backed by the model, or a high score.
DEFAULT_MIN_AGREEMENT = 0.75  # at least 4 of 5, or 3 of 3 (3 of 4 as well); never 3 of 5 or 2 of 3
DEFAULT_MIN_ANNOTATIONS = 3
DEFAULT_MIN_QUALITY = 0.9


@dataclass
class Calibration:
    """P(consensus right | score), fitted on reviewer decisions."""

    model: IsotonicRegression
    n: int

    def p_right(self, scores: np.ndarray) -> np.ndarray:
        return self.model.predict(np.asarray(scores, dtype=float))


def calibrate(scores: np.ndarray, right: np.ndarray) -> Calibration:
    """Fit the share of right consensus labels as an increasing function of the score."""
    scores = np.asarray(scores, dtype=float)
    right = np.asarray(right, dtype=float)
    model = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(scores, right)
    return Calibration(model=model, n=len(scores))


def curve_points(scores: np.ndarray, right: np.ndarray, cal: Calibration | None, bins: int = CURVE_BINS) -> list:
    """Decisions per score bin: count, share right, and the fitted probability at the bin's middle
    (only where the bin has decisions: elsewhere the fit is an extrapolation)."""
    scores = np.asarray(scores, dtype=float)
    right = np.asarray(right, dtype=bool)
    idx = np.clip((scores * bins).astype(int), 0, bins - 1)
    points = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        mid = (b + 0.5) / bins
        points.append(
            {
                "low": round(b / bins, 4),
                "high": round((b + 1) / bins, 4),
                "count": n,
                "right": int(right[sel].sum()),
                "share_right": float(right[sel].mean()) if n else None,
                "fitted": float(cal.p_right(np.array([mid]))[0]) if cal is not None and n else None,
            }
        )
    return points


def derive_threshold(candidate_scores: np.ndarray, cal: Calibration, max_error: float) -> float | None:
    """The lowest score threshold such that the estimated error rate of the candidates at or above it
    (mean of 1 - P(right)) is <= max_error; None when even the best-scored candidate is too uncertain.
    P(right) increases with the score, so the running mean error from the top only grows: the
    accepted set is the longest top prefix within the target (ties at the threshold go together)."""
    s = np.sort(np.asarray(candidate_scores, dtype=float))[::-1]
    if len(s) == 0:
        return None
    err = 1.0 - cal.p_right(s)
    mean_err = np.cumsum(err) / np.arange(1, len(s) + 1)
    ok = mean_err <= max_error + 1e-12
    # Only whole groups of equal scores can be accepted: a threshold takes all or none of a tie.
    last_of_tie = np.append(s[1:] != s[:-1], True)
    ok &= last_of_tie
    if not ok.any():
        return None
    # mean_err is non-decreasing, so the last index within the target ends the accepted prefix.
    return float(s[np.nonzero(ok)[0].max()])


def accepted_count(candidate_scores: np.ndarray, threshold: float | None) -> int:
    if threshold is None:
        return 0
    return int((np.asarray(candidate_scores, dtype=float) >= threshold).sum())


def default_accept(
    *, quality: np.ndarray, agreement: np.ndarray, num_annotations: np.ndarray, consensus: np.ndarray, model_pred
) -> np.ndarray:
    """The conservative default rule, used until MIN_DECISIONS reviewer decisions exist: accept when
    a clear majority agrees with the consensus (agreement >= 0.75 with >= 3 annotations: 4 of 5, 3 of
    4, 3 of 3; not 3 of 5 or 2 of 3) and the model's prediction, where there is one, is that label
    too; or when the CROWDLAB score is >= 0.9. (The caller still never accepts a label no annotator chose.)"""
    quality = np.asarray(quality, dtype=float)
    majority = (np.asarray(agreement) >= DEFAULT_MIN_AGREEMENT) & (
        np.asarray(num_annotations) >= DEFAULT_MIN_ANNOTATIONS
    )
    if model_pred is not None:
        majority &= np.asarray(model_pred) == np.asarray(consensus)
    return majority | (np.nan_to_num(quality, nan=0.0) >= DEFAULT_MIN_QUALITY)


def audit_draw(item_ids: np.ndarray, seed: int, rate: float) -> np.ndarray:
    """A deterministic pseudo-random share `rate` of items, by (seed, item id) alone (independent of
    order): a splitmix64 hash mapped to [0, 1)."""
    if rate <= 0 or len(item_ids) == 0:
        return np.zeros(len(item_ids), dtype=bool)
    with np.errstate(over="ignore"):
        z = np.asarray(item_ids, dtype=np.uint64) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(2**53)
    return u < rate


def audited_error(audit_right: np.ndarray) -> dict:
    """Measured error of accepted items from the audited ones decided so far: share wrong, Wilson 95%."""
    right = np.asarray(audit_right, dtype=bool)
    n = len(right)
    wrong = int((~right).sum())
    if n == 0:
        return {"audited": 0, "wrong": 0, "error": None, "low": None, "high": None}
    low, high = proportion_confint(wrong, n, alpha=0.05, method="wilson")
    low, high = min(max(float(low), 0.0), wrong / n), max(min(float(high), 1.0), wrong / n)  # no float noise
    return {"audited": n, "wrong": wrong, "error": wrong / n, "low": low, "high": high}


@dataclass
class AcceptRule:
    """What a run accepts (a mask over its items) and the record it keeps of why."""

    accept: np.ndarray  # N bool, before the label-some-annotator-chose check and the audits
    threshold: float | None
    record: dict = field(default_factory=dict)


def calibrated_rule(
    *,
    quality: np.ndarray,
    candidates: np.ndarray,
    agreement: np.ndarray,
    num_annotations: np.ndarray,
    consensus: np.ndarray,
    model_pred,
    decision_scores: np.ndarray,
    decision_right: np.ndarray,
    audit_right: np.ndarray,
    max_error: float,
) -> AcceptRule:
    """The calibrated accept rule for one run. `candidates` marks the items the rule could accept
    (their scores are the distribution the estimated error is weighed on; a run with none weighs on
    the decided items' scores, so the threshold it records still says what the target means)."""
    quality = np.nan_to_num(np.asarray(quality, dtype=float), nan=0.0)
    cand_scores = quality[np.asarray(candidates, dtype=bool)]
    weighed_on = "run"
    if len(cand_scores) == 0:
        cand_scores, weighed_on = np.asarray(decision_scores, dtype=float), "decisions"
    n_dec = len(decision_scores)
    record = {
        "mode": "calibrated",
        "max_accept_error": max_error,
        "decisions": n_dec,
        "min_decisions": MIN_DECISIONS,
        "candidates": int(np.asarray(candidates, dtype=bool).sum()),
        "weighed_on": weighed_on,
        "audit": audited_error(audit_right),
    }
    if n_dec < MIN_DECISIONS:
        accept = default_accept(
            quality=quality,
            agreement=agreement,
            num_annotations=num_annotations,
            consensus=consensus,
            model_pred=model_pred,
        )
        record.update(
            rule="default",
            threshold=None,
            curve=curve_points(decision_scores, decision_right, None),
            would_accept={f"{t:g}": None for t in OTHER_TARGETS},
            default_accepts=int((accept & candidates).sum()),
        )
        return AcceptRule(accept=accept, threshold=None, record=record)
    cal = calibrate(decision_scores, decision_right)
    threshold = derive_threshold(cand_scores, cal, max_error)
    accept = quality >= threshold if threshold is not None else np.zeros(len(quality), dtype=bool)
    est = None
    if threshold is not None:
        chosen = cand_scores[cand_scores >= threshold]
        est = float((1.0 - cal.p_right(chosen)).mean())
    record.update(
        rule="calibrated",
        threshold=threshold,
        estimated_error=est,
        curve=curve_points(decision_scores, decision_right, cal),
        would_accept={
            f"{t:g}": accepted_count(cand_scores, derive_threshold(cand_scores, cal, t)) for t in OTHER_TARGETS
        },
    )
    return AcceptRule(accept=accept, threshold=threshold, record=record)
