"""Idempotent, validated, bulk ingestion of items with their production predictions.

The whole batch is validated before anything is written; a bad row fails the batch with every
bad row's index and reason. Items are upserted by (project, external_id) and predictions by
(item, model_version) with INSERT ... ON CONFLICT, so re-sending a batch changes nothing and
concurrent senders of the same rows do not collide. Unchanged rows are detected and not written.
"""

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from labeling.errors import TooLarge, ValidationFailed
from labeling.models import Item, ItemStatus, Prediction, Project
from labeling.selectors import project_label_keys

PROB_TOLERANCE = 1e-3


@dataclass
class ParsedPrediction:
    model_version: str
    label: str
    probabilities: dict | None
    predicted_at: datetime


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

    def as_dict(self):
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def parse_timestamp(value, *, field: str) -> datetime:
    """ISO 8601 string -> aware datetime (naive means UTC). Raises ValueError with a reason."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO 8601 date-time string.")
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"{field} is not a valid ISO 8601 date-time: {value[:40]!r}.")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt_timezone.utc)
    return parsed


def check_batch_size(rows: list) -> None:
    limit = settings.LOUPE_MAX_BATCH_ROWS
    if len(rows) > limit:
        raise TooLarge(f"A batch holds at most {limit:,} rows; this one has {len(rows):,}. Split it.")


def _parse_prediction(raw, label_keys: set, now) -> ParsedPrediction:
    if not isinstance(raw, dict):
        raise ValueError("prediction must be an object.")
    unknown = set(raw) - {"model_version", "label", "probabilities", "predicted_at"}
    if unknown:
        raise ValueError(f"prediction has unknown fields: {', '.join(sorted(unknown))}.")
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
        if set(probs) != label_keys:
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
    return ParsedPrediction(mv, label, probs, predicted_at)


ITEM_FIELDS = {"external_id", "payload", "priority", "prediction"}


def items_validate(*, project: Project, rows: list) -> list[ParsedItem]:
    """Validate a whole batch; raise ValidationFailed listing every bad row."""
    check_batch_size(rows)
    if not rows:
        raise ValidationFailed("The batch is empty.", fields={"rows": [{"index": None, "message": "No rows."}]})
    label_keys = set(project_label_keys(project=project))
    now = timezone.now()
    parsed, errors, seen = [], [], {}
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise ValueError("row must be an object.")
            unknown = set(row) - ITEM_FIELDS
            if unknown:
                raise ValueError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}.")
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
            parsed.append(
                ParsedItem(ext, payload, priority, None if pred is None else _parse_prediction(pred, label_keys, now))
            )
        except ValueError as exc:
            errors.append({"index": i, "message": str(exc)})
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"{len(errors)} of {len(rows)} rows are invalid; nothing was written. Row {first['index']}: {first['message']}",
            fields={"rows": errors},
        )
    return parsed


def _uncertainty(pred: ParsedPrediction | None):
    if pred is None or not pred.probabilities:
        return None
    return 1.0 - max(pred.probabilities.values())


def items_ingest(*, project: Project, rows: list) -> IngestResult:
    parsed = items_validate(project=project, rows=rows)
    return _write(project=project, parsed=parsed)


@transaction.atomic
def _write(*, project: Project, parsed: list[ParsedItem]) -> IngestResult:
    from labeling.services.feedback_rollup import feedback_days_mark  # delay rollups: mark the days touched

    feedback_days_mark(project_id=project.pk, times=[p.prediction.predicted_at for p in parsed if p.prediction])
    ext_ids = [p.external_id for p in parsed]
    existing = {
        ext: (pk, payload, priority, first_pred)
        for pk, ext, payload, priority, first_pred in Item.objects.filter(project=project, external_id__in=ext_ids)
        .values_list("pk", "external_id", "payload", "priority", "first_predicted_at")
        .iterator(chunk_size=5000)
    }
    existing_preds = {}
    if existing:
        pairs = {(p.external_id, p.prediction.model_version) for p in parsed if p.prediction and p.external_id in existing}
        versions = {mv for _, mv in pairs}
        if pairs:
            for item_id, mv, label, probs, at in Prediction.objects.filter(
                item_id__in=[existing[ext][0] for ext, _ in pairs], model_version__in=versions
            ).values_list("item_id", "model_version", "label", "probabilities", "predicted_at"):
                existing_preds[(item_id, mv)] = (label, probs, at)

    now = timezone.now()
    item_rows, changed_ext, pred_changed_ext = [], set(), set()
    created = updated = unchanged = 0
    for p in parsed:
        old = existing.get(p.external_id)
        pred = p.prediction
        if old is None:
            created += 1
            item_changed = True
        else:
            item_changed = old[1] != p.payload or old[2] != p.priority
        pred_changed = False
        if pred is not None:
            if old is None:
                pred_changed = True
            else:
                prev = existing_preds.get((old[0], pred.model_version))
                pred_changed = prev is None or prev != (pred.label, pred.probabilities, pred.predicted_at)
        if old is not None:
            if item_changed or pred_changed:
                updated += 1
            else:
                unchanged += 1
                continue
        if item_changed or pred_changed:
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
                    uncertainty=_uncertainty(pred),
                    first_predicted_at=first_pred,
                    created_at=now,
                    updated_at=now,
                )
            )
            if pred_changed:
                pred_changed_ext.add(p.external_id)
            if item_changed:
                changed_ext.add(p.external_id)

    pred_rows = [p for p in parsed if p.external_id in pred_changed_ext]
    if connection.vendor == "postgresql":
        _write_postgres(project=project, item_rows=item_rows, pred_rows=pred_rows, now=now)
    else:
        _write_portable(project=project, item_rows=item_rows, pred_rows=pred_rows, now=now,
                        pred_changed_ext=pred_changed_ext)
    if created:
        # New items join the project's nearest-neighbour index (for mining similar items) after commit.
        from labeling.tasks import similarity_index_update_task

        transaction.on_commit(partial(similarity_index_update_task.delay, project.pk))
    return IngestResult(created, updated, unchanged)


def _write_portable(*, project, item_rows, pred_rows, now, pred_changed_ext):
    """Upserts with Django's bulk_create(update_conflicts=True) (SQLite and other backends)."""
    update_fields = ["payload", "priority", "updated_at", "first_predicted_at"]
    # uncertainty follows the newest prediction sent; an item-only update keeps the old value.
    with_pred = [r for r in item_rows if r.external_id in pred_changed_ext and r.uncertainty is not None]
    without = [r for r in item_rows if not (r.external_id in pred_changed_ext and r.uncertainty is not None)]
    for group, fields in ((with_pred, update_fields + ["uncertainty"]), (without, update_fields)):
        if group:
            Item.objects.bulk_create(
                group, batch_size=2000, update_conflicts=True,
                unique_fields=["project", "external_id"], update_fields=fields,
            )
    ids = dict(
        Item.objects.filter(project=project, external_id__in=[p.external_id for p in pred_rows])
        .values_list("external_id", "pk")
    ) if pred_rows else {}
    if pred_rows:
        Prediction.objects.bulk_create(
            [
                Prediction(item_id=ids[p.external_id], model_version=p.prediction.model_version,
                           label=p.prediction.label, probabilities=p.prediction.probabilities,
                           predicted_at=p.prediction.predicted_at, created_at=now)
                for p in pred_rows
            ],
            batch_size=2000, update_conflicts=True, unique_fields=["item", "model_version"],
            update_fields=["label", "probabilities", "predicted_at"],
        )


def _write_postgres(*, project, item_rows, pred_rows, now):
    """PostgreSQL fast path: COPY the changed rows into temporary tables, then one
    INSERT ... SELECT ... ON CONFLICT DO UPDATE per table (no per-row round trips or quoting)."""
    item_t, pred_t = Item._meta.db_table, Prediction._meta.db_table
    with connection.cursor() as cur:
        raw = cur.cursor
        if item_rows:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _ingest_items (external_id text, payload jsonb, priority int, "
                "uncertainty float8, first_predicted_at timestamptz) ON COMMIT DELETE ROWS"
            )
            with raw.copy("COPY _ingest_items (external_id, payload, priority, uncertainty, first_predicted_at) FROM STDIN") as copy:
                for r in item_rows:
                    copy.write_row((r.external_id, json.dumps(r.payload), r.priority, r.uncertainty, r.first_predicted_at))
            cur.execute(
                f"""INSERT INTO {item_t} (project_id, external_id, payload, priority, status, required_annotations,
                        annotation_count, uncertainty, first_predicted_at, created_at, updated_at)
                    SELECT %s, external_id, payload, priority, %s, %s, 0, uncertainty, first_predicted_at, %s, %s
                    FROM _ingest_items
                    ON CONFLICT (project_id, external_id) DO UPDATE SET
                        payload = EXCLUDED.payload, priority = EXCLUDED.priority, updated_at = EXCLUDED.updated_at,
                        uncertainty = COALESCE(EXCLUDED.uncertainty, {item_t}.uncertainty),
                        first_predicted_at = LEAST({item_t}.first_predicted_at, EXCLUDED.first_predicted_at)""",
                [project.pk, ItemStatus.OPEN, project.annotations_per_item, now, now],
            )
            cur.execute("TRUNCATE _ingest_items")
        if pred_rows:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _ingest_preds (external_id text, model_version text, label text, "
                "probabilities jsonb, predicted_at timestamptz) ON COMMIT DELETE ROWS"
            )
            with raw.copy("COPY _ingest_preds (external_id, model_version, label, probabilities, predicted_at) FROM STDIN") as copy:
                for p in pred_rows:
                    pr = p.prediction
                    probs = None if pr.probabilities is None else json.dumps(pr.probabilities)
                    copy.write_row((p.external_id, pr.model_version, pr.label, probs, pr.predicted_at))
            cur.execute(
                f"""INSERT INTO {pred_t} (item_id, model_version, label, probabilities, predicted_at, created_at)
                    SELECT i.id, p.model_version, p.label, p.probabilities, p.predicted_at, %s
                    FROM _ingest_preds p JOIN {item_t} i ON i.project_id = %s AND i.external_id = p.external_id
                    ON CONFLICT (item_id, model_version) DO UPDATE SET
                        label = EXCLUDED.label, probabilities = EXCLUDED.probabilities,
                        predicted_at = EXCLUDED.predicted_at""",
                [now, project.pk],
            )
            cur.execute("TRUNCATE _ingest_preds")
