"""Reads only the bug page makes beyond bug_detail: the comments on its failing items, the
breakdowns by model version and slice, the evaluations, and the merge in force."""

from django.db.models import Count, F, Max, Min
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.urls import reverse

from bugqueue.models import (
    Bug,
    BugMerge,
    BugStatus,
    DatasetMember,
    EvaluationResult,
    FailureExample,
)
from labeling.selectors.blind import labels_visible_to
from labeling.selectors.comments import comments_on_items


def bug_item_comments(*, bug: Bug, user) -> dict:
    """The comments on the items of the bug's failures that the bug page shows `user` (blind
    labeling: a failure hidden from them is not a way to its item's comments either), with labeling's
    rule for who reads which comment (labeling.selectors.comments), in one query whatever the number
    of items; and the items a comment can be posted on from the page (the failures listed there)."""
    visibility = labels_visible_to(user=user, project=bug.project)
    shown = FailureExample.objects.filter(bug=bug, item__isnull=False).filter(visibility.q("item__"))
    comments, more = comments_on_items(user=user, project=bug.project, items=shown.values("item_id"))
    return {"item_comments": comments, "item_comments_more": more}


# --- the bug page's breakdowns --------------------------------------------------------------
MAX_SLICE_BREAKDOWNS = 3
SLICE_VALUES = 10


def _by_model_from(groups) -> list[dict]:
    by_model = {}
    for g in groups:
        row = by_model.setdefault(
            g["model_version"], {"model_version": g["model_version"], "n": 0, "first": None, "last": None}
        )
        row["n"] += g["n"]
        row["first"] = min(filter(None, [row["first"], g["first"]]), default=None)
        row["last"] = max(filter(None, [row["last"], g["last"]]), default=None)
    return sorted(by_model.values(), key=lambda r: (-r["n"], r["model_version"]))[:20]


def bug_breakdowns(*, bug: Bug, user, groups: list[dict] | None = None) -> dict:
    """The failures `user` may see, counted per model version and per value of the project's first
    slice fields (payload keys, read from the item's payload, else the reported one), and the
    evaluations run on datasets holding the bug's failures. One query per breakdown (at most
    2 + MAX_SLICE_BREAKDOWNS). `groups`: bug_detail's counts per (model version, predicted, expected)
    when `user` sees every failure; the breakdown by model version is then summed from them, which
    saves a pass over a large bug's failures."""
    visibility = labels_visible_to(user=user, project=bug.project)
    shown = FailureExample.objects.filter(bug=bug).filter(visibility.q("item__"))
    if groups is not None:
        by_model = _by_model_from(groups)
    else:
        by_model = list(
            shown.values("model_version")
            .annotate(n=Count("pk"), first=Min("occurred_at"), last=Max("occurred_at"))
            .order_by("-n", "model_version")[:20]
        )
    fields = [f for f in (bug.project.slice_fields or []) if isinstance(f, str) and f][:MAX_SLICE_BREAKDOWNS]
    slices = []
    for name in fields:
        value = Coalesce(KeyTextTransform(name, "item__payload"), KeyTextTransform(name, "payload"))
        rows = list(
            shown.annotate(v=value).values("v").annotate(n=Count("pk")).order_by("-n", F("v").asc(nulls_last=True))
        )
        slices.append(
            {
                "field": name,
                "rows": [{"value": r["v"], "n": r["n"]} for r in rows[:SLICE_VALUES]],
                "other": sum(r["n"] for r in rows[SLICE_VALUES:]),
            }
        )
    datasets = DatasetMember.objects.filter(bug=bug).values("dataset_id")
    results = list(
        EvaluationResult.objects.filter(dataset_id__in=datasets)
        .select_related("evaluation", "dataset")
        .order_by("-evaluation__created_at", "-id")[:10]
    )
    evaluations = []
    for r in results:
        mine = next((s for s in r.slices or [] if s.get("field") == "bug" and str(s.get("value")) == str(bug.pk)), None)
        evaluations.append(
            {
                "id": r.evaluation_id,
                "url": reverse("evaluation-page", args=[r.evaluation_id]),
                "model_version": r.evaluation.model_version,
                "dataset": r.dataset.name,
                "dataset_version": r.dataset_version,
                "accuracy": r.accuracy,
                "bug_accuracy": mine.get("accuracy") if mine else None,
                "regressions": (r.regressions_by_bug or {}).get(str(bug.pk), 0),
                "passed": r.passed,
                "created_at": r.evaluation.created_at,
            }
        )
    return {"by_model": by_model, "slices": slices, "evaluations": evaluations}


def bug_merge_in_force(*, bug: Bug):
    """The merge that made `bug` a duplicate of another bug, while it is in force (the bug page's
    Unmerge), or None. No query for a bug that is not a duplicate."""
    if bug.status != BugStatus.DUPLICATE:
        return None
    return BugMerge.objects.filter(source_id=bug.pk, unmerged_at__isnull=True).select_related("target", "actor").first()
