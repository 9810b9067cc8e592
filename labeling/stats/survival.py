"""Delay buckets and the censoring-aware delay estimate, in numpy over aggregated counts.

Delays are kept as counts per bucket (labeling.services.feedback_rollup), never one row per
prediction. Bucket edges are geometric (ratio 2**(1/8)) from 1 second to 5 years, plus every whole
day up to COHORT_DAYS, so "labeled within d days" is exact; inside a bucket estimates interpolate
linearly. The estimator is Kaplan-Meier on grouped data (the actuarial life-table form, see km_cdf):
lifelines' KaplanMeierFitter needs exact times, and the counts here are grouped.
"""

import math

import numpy as np

DAY = 86400
COHORT_DAYS = 120  # every whole day up to here is a bucket edge
_RATIO = 2 ** (1 / 8)
_MAX_SECONDS = 5 * 366 * DAY
BUCKETS_VERSION = "g8-d120-1"  # change when the edges change: rollups are rebuilt


def _edges() -> tuple:
    days = [d * DAY for d in range(1, COHORT_DAYS + 1)]
    geo, x = [], 1.0
    while x < _MAX_SECONDS:
        geo.append(float(round(x)))
        x *= _RATIO
    kept = [g for g in geo if all(abs(g - d) > 0.01 * d for d in days if abs(g - d) < 0.05 * d)]
    return tuple(sorted({0.0, *kept, *map(float, days)}))


EDGES = _edges()  # lower edge of each bucket; bucket i is [EDGES[i], EDGES[i+1]), the last is open
EDGES_NP = np.array(EDGES)
N_BUCKETS = len(EDGES)
# Whole days since the prediction at which a delay in each bucket arrived (exact below COHORT_DAYS).
BUCKET_DAY = tuple(int(e // DAY) for e in EDGES)


def bucket_of(seconds) -> np.ndarray:
    """Bucket index of each delay (negative delays count as 0: truth was there before the prediction)."""
    s = np.maximum(np.asarray(seconds, dtype=float), 0.0)
    return np.searchsorted(EDGES_NP, s, side="right") - 1


def bucket_width(i: int) -> float:
    return EDGES[i + 1] - EDGES[i] if i + 1 < N_BUCKETS else math.inf


def km_cdf(events: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """F at each bucket's upper edge: the estimated share of predictions labeled by then.

    In a bucket with d events and c censored observations out of n at risk, the censored ones count
    as at risk for half the bucket, h = d / (n - c/2), and S(end of bucket) = prod(1 - h). With one
    observation per bucket this is the product-limit estimator; with grouped data it removes the
    bias the plain form has when censoring and events share a bucket."""
    events = np.asarray(events, dtype=float)
    censored = np.asarray(censored, dtype=float)
    at_risk = np.cumsum((events + censored)[::-1])[::-1]
    denom = at_risk - censored / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(denom > 0, events / denom, 0.0)
    return 1.0 - np.cumprod(1.0 - np.clip(hazard, 0.0, 1.0))


def cdf_quantile(cdf: np.ndarray, q: float) -> float | None:
    """Smallest delay t with F(t) >= q, interpolating linearly inside the bucket; None if never reached."""
    cdf = np.asarray(cdf, dtype=float)
    if cdf.size == 0 or cdf[-1] < q - 1e-12:
        return None
    i = int(np.argmax(cdf >= q - 1e-12))
    lo_f = cdf[i - 1] if i > 0 else 0.0
    lo, width = EDGES[i], bucket_width(i)
    if not math.isfinite(width):
        return float(lo)  # the open last bucket: all we know is "at least"
    hi_f = cdf[i]
    frac = 1.0 if hi_f <= lo_f else (q - lo_f) / (hi_f - lo_f)
    return float(lo + min(max(frac, 0.0), 1.0) * width)


def cdf_at(cdf: np.ndarray, seconds: float) -> float:
    """F(seconds), interpolated inside the bucket like cdf_quantile."""
    if cdf.size == 0:
        return 0.0
    i = int(bucket_of([seconds])[0])
    lo_f = cdf[i - 1] if i > 0 else 0.0
    width = bucket_width(i)
    if not math.isfinite(width):
        return float(lo_f)
    frac = (seconds - EDGES[i]) / width
    return float(lo_f + frac * (cdf[i] - lo_f))


def naive_cdf(events: np.ndarray) -> np.ndarray:
    """The 'labeled only' distribution: censored predictions ignored (biased short when labels are late)."""
    events = np.asarray(events, dtype=float)
    total = events.sum()
    if total <= 0:
        return np.zeros_like(events)
    return np.cumsum(events) / total


def quantiles(cdf: np.ndarray, qs=(0.5, 0.9, 0.99)) -> dict:
    out = {}
    for q in qs:
        v = cdf_quantile(cdf, q)
        out[f"p{round(q * 100):d}"] = None if v is None else round(v, 1)
    return out


def max_followup_bucket(events: np.ndarray, censored: np.ndarray) -> int:
    """Last bucket holding any observation (-1 if none): the curve says nothing beyond it."""
    nz = np.nonzero(np.asarray(events) + np.asarray(censored))[0]
    return int(nz[-1]) if nz.size else -1
