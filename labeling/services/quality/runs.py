"""A quality run's life: requested (a partial unique constraint keeps one queued-or-running run
per project), claimed, executed, finished or failed; the sweep for runs whose worker died, the
pruning of old results, and the project's automatic trigger.

Executing a run reads a snapshot (snapshot), scores it (labeling.stats.consensus), chooses its
accept rule (labeling.stats.calibration, fitted on reviewers' decisions), decides each item's outcome
(plan) and carries that out (write), each phase timed on the run. A run that finishes or fails
announces quality_run.finished (common.events) after commit.

Long because a run's whole life, and the settings and decisions it reads, belong together.

Raw SQL: counting a disputed item is one UPDATE ... RETURNING on every disputing submit (add and
read the setting back in one statement), which the ORM cannot say.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta
from functools import partial

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from common.db import sql
from common.db.locks import lock_rows
from common.errors import Conflict, NotFound, ValidationFailed
from common.events import emit
from labeling.models import (
    ACTIVE_RUN_STATUSES,
    AcceptMode,
    GroundTruth,
    GroundTruthMethod,
    ItemStatus,
    PredProbsSource,
    Project,
    QualityItemResult,
    QualityMethod,
    QualityOutcome,
    QualityRun,
    QualityRunStatus,
    QualitySettings,
    QualityTrigger,
)
from labeling.services.projects import accept_rule_validate
from labeling.services.quality.plan import plan_outcomes, plan_summary
from labeling.services.quality.snapshot import quality_snapshot_complete, quality_snapshot_read, snapshot_pred_probs
from labeling.services.quality.write import write_plan
from labeling.services.work import Heartbeat, WorkTakenOver, enqueue, work_recover
from labeling.stats import calibration, consensus

logger = logging.getLogger(__name__)

QUALITY_RUN_TASK = "loupe.quality_run"  # labeling.tasks.quality_run_task, sent by name (tasks import services)


def _run_timeout() -> timedelta:
    return timedelta(seconds=settings.LOUPE_QUALITY_RUN_TIMEOUT)


# --- requesting runs --------------------------------------------------------------------------


def _enqueue(run_id: int) -> None:
    # A broker that is down does not fail the request: the queued run is the record (the sweep sends it).
    enqueue(QUALITY_RUN_TASK, run_id, record=False)


@transaction.atomic
def quality_run_request(*, project_id: int, requested_by=None, trigger: str = QualityTrigger.MANUAL) -> QualityRun:
    """Queue a run for the project (the task starts after commit). Raises Conflict when one is
    already queued or running: the database constraint decides, so two requests at once start one."""
    # Lock order (labeling.services.__init__): the project's quality-settings row before any quality run.
    _settings_lock(project_id)
    try:
        with transaction.atomic():
            run = QualityRun.objects.create(
                project_id=project_id, requested_by=requested_by, trigger=trigger, seed=secrets.randbelow(2**31)
            )
    except IntegrityError:
        active = QualityRun.objects.filter(project_id=project_id, status__in=ACTIVE_RUN_STATUSES).order_by("id").first()
        if active is None:  # it finished between our insert and this read: a retry will succeed
            raise Conflict("Another quality run was being queued for this project; try again.", code="run_in_progress")
        raise Conflict(
            f"Quality run #{active.pk} is already {active.status} for this project.",
            code="run_in_progress",
            fields={"run_id": active.pk},
        )
    _settings_row(project_id)
    QualitySettings.objects.filter(project_id=project_id).update(disputed_since_run=0)
    transaction.on_commit(partial(_enqueue, run.pk))
    return run


def _settings_row(project_id: int) -> None:
    if QualitySettings.objects.filter(project_id=project_id).exists():
        return
    try:
        with transaction.atomic():
            QualitySettings.objects.create(project_id=project_id)
    except IntegrityError:
        pass  # created concurrently


def _settings_lock(project_id: int) -> None:
    """Lock the project's quality-settings row (created if missing) until the transaction ends."""
    _settings_row(project_id)
    lock_rows(QualitySettings.objects.filter(project_id=project_id))


@transaction.atomic
def quality_on_item_disputed(*, project_id: int, count: int = 1) -> QualityRun | None:
    """Called by the annotation service when an item becomes disputed (inside its transaction).
    Counts new disputed items and queues a run (after commit) once the project's setting is reached;
    returns that run, or None. One statement counts and reads the setting back (see the module doc)."""
    for _ in range(2):
        row = sql.fetchone(
            f"UPDATE {sql.table(QualitySettings)} SET disputed_since_run = disputed_since_run + %s "
            f"WHERE project_id = %s RETURNING auto_run_after_disputed, disputed_since_run",
            [count, project_id],
        )
        if row is not None:
            break
        _settings_row(project_id)  # first disputed item of the project
    threshold, pending = row
    if not threshold or pending < threshold:
        return None
    if QualityRun.objects.filter(project_id=project_id, status__in=ACTIVE_RUN_STATUSES).exists():
        return None  # one is already queued or running (cheap check before the insert that would fail)
    try:
        return quality_run_request(project_id=project_id, trigger=QualityTrigger.AUTO)
    except Conflict:
        return None  # a run is already queued or running; the next disputed item tries again


@transaction.atomic
def quality_settings_update(
    *,
    project: Project,
    auto_run_after_disputed: int | None = None,
    accept_mode: str | None = None,
    max_accept_error: float | None = None,
    audit_rate: float | None = None,
) -> QualitySettings:
    """Change the automatic trigger and the project's accept rule; all checked before anything changes."""
    if auto_run_after_disputed is not None and (
        not isinstance(auto_run_after_disputed, int)
        or isinstance(auto_run_after_disputed, bool)
        or not 0 <= auto_run_after_disputed <= 1_000_000
    ):
        raise ValidationFailed(
            "auto_run_after_disputed must be an integer from 0 (off) to 1,000,000.",
            fields={"auto_run_after_disputed": ["Must be an integer from 0 to 1000000."]},
        )
    rule = {"accept_mode": accept_mode, "max_accept_error": max_accept_error, "audit_rate": audit_rate}
    rule = {k: v for k, v in rule.items() if v is not None}
    if rule:
        locked = Project.objects.select_for_update().get(pk=project.pk)
        merged = {k: rule.get(k, getattr(locked, k)) for k in ("accept_mode", "max_accept_error", "audit_rate")}
        accept_rule_validate(**merged)
        Project.objects.filter(pk=project.pk).update(**rule, updated_at=timezone.now())
    _settings_row(project.pk)
    row = QualitySettings.objects.select_for_update().select_related("project").get(project=project)
    if auto_run_after_disputed is not None:
        row.auto_run_after_disputed = auto_run_after_disputed
        row.save(update_fields=["auto_run_after_disputed", "updated_at"])
    return row


def quality_runs_recover(*, now=None, sender=None) -> dict:
    """Periodic sweep (labeling.services.work): a running run whose heartbeat stopped is queued again
    (or failed after LOUPE_WORK_MAX_ATTEMPTS), a queued run nobody picked up is sent again, and a run
    still beating past LOUPE_QUALITY_RUN_TIMEOUT (a hung worker) is failed. Safe to run any time:
    each change is a compare-and-set, and claiming a run is atomic."""
    now = now or timezone.now()
    stuck = QualityRun.objects.filter(status=QualityRunStatus.RUNNING, started_at__lt=now - _run_timeout())
    error, timed_out = "The run did not finish within LOUPE_QUALITY_RUN_TIMEOUT.", 0
    for run_id, project_id in stuck.values_list("pk", "project_id"):
        if stuck.filter(pk=run_id).update(status=QualityRunStatus.FAILED, finished_at=now, error=error):
            timed_out += 1
            _announce_finished(
                run_id=run_id, project_id=project_id, status=QualityRunStatus.FAILED, fields={"error": error}
            )
    counts = work_recover(
        model=QualityRun,
        task=QUALITY_RUN_TASK,
        queued=QualityRunStatus.QUEUED,
        running=QualityRunStatus.RUNNING,
        failed=QualityRunStatus.FAILED,
        now=now,
        sender=sender,
        what="quality run",
    )
    return {**counts, "failed": counts["failed"] + timed_out}


def quality_results_prune(*, keep_runs: int | None = None) -> int:
    """Per-item results are kept for each project's latest `keep_runs` finished runs (setting
    LOUPE_QUALITY_KEEP_RESULTS_RUNS, default 5); older runs keep their summary row only.
    Returns the number of result rows deleted."""
    keep = keep_runs if keep_runs is not None else settings.LOUPE_QUALITY_KEEP_RESULTS_RUNS
    finished = QualityRun.objects.filter(status__in=[QualityRunStatus.DONE, QualityRunStatus.FAILED])
    deleted = 0
    for project_id in finished.values_list("project_id", flat=True).distinct():
        old = list(finished.filter(project_id=project_id).order_by("-id").values_list("pk", flat=True)[keep:])
        if old:
            with transaction.atomic():
                deleted += QualityItemResult.objects.filter(run_id__in=old).delete()[0]
    return deleted


# --- running ------------------------------------------------------------------------------------


def _claim(run_id: int) -> QualityRun | None:
    """queued -> running, atomically: a duplicate or redelivered task message finds nothing to do."""
    now = timezone.now()
    claimed = QualityRun.objects.filter(pk=run_id, status=QualityRunStatus.QUEUED).update(
        status=QualityRunStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1, error=""
    )
    if not claimed:
        return None
    return QualityRun.objects.select_related("project").get(pk=run_id)


def quality_run_execute(*, run_id: int) -> QualityRun | None:
    """Run a queued quality run to completion (or failure, with the error on the run). Idempotent:
    a run that is not queued is left alone. Returns the run, or None if there was nothing to do."""
    if not QualityRun.objects.filter(pk=run_id).exists():
        raise NotFound(f"Quality run #{run_id} does not exist.")
    run = _claim(run_id)
    if run is None:
        return None
    # The heartbeat tells the work sweep this attempt is alive; it stops when the sweep handed the run
    # to another attempt, and this one then stops before writing anything more.
    with Heartbeat(QualityRun, run.pk, run.attempts) as beat:
        return _execute(run, beat)


def _execute(run: QualityRun, beat: Heartbeat) -> QualityRun:
    run_id = run.pk
    mine = QualityRun.objects.filter(pk=run_id, status=QualityRunStatus.RUNNING, attempts=run.attempts)
    started = time.perf_counter()
    timings = {}
    try:
        project = run.project
        t = time.perf_counter()
        snap = quality_snapshot_read(project_id=project.pk)
        timings["seconds_read"] = time.perf_counter() - t
        base = {
            "snapshot_at": snap.snapshot_at,
            "snapshot_max_annotation_id": snap.max_annotation_id,
            "n_annotations": snap.n_annotations,
            "n_annotators": len(snap.annotator_ids),
            "n_ignored_annotations": snap.n_ignored,
            "accept_threshold": project.accept_threshold,
        }
        if len(snap.item_ids) == 0:
            quality_snapshot_complete(snap)
            _finish(
                run,
                started,
                timings,
                **plan_summary(np.zeros(0, dtype=object), np.zeros(0), np.zeros(0, dtype=bool)),
                method=QualityMethod.NONE,
                calibration={"mode": project.accept_mode},
                **base,
            )
            return QualityRun.objects.get(pk=run_id)
        t = time.perf_counter()
        pred_probs, source = snapshot_pred_probs(snap, seed=run.seed)
        timings["seconds_pred_probs"] = time.perf_counter() - t
        t = time.perf_counter()
        scores = consensus.score_crowd(snap.labels, pred_probs, seed=run.seed, normalized=True)
        # The time inside cleanlab's functions only; our own arithmetic around them counts in the total.
        timings["seconds_cleanlab"] = scores.seconds_cleanlab or (time.perf_counter() - t)
        t = time.perf_counter()
        quality_snapshot_complete(snap)  # the items' state was read while scoring; any wait left is read time
        timings["seconds_read"] += time.perf_counter() - t
        beat.check()
        t = time.perf_counter()
        rule = _accept_rule(run, project, snap, scores, pred_probs, source)
        base["accept_threshold"] = rule.threshold
        plan = plan_outcomes(
            snap,
            scores,
            accept_threshold=project.accept_threshold,
            max_annotations=project.max_annotations_per_item,
            accept=None if project.accept_mode == AcceptMode.RAW_SCORE else rule.accept,
            audit=_audits(run, project, snap) if project.accept_mode == AcceptMode.CALIBRATED else None,
        )
        plan.p_right = rule.p_right
        outcome = write_plan(run, snap, scores, plan)
        audited = plan.audit & (outcome == QualityOutcome.REVIEW)
        if audited.any():
            QualityItemResult.objects.filter(run_id=run_id, item_id__in=snap.item_ids[audited].tolist()).update(
                audit=True
            )
        rule.record["audits_sent"] = int(audited.sum())
        timings["seconds_write"] = time.perf_counter() - t
        _finish(
            run,
            started,
            timings,
            **plan_summary(outcome, scores.quality, scores.label_issue),
            method=scores.method,
            pred_probs_source=source,
            model_versions=", ".join(snap.model_versions)[:512] if source == PredProbsSource.PRODUCTION else "",
            calibration=rule.record,
            **base,
        )
    except WorkTakenOver:
        logger.warning(
            "quality run %s: attempt %s stopped, the run was handed to another attempt", run_id, run.attempts
        )
    except Exception as exc:  # the run records its error; the task does not retry a deterministic failure
        logger.exception("quality run %s failed", run_id)
        error = f"{type(exc).__name__}: {exc}"[:4000]
        failed = mine.update(
            status=QualityRunStatus.FAILED,
            error=error,
            finished_at=timezone.now(),
            seconds_total=time.perf_counter() - started,
            **timings,
        )
        if failed:
            _announce_finished(
                run_id=run_id, project_id=run.project_id, status=QualityRunStatus.FAILED, fields={"error": error}
            )
    return QualityRun.objects.get(pk=run_id)


def _accept_rule(run, project, snap, scores, pred_probs, source) -> calibration.AcceptRule:
    """The run's accept rule: the project's raw threshold, or the threshold calibrated on reviewers'
    decisions (the default rule until there are enough of them), with the record the run keeps."""
    if project.accept_mode == AcceptMode.RAW_SCORE:
        quality = np.nan_to_num(scores.quality, nan=0.0)
        return calibration.AcceptRule(
            accept=quality >= project.accept_threshold,
            threshold=project.accept_threshold,
            record={"mode": AcceptMode.RAW_SCORE.value, "threshold": project.accept_threshold},
        )
    decision_features, decision_right, audit_right, decided = quality_decisions(project_id=project.pk)
    # The model's prediction backs a majority in the default rule; class frequencies are no model.
    model_pred = None if source == PredProbsSource.CLASS_PRIOR else np.argmax(pred_probs, axis=1)
    candidates = (snap.status == ItemStatus.DISPUTED) & (scores.agreement > 0) & ~scores.label_issue
    rule = calibration.calibrated_rule(
        quality=scores.quality,
        candidates=candidates,
        agreement=scores.agreement,
        num_annotations=scores.num_annotations,
        consensus=scores.consensus,
        model_pred=model_pred,
        decision_features=decision_features,
        decision_right=decision_right,
        decided_items=decided,
        reopenable=snap.required < project.max_annotations_per_item,
        audit_right=audit_right,
        max_error=project.max_accept_error,
    )
    # Decisions are about consensus among annotators: an item with one label (which cleanlab may doubt)
    # is still judged against the project's raw threshold.
    single = scores.num_annotations < 2
    rule.accept = np.where(single, np.nan_to_num(scores.quality, nan=0.0) >= project.accept_threshold, rule.accept)
    return rule


def _audits(run, project, snap) -> np.ndarray:
    """This run's audit draw, plus the items an earlier run sent to review as an audit that nobody has
    decided yet: an audit stays one until a reviewer decides it (a later run must not accept it)."""
    draw = calibration.audit_draw(snap.item_ids, run.seed, project.audit_rate)
    # A carried audit is re-marked by each run that sends it to review, so the latest run holds them all.
    previous = (
        QualityRun.objects.filter(project_id=project.pk, status=QualityRunStatus.DONE, pk__lt=run.pk)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    waiting = QualityItemResult.objects.filter(
        run_id=previous, audit=True, item__status=ItemStatus.DISPUTED
    ).values_list("item_id", flat=True)
    return draw | np.isin(snap.item_ids, np.fromiter(waiting, dtype=np.int64))


def quality_decisions(*, project_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Reviewers' decisions as labeled examples of "was the consensus right?": for each item a reviewer
    decided (ground truth adjudicated), every finished run's result scored before the decision (an
    item reviewed after 5 annotations also says whether its consensus at 3 and at 4 was right).
    Returns (the results' calibration.item_features, right, per audited item whether its audited
    consensus was right, the number of decided items)."""
    decided = GroundTruth.objects.filter(item__project_id=project_id, method=GroundTruthMethod.ADJUDICATED)
    truth = {i: (label, at) for i, label, at in decided.values_list("item_id", "label", "decided_at")}
    features, right, audit_right, items = [], [], [], set()
    if truth:
        rows = QualityItemResult.objects.filter(
            run__project_id=project_id, run__status=QualityRunStatus.DONE, item_id__in=decided.values("item_id")
        ).values_list(
            "item_id", "run__snapshot_at", "consensus_label", "quality", "agreement", "num_annotations", "audit"
        )
        audited = {}  # item -> whether its latest audited consensus before the decision was right
        for item_id, snapshot_at, consensus_label, quality, agreement, num, audit in rows.order_by(
            "item_id", "run_id"
        ).iterator(chunk_size=5000):
            label, decided_at = truth[item_id]
            if snapshot_at is None or snapshot_at >= decided_at:
                continue
            items.add(item_id)
            features.append((quality, agreement, num))
            right.append(consensus_label == label)
            if audit:
                audited[item_id] = consensus_label == label
        audit_right = list(audited.values())
    return (
        calibration.item_features(*np.array(features, dtype=float).reshape(-1, 3).T),
        np.array(right, dtype=bool),
        np.array(audit_right, dtype=bool),
        len(items),
    )


def _announce_finished(*, run_id: int, project_id: int, status: str, fields: dict) -> None:
    """quality_run.finished (common.events), sent after the run's final state commits."""
    counts = {k: int(fields.get(k) or 0) for k in ("scored", "auto_accepted", "to_review")}
    if status == QualityRunStatus.DONE:
        subject = (
            f"Quality run #{run_id} done: {counts['scored']:,} scored, {counts['auto_accepted']:,} accepted, "
            f"{counts['to_review']:,} to review"
        )
    else:
        subject = f"Quality run #{run_id} failed: {(fields.get('error', '').splitlines() or [''])[0]}"[:300]
    emit(
        project_id=project_id,
        type="quality_run.finished",
        subject=subject,
        data={"run_id": run_id, "status": str(status), **counts, "error": fields.get("error", "")},
        path=f"/projects/{project_id}/quality",
        key=f"quality_run:{run_id}",
    )


def _finish(run, started, timings, **fields) -> None:
    with transaction.atomic():
        finished = QualityRun.objects.filter(pk=run.pk, status=QualityRunStatus.RUNNING, attempts=run.attempts).update(
            status=QualityRunStatus.DONE,
            finished_at=timezone.now(),
            seconds_total=time.perf_counter() - started,
            **timings,
            **fields,
        )
        if not finished:
            return  # another attempt owns the run now (this one's heartbeat had stopped)
        _announce_finished(run_id=run.pk, project_id=run.project_id, status=QualityRunStatus.DONE, fields=fields)
        # Disputes that arrived while this run worked may already call for the next one.
        threshold_reached = QualitySettings.objects.filter(
            project_id=run.project_id,
            auto_run_after_disputed__gt=0,
            disputed_since_run__gte=F("auto_run_after_disputed"),
        ).exists()
    if threshold_reached:
        try:
            quality_run_request(project_id=run.project_id, trigger=QualityTrigger.AUTO)
        except Conflict:
            pass
