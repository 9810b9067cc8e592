"""Reads for the feedback-delay report: filters parsed from query parameters, and a few GROUP BY
queries over the rollups (never one row per prediction), all from one snapshot; the report itself is
computed from those rows by labeling.stats.delay_report (report_compute gives the definitions).
The live performance is also split by deployment stage (from the rollups, per model version mapped to
its current stage) and, on request, by one declared slice field (one GROUP BY over the predictions,
their items' payload value and their ground truth).

Raw SQL: the GROUP BY reads turn days and times into plain numbers in the database (one expression
for SQLite, another for PostgreSQL), so numpy takes the rows as they come instead of date objects;
the slice split ranks payload values and folds the tail into "(other)" in the same statement
(window functions over a grouped set), which the ORM cannot say.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

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
    GroundTruth,
    GroundTruthMethod,
    GroundTruthObservation,
    Item,
    ItemStatus,
    LabelChange,
    ModelVersion,
    Prediction,
    Project,
    Stage,
)
from labeling.selectors.registry import model_versions_in_stage
from labeling.selectors.staffing import staffing_work
from labeling.stats.delay_report import SLICE_NONE, SLICE_OTHER, SLICE_VALUES, report_compute, slice_split, stage_split
from labeling.stats.staffing import SAMPLE

QUERY_PARAMS = ("since", "until", "model_version", "source", "stage", "slice")


@dataclass(frozen=True)
class DelayFilters:
    since: date | None = None
    until: date | None = None
    model_version: str | None = None
    source: str | None = None
    stage: str | None = None
    slice: str | None = None

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
        return parse_timestamp(value, field=field).astimezone(UTC).date()
    except OutOfRange:
        raise
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 date (2026-03-01) or date-time.")


def feedback_model_versions(*, project) -> list[str]:
    versions = set(FeedbackDelayBin.objects.filter(project=project).values_list("model_version", flat=True).distinct())
    versions |= set(
        FeedbackBacklogBin.objects.filter(project=project).values_list("model_version", flat=True).distinct()
    )
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
    if (
        mv is not None
        and "model_version" not in errors
        and (len(mv) > 128 or mv not in feedback_model_versions(project=project))
    ):
        errors["model_version"] = [f"Unknown model version {mv[:60]!r} in this project."]
    if source is not None and "source" not in errors:
        known = feedback_sources(project=project)
        if source not in known:
            errors["source"] = [f"Unknown source {source[:60]!r}; known: {', '.join(known)}."]
    stage, slice_field = values["stage"] or None, values["slice"] or None
    if stage is not None and "stage" not in errors and stage not in Stage.values:
        errors["stage"] = [f"Unknown stage {stage[:60]!r}; use {', '.join(Stage.values)}."]
    if slice_field is not None and "slice" not in errors:
        declared = list(project.slice_fields or [])
        if not declared:
            errors["slice"] = [
                f"Unknown slice field {slice_field[:60]!r}: this project declares no slice fields; declare "
                f'them with PATCH /api/projects/{project.pk} {{"slice_fields": ["channel", ...]}} or on the '
                "project's page."
            ]
        elif slice_field not in declared:
            errors["slice"] = [f"Unknown slice field {slice_field[:60]!r}; declared: {', '.join(declared)}."]
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"{first}: {errors[first][0]}", fields=errors)
    return DelayFilters(days.get("since"), days.get("until"), mv, source, stage, slice_field)


# --- reading the rollups -----------------------------------------------------------------------


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


def _models_where(f: DelayFilters, in_stage: list[str] | None, column: str = "model_version") -> tuple[list, list]:
    """The model version filter (one version, the versions of one stage, or both) as SQL conditions."""
    where, params = [], []
    if f.model_version:
        where.append(f"{column} = %s")
        params.append(f.model_version)
    if in_stage is not None:
        if in_stage:
            where.append(f"{column} IN ({', '.join(['%s'] * len(in_stage))})")
            params.extend(in_stage)
        else:
            where.append("1 = 0")  # no model version in that stage: nothing to report
    return where, params


def _read(project, f: DelayFilters, in_stage: list[str] | None):
    """Four GROUP BY queries over the bins, fetched as plain numbers (tens of thousands of rows at
    most: prediction days x whole days of delay), plus a sample of annotation times."""
    delay_t, backlog_t = table(FeedbackDelayBin), table(FeedbackBacklogBin)
    where, params = ["project_id = %s"], [project.pk]
    if f.since:
        where.append("pred_day >= %s")
        params.append(f.since)
    if f.until:
        where.append("pred_day <= %s")
        params.append(f.until)
    mw, mp = _models_where(f, in_stage)
    where += mw
    params += mp
    if f.source:  # truth from the chosen channel counts; the rest is "other"
        src, src_params = "CASE WHEN channel = %s THEN {} ELSE 0 END", [f.source]
        other, other_params = "CASE WHEN channel = %s THEN 0 ELSE {} END", [f.source]
    else:
        src, src_params, other, other_params = "{}", [], "0", []
    cond = " AND ".join(where)
    by_bucket = _rows(
        f"SELECT bucket, SUM(n), SUM({src.format('n')}) FROM {delay_t} WHERE {cond} GROUP BY bucket",
        src_params + params,
        3,
    )
    by_day = _rows(
        f"""SELECT {_sql_day("pred_day")}, delay_day, SUM(n), SUM({src.format("n")}), SUM({src.format("n_correct")}),
                   SUM({other.format("n_conf")}), SUM({other.format("sum_conf")}), SUM({other.format("sum_conf_sq")})
            FROM {delay_t} WHERE {cond} GROUP BY pred_day, delay_day""",
        src_params * 2 + other_params * 3 + params,
        8,
    )
    where_b, params_b = ["project_id = %s"], [project.pk]
    if f.since:
        where_b.append("pred_hour >= %s")
        # adapt_datetimefield_value: the text SQLite stores ("YYYY-MM-DD HH:MM:SS"), so that the 00:00
        # bin compares equal to the bound (sqlite3's own adapter appends "+00:00" and sorts after it).
        params_b.append(connection.ops.adapt_datetimefield_value(datetime.combine(f.since, time.min, tzinfo=UTC)))
    if f.until:
        where_b.append("pred_hour < %s")
        params_b.append(
            connection.ops.adapt_datetimefield_value(
                datetime.combine(f.until + timedelta(days=1), time.min, tzinfo=UTC)
            )
        )
    where_b += mw
    params_b += mp
    backlog = _rows(
        f"""SELECT {_sql_epoch("pred_hour")}, SUM(n), SUM(sum_offset), MIN({_sql_epoch("oldest_at")}), SUM(n_conf),
                   SUM(sum_conf), SUM(sum_conf_sq)
            FROM {backlog_t} WHERE {" AND ".join(where_b)} GROUP BY pred_hour""",
        params_b,
        7,
    )
    # per model version: (labeled?, n, n of the chosen channel, correct of it, n_conf, sum_conf) from
    # both kinds of bins in one statement (delay bins: with ground truth; backlog bins: waiting)
    per_model = fetchall(
        f"""SELECT model_version, 1, SUM(n), SUM({src.format("n")}), SUM({src.format("n_correct")}), SUM(n_conf),
                   SUM(sum_conf)
            FROM {delay_t} WHERE {cond} GROUP BY model_version
            UNION ALL
            SELECT model_version, 0, SUM(n), 0, 0, SUM(n_conf), SUM(sum_conf)
            FROM {backlog_t} WHERE {" AND ".join(where_b)} GROUP BY model_version""",
        src_params * 2 + params + params_b,
    )
    seconds = list(
        Annotation.objects.filter(project=project, seconds_spent__gt=0)
        .order_by("-id")
        .values_list("seconds_spent", flat=True)[:SAMPLE]
    )
    return by_bucket, by_day, backlog, per_model, seconds


def _slice_rows(project, f: DelayFilters, in_stage: list[str] | None) -> list[tuple]:
    """(value, model_version, predictions, labeled, correct) per payload value of the slice field x
    model version, in one statement over the predictions in the selection: the SLICE_VALUES values with
    the most predictions, the rest folded into SLICE_OTHER, a missing key (or JSON null) as SLICE_NONE.
    Labeled and correct follow the report: ground truth now (of the chosen channel when ``source``
    is given: the channel of the item's first label change, as the rollups count it)."""
    pred_t, item_t, gt_t, lc_t = table(Prediction), table(Item), table(GroundTruth), table(LabelChange)
    if is_postgres():
        value_sql, value_params = "i.payload ->> %s", [f.slice]
    else:  # the slice field's characters need no escaping inside a quoted JSON path member
        value_sql, value_params = "CAST(json_extract(i.payload, %s) AS TEXT)", [f'$."{f.slice}"']
    where, params = ["i.project_id = %s"], [project.pk]
    if f.since:
        where.append("p.predicted_at >= %s")
        params.append(connection.ops.adapt_datetimefield_value(datetime.combine(f.since, time.min, tzinfo=UTC)))
    if f.until:
        where.append("p.predicted_at < %s")
        params.append(
            connection.ops.adapt_datetimefield_value(
                datetime.combine(f.until + timedelta(days=1), time.min, tzinfo=UTC)
            )
        )
    mw, mp = _models_where(f, in_stage, column="p.model_version")
    where += mw
    params += mp
    first_cte, first_join, first_params = "", "", []
    if f.source:
        # the channel of the item's first label change, as the rollups count it (one pass over the history)
        if is_postgres():
            first_cte = f"""first_change AS (
                SELECT DISTINCT ON (lc.item_id) lc.item_id, lc.method, lc.source FROM {lc_t} lc
                WHERE lc.project_id = %s ORDER BY lc.item_id, lc.seq
            ), """
            first_params = [project.pk]
        else:
            first_cte = f"""first_change AS (
                SELECT lc.item_id, lc.method, lc.source FROM {lc_t} lc
                JOIN (SELECT item_id, MIN(seq) AS seq FROM {lc_t} WHERE project_id = %s GROUP BY item_id) m
                  ON lc.project_id = %s AND lc.seq = m.seq
            ), """
            first_params = [project.pk, project.pk]
        first_join = "LEFT JOIN first_change fc ON fc.item_id = p.item_id"
        has_truth = """(gt.item_id IS NOT NULL AND %s = CASE
            WHEN COALESCE(fc.method, gt.method) = %s
            THEN SUBSTR(COALESCE(NULLIF(CASE WHEN fc.item_id IS NULL THEN gt.source ELSE fc.source END, ''), %s),
                        1, 64)
            ELSE %s END)"""
        truth_params = [f.source, GroundTruthMethod.IMPORTED, IMPORTED_CHANNEL, HUMAN_CHANNEL]
    else:
        has_truth, truth_params = "(gt.item_id IS NOT NULL)", []
    sql = f"""
        WITH {first_cte}base AS (
            SELECT {value_sql} AS v, p.model_version AS mv, {has_truth} AS lab,
                   (gt.label IS NOT NULL AND gt.label = p.label) AS hit
            FROM {pred_t} p JOIN {item_t} i ON i.id = p.item_id LEFT JOIN {gt_t} gt ON gt.item_id = p.item_id
            {first_join}
            WHERE {" AND ".join(where)}
        ), g AS (
            SELECT v, mv, COUNT(*) AS n, SUM(CASE WHEN lab THEN 1 ELSE 0 END) AS n_lab,
                   SUM(CASE WHEN lab AND hit THEN 1 ELSE 0 END) AS n_hit
            FROM base GROUP BY v, mv
        ), ranked AS (
            SELECT v, ROW_NUMBER() OVER (ORDER BY SUM(n) DESC, v) AS rk FROM g WHERE v IS NOT NULL GROUP BY v
        )
        SELECT CASE WHEN g.v IS NULL THEN %s WHEN ranked.rk <= %s THEN g.v ELSE %s END AS value, g.mv,
               SUM(g.n), SUM(g.n_lab), SUM(g.n_hit)
        FROM g LEFT JOIN ranked ON ranked.v = g.v
        GROUP BY 1, 2
    """
    return fetchall(sql, first_params + value_params + truth_params + params + [SLICE_NONE, SLICE_VALUES, SLICE_OTHER])


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


# --- the report --------------------------------------------------------------------------------


def feedback_delay_report(
    *, project: Project, filters: DelayFilters, now: datetime | None = None, charts: bool = False
) -> dict:
    """The report (labeling.stats.delay_report.report_compute), with live performance per stage
    (``live_by_stage``) and, when ``filters.slice`` names a slice field, per value of that payload key
    (``live_by_slice``; null otherwise). ``stage`` filters everything to the model versions now in
    that stage; a model version's stage is its current one, not the one it had when it predicted."""
    now = now or timezone.now()
    with _Snapshot():
        in_stage = model_versions_in_stage(project=project, stage=filters.stage) if filters.stage else None
        stages = dict(ModelVersion.objects.filter(project=project).values_list("version", "stage"))
        by_bucket, by_day, backlog, per_model, seconds = _read(project, filters, in_stage)
        work = staffing_work(project=project)
        slices = _slice_rows(project, filters, in_stage) if filters.slice else None
    report = report_compute(project, filters, now, by_bucket, by_day, backlog, seconds, charts=charts, work=work)
    listed = [
        mv
        for mv in stages
        if (in_stage is None or mv in in_stage) and (not filters.model_version or mv == filters.model_version)
    ]
    report["live_by_stage"] = stage_split(per_model, stages, listed)
    report["live_by_slice"] = slice_split(filters.slice, slices, stages) if filters.slice else None
    return report


def feedback_slo_measure(*, project: Project, filters: DelayFilters, now: datetime) -> dict:
    return feedback_delay_report(project=project, filters=filters, now=now)["slo"]


def feedback_slo_state(*, project) -> FeedbackState | None:
    return FeedbackState.objects.filter(project=project).first()


def feedback_attention_counts(*, project) -> dict:
    """What waits for people on the dashboard: items whose imported truth conflicts with a human
    decision ("conflict"), and observations whose item has not been ingested yet ("pending")."""
    return {
        "conflict": Item.objects.filter(project=project, status=ItemStatus.CONFLICT).count(),
        "pending": GroundTruthObservation.objects.filter(project=project, item__isnull=True).count(),
    }
