"""Rollups behind the feedback-delay report: counts, never one row per prediction.

FeedbackDelayBin counts predictions with ground truth (model version x channel of the first truth x
UTC prediction day x delay bucket); FeedbackBacklogBin those still waiting (model version x UTC
hour). Both are recomputed a prediction day at a time from the base tables, so a recompute is
idempotent. Days to recompute come from ingestion's FeedbackDirtyDay marks and from the label
history (LabelChange.seq, commit-ordered per project, past the state's cursor). A refresh holds the
project's FeedbackState row lock; a daily reconcile marks any day whose counts drifted. Long because
the PostgreSQL statement and its portable twin (the SQLite demo) compute the same bins side by side.

Raw SQL: on PostgreSQL one statement per day range scans the predictions once and inserts both kinds
of bins (data-modifying CTEs, DISTINCT ON, width_bucket), which the ORM cannot say.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial

from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from common.db import is_postgres
from common.db.locks import lock_rows
from common.db.sql import execute_many, table
from labeling.models import (
    HUMAN_CHANNEL,
    IMPORTED_CHANNEL,
    FeedbackBacklogBin,
    FeedbackDelayBin,
    FeedbackDirtyDay,
    FeedbackState,
    GroundTruth,
    GroundTruthMethod,
    Item,
    LabelChange,
    LabelClass,
    Prediction,
)
from labeling.services.work import enqueue
from labeling.stats import survival

log = logging.getLogger(__name__)

# Beyond this many new label changes a refresh recomputes everything in one statement.
FULL_REBUILD_CHANGES = 200_000
# Dirty days closer than this are recomputed as one range (one statement instead of several).
RUN_GAP_DAYS = 3
# When a refresh touches at least this share of the project's prediction days (and more than a few),
# it recomputes everything in one pass: day ranges look up each item's first label change one by one.
FULL_REBUILD_DAY_SHARE = 0.5
FULL_REBUILD_MIN_DAYS = 14


@dataclass(frozen=True)
class RefreshResult:
    days: int
    full: bool
    label_seq: int


def _utc_day(value: datetime) -> date:
    return value.astimezone(UTC).date()


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def channel_of(method: str, source: str) -> str:
    """Where the first ground truth of an item came from: ``human`` for annotators and reviewers,
    otherwise the import's source (``imported`` when it named none)."""
    if method != GroundTruthMethod.IMPORTED:
        return HUMAN_CHANNEL
    return (source or IMPORTED_CHANNEL)[:64]


def feedback_days_mark(*, project_id: int, times) -> int:
    """Mark the UTC days of these prediction times for recompute (call inside the writer's transaction).

    The mark is an upsert that takes the row lock, so a refresh deleting it waits for the writer to
    commit and then sees its rows."""
    days = sorted({_utc_day(t) for t in times if t is not None})
    if not days:
        return 0
    now = timezone.now()
    FeedbackDirtyDay.objects.bulk_create(
        [FeedbackDirtyDay(project_id=project_id, day=d, marked_at=now) for d in days],
        update_conflicts=True,
        unique_fields=["project", "day"],
        update_fields=["marked_at"],
    )
    feedback_refresh_on_commit(project_id)
    return len(days)


# A short delay coalesces bursts (a reviewer resolving items one after another, several import
# batches): the first refresh to run takes every change so far, the ones after it find nothing to do.
REFRESH_COUNTDOWN_SECONDS = 10
REFRESH_TASK = "loupe.feedback_refresh"  # labeling.tasks.feedback_refresh


def feedback_refresh_enqueue(project_id: int) -> None:
    """Send the refresh task (after the countdown). A broker failure is recorded for the work sweep,
    and the label history lets the periodic check catch up anyway."""
    enqueue(REFRESH_TASK, project_id, countdown=REFRESH_COUNTDOWN_SECONDS)


def feedback_refresh_on_commit(project_id: int) -> None:
    """`feedback_refresh_enqueue` once the current transaction commits."""
    transaction.on_commit(partial(feedback_refresh_enqueue, project_id))


def feedback_state_lock(project_id: int) -> FeedbackState:
    FeedbackState.objects.get_or_create(project_id=project_id)
    return FeedbackState.objects.select_for_update().get(project_id=project_id)


@transaction.atomic
def feedback_rollup_refresh(*, project_id: int, full: bool = False) -> RefreshResult:
    """Bring the project's bins up to date with its predictions and label history."""
    state = feedback_state_lock(project_id)
    last = LabelChange.objects.filter(project_id=project_id).aggregate(m=Max("seq"))["m"] or 0
    full = full or state.buckets_version != survival.BUCKETS_VERSION or last - state.label_seq > FULL_REBUILD_CHANGES
    dirty = FeedbackDirtyDay.objects.filter(pk__in=lock_rows(FeedbackDirtyDay.objects.filter(project_id=project_id)))
    marked = set(dirty.values_list("day", flat=True))
    if marked:
        dirty.delete()
    if full:
        _recompute(project_id, None)
        days = -1
    else:
        touched = set()
        if last > state.label_seq:
            changed_items = LabelChange.objects.filter(
                project_id=project_id, seq__gt=state.label_seq, seq__lte=last
            ).values("item_id")
            touched = set(
                Prediction.objects.filter(item_id__in=changed_items)
                .annotate(day=TruncDate("predicted_at", tzinfo=UTC))
                .values_list("day", flat=True)
                .distinct()
            )
        todo = sorted(marked | touched)
        if len(todo) > FULL_REBUILD_MIN_DAYS and len(todo) >= FULL_REBUILD_DAY_SHARE * _rolled_days(project_id):
            _recompute(project_id, None)  # most days changed: one full pass is cheaper than day ranges
            full = True
        elif todo:
            _recompute(project_id, todo)
        days = len(todo)
    state.label_seq = last
    state.buckets_version = survival.BUCKETS_VERSION
    state.refreshed_at = timezone.now()
    state.save(update_fields=["label_seq", "buckets_version", "refreshed_at"])
    return RefreshResult(days=days, full=full, label_seq=last)


def _rolled_days(project_id: int) -> int:
    """How many prediction days the project's bins cover (labeled or waiting)."""
    days = set(FeedbackDelayBin.objects.filter(project_id=project_id).values_list("pred_day", flat=True).distinct())
    days |= set(
        FeedbackBacklogBin.objects.filter(project_id=project_id)
        .annotate(day=TruncDate("pred_hour", tzinfo=UTC))
        .values_list("day", flat=True)
        .distinct()
    )
    return len(days)


def feedback_rollup_rebuild(*, project_id: int) -> RefreshResult:
    return feedback_rollup_refresh(project_id=project_id, full=True)


@transaction.atomic
def feedback_rollup_reconcile(*, project_id: int) -> list[date]:
    """Compare per-day prediction and labeled counts with the bins; mark every day that drifted."""
    base = defaultdict(lambda: [0, 0])
    qs = (
        Prediction.objects.filter(item__project_id=project_id)
        .annotate(day=TruncDate("predicted_at", tzinfo=UTC))
        .values_list("day")
        .annotate(t_n=Count("id"), t_labeled=Count("id", filter=Q(item__ground_truth__isnull=False)))
    )
    for day, n, labeled in qs:
        base[day] = [n, labeled]
    rolled = defaultdict(lambda: [0, 0])
    for day, n in FeedbackDelayBin.objects.filter(project_id=project_id).values_list("pred_day").annotate(t_n=Sum("n")):
        rolled[day][0] += n
        rolled[day][1] += n
    for hour, n in (
        FeedbackBacklogBin.objects.filter(project_id=project_id).values_list("pred_hour").annotate(t_n=Sum("n"))
    ):
        rolled[_utc_day(hour)][0] += n
    drifted = sorted(d for d in set(base) | set(rolled) if base.get(d, [0, 0]) != rolled.get(d, [0, 0]))
    if drifted:
        log.warning(
            "feedback rollups of project %s drifted on %d day(s): %s",
            project_id,
            len(drifted),
            ", ".join(d.isoformat() for d in drifted[:10]),
        )
        now = timezone.now()
        FeedbackDirtyDay.objects.bulk_create(
            [FeedbackDirtyDay(project_id=project_id, day=d, marked_at=now) for d in drifted],
            update_conflicts=True,
            unique_fields=["project", "day"],
            update_fields=["marked_at"],
        )
    return drifted


# --- recompute ---------------------------------------------------------------------------------


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days -> inclusive ranges, merging gaps of up to RUN_GAP_DAYS."""
    runs = []
    for d in days:
        if runs and (d - runs[-1][1]).days <= RUN_GAP_DAYS:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return [(a, b) for a, b in runs]


def _recompute(project_id: int, days: list[date] | None) -> None:
    ranges = [None] if days is None else _runs(days)
    for rng in ranges:
        delay_qs = FeedbackDelayBin.objects.filter(project_id=project_id)
        backlog_qs = FeedbackBacklogBin.objects.filter(project_id=project_id)
        if rng is not None:
            lo, hi = _day_start(rng[0]), _day_start(rng[1] + timedelta(days=1))
            delay_qs = delay_qs.filter(pred_day__gte=rng[0], pred_day__lte=rng[1])
            backlog_qs = backlog_qs.filter(pred_hour__gte=lo, pred_hour__lt=hi)
        delay_qs.delete()
        backlog_qs.delete()
        if is_postgres():
            _recompute_postgres(project_id, rng)
        else:
            _recompute_portable(project_id, rng)


def _recompute_postgres(project_id: int, rng) -> None:
    """One statement per range: scan the predictions once, insert both kinds of bins."""
    # For this transaction only: sorts and hashes in memory; JIT compiling costs more than it saves here.
    execute_many([("SET LOCAL work_mem = '256MB'", ()), ("SET LOCAL jit = off", ()), _postgres_sql(project_id, rng)])


def _postgres_sql(project_id: int, rng) -> tuple[str, dict]:
    params = {
        "project": project_id,
        "edges": list(survival.EDGES),
        "bucket_day": list(survival.BUCKET_DAY),
        "imported": GroundTruthMethod.IMPORTED,
        "human": HUMAN_CHANNEL,
        "imported_channel": IMPORTED_CHANNEL,
    }
    keys = list(LabelClass.objects.filter(project_id=project_id).values_list("key", flat=True))
    if keys:  # the max over the project's labels, read by key: far cheaper than expanding the object
        params.update({f"k{i}": k for i, k in enumerate(keys)})
        conf = "GREATEST(" + ", ".join(f"(p.probabilities ->> %(k{i})s)::float8" for i in range(len(keys))) + ")"
    else:
        conf = "(SELECT max(e.value::float8) FROM jsonb_each_text(p.probabilities) AS e)"
    time_filter = scope = ""
    if rng is not None:
        scope = "AND lc.item_id IN (SELECT item_id FROM labeled)"  # a full rebuild reads them all instead
        params["lo"], params["hi"] = _day_start(rng[0]), _day_start(rng[1] + timedelta(days=1))
        time_filter = "AND p.predicted_at >= %(lo)s AND p.predicted_at < %(hi)s"
    t = {
        "pred": table(Prediction),
        "item": table(Item),
        "gt": table(GroundTruth),
        "lc": table(LabelChange),
        "delay": table(FeedbackDelayBin),
        "backlog": table(FeedbackBacklogBin),
    }
    sql = f"""
    WITH sp AS MATERIALIZED (
        SELECT p.item_id, p.model_version, p.label, p.predicted_at,
               CASE WHEN jsonb_typeof(p.probabilities) = 'object' THEN {conf} END AS conf
        FROM {t["pred"]} p JOIN {t["item"]} i ON i.id = p.item_id
        WHERE i.project_id = %(project)s {time_filter}
    ), labeled AS (
        SELECT sp.*, gt.label AS gt_label, gt.first_arrived_at, gt.method AS gt_method, gt.source AS gt_source
        FROM sp JOIN {t["gt"]} gt ON gt.item_id = sp.item_id
    ), first_change AS (
        SELECT DISTINCT ON (lc.item_id) lc.item_id, lc.method, lc.source
        FROM {t["lc"]} lc
        WHERE lc.project_id = %(project)s {scope}
        ORDER BY lc.item_id, lc.seq
    ), binned AS (
        SELECT l.*,
               width_bucket(GREATEST(EXTRACT(EPOCH FROM l.first_arrived_at - l.predicted_at), 0)::float8,
                            %(edges)s::float8[]) AS wb,
               CASE WHEN COALESCE(fc.method, l.gt_method) = %(imported)s
                    THEN LEFT(COALESCE(NULLIF(CASE WHEN fc.item_id IS NULL THEN l.gt_source ELSE fc.source END, ''),
                                       %(imported_channel)s), 64)
                    ELSE %(human)s END AS channel
        FROM labeled l LEFT JOIN first_change fc ON fc.item_id = l.item_id
    ), ins_delay AS (
        INSERT INTO {t["delay"]} (project_id, model_version, channel, pred_day, bucket, delay_day, n, n_correct,
                                  n_conf, sum_conf, sum_conf_sq)
        SELECT %(project)s, model_version, channel, (predicted_at AT TIME ZONE 'UTC')::date, wb - 1,
               (%(bucket_day)s::int[])[wb], count(*), count(*) FILTER (WHERE gt_label = label),
               count(conf), COALESCE(sum(conf), 0), COALESCE(sum(conf * conf), 0)
        FROM binned GROUP BY model_version, channel, (predicted_at AT TIME ZONE 'UTC')::date, wb
        RETURNING 1
    ), ins_backlog AS (
        INSERT INTO {t["backlog"]} (project_id, model_version, pred_hour, n, sum_offset, oldest_at, n_conf,
                                    sum_conf, sum_conf_sq)
        SELECT %(project)s, sp.model_version, date_trunc('hour', sp.predicted_at, 'UTC'), count(*),
               sum(EXTRACT(EPOCH FROM sp.predicted_at - date_trunc('hour', sp.predicted_at, 'UTC'))),
               min(sp.predicted_at), count(sp.conf), COALESCE(sum(sp.conf), 0), COALESCE(sum(sp.conf * sp.conf), 0)
        FROM sp WHERE NOT EXISTS (SELECT 1 FROM {t["gt"]} gt WHERE gt.item_id = sp.item_id)
        GROUP BY sp.model_version, date_trunc('hour', sp.predicted_at, 'UTC')
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ins_delay), (SELECT count(*) FROM ins_backlog)
    """
    return sql, params


def _confidence(probabilities):
    if isinstance(probabilities, dict) and probabilities:
        try:
            return float(max(probabilities.values()))
        except (TypeError, ValueError):
            return None
    return None


def _recompute_portable(project_id: int, rng) -> None:
    """The same bins computed in Python (SQLite and other backends: the demo's scale)."""
    qs = Prediction.objects.filter(item__project_id=project_id)
    if rng is not None:
        qs = qs.filter(predicted_at__gte=_day_start(rng[0]), predicted_at__lt=_day_start(rng[1] + timedelta(days=1)))
    rows = list(
        qs.values_list(
            "item_id",
            "model_version",
            "label",
            "probabilities",
            "predicted_at",
            "item__ground_truth__label",
            "item__ground_truth__first_arrived_at",
            "item__ground_truth__method",
            "item__ground_truth__source",
        )
    )
    labeled_items = sorted({r[0] for r in rows if r[6] is not None})
    first = {}
    for start in range(0, len(labeled_items), 5000):
        chunk = labeled_items[start : start + 5000]
        for item_id, method, source in (
            LabelChange.objects.filter(project_id=project_id, item_id__in=chunk)
            .order_by("item_id", "seq")
            .values_list("item_id", "method", "source")
        ):
            first.setdefault(item_id, (method, source))
    delay_bins, backlog_bins = {}, {}
    labeled_rows = [r for r in rows if r[6] is not None]
    buckets = survival.bucket_of([(r[6] - r[4]).total_seconds() for r in labeled_rows]) if labeled_rows else []
    for r, b in zip(labeled_rows, buckets):
        item_id, mv, label, probs, at, gt_label, arrived, gt_method, gt_source = r
        method, source = first.get(item_id, (gt_method, gt_source))
        key = (mv, channel_of(method, source), _utc_day(at), int(b))
        acc = delay_bins.setdefault(key, [0, 0, 0, 0.0, 0.0])
        conf = _confidence(probs)
        acc[0] += 1
        acc[1] += int(gt_label == label)
        if conf is not None:
            acc[2] += 1
            acc[3] += conf
            acc[4] += conf * conf
    for r in rows:
        if r[6] is not None:
            continue
        at = r[4].astimezone(UTC)
        hour = at.replace(minute=0, second=0, microsecond=0)
        acc = backlog_bins.setdefault((r[1], hour), [0, 0.0, at, 0, 0.0, 0.0])
        conf = _confidence(r[3])
        acc[0] += 1
        acc[1] += (at - hour).total_seconds()
        acc[2] = min(acc[2], at)
        if conf is not None:
            acc[3] += 1
            acc[4] += conf
            acc[5] += conf * conf
    FeedbackDelayBin.objects.bulk_create(
        [
            FeedbackDelayBin(
                project_id=project_id,
                model_version=mv,
                channel=ch,
                pred_day=day,
                bucket=b,
                delay_day=survival.BUCKET_DAY[b],
                n=a[0],
                n_correct=a[1],
                n_conf=a[2],
                sum_conf=a[3],
                sum_conf_sq=a[4],
            )
            for (mv, ch, day, b), a in delay_bins.items()
        ],
        batch_size=2000,
    )
    FeedbackBacklogBin.objects.bulk_create(
        [
            FeedbackBacklogBin(
                project_id=project_id,
                model_version=mv,
                pred_hour=hour,
                n=a[0],
                sum_offset=a[1],
                oldest_at=a[2],
                n_conf=a[3],
                sum_conf=a[4],
                sum_conf_sq=a[5],
            )
            for (mv, hour), a in backlog_bins.items()
        ],
        batch_size=2000,
    )


def bins_snapshot(project_id: int) -> tuple[list, list]:
    """Every bin of a project as comparable tuples (tests compare the two recompute paths)."""
    delay = sorted(
        (mv, ch, day, b, dd, n, c, nc, round(s, 6), round(s2, 6))
        for mv, ch, day, b, dd, n, c, nc, s, s2 in FeedbackDelayBin.objects.filter(project_id=project_id).values_list(
            "model_version",
            "channel",
            "pred_day",
            "bucket",
            "delay_day",
            "n",
            "n_correct",
            "n_conf",
            "sum_conf",
            "sum_conf_sq",
        )
    )
    backlog = sorted(
        (mv, h, n, round(o, 3), old, nc, round(s, 6), round(s2, 6))
        for mv, h, n, o, old, nc, s, s2 in FeedbackBacklogBin.objects.filter(project_id=project_id).values_list(
            "model_version", "pred_hour", "n", "sum_offset", "oldest_at", "n_conf", "sum_conf", "sum_conf_sq"
        )
    )
    return delay, backlog
