"""The accept rule of a quality run: which consensus labels may become ground truth without a person.

CROWDLAB's consensus quality score ranks items; it is not a probability, and alone it ranks a 4-of-5
majority below a 2-of-3 one the model likes. Every reviewer decision on an item whose consensus a run
scored says whether that consensus was right. From those decisions a logistic regression orders
consensus labels by the score, the share of annotators who chose the label and how many labeled the
item (never less likely right for a higher score or more agreement), and scikit-learn's isotonic
regression turns that order into P(consensus right). The run accepts the items whose estimated
P(right) is at least the lowest threshold at which the estimated error rate of the items it would
accept (this run's items) stays within the project's target.

Until MIN_DECISIONS decisions exist, the default rule (documented in default_accept) applies. A
deterministic share of would-be-accepted items (the audit rate) goes to review instead, and the
share of audited items whose reviewer decision differs from the consensus is the measured error of
accepted items (with a Wilson 95% interval). Arrays in, arrays out; no database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
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
    """Fit the share of right consensus labels as an increasing function of the score. Each step of
    the isotonic fit then counts one right and one wrong decision more (Laplace's rule of succession)
    and the steps are made increasing again, so a step of a few decisions, all right, is not read as
    certainty."""
    scores = np.asarray(scores, dtype=float)
    right = np.asarray(right, dtype=float)
    model = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    steps, step_of = np.unique(model.fit(scores, right).predict(scores), return_inverse=True)
    n = np.bincount(step_of, minlength=len(steps))
    smoothed = (np.bincount(step_of, weights=right, minlength=len(steps)) + 1.0) / (n + 2.0)
    model.fit(scores, smoothed[step_of])
    return Calibration(model=model, n=len(scores))


class _Identity:
    """A calibration of values that are already probabilities."""

    @staticmethod
    def p_right(p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=float)


FEATURES = ("quality", "agreement", "num_annotations")


def item_features(quality, agreement, num_annotations) -> np.ndarray:
    """N x 3: CROWDLAB's consensus quality score, the share of annotators who chose the consensus
    label, and the number of annotations."""
    q, a, n = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (quality, agreement, num_annotations)))
    return np.column_stack([np.nan_to_num(q, nan=0.0), np.nan_to_num(a, nan=0.0), n]).reshape(-1, len(FEATURES))


@dataclass
class Ranker:
    """A linear order of consensus labels by how likely they are right (a logistic regression's
    log-odds on FEATURES); its values only order items, the isotonic fit makes them probabilities."""

    coef: np.ndarray
    intercept: float = 0.0

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=float) @ self.coef + self.intercept

    def record(self) -> dict:
        return {**{f: round(float(c), 4) for f, c in zip(FEATURES, self.coef)}, "intercept": round(self.intercept, 4)}


def fit_ranker(features: np.ndarray, right: np.ndarray) -> Ranker:
    """Logistic regression of "the consensus was right" on FEATURES. A higher score or more agreement
    never makes a label less likely right (negative weights are cut to 0, which a biased sample of
    decisions can produce); with one outcome only, or no usable weight, the score alone orders."""
    right = np.asarray(right, dtype=bool)
    if right.all() or not right.any():
        return Ranker(coef=np.array([1.0, 0.0, 0.0]))
    model = LogisticRegression(max_iter=1000).fit(np.asarray(features, dtype=float), right)
    coef = model.coef_[0].copy()
    coef[:2] = np.maximum(coef[:2], 0.0)
    if not coef[:2].any():
        return Ranker(coef=np.array([1.0, 0.0, 0.0]))
    return Ranker(coef=coef, intercept=float(model.intercept_[0]))


def curve_points(
    scores: np.ndarray, right: np.ndarray, cal: Calibration | None, bins: int = CURVE_BINS, fitted=None
) -> list:
    """Decisions per bin of `scores` (in [0, 1]): count, share right, and the fitted probability: the
    mean of `fitted` over the bin's decisions when given, else the fit at the bin's middle (only where
    the bin has decisions: elsewhere the fit is an extrapolation)."""
    scores = np.asarray(scores, dtype=float)
    right = np.asarray(right, dtype=bool)
    idx = np.clip((scores * bins).astype(int), 0, bins - 1)
    points = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        mid = (b + 0.5) / bins
        if not n:
            fit = None
        elif fitted is not None:
            fit = float(np.asarray(fitted, dtype=float)[sel].mean())
        elif cal is not None:
            fit = float(cal.p_right(np.array([mid]))[0])
        else:
            fit = None
        points.append(
            {
                "low": round(b / bins, 4),
                "high": round((b + 1) / bins, 4),
                "count": n,
                "right": int(right[sel].sum()),
                "share_right": float(right[sel].mean()) if n else None,
                "fitted": fit,
            }
        )
    return points


def derive_threshold(candidate_scores: np.ndarray, cal: Calibration, max_error: float) -> float | None:
    """The lowest threshold on the candidates' scores (or probabilities) such that the estimated error
    rate of the candidates at or above it (mean of 1 - P(right)) is <= max_error; None when even the
    best-scored candidate is too uncertain.
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
    threshold: float | None  # on p_right in the calibrated rule, on the quality score otherwise
    record: dict = field(default_factory=dict)
    p_right: np.ndarray | None = None  # N: estimated P(consensus right), when calibrated


def calibrated_rule(
    *,
    quality: np.ndarray,
    candidates: np.ndarray,
    agreement: np.ndarray,
    num_annotations: np.ndarray,
    consensus: np.ndarray,
    model_pred,
    decision_features: np.ndarray,
    decision_right: np.ndarray,
    audit_right: np.ndarray,
    max_error: float,
    decided_items: int | None = None,
    reopenable: np.ndarray | None = None,
) -> AcceptRule:
    """The calibrated accept rule for one run. `candidates` marks the items the rule could accept
    (their estimated P(right) is the distribution the estimated error is weighed on; a run with none
    weighs on the decided items, so the threshold it records still says what the target means).
    `decision_features`: item_features of decided items as runs before the decision scored them (one
    row per such result); `decided_items`: how many items those are (default: one per row).

    An item that can still get another annotation (`reopenable`) is accepted only when its own
    estimated error is within the target: one more label is cheaper than a person. The items at their
    last annotation are accepted by the longest run of the most likely right whose mean estimated
    error is within the target. Either way the mean over all accepted items stays within it."""
    quality = np.nan_to_num(np.asarray(quality, dtype=float), nan=0.0)
    candidates = np.asarray(candidates, dtype=bool)
    decision_features = np.asarray(decision_features, dtype=float).reshape(-1, len(FEATURES))
    n_dec = len(decision_features) if decided_items is None else decided_items
    record = {
        "mode": "calibrated",
        "max_accept_error": max_error,
        "decisions": n_dec,
        "examples": len(decision_features),
        "min_decisions": MIN_DECISIONS,
        "candidates": int(candidates.sum()),
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
            weighed_on="run",
            curve_on="quality",
            curve=curve_points(decision_features[:, 0], decision_right, None),
            would_accept={f"{t:g}": None for t in OTHER_TARGETS},
            default_accepts=int((accept & candidates).sum()),
        )
        return AcceptRule(accept=accept, threshold=None, record=record)
    ranker = fit_ranker(decision_features, decision_right)
    cal = calibrate(ranker(decision_features), decision_right)
    p_right = cal.p_right(ranker(item_features(quality, agreement, num_annotations)))
    decided_p = cal.p_right(ranker(decision_features))
    reopenable = np.zeros(len(quality), dtype=bool) if reopenable is None else np.asarray(reopenable, dtype=bool)

    def rule_at(target):
        """(accept mask, threshold at the last annotation, the candidates' p_right it was weighed on)."""
        at_last = p_right[candidates & ~reopenable]
        on = at_last if len(at_last) or candidates.any() else decided_p
        threshold = derive_threshold(on, _Identity, target)
        accept = (reopenable & (p_right >= 1.0 - target - 1e-12)) | (
            ~reopenable & (p_right >= threshold if threshold is not None else False)
        )
        return accept, threshold, on

    accept, threshold, weighed = rule_at(max_error)
    chosen = p_right[accept & candidates]
    record.update(
        rule="calibrated",
        threshold=threshold,
        threshold_on="p_right",
        reopenable_threshold=1.0 - max_error,
        weighed_on="run" if candidates.any() else "decisions",
        estimated_error=float((1.0 - chosen).mean()) if len(chosen) else None,
        ranker=ranker.record(),
        curve_on="p_right",
        curve=curve_points(decided_p, decision_right, cal, fitted=decided_p),
        would_accept={f"{t:g}": int((rule_at(t)[0] & candidates).sum()) for t in OTHER_TARGETS},
    )
    return AcceptRule(accept=accept, threshold=threshold, record=record, p_right=p_right)
