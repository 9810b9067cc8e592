"""The grouped Kaplan-Meier estimator on its own (no database): right-censored delays from known
distributions, binned like the rollups, give the true quantiles; the naive estimate does not."""

import numpy as np
import pytest
from scipy import stats

from labeling.stats import survival

DAY = survival.DAY


def binned(delay, age):
    labeled = delay <= age
    events = np.bincount(survival.bucket_of(delay[labeled]), minlength=survival.N_BUCKETS)
    censored = np.bincount(survival.bucket_of(age[~labeled]), minlength=survival.N_BUCKETS)
    return events, censored, labeled


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "dist",
    [stats.lognorm(s=1.0, scale=3 * DAY), stats.expon(scale=4 * DAY)],
    ids=["lognormal", "exponential"],
)
def test_km_quantiles_match_the_true_distribution_naive_ones_are_biased(dist, seed):
    rng = np.random.default_rng(seed)
    n, window = 20_000, 30 * DAY
    age = rng.uniform(0, window, n)
    delay = dist.rvs(size=n, random_state=rng)
    events, censored, labeled = binned(delay, age)
    assert 0.12 < 1 - labeled.mean() < 0.30  # a real share is censored
    km = survival.km_cdf(events, censored)
    naive = survival.naive_cdf(events)
    for q in (0.5, 0.9):
        truth = dist.ppf(q)
        assert survival.cdf_quantile(km, q) == pytest.approx(truth, rel=0.05)
        assert survival.cdf_quantile(naive, q) < 0.92 * truth  # labeled-only is biased short


def test_without_censoring_km_equals_the_empirical_distribution():
    rng = np.random.default_rng(7)
    delay = rng.exponential(2 * DAY, 5000)
    events, censored, _ = binned(delay, np.full(5000, np.inf))
    km = survival.km_cdf(events, censored)
    assert np.allclose(km, survival.naive_cdf(events))
    assert survival.cdf_quantile(km, 0.5) == pytest.approx(np.quantile(delay, 0.5), rel=0.02)


def test_buckets_edges_whole_days_and_negative_delays():
    assert survival.EDGES[0] == 0 and list(survival.EDGES) == sorted(set(survival.EDGES))
    for d in range(1, survival.COHORT_DAYS + 1):
        assert d * DAY in survival.EDGES  # "labeled within d days" is exact
    b = survival.bucket_of([-5, 0, 0.5, DAY - 1, DAY, 3 * DAY + 10])
    assert list(np.asarray(survival.BUCKET_DAY)[b]) == [0, 0, 0, 0, 1, 3]
    widths = np.diff(survival.EDGES_NP) / survival.EDGES_NP[1:]
    assert widths[survival.EDGES_NP[1:] > 60].max() < 0.10


def test_quantile_not_reached_is_none_and_empty_input():
    events = np.zeros(survival.N_BUCKETS)
    censored = np.zeros(survival.N_BUCKETS)
    events[survival.bucket_of([DAY])[0]] = 3
    censored[survival.bucket_of([10 * DAY])[0]] = 7
    km = survival.km_cdf(events, censored)
    assert survival.cdf_quantile(km, 0.5) is None and survival.cdf_quantile(km, 0.3) is not None
    assert survival.quantiles(survival.km_cdf(np.zeros(5), np.zeros(5))) == {"p50": None, "p90": None, "p99": None}
