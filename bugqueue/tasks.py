"""Thin Celery entry points: take ids, call one service. Idempotent; enqueued after commit."""

from datetime import timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone


@shared_task(
    name="bugqueue.file_failed_predictions", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def file_failed_predictions(project_id: int) -> int:
    """Examine the project's label changes past the filer's cursor (exactly once, any number of calls)."""
    from bugqueue.services.autofile import failures_file_pending

    return failures_file_pending(project_id=project_id)["failures"]


@shared_task(name="bugqueue.file_failed_predictions_sweep")
def file_failed_predictions_sweep() -> int:
    """Periodic safety net: picks up label changes whose nudge message was lost."""
    from bugqueue.services.autofile import projects_with_unfiled_changes

    project_ids = projects_with_unfiled_changes()
    for project_id in project_ids:
        file_failed_predictions.delay(project_id)
    return len(project_ids)


@shared_task(name="bugqueue.feedback_slo_changed", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def feedback_slo_changed(project_id: int, breached: bool, observed_seconds, target_seconds, quantile) -> int | None:
    from bugqueue.services.autofile import feedback_slo_record

    result = feedback_slo_record(
        project_id=project_id,
        breached=breached,
        observed_seconds=observed_seconds,
        target_seconds=target_seconds,
        quantile=quantile,
    )
    bug = getattr(result, "bug", result)
    return getattr(bug, "pk", None)


@shared_task(name="bugqueue.reconcile_occurrences")
def reconcile_occurrences() -> int:
    from bugqueue.services.occurrences import occurrences_reconcile

    return len(occurrences_reconcile())


@shared_task(name="bugqueue.weekly_digests")
def weekly_digests(week: str | None = None) -> int:
    """Beat, Mondays: one digest task per project for the ISO week that just ended."""
    from bugqueue.selectors.triage import week_label
    from labeling.models import Project

    if not week:
        today = timezone.now().date()
        week = week_label(today - timedelta(days=today.weekday() + 7))
    project_ids = list(Project.objects.values_list("pk", flat=True))
    for project_id in project_ids:
        digest_project.delay(project_id, week)
    return len(project_ids)


@shared_task(name="bugqueue.digest_project", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def digest_project(project_id: int, week: str) -> int | None:
    from bugqueue.selectors.triage import parse_week
    from bugqueue.services.digest import digest_build, digest_send
    from labeling.models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    digest = digest_build(project=project, week_start=parse_week(week))
    digest_send(digest=digest)
    return digest.pk


@shared_task(name="bugqueue.bug_datasets_flow", bind=True, acks_late=True, max_retries=5)
def bug_datasets_flow_task(self, flow_id: int) -> None:
    """Hand a resolved bug's failures (and mined look-alikes) to its datasets. Idempotent."""
    from django.db import OperationalError

    from bugqueue.services.datasets import bug_datasets_flow_run

    try:
        bug_datasets_flow_run(flow_id=flow_id)
    except OperationalError as exc:  # transient database trouble: retry with backoff
        raise self.retry(exc=exc, countdown=2**self.request.retries)


@shared_task(
    name="bugqueue.datasets_absorb_pass", acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True
)
def datasets_absorb_pass_task(project_id: int) -> int | None:
    """The project's absorb pass: ready items of resolved bugs join their datasets, at most one
    version per dataset. A no-op (None) while the project's pass is due later; safe to run twice."""
    from bugqueue.services.absorb import datasets_absorb_pass

    versions = datasets_absorb_pass(project_id=project_id)
    return None if versions is None else len(versions)


@shared_task(name="bugqueue.datasets_absorb_labeled", acks_late=True)
def datasets_absorb_labeled_task(item_ids: list[int]) -> int:
    """Messages sent by earlier releases (one per labeled batch): schedule their projects' passes."""
    from bugqueue.models import DatasetPending
    from bugqueue.services.absorb import datasets_absorb_schedule
    from labeling.services.work import enqueue

    project_ids = sorted(
        set(DatasetPending.objects.filter(item_id__in=list(item_ids)).values_list("dataset__project_id", flat=True))
    )
    for project_id in project_ids:
        countdown = datasets_absorb_schedule(project_id=project_id)
        if countdown is not None:
            enqueue(datasets_absorb_pass_task, project_id, countdown=countdown)
    return len(project_ids)


@shared_task(name="bugqueue.datasets_absorb_sweep")
def datasets_absorb_sweep_task() -> int:
    """Periodic: run the absorb passes that are due, and those of projects with items ready to join
    a dataset but no pass scheduled (a lost message). Returns how many passes were sent."""
    from bugqueue.services.absorb import datasets_absorb_due_projects
    from labeling.services.work import enqueue

    project_ids = datasets_absorb_due_projects()
    for project_id in project_ids:
        enqueue(datasets_absorb_pass_task, project_id)
    return len(project_ids)


@shared_task(name="bugqueue.unsnooze_due")
def unsnooze_due() -> int:
    """Periodic: snoozed bugs whose date has come return to the stream."""
    from bugqueue.services.snooze import bugs_unsnooze_due

    return bugs_unsnooze_due()
