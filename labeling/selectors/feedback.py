"""Reads for the feedback-delay report: a few GROUP BY queries over the rollups (never one row per
prediction), then Kaplan-Meier, coverage, cohorts, backlog, SLO, staffing and live performance
in numpy.

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

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

import numpy as np
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date

from common.db import is_postgres
from common.db.sql import execute, fetchall, table
from common.errors import ValidationFailed
from common.timestamps import OutOfRange, check_day, parse_timestamp
from labeling.models import (
    HUMAN_CHANNEL,
    IMPORTED_CHANNEL,
    Annotation,
    FeedbackBacklogBin,
    FeedbackDelayBin,
    FeedbackState,
    GroundTruthObservation,
    Item,
    ItemStatus,
    Project,
)
from labeling.stats import survival

DAY = survival.DAY
QUERY_PARAMS = ("since", "until", "model_version", "source")
COHORT_MAX_DAYS = 56
COVERAGE_MAX_AGE = 365
STAFFING_WINDOW_DAYS = 7
ANNOTATION_SAMPLE = 2000
Z95 = 1.959964


@dataclass(frozen=True)
class DelayFilters:
    since: date | None = None
    until: date | None = None
    model_version: str | None = None
    source: str | None = None

    def as_query(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.__dict__.items() if v}


def _parse_day(value: str, *, field: str) -> date:
    value = value.strip()
    try:
        day = parse_date(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is not None:
        return check_day(day, field=field)
    try:
        return parse_timestamp(value, field=field).astimezone(dt_timezone.utc).date()
    except OutOfRange:
        raise
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 date (2026-03-01) or date-time.")


def feedback_model_versions(*, project) -> list[str]:
    versions = set(FeedbackDelayBin.objects.filter(project=project).values_list("model_version", flat=True).distinct())
    versions |= set(FeedbackBacklogBin.objects.filter(project=project).values_list("model_version", flat=True).distinct())
    return sorted(versions)


def feedback_sources(*, project) -> list[str]:
    seen = set(FeedbackDelayBin.objects.filter(project=project).values_list("channel", flat=True).distinct())
    return [HUMAN_CHANNEL, IMPORTED_CHANNEL] + sorted(seen - {HUMAN_CHANNEL, IMPORTED_CHANNEL})


def feedback_filters_parse(*, project, params, allow_unknown: bool = False) -> DelayFilters:
    """Query parameters -> DelayFilters; ValidationFailed (400) naming every bad parameter."""
    errors = {}
    if not allow_unknown:
        for key in sorted(set(params) - set(QUERY_PARAMS)):
            errors[key] = [f"Unknown parameter; use {', '.join(QUERY_PARAMS)}."]
    values = {}
    for key in QUERY_PARAMS:
        got = params.getlist(key) if hasattr(params, "getlist") else ([params[key]] if key in params else [])
        if len(got) > 1:
            errors[key] = ["Give this parameter at most once."]
        values[key] = (got[0] or "").strip() if got else ""
    days = {}
    for key in ("since", "until"):
        if values[key]:
            try:
                days[key] = _parse_day(values[key], field=key)
            except ValueError as exc:
                errors[key] = [str(exc)]
    if "since" in days and "until" in days and days["since"] > days["until"]:
        errors["until"] = ["until must not be before since."]
    mv, source = values["model_version"] or None, values["source"] or None
    if mv is not None and "model_version" not in errors:
        if len(mv) > 128 or mv not in feedback_model_versions(project=project):
            errors["model_version"] = [f"Unknown model version {mv[:60]!r} in this project."]
    if source is not None and "source" not in errors:
        known = feedback_sources(project=project)
        if source not in known:
            errors["source"] = [f"Unknown source {source[:60]!r}; known: {', '.join(known)}."]
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"{first}: {errors[first][0]}", fields=errors)
    return DelayFilters(days.get("since"), days.get("until"), mv, source)


# --- reading the rollups -----------------------------------------------------------------------

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _sql_day(column: str) -> str:
    """A date column as whole days since 1970-01-01 (no date objects to build in Python)."""
    if is_postgres():
        return f"({column} - DATE '1970-01-01')"
    return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"


def _sql_epoch(column: str) -> str:
    if is_postgres():
        return f"EXTRACT(EPOCH FROM {column})::float8"
    return f"CAST(strftime('%%s', {column}) AS REAL)"


def _rows(sql: str, params: list, width: int) -> np.ndarray:
    rows = fetchall(sql, params)
    return np.array(rows, dtype=float).reshape(-1, width) if rows else np.zeros((0, width))


def _read(project, f: DelayFilters):
    """Three GROUP BY queries over the bins, fetched as plain numbers (tens of thousands of rows at
    most: prediction days x whole days of delay), plus a sample of annotation times."""
    delay_t, backlog_t = table(FeedbackDelayBin), table(FeedbackBacklogBin)
    where, params = ["project_id = %s"], [project.pk]
    if f.since:
        where.append("pred_day >= %s")
        params.append(f.since)
    if f.until:
        where.append("pred_day <= %s")
        params.append(f.until)
    if f.model_version:
        where.append("model_version = %s")
        params.append(f.model_version)
    if f.source:  # truth from the chosen channel counts; the rest is "other"
        src, src_params = "CASE WHEN channel = %s THEN {} ELSE 0 END", [f.source]
        other, other_params = "CASE WHEN channel = %s THEN 0 ELSE {} END", [f.source]
    else:
        src, src_params, other, other_params = "{}", [], "0", []
    cond = " AND ".join(where)
    by_bucket = _rows(
        f"SELECT bucket, SUM(n), SUM({src.format('n')}) FROM {delay_t} WHERE {cond} GROUP BY bucket",
        src_params + params, 3,
    )
    by_day = _rows(
        f"""SELECT {_sql_day('pred_day')}, delay_day, SUM(n), SUM({src.format('n')}), SUM({src.format('n_correct')}),
                   SUM({other.format('n_conf')}), SUM({other.format('sum_conf')}), SUM({other.format('sum_conf_sq')})
            FROM {delay_t} WHERE {cond} GROUP BY pred_day, delay_day""",
        src_params * 2 + other_params * 3 + params, 8,
    )
    where_b, params_b = ["project_id = %s"], [project.pk]
    if f.since:
        where_b.append("pred_hour >= %s")
        # adapt_datetimefield_value: the text SQLite stores ("YYYY-MM-DD HH:MM:SS"), so that the 00:00
        # bin compares equal to the bound (sqlite3's own adapter appends "+00:00" and sorts after it).
        params_b.append(connection.ops.adapt_datetimefield_value(datetime.combine(f.since, time.min, tzinfo=dt_timezone.utc)))
    if f.until:
        where_b.append("pred_hour < %s")
        params_b.append(connection.ops.adapt_datetimefield_value(
            datetime.combine(f.until + timedelta(days=1), time.min, tzinfo=dt_timezone.utc)))
    if f.model_version:
        where_b.append("model_version = %s")
        params_b.append(f.model_version)
    backlog = _rows(
        f"""SELECT {_sql_epoch('pred_hour')}, SUM(n), SUM(sum_offset), MIN({_sql_epoch('oldest_at')}), SUM(n_conf),
                   SUM(sum_conf), SUM(sum_conf_sq)
            FROM {backlog_t} WHERE {' AND '.join(where_b)} GROUP BY pred_hour""",
        params_b, 7,
    )
    seconds = list(
        Annotation.objects.filter(project=project, seconds_spent__gt=0)
        .order_by("-id").values_list("seconds_spent", flat=True)[:ANNOTATION_SAMPLE]
    )
    return by_bucket, by_day, backlog, seconds


class _Snapshot:
    """All reads of one report from one snapshot on PostgreSQL (a refresh may commit between them)."""

    def __enter__(self):
        self.atomic = None
        if is_postgres():
            if not connection.in_atomic_block:
                self.atomic = transaction.atomic()
                self.atomic.__enter__()
                execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            execute("SET LOCAL jit = off")  # small aggregates: compiling costs more than it saves
        return self

    def __exit__(self, *exc):
        if self.atomic is not None:
            return self.atomic.__exit__(*exc)
        return False


def _r(x, digits=4):
    return None if x is None else round(float(x), digits)


# --- the report --------------------------------------------------------------------------------

def feedback_delay_report(*, project: Project, filters: DelayFilters, now: datetime | None = None,
                          charts: bool = False) -> dict:
    now = now or timezone.now()
    with _Snapshot():
        by_bucket, by_day, backlog, seconds = _read(project, filters)
    return _compute(project, filters, now, by_bucket, by_day, backlog, seconds, charts=charts)


def feedback_slo_measure(*, project: Project, filters: DelayFilters, now: datetime) -> dict:
    return feedback_delay_report(project=project, filters=filters, now=now)["slo"]


def _compute(project, f, now, by_bucket, by_day, backlog, seconds, *, charts):
    cutoff = now.timestamp()
    cutoff_ord = now.astimezone(dt_timezone.utc).date().toordinal()

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
    slo = {"quantile": q, "target_seconds": target, "observed_seconds": _r(observed, 1), "breached": breached,
           "fraction_within_target": _r(survival.cdf_at(km, target)) if predictions else None}

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
            start_last = datetime.fromordinal(last_day).replace(tzinfo=dt_timezone.utc).timestamp()
            complete = int(min(max(math.floor((cutoff - start_last) / DAY) - 1, 0), COHORT_MAX_DAYS))
            hist = np.bincount(np.minimum(l_dd[wl], COHORT_MAX_DAYS), weights=l_src[wl], minlength=COHORT_MAX_DAYS + 1)
            cum = np.cumsum(hist)
            week = date.fromordinal(w).isoformat()
            cohorts.append({"week": week, "predictions": int(n_w),
                            "fraction_labeled_by_day": [round(cum[d] / n_w, 4) for d in range(complete)]})

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
            live.append({"week": week, "accuracy_on_labeled": _r(acc), "fraction_labeled": round(lab_w / n_w, 4),
                         "estimated_accuracy": _r(est), "interval": interval, "predictions": int(n_w)})

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
            backlog_series = [{"day": date.fromordinal(int(days[i])).isoformat(), "unlabeled": int(waiting[i])}
                              for i in range(first, span) if days[i] <= cutoff_ord]

    unlabeled = int(b_n.sum())
    median_seconds = float(np.median(seconds)) if seconds else None
    apj = int(project.annotations_per_item)
    hours = arrivals_per_day * apj * median_seconds / 3600 if median_seconds is not None else None
    staffing = {
        "arrivals_per_day": round(arrivals_per_day, 2),
        "median_seconds_per_annotation": _r(median_seconds, 1),
        "annotations_per_item": apj,
        "annotator_hours_per_day_needed": _r(hours, 2),
        "days_to_clear_backlog": (round(unlabeled / pace, 1) if pace > 0 else None) if unlabeled else 0.0,
        "labeled_per_day": round(pace, 2),
    }
    report = {
        "predictions": predictions,
        "labeled": labeled,
        "labeled_fraction": _r(labeled / predictions) if predictions else None,
        "delay_seconds": survival.quantiles(km),
        "naive_delay_seconds": survival.quantiles(naive),
        "coverage": coverage,
        "cohorts": cohorts,
        "backlog": {"unlabeled": unlabeled,
                    "oldest_age_seconds": _r(max(cutoff - b_oldest, 0.0), 0) if b_oldest is not None else None},
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


def feedback_slo_state(*, project) -> FeedbackState | None:
    return FeedbackState.objects.filter(project=project).first()


def feedback_attention_counts(*, project) -> dict:
    """What waits for people on the dashboard: items whose imported truth conflicts with a human
    decision ("conflict"), and observations whose item has not been ingested yet ("pending")."""
    return {
        "conflict": Item.objects.filter(project=project, status=ItemStatus.CONFLICT).count(),
        "pending": GroundTruthObservation.objects.filter(project=project, item__isnull=True).count(),
    }
