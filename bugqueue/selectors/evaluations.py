"""Reads for the evaluation page and its failures list: one evaluation's result on each dataset,
shaped for display (confusion heatmap, per-class recall, slices by change, regressions grouped by
bug), and the items a result got wrong, or only one bug's regressions, beside the baseline's answer.

Access goes through the evaluation's project (selectors.datasets.access_evaluation). Aggregates
(matrix, recall, slices, counts per bug) are shown to every member; item rows follow blind labeling
as the rest of the dataset reads do (an annotator does not see items that may still reach them)."""

from django.urls import reverse

from bugqueue.models import Bug, EvaluationPrediction, EvaluationResult
from bugqueue.selectors.datasets import access_dataset, access_evaluation, members_at
from common.errors import NotFound
from labeling.selectors.blind import labels_visible_to


def _signed_pp(delta) -> str:
    """An accuracy change as signed percentage points: +1.5 pp, −12.0 pp."""
    if delta is None:
        return "—"
    pp = 100 * float(delta)
    return f"{'+' if pp >= 0 else '−'}{abs(pp):.1f} pp"


def _confusion(confusion: dict) -> dict:
    """{labels, rows: [{label, total, cells: [{n, share, diagonal}]}]} with each cell's share of its
    row (the true label), which colours the heatmap."""
    labels = list(confusion.get("labels") or [])
    matrix = confusion.get("matrix") or []
    rows = []
    for i, label in enumerate(labels):
        counts = list(matrix[i]) if i < len(matrix) else []
        counts += [0] * (len(labels) - len(counts))
        total = sum(counts)
        rows.append(
            {
                "label": label,
                "total": total,
                "cells": [
                    {"predicted": labels[j], "n": n, "share": (n / total) if total else 0.0, "diagonal": i == j}
                    for j, n in enumerate(counts)
                ],
            }
        )
    return {"labels": labels, "rows": rows}


def _slices(slices: list) -> list[dict]:
    """Slices ordered by their change against the baseline, largest drop first (no baseline: last)."""
    out = [{**s, "delta_text": _signed_pp(s.get("delta"))} for s in slices or []]
    out.sort(
        key=lambda s: (
            s.get("delta") is None,
            s.get("delta") if s.get("delta") is not None else 0,
            str(s.get("field")),
            str(s.get("value")),
        )
    )
    return out


def evaluation_page(*, user, evaluation_id) -> dict:
    """The evaluation page: the evaluation (its project carries the user's role) and, per dataset,
    its result with the confusion heatmap, recall per class, slices and regressions by bug
    (titles of the bugs in one query). NotFound / Forbidden as access_evaluation."""
    evaluation = access_evaluation(user=user, evaluation_id=evaluation_id)
    project = evaluation.project
    results = list(
        EvaluationResult.objects.filter(evaluation=evaluation)
        .select_related("dataset", "previous__evaluation")
        .order_by("dataset__name", "dataset_id")
    )
    bug_ids = {int(b) for r in results for b in (r.regressions_by_bug or {}) if str(b).isdigit()}
    bugs = {b.pk: b for b in Bug.objects.filter(project=project, pk__in=bug_ids).only("pk", "title", "status")}
    shown = []
    for r in results:
        failures = reverse("evaluation-failures", args=[evaluation.pk, r.dataset_id])
        by_bug = []
        for key, count in (r.regressions_by_bug or {}).items():
            bug_id = int(key) if str(key).isdigit() else None
            bug = bugs.get(bug_id)
            by_bug.append(
                {
                    "bug": bug_id,
                    "title": bug.title if bug else None,
                    "status": bug.get_status_display() if bug else None,
                    "count": count,
                    "items_url": f"{failures}?bug={bug_id}" if bug_id else None,
                }
            )
        by_bug.sort(key=lambda row: (-row["count"], row["bug"] or 0))
        confusion = _confusion(r.confusion or {})
        recall_labels = confusion["labels"] or sorted(r.per_class_recall or {})
        shown.append(
            {
                "result": r,
                "dataset": r.dataset,
                "failures_url": failures,
                "baseline_evaluation": r.previous.evaluation if r.previous_id else None,
                "confusion": confusion,
                "recall": [{"label": lab, "recall": (r.per_class_recall or {}).get(lab)} for lab in recall_labels],
                "slices": _slices(r.slices),
                "dropped": sum(1 for s in r.slices or [] if s.get("dropped")),
                "regressions_by_bug": by_bug,
            }
        )
    return {
        "evaluation": evaluation,
        "project": project,
        "results": shown,
        "slice_fields": list(project.slice_fields or []),
        "recall_data": [
            {
                "id": row["result"].pk,
                "labels": [x["label"] for x in row["recall"]],
                "recall": [x["recall"] for x in row["recall"]],
            }
            for row in shown
        ],
    }


def evaluation_failures_view(*, user, evaluation_id, dataset_id, bug_id=None, limit=500) -> dict:
    """The evaluation's result on the dataset and the items it got wrong as `user` may see them,
    each with the baseline model's answer beside the candidate's and the truth (`regression`: the
    baseline got it right). With `bug_id`, only that bug's regressions (its items the baseline got
    right and the candidate gets wrong; with no baseline, its items the candidate gets wrong).
    Items blind labeling hides from the user are counted in `hidden`, not listed."""
    evaluation = access_evaluation(user=user, evaluation_id=evaluation_id)
    dataset = access_dataset(user=user, dataset_id=dataset_id)
    result = evaluation.results.filter(dataset=dataset).select_related("previous__evaluation").first()
    if result is None:
        raise NotFound("Evaluation result not found.")
    bug = None
    if bug_id is not None:
        bug_id = int(bug_id) if str(bug_id).isdigit() else None
        bug = (
            Bug.objects.filter(project_id=dataset.project_id, pk=bug_id).only("pk", "title").first() if bug_id else None
        )
        if bug is None:
            raise NotFound("Bug not found.")
    visibility = labels_visible_to(user=user, project=dataset.project)
    members = members_at(dataset_id=dataset.pk, number=result.dataset_version)
    if bug is not None:
        members = members.filter(bug_id=bug.pk)
    hidden = 0 if visibility.all else members.exclude(visibility.q("item__")).count()
    shown = members.filter(visibility.q("item__"))

    def predictions(evaluation_id):
        return dict(
            EvaluationPrediction.objects.filter(
                evaluation_id=evaluation_id, item_id__in=shown.values("item_id")
            ).values_list("item_id", "label")
        )

    candidate = predictions(evaluation.pk)
    baseline_eval = result.previous.evaluation if result.previous_id else None
    baseline = predictions(baseline_eval.pk) if baseline_eval else {}
    rows, more = [], False
    for item_id, external_id, label, payload, member_bug in (
        shown.order_by("id")
        .values_list("item_id", "item__external_id", "label", "item__payload", "bug_id")
        .iterator(chunk_size=2000)
    ):
        got = candidate.get(item_id)
        if got == label:
            continue
        before = baseline.get(item_id)
        regression = baseline_eval is not None and before == label
        if bug is not None and baseline_eval is not None and not regression:
            continue
        if len(rows) >= limit:
            more = True
            break
        rows.append(
            {
                "external_id": external_id,
                "expected": label,
                "predicted": got,
                "baseline": before,
                "regression": regression,
                "payload": payload,
                "bug": member_bug,
            }
        )
    return {
        "evaluation": evaluation,
        "dataset": dataset,
        "project": evaluation.project,
        "result": result,
        "baseline_evaluation": baseline_eval,
        "bug": bug,
        "rows": rows,
        "more": more,
        "limit": limit,
        "hidden": hidden,
    }
