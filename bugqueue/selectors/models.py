"""Reads for the models page and the models API: each registered model version with its stage
history and the newest evaluation result per dataset, and the evaluations matrix (model versions ×
dataset versions). Results are read in one query per page and folded in Python."""

from bugqueue.models import Dataset, EvaluationResult
from labeling.models import ModelStageChange, ModelVersion

MATRIX_VERSIONS_PER_DATASET = 4  # the newest dataset versions shown as columns

RESULT_FIELDS = (
    "id",
    "evaluation_id",
    "evaluation__model_version",
    "evaluation__created_at",
    "dataset_id",
    "dataset__name",
    "dataset__latest_version",
    "dataset_version",
    "n",
    "n_missing",
    "accuracy",
    "passed",
    "reasons",
    "baseline_model",
    "regressions",
    "regressions_by_bug",
    "warnings",
)


def _results(*, project, model_versions=None) -> list[dict]:
    """The project's evaluation results, newest evaluation first, as plain dicts."""
    qs = EvaluationResult.objects.filter(evaluation__project=project)
    if model_versions is not None:
        qs = qs.filter(evaluation__model_version__in=list(model_versions))
    return list(qs.order_by("-evaluation_id", "-id").values(*RESULT_FIELDS))


def warning_text(warning) -> str:
    """A stored warning (a sentence, or an object describing a slice that dropped) as one sentence."""
    if isinstance(warning, str):
        return warning
    if isinstance(warning, dict):
        if warning.get("message"):
            return str(warning["message"])
        where = warning.get("slice") or ", ".join(
            f"{k}={v}" for k, v in warning.items() if k in ("field", "value", "name")
        )
        change = warning.get("accuracy_change", warning.get("change"))
        if isinstance(change, (int, float)):
            return f"slice {where} dropped {abs(change) * 100:.1f} points"
        return f"slice {where} dropped" if where else str(warning)
    return str(warning)


def _summary(r: dict) -> dict:
    return {
        "evaluation": r["evaluation_id"],
        "dataset": r["dataset_id"],
        "name": r["dataset__name"],
        "dataset_version": r["dataset_version"],
        "latest_version": r["dataset__latest_version"],
        "accuracy": r["accuracy"],
        "passed": r["passed"],
        "reasons": r["reasons"] or [],
        "baseline_model": r["baseline_model"] or "",
        "regressions": r["regressions"],
        "regressions_by_bug": {str(k): v for k, v in (r["regressions_by_bug"] or {}).items()},
        "warnings": [warning_text(w) for w in (r["warnings"] or [])],
        "created_at": r["evaluation__created_at"],
    }


def latest_results_by_model(*, project, model_versions, results=None) -> dict[str, list[dict]]:
    """version -> the newest result of that version on each dataset (dataset name order); `results`
    (all of the project's, newest first) when the caller has read them already."""
    newest: dict[str, dict[int, dict]] = {}
    if results is None:
        results = _results(project=project, model_versions=model_versions)
    for r in results:
        newest.setdefault(r["evaluation__model_version"], {}).setdefault(r["dataset_id"], r)
    return {
        version: [_summary(r) for r in sorted(by_ds.values(), key=lambda r: (r["dataset__name"], r["dataset_id"]))]
        for version, by_ds in newest.items()
    }


def models_with_summaries(*, project, results=None) -> list[ModelVersion]:
    """The project's model versions (newest first), each with `.evaluations` (newest result per dataset)."""
    models = list(
        ModelVersion.objects.filter(project=project).select_related("created_by").order_by("-created_at", "-id")
    )
    summaries = latest_results_by_model(project=project, model_versions=[m.version for m in models], results=results)
    for m in models:
        m.evaluations = summaries.get(m.version, [])
    return models


def model_with_summary(*, model: ModelVersion) -> ModelVersion:
    model.evaluations = latest_results_by_model(project=model.project, model_versions=[model.version]).get(
        model.version, []
    )
    return model


def models_page(*, project) -> dict:
    """Everything the models page shows: models with their history, datasets, and the matrix
    {columns: [{dataset, name, version, latest, gate}], rows: [{model, stage, registered, cells}]}."""
    results = _results(project=project)
    models = models_with_summaries(project=project, results=results)
    history: dict[int, list] = {}
    for change in (
        ModelStageChange.objects.filter(model__project=project).select_related("actor").order_by("-created_at", "-id")
    ):
        history.setdefault(change.model_id, []).append(change)
    for m in models:
        m.history = history.get(m.pk, [])
    datasets = list(Dataset.objects.filter(project=project).order_by("name", "id"))
    cell: dict[tuple, dict] = {}
    versions_seen: dict[int, set] = {}
    for r in results:
        key = (r["evaluation__model_version"], r["dataset_id"], r["dataset_version"])
        if key not in cell:
            cell[key] = _summary(r)
        versions_seen.setdefault(r["dataset_id"], set()).add(r["dataset_version"])
    columns = []
    for d in datasets:
        shown = sorted(versions_seen.get(d.pk, ()), reverse=True)[:MATRIX_VERSIONS_PER_DATASET]
        for number in shown:
            columns.append(
                {
                    "dataset": d.pk,
                    "name": d.name,
                    "version": number,
                    "latest": number == d.latest_version,
                    "gate": d.gate,
                }
            )
    stage_of = {m.version: m.stage for m in models}
    row_versions = [m.version for m in models]
    for r in results:  # evaluated versions that were never registered still get a row
        if r["evaluation__model_version"] not in stage_of and r["evaluation__model_version"] not in row_versions:
            row_versions.append(r["evaluation__model_version"])
    rows = []
    for version in row_versions:
        cells = [cell.get((version, c["dataset"], c["version"])) for c in columns]
        if any(cells) or version in stage_of:
            rows.append(
                {
                    "model": version,
                    "stage": stage_of.get(version, ""),
                    "registered": version in stage_of,
                    "cells": cells,
                }
            )
    return {
        "models": models,
        "datasets": datasets,
        "gate_datasets": [d for d in datasets if d.gate and d.latest_version],
        "matrix": {"columns": columns, "rows": rows if columns else []},
    }
