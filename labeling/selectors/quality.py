"""Reads for quality runs, the review queue and annotator statistics; the agreement figures are
labeling.selectors.agreement's (agreement_panel shapes them for the quality page).

Long because the quality page's reads (runs, accept rule, histogram, review queue, annotators)
share their queries and helpers, and the review pane's reading of an item (majority, suggestion, the
explanation of a consensus nobody chose) sits with the run and queue reads it combines.

Raw SQL: the bulk reads of every annotation come back as NumPy columns (common.db.columns), and the
median seconds per annotator uses PostgreSQL's percentile_cont, which the ORM cannot say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, F, OuterRef
from django.db.models.functions import Floor
from django.utils import timezone

from common.db import is_postgres
from common.db.columns import read_columns
from common.errors import NotFound
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    GroundTruth,
    GroundTruthObservation,
    Item,
    ItemStatus,
    LabelClass,
    ObservationOutcome,
    Prediction,
    QualityAnnotatorStat,
    QualityItemResult,
    QualityRun,
    QualityRunStatus,
    QualitySettings,
    ReviewDecision,
    reopen_pending,
)
from labeling.selectors.access import ANY_ROLE, access_project
from labeling.selectors.agreement import project_agreement

User = get_user_model()
HISTOGRAM_BINS = 20


def access_item(*, user, item_id, roles=ANY_ROLE) -> Item:
    """The item if `user` may see its project with one of `roles` (NotFound / Forbidden otherwise)."""
    try:
        item_id = int(item_id)
    except (TypeError, ValueError):
        raise NotFound("Item not found.")
    project_id = Item.objects.filter(pk=item_id).values_list("project_id", flat=True).first()
    if project_id is None:
        raise NotFound("Item not found.")
    try:
        project = access_project(user=user, project_id=project_id, roles=roles)
    except NotFound:
        raise NotFound("Item not found.")
    item = Item.objects.get(pk=item_id)
    item.project = project
    return item


def access_run(*, user, run_id, roles=ANY_ROLE) -> QualityRun:
    try:
        run_id = int(run_id)
    except (TypeError, ValueError):
        raise NotFound("Quality run not found.")
    run = QualityRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound("Quality run not found.")
    try:
        access_project(user=user, project_id=run.project_id, roles=roles)
    except NotFound:
        raise NotFound("Quality run not found.")
    return run


def run_list(*, project):
    return QualityRun.objects.filter(project=project).order_by("-id")


def latest_run(*, project, done_only: bool = True) -> QualityRun | None:
    qs = QualityRun.objects.filter(project=project)
    if done_only:
        qs = qs.filter(status=QualityRunStatus.DONE)
    return qs.order_by("-id").first()


def active_run(*, project) -> QualityRun | None:
    return QualityRun.objects.filter(
        project=project, status__in=[QualityRunStatus.QUEUED, QualityRunStatus.RUNNING]
    ).first()


def run_results(*, run, outcome: str | None = None):
    qs = QualityItemResult.objects.filter(run=run).select_related("item").order_by("item_id")  # the (run, item) index
    if outcome:
        qs = qs.filter(outcome=outcome)
    return qs


def quality_settings(*, project) -> QualitySettings:
    row = QualitySettings.objects.filter(project=project).first()
    return row or QualitySettings(project=project)


def quality_histogram(*, run) -> dict:
    """Counts of items per quality bin (20 bins over [0, 1]) and outcome, for a stacked bar chart."""
    bins = [round(i / HISTOGRAM_BINS, 2) for i in range(HISTOGRAM_BINS)]
    series = {}
    if run is not None:
        rows = (
            QualityItemResult.objects.filter(run=run)
            .annotate(b=Floor(F("quality") * HISTOGRAM_BINS))
            .values("b", "outcome")
            .annotate(n=Count("item_id"))
            .order_by()
        )
        for row in rows:
            b = min(max(int(row["b"] or 0), 0), HISTOGRAM_BINS - 1)
            series.setdefault(row["outcome"], [0] * HISTOGRAM_BINS)[b] += row["n"]
    return {"bins": bins, "series": series}


@dataclass
class ReviewContext:
    item: Item
    annotations: list  # [{annotator, label, label_name, seconds_spent, agrees}]
    prediction: Prediction | None
    probabilities: list  # [(key, name, p)] in label order
    result: QualityItemResult | None
    labels: list  # LabelClass rows
    lease: Assignment | None
    # For an item in conflict: {"ground_truth": {label, method, source, decided_at}, "claims":
    # [{label, source, observed_at}]}: the labels that disagree with it (late imports, bug failures).
    conflict: dict | None = None
    # The label most annotators chose: {label, name, votes, of}; None without annotations or on a tie.
    majority: dict | None = None
    # The label the Decide form highlights: the consensus when some annotator chose it, else the
    # majority label (None on a tie): never a label nobody chose.
    suggested_label: str | None = None
    # Why the consensus is a label no annotator chose, in words ("" when some annotator chose it).
    explanation: str = ""
    # A disputed item's label while it waits for the reviewer (one a run doubted): {label, name, method}.
    current: dict | None = None


def _conflict(item: Item) -> dict | None:
    if item.status != ItemStatus.CONFLICT:
        return None
    gt = GroundTruth.objects.filter(item=item).values("label", "method", "source", "decided_at").first()
    claims = list(
        GroundTruthObservation.objects.filter(item=item, outcome=ObservationOutcome.CONFLICT)
        .order_by("observed_at", "id")
        .values("label", "source", "observed_at")
    )
    return {"ground_truth": gt, "claims": claims}


def review_context(*, item: Item, lease: Assignment | None = None) -> ReviewContext:
    """Everything a reviewer sees about one item (a fixed number of queries)."""
    labels = list(LabelClass.objects.filter(project_id=item.project_id).order_by("position", "id"))
    names = {lc.key: lc.name for lc in labels}
    result = (
        QualityItemResult.objects.filter(item=item, run__project_id=item.project_id, run__status=QualityRunStatus.DONE)
        .select_related("run")
        .order_by("-run_id")
        .first()  # the project's runs newest first, each probed on (run, item)
    )
    consensus_label = result.consensus_label if result else None
    annotations = [
        {
            "annotator": a.annotator.username,
            "label": a.label,
            "label_name": names.get(a.label, a.label),
            "seconds_spent": a.seconds_spent,
            "agrees_with_consensus": consensus_label is not None and a.label == consensus_label,
        }
        for a in Annotation.objects.filter(item=item).select_related("annotator").order_by("id")
    ]
    prediction = Prediction.objects.filter(item=item).order_by("-predicted_at", "-id").first()
    probabilities = []
    if prediction and isinstance(prediction.probabilities, dict):
        probabilities = [(lc.key, lc.name, prediction.probabilities.get(lc.key)) for lc in labels]
    chosen = [a["label"] for a in annotations]
    majority = _majority(chosen, names)
    if consensus_label is None or consensus_label in chosen:
        suggested, explanation = consensus_label, ""
    else:
        suggested = majority["label"] if majority else None
        explanation = _explain_unchosen(
            consensus_name=names.get(consensus_label, consensus_label),
            quality=result.quality,
            majority=majority,
            n=len(chosen),
        )
    return ReviewContext(
        item=item,
        annotations=annotations,
        prediction=prediction,
        probabilities=probabilities,
        result=result,
        labels=[lc for lc in labels if lc.retired_at is None],  # retired labels are named, not offered
        lease=lease,
        conflict=_conflict(item),
        majority=majority,
        suggested_label=suggested,
        explanation=explanation,
        current=_current(item, names),
    )


def _current(item: Item, names: dict) -> dict | None:
    if item.status != ItemStatus.DISPUTED:
        return None
    gt = GroundTruth.objects.filter(item=item).values("label", "method").first()
    return {**gt, "name": names.get(gt["label"], gt["label"])} if gt else None


def _majority(chosen: list[str], names: dict) -> dict | None:
    """The label chosen most often, with its votes; None without annotations or when two tie."""
    counts = pd.Series(chosen, dtype=object).value_counts()
    if counts.empty or (len(counts) > 1 and counts.iloc[0] == counts.iloc[1]):
        return None
    label = counts.index[0]
    return {"label": label, "name": names.get(label, label), "votes": int(counts.iloc[0]), "of": len(chosen)}


def _explain_unchosen(*, consensus_name: str, quality: float, majority: dict | None, n: int) -> str:
    """Why the run's consensus is a label none of the item's annotators chose."""
    q = f"quality {quality:.2f}"
    if majority is None:
        said = f"the {n} annotators split with no majority" if n else "no annotator labeled the item"
    elif majority["votes"] == n:
        if n > 1:
            return f"All {n} annotators said {majority['name']}; cleanlab's consensus is {consensus_name} ({q})."
        said = f"the one annotator said {majority['name']}"
    elif 2 * majority["votes"] > n:
        said = f"the majority said {majority['name']} ({majority['votes']} of {n})"
    else:
        said = f"most votes went to {majority['name']} ({majority['votes']} of {n})"
    return (
        f"The model and the annotators' track records point to {consensus_name} ({q}), "
        f"a label no annotator chose; {said}."
    )


def review_queue_size(*, project) -> int:
    """Disputed and conflicting items, but not those waiting for one more annotation (ReopenRequest)."""
    return Item.objects.filter(project=project, status__in=["disputed", "conflict"]).exclude(reopen_pending()).count()


def quality_overview(*, project, with_panels: bool = False) -> dict:
    """What the quality page shows: the latest done run and its histogram, the active run, the last
    ten runs and the settings; `with_panels` adds the agreement and the annotator table (each reads
    every annotation, so the page otherwise loads them afterwards)."""
    run = latest_run(project=project)
    return {
        "run": run,
        "active_run": active_run(project=project),
        "runs": list(run_list(project=project).select_related("requested_by")[:10]),
        "histogram": quality_histogram(run=run),
        "accept_rule": accept_rule_card(project=project, run=run),
        "settings": quality_settings(project=project),
        **(agreement_panel(project=project) if with_panels else {}),
        "annotators": annotator_table(project=project) if with_panels else None,
    }


def accept_rule_card(*, project, run) -> dict:
    """The accept rule as the quality page shows it: the project's settings and what the latest run
    recorded (labeling.stats.calibration): threshold, calibration curve, audits, other targets."""
    rec = (run.calibration if run is not None else None) or {}
    audit = rec.get("audit") or {}
    others = [
        {"target": float(t), "items": n}
        for t, n in sorted((rec.get("would_accept") or {}).items(), key=lambda x: float(x[0]))
    ]
    curve = rec.get("curve") or []
    return {
        "mode": project.accept_mode,
        "run_mode": rec.get("mode"),
        "target": project.max_accept_error,
        "audit_rate": project.audit_rate,
        "rule": rec.get("rule"),
        "threshold": rec.get("threshold"),
        "threshold_on": rec.get("threshold_on", "quality"),
        "reopenable_threshold": rec.get("reopenable_threshold"),
        "ranker": rec.get("ranker"),
        "examples": rec.get("examples", rec.get("decisions", 0)),
        "curve_on": rec.get("curve_on", "quality"),
        "estimated_error": rec.get("estimated_error"),
        "decisions": rec.get("decisions", 0),
        "weighed_on": rec.get("weighed_on"),
        "min_decisions": rec.get("min_decisions", 50),
        "audit": audit,
        "audits_sent": rec.get("audits_sent"),
        "others": others,
        "curve": curve,
        "has_curve": any(p.get("count") for p in curve),
    }


def agreement_panel(*, project) -> dict:
    """The project's agreement, and its confusion matrix as rows of (label, [(rate, count), ...])."""
    agreement = project_agreement(project=project)
    conf = agreement["confusion"]
    confusion = [(key, list(zip(conf["rates"][i], conf["counts"][i]))) for i, key in enumerate(conf["labels"])]
    return {"agreement": agreement, "confusion": confusion}


# --- annotators -----------------------------------------------------------------------------------


def annotator_table(*, project) -> list[dict]:
    """Per annotator: annotations, median seconds per item, skips, and the latest run's cleanlab
    annotator quality and agreement with consensus."""
    per_user = {
        row["annotator_id"]: row
        for row in Annotation.objects.filter(project=project).values("annotator_id").annotate(n=Count("id")).order_by()
    }
    medians = _median_seconds(project)
    skips = dict(
        Assignment.objects.filter(item__project=project, kind=AssignmentKind.ANNOTATE, status=AssignmentStatus.SKIPPED)
        .values("annotator_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("annotator_id", "n")
    )
    run = latest_run(project=project)
    stats = {s.annotator_id: s for s in QualityAnnotatorStat.objects.filter(run=run)} if run else {}
    user_ids = set(per_user) | set(skips)
    usernames = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "username"))
    rows = []
    for uid in user_ids:
        s = stats.get(uid)
        rows.append(
            {
                "annotator_id": uid,
                "username": usernames.get(uid, str(uid)),
                "annotations": per_user.get(uid, {}).get("n", 0),
                "agreement_with_consensus": s.agreement_with_consensus if s else None,
                "quality": s.quality if s else None,
                "worst_class": s.worst_class if s else "",
                "median_seconds": medians.get(uid),
                "skips": skips.get(uid, 0),
                "run_id": run.pk if (run and s) else None,
            }
        )
    rows.sort(key=lambda r: (r["quality"] is None, -(r["quality"] or 0), r["username"]))
    return rows


def _median_seconds(project) -> dict:
    t_a, t_i = Annotation._meta.db_table, Item._meta.db_table
    if is_postgres():
        cols = read_columns(
            f"SELECT a.annotator_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY a.seconds_spent) FROM {t_a} a "
            f"JOIN {t_i} i ON i.id = a.item_id WHERE i.project_id = %s AND a.seconds_spent IS NOT NULL GROUP BY a.annotator_id",
            [project.pk],
            {"annotator_id": np.int64, "median": float},
        )
        return dict(zip(cols["annotator_id"].tolist(), cols["median"].tolist()))
    cols = read_columns(
        f"SELECT a.annotator_id, a.seconds_spent FROM {t_a} a JOIN {t_i} i ON i.id = a.item_id "
        f"WHERE i.project_id = %s AND a.seconds_spent IS NOT NULL",
        [project.pk],
        {"annotator_id": np.int64, "seconds": float},
    )
    if not len(cols["annotator_id"]):
        return {}
    return pd.Series(cols["seconds"]).groupby(cols["annotator_id"]).median().to_dict()


@dataclass(frozen=True)
class RecentDecision:
    item_id: int
    external_id: str
    label: str
    label_name: str
    decided_at: object
    expires_at: object  # when it can no longer be undone
    seconds_left: int


def review_recent_decisions(*, project, reviewer, limit: int = 5) -> list[RecentDecision]:
    """The reviewer's latest decisions in the project that can still be undone (within
    LOUPE_REVIEW_UNDO_SECONDS, not undone, still the item's latest decision), newest first. A
    decision the label changed after still shows: its undo answers why not."""
    window, now = timedelta(seconds=settings.LOUPE_REVIEW_UNDO_SECONDS), timezone.now()
    rows = (
        ReviewDecision.objects.filter(
            item__project=project, reviewer=reviewer, undone_at__isnull=True, decided_at__gt=now - window
        )
        .exclude(Exists(ReviewDecision.objects.filter(item=OuterRef("item"), pk__gt=OuterRef("pk"))))
        .select_related("item")
        .order_by("-id")[:limit]
    )
    names = dict(LabelClass.objects.filter(project=project).values_list("key", "name"))
    return [
        RecentDecision(
            d.item_id,
            d.item.external_id,
            d.label,
            names.get(d.label, d.label),
            d.decided_at,
            d.decided_at + window,
            max(0, int((d.decided_at + window - now).total_seconds())),
        )
        for d in rows
    ]
