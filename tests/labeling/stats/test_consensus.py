"""The pure math in labeling.stats.consensus, checked against published values and maintained libraries."""

import numpy as np
import pytest

from labeling.stats import consensus

NAN = np.nan


def counts_from(matrix, k):
    """Units x observers (NaN = missing, values 0..k-1) -> unit x class counts."""
    m = np.asarray(matrix, dtype=float)
    out = np.zeros((m.shape[0], k), dtype=int)
    for u, row in enumerate(m):
        for v in row[~np.isnan(row)]:
            out[u, int(v)] += 1
    return out


def test_krippendorff_alpha_matches_the_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units
    # example with missing values: nominal alpha = 0.743. Values 1..5 shifted to 0..4.
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3]
    c = [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN]
    units = np.array([a, b, c, d]).T - 1
    alpha = consensus.krippendorff_alpha_nominal(counts_from(units, 5))
    assert alpha == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_equals_nltk_on_random_data():
    from nltk.metrics.agreement import AnnotationTask

    rng = np.random.default_rng(3)
    n, m, k = 150, 6, 4
    truth = rng.integers(0, k, n)
    units = np.full((n, m), NAN)
    for u in range(n):
        for o in rng.choice(m, size=rng.integers(1, 5), replace=False):
            units[u, o] = truth[u] if rng.random() < 0.7 else rng.integers(0, k)
    triples = [(f"o{o}", f"u{u}", int(units[u, o])) for u in range(n) for o in range(m) if not np.isnan(units[u, o])]
    # nltk drops units with a single label itself; its default distance is nominal (binary).
    expected = AnnotationTask(data=triples).alpha()
    assert consensus.krippendorff_alpha_nominal(counts_from(units, k)) == pytest.approx(expected, abs=1e-9)


def test_alpha_is_undefined_with_one_value_or_no_pairs():
    assert consensus.krippendorff_alpha_nominal(np.array([[3, 0], [2, 0]])) is None
    assert consensus.krippendorff_alpha_nominal(np.array([[1, 0], [0, 1]])) is None


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa = 0.210.
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert consensus.fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_first_k_counts_is_aggregate_raters_of_each_items_first_k_labels():
    from statsmodels.stats.inter_rater import aggregate_raters

    rng = np.random.default_rng(5)
    n, k, n_classes = 40, 3, 4
    sizes = rng.integers(1, 7, n)  # 1..6 labels per item
    item_idx = np.repeat(np.arange(n), sizes)
    codes = rng.integers(0, n_classes, len(item_idx))
    shuffle = rng.permutation(len(item_idx))  # interleave items, as annotations arrive
    item_idx, codes = item_idx[shuffle], codes[shuffle]
    firsts = [codes[item_idx == i][:k] for i in range(n) if sizes[i] >= k]
    expected, _ = aggregate_raters(np.array(firsts), n_cat=n_classes)
    assert consensus.first_k_counts(item_idx, codes, k, n_classes).tolist() == expected.tolist()
    assert consensus.first_k_counts(item_idx[:0], codes[:0], k, n_classes).shape == (0, n_classes)


def test_alpha_equals_the_krippendorff_package_on_reliability_data():
    import krippendorff

    rng = np.random.default_rng(11)
    units = np.where(rng.random((80, 5)) < 0.3, NAN, rng.integers(0, 3, (80, 5)).astype(float))
    expected = krippendorff.alpha(reliability_data=units.T, level_of_measurement="nominal")
    assert consensus.krippendorff_alpha_nominal(counts_from(units, 3)) == pytest.approx(expected, abs=1e-12)


def test_cohen_kappa_perfect_chance_and_undefined():
    a = np.array([0, 1, 2, 0, 1, 2])
    assert consensus.cohen_kappa(a, a, 3) == pytest.approx(1.0)
    assert consensus.cohen_kappa(np.zeros(5, int), np.zeros(5, int), 3) is None  # 0/0


def test_coincidence_matrix_counts_each_pair_once_per_value_pair():
    # One unit labeled (0, 0, 1) by three observers: pairs 0-0 twice, 0-1 twice, 1-0 twice; weight 1/2.
    o = consensus.coincidence_matrix(np.array([[2, 1]]))
    assert o.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert o.sum() == 3.0  # the unit's 3 pairable values


def test_crossval_maps_columns_when_a_class_is_missing_from_training():
    rng = np.random.default_rng(0)
    n = 60
    y = rng.integers(0, 2, n)  # classes 0 and 1 only: class 2 never appears in the training labels
    y[rng.random(n) < 0.1] = 3  # and class 3 is rare (absent from some folds)
    x = np.c_[y + rng.normal(0, 0.3, n), rng.normal(0, 1, n)]
    p = consensus.crossval_pred_probs(train_labels=y, n_classes=4, numeric=x, seed=1)
    assert p.shape == (n, 4)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert (p > 0).all()  # smoothed: cleanlab never sees a zero probability
    assert p[:, 2].max() < 0.01  # the missing class keeps only the smoothing mass
    assert (p[y == 1].argmax(axis=1) == 1).mean() > 0.8  # columns are not shifted


def test_crossval_returns_none_when_there_is_nothing_to_learn():
    assert consensus.crossval_pred_probs(train_labels=np.zeros(30, int), n_classes=3, numeric=np.ones((30, 1))) is None
    assert consensus.crossval_pred_probs(train_labels=np.array([0, 1, 0]), n_classes=2, numeric=np.ones((3, 1))) is None


def test_score_crowd_rejects_what_cleanlab_would_mishandle():
    labels = np.array([[0, 1], [1, NAN]], dtype=float)
    with pytest.raises(consensus.ScoringError, match="NaN"):
        consensus.score_crowd(labels, np.array([[NAN, 1.0], [0.5, 0.5]]), seed=0)
    with pytest.raises(consensus.ScoringError, match="0..K-1"):
        consensus.score_crowd(np.array([[0, 2], [1, NAN]], dtype=float), np.full((2, 2), 0.5), seed=0)
    with pytest.raises(consensus.ScoringError, match="no label"):
        consensus.score_crowd(np.array([[0, 1], [NAN, NAN]], dtype=float), np.full((2, 2), 0.5), seed=0)
    # Rows that do not sum to 1 are renormalised, not passed on as they are.
    assert consensus.normalize_pred_probs(np.array([[2.0, 2.0]])).tolist() == [[0.5, 0.5]]


def test_ties_cleanlab_cannot_break_are_broken_reproducibly():
    # Two annotators who never agree, identical probabilities for every class: cleanlab's own
    # tie-breaking runs out of criteria ("'a' cannot be empty"); we jitter pred_probs negligibly.
    labels = np.array([[0, 1], [1, 0], [2, 3], [3, 2]], dtype=float)
    pp = np.full((4, 4), 0.25)
    first = consensus.score_crowd(labels, pp, seed=5)
    again = consensus.score_crowd(labels, pp, seed=5)
    assert first.method == "crowdlab"
    assert first.consensus.tolist() == again.consensus.tolist()
