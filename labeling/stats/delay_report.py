"""The feedback-delay report computed in numpy from the rollups' aggregated rows (Kaplan-Meier,
coverage, cohorts, backlog, SLO, staffing (labeling.stats.staffing), live performance), and live performance split by
deployment stage (`stage_split`) and by a slice field's values (`slice_split`). No database access:
the rows come from labeling.selectors.feedback; `report_compute` states the definitions."""

import math
from datetime import UTC, date, datetime

import numpy as np

from labeling.stats import survival
from labeling.stats.staffing import STAFFING_WINDOW_DAYS, StaffingWork, staffing_compute

DAY = survival.DAY
COHORT_MAX_DAYS = 56
COVERAGE_MAX_AGE = 365
Z95 = 1.959964
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Stages in the order the side-by-side view lists them: what serves traffic first, shadow beside it.
STAGE_ORDER = ("production", "canary", "shadow", "candidate", "retired")
# The slice split shows this many payload values (most predictions first); the rest are one row.
SLICE_VALUES = 50
SLICE_OTHER = "(other)"
SLICE_NONE = "(none)"  # the payload has no such key (or null)


def _r(x, digits=4):
    return None if x is None else round(float(x), digits)


def report_compute(project, f, now, by_bucket, by_day, backlog, seconds, *, charts, work=None):
    """The report (the API's shape) from the rows selectors.feedback reads: `by_bucket` (bucket, n,
    n of the chosen channel), `by_day` (day since 1970, delay_day, n, src, correct, other conf count,
    other sum, other sum of squares), `backlog` (pred_hour epoch, n, sum_offset, oldest epoch, n_conf,
    sum, sum of squares), a sample of annotation `seconds` and the measured `work` per completed item
    (a StaffingWork; see `staffing_compute`); `project` gives the SLO and the configured overlap.

    Definitions (the API documents them too):
    - the cut-off is the time of the request: a prediction without ground truth by then is censored
      at its age; ``since``/``until`` select predictions by their UTC prediction day (both inclusive);
    - delay = first arrival of ground truth - predicted_at (0 when the truth was there first);
    - ``source`` keeps the truth of one channel (``human`` or an import source): truth from other
      channels counts as not arrived (censored at its arrival for Kaplan-Meier). The backlog always
      counts predictions with no ground truth at all;
    - coverage: for predictions whose age today is ``age_days`` whole UTC days, the share labeled now;
    - cohorts: per ISO week of prediction, ``fraction_labeled_by_day[d]`` = share labeled within d+1
      days, listed only while every prediction of the week is at least d+1 days old (a triangle);
    - live performance: accuracy on the predictions with ground truth, and the estimated accuracy of
      the whole week: the correct labeled ones plus, for the others, the model's confidence (the mean
      of its max probability, as confidence-based performance estimation does), with a 95% interval
      from the Poisson-binomial variance sum p(1-p) (assumes calibrated probabilities).
    """
    cutoff = now.timestamp()
    cutoff_ord = now.astimezone(UTC).date().toordinal()

    # labeled rows: (day since 1970, delay_day, n, src, correct, other conf count, other sum, other sum^2)
    L = np.nan_to_num(by_day)
    l_day, l_dd, l_n, l_src, l_correct, l_oconf, l_osum, l_osum2 = (L[:, i] for i in range(8))
    l_day = l_day.astype(int) + EPOCH_ORDINAL
    l_dd = l_dd.astype(int)

    # backlog rows: (pred_hour epoch, n, sum_offset, oldest epoch, n_conf, sum, sum^2)
    B = np.nan_to_num(backlog)
    b_hour, b_n, b_off, b_conf, b_sum, b_sum2 = B[:, 0], B[:, 1], B[:, 2], B[:, 4], B[:, 5], B[:, 6]
    b_oldest = float(B[:, 3].min()) if B.shape[0] else None
    b_day = np.floor(b_hour / DAY).astype(int) + EPOCH_ORDINAL

    predictions = int(l_n.sum() + b_n.sum())
    labeled = int(l_src.sum())

    # Kaplan-Meier over buckets: events = truth of the chosen channel; censored = still waiting (at
    # their age) and truth from other channels (at its arrival).
    events = np.zeros(survival.N_BUCKETS)
    censored = np.zeros(survival.N_BUCKETS)
    if by_bucket.shape[0]:
        idx = by_bucket[:, 0].astype(int)
        np.add.at(events, idx, np.nan_to_num(by_bucket[:, 2]))
        np.add.at(censored, idx, by_bucket[:, 1] - np.nan_to_num(by_bucket[:, 2]))
    if b_n.size:
        mean_t = b_hour + np.divide(b_off, b_n, out=np.zeros_like(b_off), where=b_n > 0)
        np.add.at(censored, survival.bucket_of(cutoff - mean_t), b_n)
    km = survival.km_cdf(events, censored)
    naive = survival.naive_cdf(events)

    # SLO on this selection
    q, target = float(project.slo_quantile), int(project.slo_target_seconds)
    observed = survival.cdf_quantile(km, q)
    last = survival.max_followup_bucket(events, censored)
    followup = survival.EDGES[last + 1] if 0 <= last < survival.N_BUCKETS - 1 else (math.inf if last >= 0 else 0)
    breached = bool(observed > target) if observed is not None else bool(followup > target)
    slo = {
        "quantile": q,
        "target_seconds": target,
        "observed_seconds": _r(observed, 1),
        "breached": breached,
        "fraction_within_target": _r(survival.cdf_at(km, target)) if predictions else None,
    }

    # per-day totals on a dense axis
    all_days = np.concatenate([l_day, b_day]) if (l_day.size or b_day.size) else np.zeros(0, int)
    coverage, cohorts, live, backlog_series = [], [], [], []
    arrivals_per_day = pace = 0.0
    if all_days.size:
        d0 = int(all_days.min())
        d1 = max(int(all_days.max()), cutoff_ord)
        span = d1 - d0 + 1
        tot = np.zeros(span)
        np.add.at(tot, l_day - d0, l_n)
        np.add.at(tot, b_day - d0, b_n)
        lab = np.zeros(span)
        np.add.at(lab, l_day - d0, l_src)
        days = np.arange(d0, d1 + 1)

        # coverage by age (whole UTC days)
        for i in np.nonzero(tot)[0]:
            age = cutoff_ord - int(days[i])
            if 0 <= age <= COVERAGE_MAX_AGE:
                coverage.append({"age_days": age, "fraction_labeled": round(lab[i] / tot[i], 4)})
        coverage.sort(key=lambda c: c["age_days"])

        # weekly cohorts and live performance
        week_of = lambda o: o - (o - 1) % 7  # noqa: E731  (ordinal 1 is a Monday)
        l_week = l_day - (l_day - 1) % 7
        b_week = b_day - (b_day - 1) % 7
        until_ord = f.until.toordinal() if f.until else None
        overall_acc = (l_correct.sum() / labeled) if labeled else None
        for w in sorted({week_of(int(o)) for o in days[np.nonzero(tot)[0]]}):
            wl, wb = l_week == w, b_week == w
            n_w = float(l_n[wl].sum() + b_n[wb].sum())
            if n_w <= 0:
                continue
            last_day = min(w + 6, cutoff_ord, until_ord if until_ord is not None else w + 6)
            start_last = datetime.fromordinal(last_day).replace(tzinfo=UTC).timestamp()
            complete = int(min(max(math.floor((cutoff - start_last) / DAY) - 1, 0), COHORT_MAX_DAYS))
            hist = np.bincount(np.minimum(l_dd[wl], COHORT_MAX_DAYS), weights=l_src[wl], minlength=COHORT_MAX_DAYS + 1)
            cum = np.cumsum(hist)
            week = date.fromordinal(w).isoformat()
            cohorts.append(
                {
                    "week": week,
                    "predictions": int(n_w),
                    "fraction_labeled_by_day": [round(cum[d] / n_w, 4) for d in range(complete)],
                }
            )

            lab_w, correct_w = float(l_src[wl].sum()), float(l_correct[wl].sum())
            acc = correct_w / lab_w if lab_w else None
            unknown_n = n_w - lab_w
            unknown_conf = float(b_conf[wb].sum() + l_oconf[wl].sum())
            s, s2 = float(b_sum[wb].sum() + l_osum[wl].sum()), float(b_sum2[wb].sum() + l_osum2[wl].sum())
            no_conf = max(unknown_n - unknown_conf, 0.0)
            fallback = acc if acc is not None else overall_acc
            if no_conf > 0 and fallback is None:
                est, interval = None, None
            else:
                fb = fallback or 0.0
                est = (correct_w + s + no_conf * fb) / n_w
                half = Z95 * math.sqrt(max(s - s2, 0.0) + no_conf * fb * (1 - fb)) / n_w
                interval = [round(max(est - half, 0.0), 4), round(min(est + half, 1.0), 4)]
            live.append(
                {
                    "week": week,
                    "accuracy_on_labeled": _r(acc),
                    "fraction_labeled": round(lab_w / n_w, 4),
                    "estimated_accuracy": _r(est),
                    "interval": interval,
                    "predictions": int(n_w),
                }
            )

        # staffing window: the last STAFFING_WINDOW_DAYS whole days of the selection
        end = min(cutoff_ord, until_ord + 1) if until_ord is not None else cutoff_ord
        start = end - STAFFING_WINDOW_DAYS
        if f.since:
            start = max(start, f.since.toordinal())
        n_days = max(end - start, 1)
        in_window = (days >= start) & (days < end)
        arrivals_per_day = float(tot[in_window].sum()) / n_days
        arrived_day = l_day + l_dd  # approximate: whole days after the prediction day
        pace = float(l_n[(arrived_day >= start) & (arrived_day < end)].sum()) / n_days

        if charts:
            arrive = np.zeros(span + 1)
            np.add.at(arrive, np.minimum(arrived_day - d0, span), l_n)
            waiting = np.cumsum(tot) - np.cumsum(arrive[:span])
            first = max(0, span - 120)
            backlog_series = [
                {"day": date.fromordinal(int(days[i])).isoformat(), "unlabeled": int(waiting[i])}
                for i in range(first, span)
                if days[i] <= cutoff_ord
            ]

    unlabeled = int(b_n.sum())
    staffing = staffing_compute(
        arrivals_per_day=arrivals_per_day,
        annotation_seconds=seconds,
        work=work or StaffingWork(),
        configured_annotations_per_item=int(project.annotations_per_item),
    )
    staffing["days_to_clear_backlog"] = (round(unlabeled / pace, 1) if pace > 0 else None) if unlabeled else 0.0
    staffing["labeled_per_day"] = round(pace, 2)
    report = {
        "predictions": predictions,
        "labeled": labeled,
        "labeled_fraction": _r(labeled / predictions) if predictions else None,
        "delay_seconds": survival.quantiles(km),
        "naive_delay_seconds": survival.quantiles(naive),
        "coverage": coverage,
        "cohorts": cohorts,
        "backlog": {
            "unlabeled": unlabeled,
            "oldest_age_seconds": _r(max(cutoff - b_oldest, 0.0), 0) if b_oldest is not None else None,
        },
        "slo": slo,
        "staffing": staffing,
        "live_performance": live,
        "filters": f.as_query(),
        "cutoff": now.isoformat(),
    }
    if charts:
        report["charts"] = _charts(km, naive, events, censored, last, backlog_series)
    return report


def _steps(upper, cdf) -> list:
    """Curve points at bucket upper edges, keeping only where the value changes (and the last)."""
    points, prev = [{"x": 0.0, "y": 0.0}], 0.0
    for i, u in enumerate(upper):
        y = round(float(cdf[i]), 4)
        if y != prev or i == len(upper) - 1:
            points.append({"x": round(u / DAY, 4), "y": y})
            prev = y
    return points


def _charts(km, naive, events, censored, last, backlog_series) -> dict:
    upto = max(last, 0) + 1
    edges = survival.EDGES
    upper = [edges[i + 1] if i + 1 < len(edges) else edges[i] for i in range(upto)]
    km_points = _steps(upper, km)
    naive_points = _steps(upper, naive)
    # naive histogram of delays among labeled predictions, in hours or days
    p99 = survival.cdf_quantile(naive, 0.99) or 0.0
    unit, unit_name = (3600, "hours") if p99 < 2 * DAY else (DAY, "days")
    n_bins = int(min(max(math.ceil(p99 / unit) + 1, 1), 72))
    hist = np.zeros(n_bins)
    for i in np.nonzero(events)[0]:
        hist[min(int(edges[i] // unit), n_bins - 1)] += events[i]
    return {
        "km": km_points,
        "naive": naive_points,
        "histogram": {"unit": unit_name, "counts": [int(c) for c in hist]},
        "backlog": backlog_series,
    }


def _wilson(correct: float, n: float) -> list | None:
    """95% Wilson score interval of a proportion (sound at 0, 1 and small n)."""
    if n <= 0:
        return None
    p = correct / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [round(max(centre - half, 0.0), 4), round(min(centre + half, 1.0), 4)]


def _live(predictions, labeled, correct, n_conf=None, sum_conf=None) -> dict:
    out = {
        "predictions": int(predictions),
        "labeled": int(labeled),
        "labeled_fraction": _r(labeled / predictions) if predictions else None,
        "correct": int(correct),
        "accuracy_on_labeled": _r(correct / labeled) if labeled else None,
        "accuracy_interval": _wilson(correct, labeled),
    }
    if n_conf is not None:
        out["mean_confidence"] = _r(sum_conf / n_conf) if n_conf else None
    return out


def stage_split(per_model, stages: dict, listed=None) -> list[dict]:
    """Live performance per deployment stage, and per model version within it, from `per_model` rows
    (model_version, labeled? 1/0, n, n with truth of the chosen channel, correct among them, n_conf,
    sum_conf) and `stages` (registered version -> its current stage).

    accuracy_on_labeled = correct / labeled over the stage's predictions that have ground truth, with a
    95% Wilson interval; mean_confidence = mean max probability over its predictions that carry
    probabilities (null when none do). Every stage holding a registered model version in `listed` (default: all) is
    listed, with zeros when it predicted nothing in the selection; versions with predictions but no registration
    are listed under stage null."""
    acc: dict = {}
    for mv, _is_labeled, n, lab, cor, n_conf, s_conf in per_model:
        a = acc.setdefault(mv, [0.0, 0.0, 0.0, 0.0, 0.0])
        for i, v in enumerate((n, lab, cor, n_conf, s_conf)):
            a[i] += float(v or 0)
    for mv in stages if listed is None else listed:
        acc.setdefault(mv, [0.0, 0.0, 0.0, 0.0, 0.0])
    groups: dict = {}
    for mv, a in acc.items():
        stage = stages.get(mv)
        if stage is None and a[0] == 0:
            continue
        groups.setdefault(stage, []).append((mv, a))
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    out = []
    for stage in sorted(groups, key=lambda s: order.get(s, len(order))):
        rows = sorted(groups[stage], key=lambda r: (-r[1][0], r[0]))
        tot = [sum(a[i] for _, a in rows) for i in range(5)]
        entry = {"stage": stage, **_live(*tot)}
        entry["model_versions"] = [{"model_version": mv, **_live(*a)} for mv, a in rows]
        out.append(entry)
    return out


def slice_split(field: str, rows, stages: dict) -> dict:
    """Live accuracy per value of payload[field] from `rows` (value, model_version, predictions,
    labeled, correct), already capped by the selector to SLICE_VALUES values + SLICE_OTHER: per value
    the totals, then per stage and per model version. Values by predictions, most first; SLICE_OTHER
    last."""
    values: dict = {}
    for value, mv, n, lab, cor in rows:
        v = values.setdefault(value, {"tot": [0.0, 0.0, 0.0], "stage": {}, "mv": {}})
        nums = (float(n or 0), float(lab or 0), float(cor or 0))
        for bucket in (
            v["tot"],
            v["stage"].setdefault(stages.get(mv), [0.0, 0.0, 0.0]),
            v["mv"].setdefault(mv, [0.0] * 3),
        ):
            for i in range(3):
                bucket[i] += nums[i]
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    out = []
    for value in sorted(values, key=lambda k: (k == SLICE_OTHER, -values[k]["tot"][0], k)):
        v = values[value]
        out.append(
            {
                "value": value,
                **_live(*v["tot"]),
                "by_stage": [
                    {"stage": s, **_live(*v["stage"][s])}
                    for s in sorted(v["stage"], key=lambda s: order.get(s, len(order)))
                ],
                "by_model_version": [
                    {"model_version": mv, "stage": stages.get(mv), **_live(*v["mv"][mv])}
                    for mv in sorted(v["mv"], key=lambda m: (-v["mv"][m][0], m))
                ],
            }
        )
    return {"field": field, "values": out, "capped": SLICE_OTHER in values}
