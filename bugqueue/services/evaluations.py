"""Evaluate a model version's predictions on every dataset's latest version, compare with the previous
model version evaluated on the same dataset version, and gate: a dataset passes when accuracy meets
its min_accuracy, every item has a prediction, and no item of a bug that the previous model got
right is now wrong. Metrics from scikit-learn; predictions kept compactly for click-through.

Raw SQL: on PostgreSQL the predictions' external_ids are COPYed into a temporary table and joined
to the project's items, one statement where the ORM would send the ids in thousands of IN lists."""

import math
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from bugqueue.models import Dataset, Evaluation, EvaluationPrediction, EvaluationResult
from bugqueue.selectors.datasets import members_at
from common.api.json_body import json_loads
from common.db import is_postgres, sql
from common.db.copy import copy_rows
from common.errors import TooLarge, ValidationFailed
from labeling.models import Item
from labeling.selectors.projects import project_label_keys

MAX_EVAL_ROWS = 2_000_000
REGRESSION_SAMPLE = 100


@dataclass
class PredictionBatch:
    external_ids: list
    labels: np.ndarray  # int16 codes into `keys`
    keys: list


def predictions_parse(*, project, rows) -> PredictionBatch:
    """Validate {"external_id","label","probabilities"?} rows into compact arrays; every bad row is listed."""
    keys = project_label_keys(project=project)
    code = {k: i for i, k in enumerate(keys)}
    key_set = set(keys)
    ext_ids, labels, errors, seen = [], [], [], set()
    n = 0
    for i, row in enumerate(rows):
        n += 1
        if n > MAX_EVAL_ROWS:
            raise TooLarge(f"An evaluation holds at most {MAX_EVAL_ROWS:,} predictions.")
        if not isinstance(row, dict):
            errors.append({"index": i, "message": "row must be an object."})
            continue
        ext, label = row.get("external_id"), row.get("label")
        if isinstance(ext, int) and not isinstance(ext, bool):
            ext = str(ext)
        problem = None
        if not isinstance(ext, str) or not ext:
            problem = "external_id must be a non-empty string."
        elif ext in seen:
            problem = f"external_id {ext!r} appears twice."
        elif label not in code:
            problem = f"label {label!r} is not a label of this project."
        else:
            probs = row.get("probabilities")
            if probs is not None:
                if (
                    not isinstance(probs, dict)
                    or set(probs) != key_set
                    or not all(
                        isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and 0 <= p <= 1
                        for p in probs.values()
                    )
                ):
                    problem = "probabilities must map every label of the project to a number from 0 to 1."
                elif abs(sum(probs.values()) - 1) > 1e-3:
                    problem = "probabilities must sum to 1 (±0.001)."
        if problem:
            if len(errors) < 1000:
                errors.append({"index": i, "message": problem})
            continue
        seen.add(ext)
        ext_ids.append(ext)
        labels.append(code[label])
    if errors:
        raise ValidationFailed(
            f"Invalid predictions; nothing was evaluated. Row {errors[0]['index']}: {errors[0]['message']}",
            fields={"rows": errors},
        )
    if not ext_ids:
        raise ValidationFailed("No predictions given.", fields={"predictions": ["Give at least one prediction."]})
    return PredictionBatch(ext_ids, np.asarray(labels, dtype=np.int16), keys)


def _resolve_item_ids(project_id, external_ids) -> dict:
    """external_id -> item id for the project, in bulk (a temp-table join on PostgreSQL)."""
    if is_postgres():
        sql.execute("CREATE TEMP TABLE IF NOT EXISTS _eval_ext (external_id text) ON COMMIT DELETE ROWS")
        copy_rows("_eval_ext", ["external_id"], ((e,) for e in external_ids))
        found = dict(
            sql.fetchall(
                f"SELECT i.external_id, i.id FROM _eval_ext e JOIN {sql.table(Item)} i "
                "ON i.project_id = %s AND i.external_id = e.external_id",
                [project_id],
            )
        )
        sql.execute("TRUNCATE _eval_ext")
        return found
    found = {}
    for start in range(0, len(external_ids), 5000):
        found.update(
            Item.objects.filter(project_id=project_id, external_id__in=external_ids[start : start + 5000]).values_list(
                "external_id", "id"
            )
        )
    return found


def _store_predictions(evaluation_id, item_ids, labels):
    if not len(item_ids):
        return
    if is_postgres():
        copy_rows(
            sql.table(EvaluationPrediction),
            ["evaluation_id", "item_id", "label"],
            ((evaluation_id, item_id, label) for item_id, label in zip(item_ids, labels)),
        )
        return
    EvaluationPrediction.objects.bulk_create(
        [EvaluationPrediction(evaluation_id=evaluation_id, item_id=i, label=lab) for i, lab in zip(item_ids, labels)],
        batch_size=5000,
    )


def _previous_result(dataset_id, number, model_version):
    return (
        EvaluationResult.objects.filter(dataset_id=dataset_id, dataset_version=number)
        .exclude(evaluation__model_version=model_version)
        .select_related("evaluation")
        .order_by("-evaluation_id")
        .first()
    )


@transaction.atomic
def evaluation_run(*, project, actor, model_version: str, batch: PredictionBatch, dataset_ids=None) -> Evaluation:
    if not isinstance(model_version, str) or not model_version.strip() or len(model_version) > 128:
        raise ValidationFailed(
            "model_version must be a non-empty string (at most 128 characters).",
            fields={"model_version": ["Required."]},
        )
    datasets = Dataset.objects.filter(project=project).order_by("pk")
    if dataset_ids:
        dataset_ids = sorted({int(i) for i in dataset_ids})
        datasets = datasets.filter(pk__in=dataset_ids)
        missing = sorted(set(dataset_ids) - set(datasets.values_list("pk", flat=True)))
        if missing:
            raise ValidationFailed(
                f"Unknown datasets for this project: {missing}.", fields={"datasets": [str(m) for m in missing]}
            )
    datasets = [d for d in datasets if d.latest_version > 0]
    keys = batch.keys
    found = _resolve_item_ids(project.pk, batch.external_ids)
    pred_by_item = {}
    for ext, code in zip(batch.external_ids, batch.labels.tolist()):
        item_id = found.get(ext)
        if item_id is not None:
            pred_by_item[item_id] = code
    evaluation = Evaluation.objects.create(
        project=project,
        model_version=model_version.strip(),
        created_by=actor,
        n_predictions=len(batch.external_ids),
        n_unknown=len(batch.external_ids) - len(found),
    )
    code = {k: i for i, k in enumerate(keys)}
    label_idx = list(range(len(keys)))
    stored_items = set()
    results = []
    for dataset in datasets:
        number = dataset.latest_version
        rows = list(members_at(dataset_id=dataset.pk, number=number).values_list("item_id", "label", "bug_id"))
        item_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        truth = np.fromiter((code.get(r[1], -1) for r in rows), dtype=np.int16, count=len(rows))
        pred = np.fromiter((pred_by_item.get(r[0], -1) for r in rows), dtype=np.int16, count=len(rows))
        has = (pred >= 0) & (truth >= 0)
        y_true, y_pred = truth[has], pred[has]
        n_missing = int((pred < 0).sum())
        if len(y_true):
            accuracy = float(accuracy_score(y_true, y_pred))
            macro_f1 = float(
                f1_score(
                    y_true,
                    y_pred,
                    labels=sorted(set(y_true.tolist()) | set(y_pred.tolist())),
                    average="macro",
                    zero_division=0,
                )
            )
            recall = recall_score(y_true, y_pred, labels=label_idx, average=None, zero_division=0)
            present = set(y_true.tolist())
            per_class = {keys[i]: (float(recall[i]) if i in present else None) for i in label_idx}
            matrix = confusion_matrix(y_true, y_pred, labels=label_idx).tolist()
        else:
            accuracy = macro_f1 = None
            per_class, matrix = dict.fromkeys(keys), [[0] * len(keys) for _ in keys]
        previous = _previous_result(dataset.pk, number, evaluation.model_version)
        regressions, regression_items = 0, []
        bug_rows = [(r[0], truth[i], pred[i]) for i, r in enumerate(rows) if r[2] is not None]
        if previous is not None and bug_rows:
            prev_pred = dict(
                EvaluationPrediction.objects.filter(
                    evaluation_id=previous.evaluation_id, item_id__in=[b[0] for b in bug_rows]
                ).values_list("item_id", "label")
            )
            broken = [
                item_id
                for item_id, t, p in bug_rows
                if prev_pred.get(item_id) is not None and code.get(prev_pred[item_id]) == t and p != t
            ]
            regressions = len(broken)
            regression_items = list(
                Item.objects.filter(pk__in=broken[:REGRESSION_SAMPLE]).values_list("external_id", flat=True)
            )
        reasons = []
        if dataset.min_accuracy is not None and (accuracy is None or accuracy < dataset.min_accuracy):
            reasons.append(
                f"accuracy {accuracy if accuracy is None else round(accuracy, 4)} is below {dataset.min_accuracy}"
            )
        if n_missing:
            reasons.append(f"{n_missing} items have no prediction")
        if regressions:
            reasons.append(
                f"{regressions} items of resolved bugs that {previous.evaluation.model_version} got right are now wrong"
            )
        results.append(
            EvaluationResult(
                evaluation=evaluation,
                dataset=dataset,
                dataset_version=number,
                n=len(rows),
                n_missing=n_missing,
                accuracy=accuracy,
                macro_f1=macro_f1,
                per_class_recall=per_class,
                confusion={"labels": keys, "matrix": matrix},
                previous=previous,
                regressions=regressions,
                regression_items=regression_items,
                passed=not reasons,
                reasons=reasons,
            )
        )
        stored_items.update(int(i) for i in item_ids[pred >= 0])
    EvaluationResult.objects.bulk_create(results)
    ordered = sorted(stored_items)
    _store_predictions(evaluation.pk, ordered, [keys[pred_by_item[i]] for i in ordered])
    evaluation.passed = bool(results) and all(r.passed for r in results)
    evaluation.save(update_fields=["passed"])
    return evaluation


def evaluation_rows_from_jsonl(stream, *, max_bytes):
    """Yield JSON Lines rows from a file-like stream without holding the body in memory."""
    read = 0
    for lineno, line in enumerate(stream):
        read += len(line)
        if read > max_bytes:
            raise TooLarge(f"An evaluation body holds at most {max_bytes // (1024 * 1024)} MB.")
        if not line.strip():
            continue
        try:
            row = json_loads(line)
        except ValueError as exc:
            raise ValidationFailed(f"Line {lineno + 1} is not accepted JSON: {exc}", code="parse_error")
        yield row
