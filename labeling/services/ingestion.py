"""Idempotent, validated, bulk ingestion of items with their production predictions.

The whole batch is validated before anything is written (labeling.services.rows). Items are
upserted by (project, external_id) and predictions by (item, model_version) with INSERT ... ON
CONFLICT, so re-sending a batch changes nothing and concurrent senders of the same rows do not
collide. Unchanged rows are detected and not written.

Raw SQL: on PostgreSQL the batch is COPYed into a temporary table and one statement compares it with
the stored rows and upserts only what changed, with data-modifying CTEs the ORM cannot express.

A stored batch is then checked against the project's recent batches (labeling.services.data_checks):
its failed checks come back with the result; they never undo or refuse the write. Long because the
portable and the PostgreSQL write paths must give the same answers, and read best side by side.
"""

import json
import math
import struct
from dataclasses import asdict, dataclass, replace
from datetime import datetime

import orjson
from django.db import transaction
from django.utils import timezone

from common.db import is_postgres
from common.db.copy import copy_rows
from common.db.sql import execute, fetchone, table
from common.timestamps import parse_timestamp
from labeling.models import FeedbackDirtyDay, Item, ItemStatus, Prediction, Project
from labeling.selectors.projects import project_label_keys
from labeling.services.data_checks import batch_data_check
from labeling.services.feedback_rollup import feedback_days_mark, feedback_refresh_on_commit
from labeling.services.retry import retry_on_conflict
from labeling.services.rows import batch_check, check_batch_size, rows_parse
from labeling.services.work import enqueue_on_commit

__all__ = ["check_batch_size", "items_ingest", "items_validate", "probability_vector"]

PROB_TOLERANCE = 1e-3


@dataclass
class ParsedPrediction:
    model_version: str
    label: str
    probabilities: dict | None
    predicted_at: datetime
    vector: bytes | None = None  # Prediction.vector: the probabilities in label order


def probability_vector(probabilities: dict | None, label_order: list[str]) -> bytes | None:
    """Prediction.vector for validated probabilities: big-endian float64 in the project's label order."""
    if probabilities is None:
        return None
    return struct.pack(f">{len(label_order)}d", *[float(probabilities[key]) for key in label_order])


@dataclass
class ParsedItem:
    external_id: str
    payload: dict
    priority: int
    prediction: ParsedPrediction | None


@dataclass(frozen=True)
class IngestResult:
    created: int
    updated: int
    unchanged: int
    checks: tuple = ()  # the batch's failed data-quality checks (dicts)

    def as_dict(self):
        return {**asdict(self), "checks": list(self.checks)}


PREDICTION_FIELDS = frozenset({"model_version", "label", "probabilities", "predicted_at"})


def _parse_prediction(raw, label_keys: set, now, label_order: list[str]) -> ParsedPrediction:
    if not isinstance(raw, dict):
        raise ValueError("prediction must be an object.")
    if not PREDICTION_FIELDS.issuperset(raw):
        raise ValueError(f"prediction has unknown fields: {', '.join(sorted(map(str, set(raw) - PREDICTION_FIELDS)))}.")
    mv = raw.get("model_version")
    if not isinstance(mv, str) or not mv.strip() or len(mv) > 128:
        raise ValueError("prediction.model_version must be a non-empty string of at most 128 characters.")
    label = raw.get("label")
    if label not in label_keys:
        raise ValueError(f"prediction.label {label!r} is not a label of this project.")
    probs = raw.get("probabilities")
    if probs is not None:
        if not isinstance(probs, dict):
            raise ValueError("prediction.probabilities must be an object {label_key: p}.")
        if probs.keys() != label_keys:
            missing, extra = label_keys - set(probs), set(probs) - label_keys
            parts = []
            if missing:
                parts.append(f"missing {', '.join(sorted(missing))}")
            if extra:
                parts.append(f"unknown {', '.join(sorted(map(str, extra)))}")
            raise ValueError(f"prediction.probabilities must cover exactly the project's labels ({'; '.join(parts)}).")
        total = 0.0
        for key, p in probs.items():
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0 or p > 1:
                raise ValueError(f"prediction.probabilities[{key!r}] must be a number from 0 to 1.")
            total += p
        if abs(total - 1.0) > PROB_TOLERANCE:
            raise ValueError(f"prediction.probabilities must sum to 1 (±{PROB_TOLERANCE}); they sum to {total:.6f}.")
    predicted_at = raw.get("predicted_at")
    predicted_at = now if predicted_at is None else parse_timestamp(predicted_at, field="prediction.predicted_at")
    return ParsedPrediction(mv, label, probs, predicted_at, probability_vector(probs, label_order))


ITEM_FIELDS = frozenset({"external_id", "payload", "priority", "prediction"})


def items_validate(*, project: Project, rows: list) -> list[ParsedItem]:
    """Validate a whole batch; raise ValidationFailed listing every bad row."""
    batch_check(rows)
    label_order = project_label_keys(project=project)
    label_keys = set(label_order)
    now = timezone.now()
    seen = {}

    def parse_row(i, row) -> ParsedItem:
        if not isinstance(row, dict):
            raise ValueError("row must be an object.")
        if not ITEM_FIELDS.issuperset(row):
            raise ValueError(f"unknown fields: {', '.join(sorted(map(str, set(row) - ITEM_FIELDS)))}.")
        ext = row.get("external_id")
        if isinstance(ext, int) and not isinstance(ext, bool):
            ext = str(ext)
        if not isinstance(ext, str) or not ext.strip() or len(ext) > 255:
            raise ValueError("external_id must be a non-empty string of at most 255 characters.")
        if ext in seen:
            raise ValueError(f"external_id {ext!r} appears twice in this batch (first at row {seen[ext]}).")
        seen[ext] = i
        payload = row.get("payload")
        if not isinstance(payload, dict):
            raise ValueError("payload must be a JSON object.")
        priority = row.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 2**31 - 1:
            raise ValueError("priority must be an integer.")
        pred = row.get("prediction")
        return ParsedItem(
            ext, payload, priority, None if pred is None else _parse_prediction(pred, label_keys, now, label_order)
        )

    return rows_parse(rows, parse_row)


def _uncertainty(pred: ParsedPrediction | None):
    if pred is None or not pred.probabilities:
        return None
    return 1.0 - max(pred.probabilities.values())


def items_ingest(*, project: Project, rows: list, check: bool = True) -> IngestResult:
    """Validate and store a batch, then (unless `check` is False) run its data-quality checks. A batch
    that changed nothing (a client re-sending it) is not checked again: its data was checked when it
    first came, and counting it twice would skew the recent batches it is compared with."""
    parsed = items_validate(project=project, rows=rows)
    result = _write(project=project, parsed=parsed)
    if not check or not (result.created or result.updated):
        return result
    return replace(result, checks=tuple(batch_data_check(project=project, parsed=parsed)))


@retry_on_conflict  # two batches upserting overlapping rows may deadlock: the loser runs again, whole
@transaction.atomic
def _write(*, project: Project, parsed: list[ParsedItem]) -> IngestResult:
    if is_postgres():
        result = _write_postgres(project=project, parsed=parsed)
    else:
        result = _write_portable(project=project, parsed=parsed)
    if result.created:
        # New items join the project's nearest-neighbour index (for mining similar items) after commit.
        enqueue_on_commit(SIMILARITY_INDEX_TASK, project.pk)
    return result


SIMILARITY_INDEX_TASK = "loupe.similarity_index_update"  # labeling.tasks.similarity_index_update_task


def _write_portable(*, project: Project, parsed: list[ParsedItem]) -> IngestResult:
    """Compare with the stored rows in Python, then upsert the changed ones with Django's
    bulk_create(update_conflicts=True) (SQLite and other backends). The delay rollups' days touched
    are marked for recompute."""
    existing = {
        ext: (pk, payload, priority, first_pred)
        for pk, ext, payload, priority, first_pred in Item.objects.filter(
            project=project, external_id__in=[p.external_id for p in parsed]
        )
        .values_list("pk", "external_id", "payload", "priority", "first_predicted_at")
        .iterator(chunk_size=5000)
    }
    existing_preds = {}
    pairs = {(p.external_id, p.prediction.model_version) for p in parsed if p.prediction and p.external_id in existing}
    if pairs:
        for item_id, mv, label, probs, at in Prediction.objects.filter(
            item_id__in=[existing[ext][0] for ext, _ in pairs], model_version__in={mv for _, mv in pairs}
        ).values_list("item_id", "model_version", "label", "probabilities", "predicted_at"):
            existing_preds[(item_id, mv)] = (label, probs, at)

    now = timezone.now()
    item_rows, pred_rows, marked_times = [], [], []
    created = updated = unchanged = 0
    for p in parsed:
        old = existing.get(p.external_id)
        pred = p.prediction
        item_changed = old is None or old[1] != p.payload or old[2] != p.priority
        pred_changed = False
        if pred is not None:
            prev = None if old is None else existing_preds.get((old[0], pred.model_version))
            pred_changed = prev is None or prev != (pred.label, pred.probabilities, pred.predicted_at)
            if pred_changed:
                pred_rows.append(p)
                marked_times.append(pred.predicted_at)
                if prev is not None:
                    marked_times.append(prev[2])  # a moved prediction leaves its old day too
        if not (item_changed or pred_changed):
            unchanged += 1
            continue
        if old is None:
            created += 1
        else:
            updated += 1
        first_pred = old[3] if old else None
        if pred is not None and (first_pred is None or pred.predicted_at < first_pred):
            first_pred = pred.predicted_at
        item_rows.append(
            Item(
                project=project,
                external_id=p.external_id,
                payload=p.payload,
                priority=p.priority,
                required_annotations=project.annotations_per_item,
                queue_order=project.queue_order,
                uncertainty=_uncertainty(pred) if pred_changed else None,
                first_predicted_at=first_pred,
                created_at=now,
                updated_at=now,
            )
        )

    feedback_days_mark(project_id=project.pk, times=marked_times)
    update_fields = ["payload", "priority", "updated_at", "first_predicted_at"]
    # uncertainty follows the newest prediction sent; an item-only update keeps the old value.
    with_unc = [r for r in item_rows if r.uncertainty is not None]
    without = [r for r in item_rows if r.uncertainty is None]
    for group, fields in ((with_unc, update_fields + ["uncertainty"]), (without, update_fields)):
        if group:
            Item.objects.bulk_create(
                group,
                batch_size=2000,
                update_conflicts=True,
                unique_fields=["project", "external_id"],
                update_fields=fields,
            )
    if pred_rows:
        ids = dict(
            Item.objects.filter(project=project, external_id__in=[p.external_id for p in pred_rows]).values_list(
                "external_id", "pk"
            )
        )
        Prediction.objects.bulk_create(
            [
                Prediction(
                    item_id=ids[p.external_id],
                    model_version=p.prediction.model_version,
                    label=p.prediction.label,
                    probabilities=p.prediction.probabilities,
                    vector=p.prediction.vector,
                    predicted_at=p.prediction.predicted_at,
                    created_at=now,
                )
                for p in pred_rows
            ],
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["item", "model_version"],
            update_fields=["label", "probabilities", "vector", "predicted_at"],
        )
    return IngestResult(created, updated, unchanged)


def json_text(value) -> str:
    """JSON text of a parsed value: orjson, or the standard library for integers beyond 64 bits."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


_INGEST_COLUMNS = [
    "ord",
    "external_id",
    "payload",
    "priority",
    "uncertainty",
    "model_version",
    "label",
    "probabilities",
    "vector",
    "predicted_at",
]


def _ingest_rows(parsed: list[ParsedItem]):
    """The batch as rows of the temporary table, in _INGEST_COLUMNS order."""
    dumps = json_text
    for n, p in enumerate(parsed):
        pr = p.prediction
        if pr is None:
            yield (n, p.external_id, dumps(p.payload), p.priority, None, None, None, None, None, None)
        else:
            probs = pr.probabilities
            yield (
                n,
                p.external_id,
                dumps(p.payload),
                p.priority,
                _uncertainty(pr),
                pr.model_version,
                pr.label,
                None if probs is None else dumps(probs),
                pr.vector,
                pr.predicted_at,
            )


def _write_postgres(*, project: Project, parsed: list[ParsedItem]) -> IngestResult:
    """PostgreSQL fast path: COPY the batch into a temporary table, then one statement compares it
    with the stored rows and upserts only what changed (items, predictions, and the delay rollups'
    dirty days, including the old day of a prediction whose time moved). Items are written in the
    batch's order, so ids (the FIFO tie-break) follow the order the sender gave."""
    item_t, pred_t, dirty_t = table(Item), table(Prediction), table(FeedbackDirtyDay)
    execute(
        "CREATE TEMP TABLE IF NOT EXISTS _ingest (ord int, external_id text, payload jsonb, priority int, "
        "uncertainty float8, model_version text, label text, probabilities jsonb, vector bytea, predicted_at timestamptz) "
        "ON COMMIT DELETE ROWS"
    )
    copy_rows("_ingest", _INGEST_COLUMNS, _ingest_rows(parsed))
    created, written, _preds, days = fetchone(
        f"""
        WITH src AS (
            SELECT t.*, p.predicted_at AS old_predicted_at,
                   (i.id IS NULL OR i.payload IS DISTINCT FROM t.payload OR i.priority <> t.priority) AS item_changed,
                   (t.model_version IS NOT NULL AND (p.id IS NULL OR p.label <> t.label
                    OR p.probabilities IS DISTINCT FROM t.probabilities OR p.predicted_at <> t.predicted_at)) AS pred_changed
            FROM _ingest t
            -- LATERAL ... LIMIT 1: one unique-index probe per row, whatever the tables' size or statistics
            LEFT JOIN LATERAL (
                SELECT id, payload, priority FROM {item_t}
                WHERE project_id = %(project)s AND external_id = t.external_id LIMIT 1
            ) i ON true
            LEFT JOIN LATERAL (
                SELECT id, label, probabilities, predicted_at FROM {pred_t}
                WHERE item_id = i.id AND model_version = t.model_version LIMIT 1
            ) p ON true
        ),
        changed AS MATERIALIZED (SELECT * FROM src WHERE item_changed OR pred_changed),
        items AS (
            INSERT INTO {item_t} AS cur (project_id, external_id, payload, priority, status, required_annotations,
                queue_order, annotation_count, uncertainty, first_predicted_at, created_at, updated_at)
            SELECT %(project)s, external_id, payload, priority, %(status)s, %(required)s, %(order)s, 0,
                   CASE WHEN pred_changed THEN uncertainty END, predicted_at, %(now)s, %(now)s
            FROM changed ORDER BY ord
            ON CONFLICT (project_id, external_id) DO UPDATE SET
                payload = EXCLUDED.payload, priority = EXCLUDED.priority, updated_at = EXCLUDED.updated_at,
                uncertainty = COALESCE(EXCLUDED.uncertainty, cur.uncertainty),
                first_predicted_at = LEAST(cur.first_predicted_at, EXCLUDED.first_predicted_at)
            RETURNING cur.id, cur.external_id, (cur.xmax = 0) AS inserted
        ),
        preds AS (
            INSERT INTO {pred_t} AS cur (item_id, model_version, label, probabilities, vector, predicted_at, created_at)
            SELECT items.id, c.model_version, c.label, c.probabilities, c.vector, c.predicted_at, %(now)s
            FROM items JOIN changed c ON c.external_id = items.external_id
            WHERE c.pred_changed
            ON CONFLICT (item_id, model_version) DO UPDATE SET
                label = EXCLUDED.label, probabilities = EXCLUDED.probabilities, vector = EXCLUDED.vector,
                predicted_at = EXCLUDED.predicted_at
            RETURNING 1
        ),
        days AS (
            INSERT INTO {dirty_t} AS cur (project_id, day, marked_at)
            SELECT %(project)s, day, %(now)s FROM (
                SELECT (predicted_at AT TIME ZONE 'UTC')::date AS day FROM changed WHERE pred_changed
                UNION
                SELECT (old_predicted_at AT TIME ZONE 'UTC')::date FROM changed
                WHERE pred_changed AND old_predicted_at IS NOT NULL
            ) d ORDER BY day
            ON CONFLICT (project_id, day) DO UPDATE SET marked_at = EXCLUDED.marked_at
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM items WHERE inserted), (SELECT count(*) FROM items),
               (SELECT count(*) FROM preds), (SELECT count(*) FROM days)
        """,
        {
            "project": project.pk,
            "status": ItemStatus.OPEN,
            "required": project.annotations_per_item,
            "order": project.queue_order,
            "now": timezone.now(),
        },
    )
    execute("TRUNCATE _ingest")
    if days:
        feedback_refresh_on_commit(project.pk)
    return IngestResult(created, written - created, len(parsed) - written)
