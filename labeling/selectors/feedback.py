"""Reads for the feedback-delay report: filters parsed from query parameters, and a few GROUP BY
queries over the rollups (never one row per prediction), all from one snapshot; the report itself is
computed from those rows by labeling.stats.delay_report (report_compute gives the definitions).

Raw SQL: the GROUP BY reads turn days and times into plain numbers in the database (one expression
for SQLite, another for PostgreSQL), so numpy takes the rows as they come instead of date objects.
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
    GroundTruthObservation,
    Item,
    ItemStatus,
    Project,
)
from labeling.stats.delay_report import report_compute

QUERY_PARAMS = ("since", "until", "model_version", "source")
ANNOTATION_SAMPLE = 2000


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
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"{first}: {errors[first][0]}", fields=errors)
    return DelayFilters(days.get("since"), days.get("until"), mv, source)


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
    if f.model_version:
        where_b.append("model_version = %s")
        params_b.append(f.model_version)
    backlog = _rows(
        f"""SELECT {_sql_epoch("pred_hour")}, SUM(n), SUM(sum_offset), MIN({_sql_epoch("oldest_at")}), SUM(n_conf),
                   SUM(sum_conf), SUM(sum_conf_sq)
            FROM {backlog_t} WHERE {" AND ".join(where_b)} GROUP BY pred_hour""",
        params_b,
        7,
    )
    seconds = list(
        Annotation.objects.filter(project=project, seconds_spent__gt=0)
        .order_by("-id")
        .values_list("seconds_spent", flat=True)[:ANNOTATION_SAMPLE]
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


# --- the report --------------------------------------------------------------------------------


def feedback_delay_report(
    *, project: Project, filters: DelayFilters, now: datetime | None = None, charts: bool = False
) -> dict:
    now = now or timezone.now()
    with _Snapshot():
        by_bucket, by_day, backlog, seconds = _read(project, filters)
    return report_compute(project, filters, now, by_bucket, by_day, backlog, seconds, charts=charts)


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
