"""Profiles of ingested batches and the data-quality checks that compare one batch with the recent ones.

Pure: lists of payloads and predictions (or a DataFrame) in, JSON-ready profiles and check results
out; no database. labeling.services.data_checks stores the profiles and acts on the results.

A profile summarises each top-level payload field (type, missing share, numeric quantiles, the value
shares of a string field with few distinct values, text length quantiles) and the predictions (class
mix, mean confidence = mean of the top probability). A batch is compared with the last K profiles of
its project (the reference). The one idea: every threshold is learned from how much the reference
batches differ *among themselves*, so a field that always varies widens its own expected range and
does not alert. The fences are Tukey's, robust to a few odd batches in the reference (a shifted
batch is itself part of the next batch's reference, and must not hide the next shifted one): a
scalar (a missing share, the mean confidence) fires outside [q25 - 3 × IQR, q75 + 3 × IQR] of the
reference values (the margin at least a small floor); a distribution (category shares, numeric
quantiles, class mix) fires when its distance to the pooled reference exceeds q75 + 3 × IQR of the
reference batches' own leave-one-out distances (at least a floor). A change that persists becomes
the new normal once it fills about a quarter of the reference. Each result says how often the same
rule would have fired on the reference batches themselves (leave-one-out backtest).

pandas + numpy do the work, vectorised per column. pandera validates declared schemas, not learned
drift; evidently and whylogs bring large dependency trees and their own report formats for what is a
few quantiles and shares per field; scipy is not needed: the distances (total variation, a KS
statistic computed from quantile grids) are a few lines of numpy.

Long because the profile, the distances, the checks with their backtest and the choice of example
rows all speak the profile's format, which is easiest to keep consistent in one place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PROFILE_VERSION = 1
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)  # the grid a numeric field keeps
TOP_CATEGORIES = 20  # a string field with at most this many distinct values is categorical
OTHER = "__other__"
MIN_REFERENCE = 3  # fewer reference batches: only record
PRESENT_IN = 0.8  # a field "expected" is present (or of one type) in at least this share of the reference
IQR_MARGIN = 3.0
# Floors: below these, differences are sampling noise or too small to matter.
SHARE_FLOOR = 0.02  # missing share, absolute
CONFIDENCE_FLOOR = 0.02
TVD_FLOOR = 0.05
KS_FLOOR = 0.1
NEW_CATEGORY_SHARE = 0.05  # a category unseen in the reference is material from this share


# ---------------------------------------------------------------- profile
def _kind(series: pd.Series) -> str:
    """number, boolean, string, object (dict or list), mixed, or empty (no value)."""
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    if inferred == "boolean":
        return "boolean"
    if inferred == "string":
        return "string"
    if inferred == "empty":
        return "empty"
    if inferred == "mixed":
        kinds = set(series.dropna().map(type).unique())
        if kinds and all(issubclass(k, (dict, list)) for k in kinds):
            return "object"
    return "mixed"


def _value_kind(value) -> str:
    """One value's kind, in the vocabulary of _kind."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (dict, list)):
        return "object"
    return "mixed"


def _quantiles(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.quantile(values, QUANTILES)]


def _field_profile(series: pd.Series, n: int) -> dict:
    present = series.notna()
    n_present = int(present.sum())
    kind = _kind(series) if n_present else "empty"
    out = {"type": kind, "missing": round(1 - n_present / n, 6) if n else 1.0}
    values = series[present]
    if kind == "number":
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        arr = arr[np.isfinite(arr)]
        if arr.size:
            out["quantiles"] = _quantiles(arr)
    elif kind == "string":
        lengths = np.fromiter(map(len, values.to_numpy()), dtype="float64", count=len(values))
        out["length"] = _quantiles(lengths)
        # a text field shows many distinct values in its first rows already: skip counting them all
        counts = values.iloc[:200].value_counts() if len(values) > 200 else None
        if counts is None or len(counts) <= TOP_CATEGORIES:
            counts = values.value_counts()
        if len(counts) <= TOP_CATEGORIES:
            out["categories"] = {str(k): round(int(v) / n_present, 6) for k, v in counts.items()}
    return out


@dataclass
class Batch:
    """A batch as the checks see it: one column per payload field, the predictions, the external ids."""

    columns: dict[str, pd.Series]
    external_ids: list[str]
    labels: pd.Series  # predicted label per row (NaN: no prediction)
    confidence: pd.Series  # top probability per row (NaN: no probabilities)


def batch_frame(
    *,
    external_ids: Sequence[str],
    payloads: Sequence[dict],
    labels: Sequence[str | None],
    confidence: Sequence[float] | np.ndarray,
) -> Batch:
    """Build a Batch: per row its payload, its predicted label (None: no prediction) and the top
    probability of its prediction (NaN: none)."""
    # Columns straight from the dicts in one pass: a DataFrame built from records costs several times more.
    n = len(payloads)
    lists: dict = {}
    for i, payload in enumerate(payloads):
        for k, v in payload.items():
            col = lists.get(k)
            if col is None:
                col = lists[k] = [None] * n
            col[i] = v
    columns = {str(k): pd.Series(v, dtype="object") for k, v in lists.items()}
    return Batch(
        columns=columns,
        external_ids=list(external_ids),
        labels=pd.Series(labels, dtype="object"),
        confidence=pd.Series(np.asarray(confidence, dtype="float64")),
    )


def top_probabilities(predictions: Sequence) -> np.ndarray:
    """The top probability per row from (label, probabilities dict or None) or None entries."""
    return np.array([max(p[1].values()) if p and p[1] else np.nan for p in predictions], dtype="float64")


def profile_batch(batch: Batch) -> dict:
    """The batch's profile (JSON-ready)."""
    n = len(batch.external_ids)
    fields = {}
    for name, column in batch.columns.items():
        prof = _field_profile(column, n)
        if prof["type"] != "empty":  # a key sent only as null is absent
            fields[str(name)] = prof
    prediction = {"count": int(batch.labels.notna().sum())}
    if prediction["count"]:
        mix = batch.labels.value_counts(normalize=True)
        prediction["classes"] = {str(k): round(float(v), 6) for k, v in mix.items()}
        conf = batch.confidence.dropna()
        if len(conf):
            prediction["confidence"] = round(float(conf.mean()), 6)
    return {"version": PROFILE_VERSION, "rows": n, "fields": fields, "prediction": prediction}


# ---------------------------------------------------------------- distances
def total_variation(a: dict, b: dict) -> float:
    """Total variation distance between two share maps (missing keys: share 0)."""
    keys = set(a) | set(b)
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys)


def _pool_shares(maps: list[dict]) -> dict:
    out: dict[str, float] = {}
    for m in maps:
        for k, v in m.items():
            out[k] = out.get(k, 0.0) + v / len(maps)
    return out


def _cdf(grid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The CDF implied by a quantile grid, evaluated at x (linear between grid points; a value
    repeated in the grid takes its highest probability)."""
    grid = np.maximum.accumulate(grid)
    uniq, inverse = np.unique(grid, return_inverse=True)
    top = np.zeros(uniq.size)
    np.maximum.at(top, inverse, np.asarray(QUANTILES))
    if uniq.size == 1:
        return np.where(x < uniq[0], 0.0, 1.0)
    return np.interp(x, uniq, top, left=0.0, right=1.0)


def ks_from_quantiles(a: Sequence[float], b: Sequence[float]) -> float:
    """A Kolmogorov-Smirnov statistic from two quantile grids: the largest CDF gap at the grid points."""
    ga, gb = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    points = np.concatenate([ga, gb])
    return float(np.max(np.abs(_cdf(ga, points) - _cdf(gb, points))))


def _pool_grids(grids: list) -> list[float]:
    """The reference's typical quantile grid: the median of each quantile across batches."""
    return [float(v) for v in np.median(np.asarray(grids, dtype="float64"), axis=0)]


# ---------------------------------------------------------------- rules
def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    """q25 and q75 (numpy's linear rule), in plain Python: the reference has at most K values, and
    the backtest asks for them hundreds of times per batch."""
    s = sorted(float(v) for v in values)

    def at(q):
        pos = (len(s) - 1) * q
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return at(0.25), at(0.75)


def scalar_range(values: Sequence[float], floor: float) -> tuple[float, float]:
    """[q25 - m, q75 + m] of the reference values with m = max(3 × IQR, floor)."""
    q1, q3 = _quartiles(values)
    margin = max(IQR_MARGIN * (q3 - q1), floor)
    return q1 - margin, q3 + margin


def distance_limit(distances: Sequence[float], floor: float) -> float:
    """q75 + 3 × IQR of the reference's leave-one-out distances, at least `floor`."""
    q1, q3 = _quartiles(distances)
    return max(q3 + IQR_MARGIN * (q3 - q1), floor)


def _loo(values: list, fires) -> int:
    """How many reference batches would have fired: each judged against the others."""
    n = 0
    for i, v in enumerate(values):
        others = values[:i] + values[i + 1 :]
        if len(others) >= MIN_REFERENCE - 1 and fires(v, others):
            n += 1
    return n


@dataclass
class CheckResult:
    field: str
    check: str
    observed: object
    expected: object
    fired: bool
    backtest: int  # how many of the reference batches the same rule would have fired on
    reference: int  # how many reference batches
    detail: dict = field(default_factory=dict)  # what selects example rows (a category, a range, ...)

    def as_dict(self) -> dict:
        return {
            "field": self.field,
            "check": self.check,
            "observed": self.observed,
            "expected": self.expected,
            "would_have_fired": self.backtest,
            "of_last": self.reference,
        }


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits) if math.isfinite(x) else x


def _scalar_check(name, check, observed, ref_values, floor, *, low_only=False) -> CheckResult:
    lo, hi = scalar_range(ref_values, floor)

    def fires(v, others):
        a, b = scalar_range(others, floor)
        return v < a or (not low_only and v > b)

    fired = observed < lo or (not low_only and observed > hi)
    expected = {"min": _r(lo)} if low_only else {"min": _r(max(lo, 0.0)), "max": _r(min(hi, 1.0))}
    return CheckResult(name, check, _r(observed), expected, fired, _loo(list(ref_values), fires), len(ref_values))


def _distance_check(name, check, observed_value, ref_values, distance, pool, floor, label) -> CheckResult:
    """Distance of the batch to the pooled reference vs the leave-one-out distances of the reference."""
    loo = [distance(v, pool(ref_values[:i] + ref_values[i + 1 :])) for i, v in enumerate(ref_values)]
    limit = distance_limit(loo, floor)
    d = distance(observed_value, pool(ref_values))

    def fires(v, others):
        return v > distance_limit(others, floor)

    return CheckResult(
        name,
        check,
        {label: _r(d)},
        {label: {"max": _r(limit)}},
        d > limit,
        _loo(loo, fires),
        len(ref_values),
    )


def run_checks(profile: dict, reference: list[dict]) -> list[CheckResult]:
    """Compare a batch's profile with the reference profiles (newest first or any order). Returns
    every check evaluated (fired or not); none while the reference has fewer than MIN_REFERENCE."""
    if len(reference) < MIN_REFERENCE:
        return []
    k = len(reference)
    results: list[CheckResult] = []
    fields = profile["fields"]
    ref_fields = [r.get("fields", {}) for r in reference]
    names = set(fields) | {f for rf in ref_fields for f in rf}
    for name in sorted(names):
        cur = fields.get(name)
        seen = [rf.get(name) for rf in ref_fields]
        present = [s is not None for s in seen]
        n_present = sum(present)
        if cur is not None and n_present == 0:
            results.append(
                CheckResult(
                    name,
                    "new_field",
                    {"missing": cur["missing"], "type": cur["type"]},
                    {"present_in": 0},
                    True,
                    sum(1 for i in range(k) if present[i] and sum(present) == 1),
                    k,
                )
            )
            continue
        if cur is None:
            if n_present >= PRESENT_IN * k:
                results.append(
                    CheckResult(
                        name,
                        "missing_field",
                        {"present": False},
                        {"present_in": n_present},
                        True,
                        sum(1 for i in range(k) if not present[i] and (n_present) >= PRESENT_IN * (k - 1)),
                        k,
                    )
                )
            continue
        ref = [s for s in seen if s is not None]
        if len(ref) < MIN_REFERENCE:
            continue
        types = pd.Series([s["type"] for s in ref]).value_counts()
        dominant, dominant_n = types.index[0], int(types.iloc[0])
        if dominant_n >= PRESENT_IN * len(ref) and cur["type"] != dominant:
            results.append(
                CheckResult(
                    name,
                    "type_change",
                    {"type": cur["type"]},
                    {"type": dominant},
                    True,
                    sum(1 for s in ref if s["type"] != dominant),
                    k,
                    {"type": dominant},
                )
            )
            continue
        results.append(_scalar_check(name, "missing_share", cur["missing"], [s["missing"] for s in ref], SHARE_FLOOR))
        grids = [s["quantiles"] for s in ref if "quantiles" in s]
        if "quantiles" in cur and len(grids) >= MIN_REFERENCE:
            res = _distance_check(
                name, "numeric_shift", cur["quantiles"], grids, ks_from_quantiles, _pool_grids, KS_FLOOR, "ks"
            )
            q = cur["quantiles"]
            res.observed.update({"p1": _r(q[0]), "p50": _r(q[4]), "p99": _r(q[-1])})
            lo, hi = min(g[0] for g in grids), max(g[-1] for g in grids)
            p50 = [g[4] for g in grids]
            res.expected.update({"p1_min": _r(lo), "p50": [_r(min(p50)), _r(max(p50))], "p99_max": _r(hi)})
            res.detail = {"low": lo, "high": hi, "median": float(np.median(p50))}
            results.append(res)
        lengths = [s["length"] for s in ref if "length" in s]
        if "length" in cur and "categories" not in cur and len(lengths) >= MIN_REFERENCE:
            res = _distance_check(
                name, "length_shift", cur["length"], lengths, ks_from_quantiles, _pool_grids, KS_FLOOR, "ks"
            )
            res.observed["length_p50"] = _r(cur["length"][4])
            results.append(res)
        cats = [s["categories"] for s in ref if "categories" in s]
        if "categories" in cur and len(cats) >= MIN_REFERENCE:
            res = _distance_check(
                name, "category_shift", cur["categories"], cats, total_variation, _pool_shares, TVD_FLOOR, "tvd"
            )
            known = {c for m in cats for c in m}
            new = {c: s for c, s in cur["categories"].items() if c not in known and s >= NEW_CATEGORY_SHARE}
            pooled = _pool_shares(cats)
            if new:
                res.observed["new"] = new
                res.fired = True
            shifted = max(cur["categories"], key=lambda c: cur["categories"][c] - pooled.get(c, 0.0))
            res.detail = {"category": shifted}
            results.append(res)
    results.extend(_prediction_checks(profile.get("prediction", {}), [r.get("prediction", {}) for r in reference]))
    return results


def _prediction_checks(cur: dict, ref: list[dict]) -> list[CheckResult]:
    out = []
    mixes = [r["classes"] for r in ref if r.get("classes")]
    if cur.get("classes") and len(mixes) >= MIN_REFERENCE:
        res = _distance_check(
            "prediction", "class_mix", cur["classes"], mixes, total_variation, _pool_shares, TVD_FLOOR, "tvd"
        )
        pooled = _pool_shares(mixes)
        res.observed["classes"] = cur["classes"]
        res.expected["classes"] = {k: _r(v) for k, v in pooled.items()}
        res.detail = {"label": max(cur["classes"], key=lambda c: cur["classes"][c] - pooled.get(c, 0.0))}
        out.append(res)
    confs = [r["confidence"] for r in ref if "confidence" in r]
    if "confidence" in cur and len(confs) >= MIN_REFERENCE:
        out.append(
            _scalar_check("prediction", "confidence_drop", cur["confidence"], confs, CONFIDENCE_FLOOR, low_only=True)
        )
    return out


# ---------------------------------------------------------------- examples
def example_rows(batch: Batch, result: CheckResult, limit: int = 5) -> list[str]:
    """External ids of a few rows of the batch that show what the check found."""
    n = len(batch.external_ids)
    col = batch.columns.get(result.field)
    mask = None
    if result.check in ("missing_field",):
        mask = pd.Series(True, index=range(n))
    elif col is not None and result.check in ("new_field",):
        mask = col.notna()
    elif col is not None and result.check == "missing_share":
        mask = col.isna()
    elif col is not None and result.check == "type_change":
        want = result.detail.get("type")
        mask = col.notna() & (col.map(_value_kind) != want)
    elif col is not None and result.check == "category_shift":
        new = list((result.observed.get("new") or {}).keys()) or [result.detail.get("category")]
        mask = col.isin(new)
    elif col is not None and result.check == "numeric_shift":
        values = pd.to_numeric(col, errors="coerce")
        mask = (values < result.detail["low"]) | (values > result.detail["high"])
        if not mask.any():
            far = (values - result.detail["median"]).abs().nlargest(limit).index
            mask = pd.Series(False, index=range(n))
            mask[far] = True
    elif col is not None and result.check == "length_shift":
        mask = col.notna()
    elif result.check == "class_mix":
        mask = batch.labels == result.detail.get("label")
    elif result.check == "confidence_drop":
        idx = batch.confidence.dropna().nsmallest(limit).index
        mask = pd.Series(False, index=range(n))
        mask[idx] = True
    if mask is None:
        return batch.external_ids[:limit]
    idx = np.flatnonzero(mask.fillna(False).to_numpy(dtype=bool))[:limit]
    return [batch.external_ids[i] for i in idx]
