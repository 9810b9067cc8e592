"""Thin Celery entry points: take ids, call one service. Services send these by name
(labeling.services.work.enqueue), so this module imports services and no service imports it."""

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(name="loupe.health_ping")
def health_ping(token: str) -> str:
    """Trivial health task: records that a worker ran it (checked by the broker integration test)."""
    from labeling.services.health import health_record

    health_record(token=token)
    return token


@shared_task(name="loupe.similarity_index_update", acks_late=True)
def similarity_index_update_task(project_id: int) -> None:
    """Keep a project's nearest-neighbour index in step with its items (idempotent)."""
    from labeling.services.similarity import similarity_index_update

    similarity_index_update(project_id=project_id)


@shared_task(
    name="loupe.export_build", autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3
)
def export_build(export_id: int) -> None:
    """Write one export's snapshot file (idempotent: a finished export is left as it is)."""
    from labeling.services.export import export_file_build

    export_file_build(export_id=export_id)


@shared_task(name="loupe.work_sweep")
def work_sweep() -> dict:
    """Beat, every minute: re-queue quality runs and export builds whose heartbeat stopped (a worker
    died), re-send queued ones nobody picked up, and send task messages the broker refused
    (labeling.services.sweep)."""
    from labeling.services.sweep import work_sweep as sweep

    return sweep()


@shared_task(name="loupe.export_sweep")
def export_sweep() -> dict:
    """Exports only (the work sweep does this every minute)."""
    from labeling.services.export import exports_recover

    return exports_recover()


# --- feedback delay ----------------------------------------------------------------------------


def _transient():
    return (OperationalError,)


@shared_task(name="loupe.feedback_refresh", autoretry_for=_transient(), retry_backoff=True, max_retries=5)
def feedback_refresh(project_id: int) -> None:
    """Attach pending imported truth and bring the delay rollups up to date (idempotent)."""
    from labeling.services.feedback import feedback_project_refresh

    feedback_project_refresh(project_id=project_id)


@shared_task(name="loupe.feedback_check", autoretry_for=_transient(), retry_backoff=True, max_retries=5)
def feedback_check(project_id: int) -> None:
    """Refresh one project's rollups and check its feedback-delay SLO (announces a flip once)."""
    from labeling.services.feedback import feedback_project_tick

    feedback_project_tick(project_id=project_id)


@shared_task(name="loupe.feedback_check_all")
def feedback_check_all() -> int:
    from labeling.models import Project

    ids = list(Project.objects.values_list("pk", flat=True))
    for pk in ids:
        feedback_check.delay(pk)
    return len(ids)


@shared_task(name="loupe.feedback_reconcile", autoretry_for=_transient(), retry_backoff=True, max_retries=5)
def feedback_reconcile(project_id: int) -> int:
    """Recompute any prediction day whose rollup counts drifted from the base tables (logged)."""
    from labeling.services.feedback import feedback_project_reconcile

    return feedback_project_reconcile(project_id=project_id)


@shared_task(name="loupe.feedback_reconcile_all")
def feedback_reconcile_all() -> int:
    from labeling.models import Project

    ids = list(Project.objects.values_list("pk", flat=True))
    for pk in ids:
        feedback_reconcile.delay(pk)
    return len(ids)


# --- queue ----------------------------------------------------------------------------------


@shared_task(name="loupe.queue_expire_leases")
def queue_expire_leases() -> int:
    """Mark leases that ran out as expired (slots are already free without it; this keeps states right)."""
    from labeling.services.queue.leases import assignments_expire

    return assignments_expire()


@shared_task(name="loupe.queue_reconcile_project")
def queue_reconcile_project(project_id: int) -> dict:
    """Recompute one project's stored queue counters and log any drift."""
    from dataclasses import asdict

    from labeling.services.queue.maintenance import counters_reconcile

    return asdict(counters_reconcile(project_id=project_id))


@shared_task(name="loupe.queue_order_rekey", autoretry_for=_transient(), retry_backoff=True, max_retries=5)
def queue_order_rekey_task(project_id: int) -> int:
    """After a project's ordering changed: re-key its open items (idempotent)."""
    from labeling.services.queue.maintenance import queue_order_rekey

    return queue_order_rekey(project_id=project_id)


@shared_task(name="loupe.queue_reconcile_all")
def queue_reconcile_all() -> int:
    """Fan out one reconcile task per project (each is idempotent)."""
    from labeling.models import Project

    ids = list(Project.objects.order_by("pk").values_list("pk", flat=True))
    for project_id in ids:
        queue_reconcile_project.delay(project_id)
    return len(ids)


# --- quality --------------------------------------------------------------------------------


@shared_task(name="loupe.quality_run", acks_late=True)
def quality_run_task(run_id: int) -> None:
    """Score a project with cleanlab (labeling.services.quality). Idempotent: a run that is no longer
    queued (already running, done or failed) is left alone, so a redelivered message does nothing."""
    from labeling.services.quality.runs import quality_run_execute

    quality_run_execute(run_id=run_id)


@shared_task(name="loupe.quality_runs_recover")
def quality_runs_recover_task() -> dict:
    """Re-send queued runs whose message was lost, re-queue or fail runs whose worker died (the work
    sweep does this every minute), and drop the per-item results of old runs."""
    from labeling.services.quality.runs import quality_results_prune, quality_runs_recover

    return {**quality_runs_recover(), "pruned": quality_results_prune()}


@shared_task(name="loupe.quality_results_prune")
def quality_results_prune_task() -> int:
    """Beat: drop the per-item results of each project's older runs."""
    from labeling.services.quality.runs import quality_results_prune

    return quality_results_prune()


# --- API tokens -----------------------------------------------------------------------------------


@shared_task(name="loupe.tokens_prune")
def tokens_prune_task() -> int:
    """Beat: delete expired API tokens and tokens ended by a password change."""
    from labeling.services.accounts import tokens_prune

    return tokens_prune()


@shared_task(
    name="loupe.file_import_run", autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3
)
def file_import_run(job_id: int) -> None:
    """Ingest one uploaded file (idempotent: a finished import is left as it is, an interrupted one resumes)."""
    from labeling.services.file_import import import_run

    import_run(job_id=job_id)
