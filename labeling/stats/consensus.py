"""Crowd consensus and agreement math: pure NumPy / scikit-learn / cleanlab, and agreement figures
from the maintained krippendorff and statsmodels packages; no database.

The quality service (labeling.services.quality.snapshot) reads a snapshot into the arrays used here and
writes back what these functions return; the benchmarks and the simulated-crowd tests call them too.

Conventions: `labels` is an N × M float array (items × annotators) holding class indices 0..K-1 and
NaN where an annotator did not label an item; `pred_probs` is N × K with rows that sum to 1.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

SMOOTHING = 0.01  # mixed into out-of-sample probabilities so that no class has probability 0


class ScoringError(ValueError):
    """Inputs cleanlab would reject (or silently mis-handle); the message is shown on the run."""


# --- pred_probs -----------------------------------------------------------------------------------


def normalize_pred_probs(pred_probs: np.ndarray) -> np.ndarray:
    """Validate and renormalise probabilities (cleanlab silently accepts rows that do not sum to 1)."""
    p = np.asarray(pred_probs, dtype=float)
    if p.ndim != 2:
        raise ScoringError("pred_probs must be a 2-D array.")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ScoringError("pred_probs contain NaN, infinite or negative values.")
    sums = p.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ScoringError("some pred_probs rows are all zero.")
    return p / sums


def majority_vote(labels: np.ndarray, n_classes: int, *, rng: np.random.Generator) -> np.ndarray:
    """Plain majority vote per item (ties broken at random with `rng`); -1 for items with no label."""
    counts = label_counts(labels, n_classes)
    noise = rng.random(counts.shape) * 0.5  # < 1: only breaks ties, never overturns a count
    mv = np.argmax(counts + noise, axis=1)
    mv[counts.sum(axis=1) == 0] = -1
    return mv


def label_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """N × K matrix: how many annotators chose class k for item n."""
    n, m = labels.shape
    counts = np.zeros((n, n_classes), dtype=np.int32)
    for j in range(m):
        col = labels[:, j]
        mask = ~np.isnan(col)
        np.add.at(counts, (np.nonzero(mask)[0], col[mask].astype(np.int64)), 1)
    return counts


def class_prior_pred_probs(train_labels: np.ndarray, n_classes: int, n_items: int, *, rng) -> np.ndarray:
    """Every item gets the (Laplace-smoothed) class frequencies; a tiny jitter keeps rows tie-free so
    cleanlab's tie-breaking never falls through to its random choice over an empty set."""
    y = train_labels[train_labels >= 0]
    freq = np.bincount(y, minlength=n_classes).astype(float) + 1.0
    freq /= freq.sum()
    p = np.tile(freq, (n_items, 1)) + rng.random((n_items, n_classes)) * 1e-9
    return p / p.sum(axis=1, keepdims=True)


def crossval_pred_probs(
    *,
    train_labels: np.ndarray,
    n_classes: int,
    texts: list[str] | None = None,
    numeric: np.ndarray | None = None,
    seed: int = 0,
    folds: int = 5,
) -> np.ndarray | None:
    """Out-of-sample predicted probabilities (scikit-learn cross_val_predict) for every item.

    `train_labels` are the (majority-vote) labels the model learns from (-1: none). Features are the
    payload text (TF-IDF + logistic regression) or numeric fields (standardised + logistic regression).
    Returns None when there is too little to train on (fewer than 2 classes or 2 items per fold).
    Columns are mapped explicitly to 0..K-1: cross_val_predict returns one column per class *present
    in the training labels*, and a zero column for a class missing from a fold's training part.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(train_labels)
    known = y >= 0
    present, counts = np.unique(y[known], return_counts=True)
    n_known = int(known.sum())
    if len(present) < 2 or n_known < 10:
        return None
    n_splits = int(min(folds, n_known // 2))
    if counts.min() >= n_splits:
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed % (2**32))
    else:
        cv = KFold(n_splits=n_splits, shuffle=True, random_state=seed % (2**32))
    clf = LogisticRegression(max_iter=1000, C=1.0)
    if texts is not None:
        model = make_pipeline(
            TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=200_000), clf
        )
        x_all = np.asarray(texts, dtype=object)
    elif numeric is not None:
        model = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), clf)
        x_all = np.asarray(numeric, dtype=float)
    else:
        return None
    # Map the known labels to 0..len(present)-1 so the proba columns follow `present` exactly.
    y_enc = np.searchsorted(present, y[known])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small classes, convergence: the smoothing below copes
        proba_known = cross_val_predict(model, x_all[known], y_enc, cv=cv, method="predict_proba")
        model.fit(x_all[known], y_enc)
        proba_unknown = model.predict_proba(x_all[~known]) if (~known).any() else None
    out = np.zeros((len(y), n_classes))
    out[np.ix_(np.nonzero(known)[0], present)] = proba_known
    if proba_unknown is not None:
        out[np.ix_(np.nonzero(~known)[0], present)] = proba_unknown
    out = (1 - SMOOTHING) * out + SMOOTHING / n_classes
    return out / out.sum(axis=1, keepdims=True)


# --- scoring --------------------------------------------------------------------------------------


@dataclass
class CrowdScores:
    method: str  # "crowdlab" or "single_label"
    consensus: np.ndarray  # N int
    quality: np.ndarray  # N float in [0, 1]
    agreement: np.ndarray  # N float: share of the item's annotators agreeing with consensus
    num_annotations: np.ndarray  # N int
    active_learning: np.ndarray  # N float, ActiveLab (lower = relabel first)
    label_issue: np.ndarray  # N bool (single-label scoring only)
    annotator_quality: np.ndarray  # M float, NaN when it cannot be estimated
    annotator_agreement: np.ndarray  # M float, NaN in single-label scoring
    annotator_worst_class: np.ndarray  # M int, -1 when unknown
    annotator_num_labeled: np.ndarray  # M int
    # Wall time inside cleanlab's own functions (a run reports it as its cleanlab time; the
    # normalising, checks and ActiveLab arithmetic around them are not part of it).
    seconds_cleanlab: float = 0.0


def validate_crowd(labels: np.ndarray, pred_probs: np.ndarray) -> None:
    """Reject what cleanlab raises on (or silently mis-handles), with a message a person can act on."""
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ScoringError("Nothing to score: no annotated items.")
    if pred_probs.shape[0] != labels.shape[0]:
        raise ScoringError("pred_probs and labels have a different number of items.")
    labeled = ~np.isnan(labels)  # (computed once: N × M)
    if not labeled.any(axis=1).all():
        raise ScoringError("Some items have no label.")
    if not labeled.any(axis=0).all():
        raise ScoringError("Some annotators have no label.")
    vals = labels[labeled]
    if (vals != np.round(vals)).any() or vals.min() < 0 or vals.max() >= pred_probs.shape[1]:
        raise ScoringError("Labels must be class indices 0..K-1.")


class _timed:
    """Adds the wall time of its block to the list `spent`."""

    def __init__(self, spent: list):
        self.spent = spent

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.spent.append(time.perf_counter() - self.start)
        return False


def score_crowd(labels: np.ndarray, pred_probs: np.ndarray, *, seed: int, normalized: bool = False) -> CrowdScores:
    """CROWDLAB when some item has ≥ 2 labels from ≥ 2 annotators; else single-label issue detection.
    `normalized`: pred_probs come from normalize_pred_probs already (not checked again)."""
    if not normalized:
        pred_probs = normalize_pred_probs(pred_probs)
    validate_crowd(labels, pred_probs)
    num = (~np.isnan(labels)).sum(axis=1)
    if labels.shape[1] >= 2 and (num >= 2).any():
        return _score_crowdlab(labels, pred_probs, seed=seed)
    return _score_single(labels, pred_probs)


def _score_crowdlab(labels, pred_probs, *, seed) -> CrowdScores:
    from cleanlab.multiannotator import get_label_quality_multiannotator

    n, m = labels.shape
    k = pred_probs.shape[1]

    spent = []

    def call(pp):
        np.random.seed(seed % (2**32))  # cleanlab breaks remaining ties with NumPy's global RNG
        with warnings.catch_warnings(), _timed(spent):
            warnings.simplefilter("ignore")
            return get_label_quality_multiannotator(
                labels,
                pp,
                consensus_method="best_quality",
                quality_method="crowdlab",
                calibrate_probs=False,
                return_detailed_quality=False,
                return_annotator_stats=True,
                return_weights=True,
                verbose=False,
            )

    try:
        res = call(pred_probs)
    except ValueError as exc:
        if "cannot be empty" not in str(exc):
            raise
        # Ties cleanlab cannot break (identical probabilities and annotators who never agree): a
        # negligible seeded jitter on pred_probs makes them breakable.
        jitter = np.random.default_rng(seed).random(pred_probs.shape) * 1e-9
        res = call((pred_probs + jitter) / (pred_probs + jitter).sum(axis=1, keepdims=True))
    lq = res["label_quality"]
    consensus = lq["consensus_label"].to_numpy().astype(np.int64)
    quality = lq["consensus_quality_score"].to_numpy(dtype=float)
    agreement = lq["annotator_agreement"].to_numpy(dtype=float)
    num = lq["num_annotations"].to_numpy().astype(np.int64)
    # ActiveLab (cleanlab.multiannotator.get_active_learning_scores), computed from this call's
    # weights: the same formula without its temperature re-calibration, which re-runs CROWDLAB and
    # costs many times the scoring itself.
    model_weight = float(res["model_weight"])
    annotator_weight = np.nan_to_num(np.asarray(res["annotator_weight"], dtype=float))
    labeled_weight = (~np.isnan(labels)).astype(float) @ annotator_weight
    w_item = labeled_weight + model_weight
    w_prior = float(np.mean(annotator_weight))
    active = (quality * w_item + (1.0 / k) * w_prior) / (w_item + w_prior)

    stats = res["annotator_stats"].sort_index()
    return CrowdScores(
        method="crowdlab",
        consensus=consensus,
        quality=quality,
        agreement=agreement,
        num_annotations=num,
        active_learning=active,
        label_issue=np.zeros(n, dtype=bool),
        annotator_quality=stats["annotator_quality"].to_numpy(dtype=float),
        annotator_agreement=stats["agreement_with_consensus"].to_numpy(dtype=float),
        annotator_worst_class=stats["worst_class"].fillna(-1).to_numpy().astype(np.int64),
        annotator_num_labeled=stats["num_examples_labeled"].to_numpy().astype(np.int64),
        seconds_cleanlab=sum(spent),
    )


def _score_single(labels, pred_probs) -> CrowdScores:
    """Every item has one label: cleanlab.rank scores it, cleanlab.filter flags likely errors."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    n, m = labels.shape
    k = pred_probs.shape[1]
    given = np.nanmax(labels, axis=1).astype(np.int64)
    spent = []
    with _timed(spent):
        quality = get_label_quality_scores(given, pred_probs)
    with warnings.catch_warnings(), _timed(spent):
        warnings.simplefilter("ignore")
        try:
            issues = np.asarray(find_label_issues(given, pred_probs), dtype=bool)
        except ValueError:  # too few examples per class to estimate noise rates
            issues = np.zeros(n, dtype=bool)
    # ActiveLab's single-annotator case: model and annotator weights are 1.
    active = (quality * 2.0 + 1.0 / k) / 3.0
    mask = ~np.isnan(labels)
    annotator_quality = np.array([quality[mask[:, j]].mean() if mask[:, j].any() else np.nan for j in range(m)])
    worst = np.full(m, -1, dtype=np.int64)
    for j in range(m):
        rows = mask[:, j]
        if rows.any():
            per_class = [(quality[rows & (given == c)].mean(), c) for c in range(k) if (rows & (given == c)).any()]
            worst[j] = min(per_class)[1]
    return CrowdScores(
        method="single_label",
        consensus=given,
        quality=quality,
        agreement=np.ones(n),
        num_annotations=mask.sum(axis=1),
        active_learning=active,
        label_issue=issues,
        annotator_quality=annotator_quality,
        annotator_agreement=np.full(m, np.nan),
        annotator_worst_class=worst,
        annotator_num_labeled=mask.sum(axis=0),
        seconds_cleanlab=sum(spent),
    )


# --- agreement between annotators ------------------------------------------------------------------


def coincidence_matrix(counts: np.ndarray) -> np.ndarray:
    """Krippendorff's coincidence matrix (K × K) from item × class label counts: each ordered pair of
    labels on the same item counts 1/(m_u - 1), where m_u is the item's number of labels (items with
    fewer than 2 labels are not pairable and drop out). The quality page's label-by-label heatmap and
    its observed agreement read it; alpha itself comes from the `krippendorff` package."""
    c = np.asarray(counts, dtype=float)
    m = c.sum(axis=1)
    keep = m >= 2
    c, m = c[keep], m[keep]
    if len(c) == 0:
        return np.zeros((counts.shape[1], counts.shape[1]))
    w = 1.0 / (m - 1.0)
    o = (c * w[:, None]).T @ c
    o -= np.diag((c * w[:, None]).sum(axis=0))
    return o


def krippendorff_alpha_nominal(counts: np.ndarray) -> float | None:
    """Nominal alpha of the `krippendorff` package from item × class label counts (any number of
    labels per item; items with fewer than 2 drop out). None when undefined: no pairable item, or a
    single value among the pairable labels (no expected disagreement)."""
    import krippendorff

    c = np.asarray(counts, dtype=np.int64)
    c = c[c.sum(axis=1) >= 2] if c.ndim == 2 else c[:0]
    if len(c) == 0 or int((c.sum(axis=0) > 0).sum()) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = krippendorff.alpha(value_counts=c, level_of_measurement="nominal")
    return None if not np.isfinite(value) else float(value)


def first_k_counts(item_idx: np.ndarray, codes: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """Item × class counts of the first `k` labels of every item that has at least `k`: the table
    statsmodels' aggregate_raters makes of those items' first k labels, counted here in one pass
    (bincount) rather than its per-item loop. `item_idx` (0..N-1) and `codes` must be in annotation
    order; rows come out in increasing item_idx."""
    item_idx = np.asarray(item_idx, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    if len(item_idx) == 0 or k < 1:
        return np.zeros((0, n_classes), dtype=np.int64)
    order = np.argsort(item_idx, kind="stable")  # keeps annotation order inside each item
    s_item = item_idx[order]
    per_item = np.bincount(s_item)
    starts = np.cumsum(per_item) - per_item  # where each item's labels begin in the sorted order
    take = order[(np.arange(len(s_item)) - starts[s_item] < k) & (per_item[s_item] >= k)]
    kept = per_item >= k
    row = (np.cumsum(kept) - 1)[item_idx[take]]
    n_rows = int(kept.sum())
    flat = np.bincount(row * n_classes + codes[take], minlength=n_rows * n_classes)
    return flat.reshape(n_rows, n_classes).astype(np.int64)


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """statsmodels' Fleiss' kappa; `counts` must have the same number of labels on every item (see
    first_k_counts). None when undefined (no item, or a single category used throughout)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

    if len(counts) == 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = sm_fleiss_kappa(np.asarray(counts), method="fleiss")
    return None if not np.isfinite(value) else float(value)


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float | None:
    """scikit-learn's Cohen's kappa of two annotators' labels on the items they share (None: 0/0)."""
    from sklearn.metrics import cohen_kappa_score

    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(a, b, labels=list(range(n_classes)))
    return None if not np.isfinite(value) else float(value)
