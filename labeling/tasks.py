"""Thin Celery entry points: take ids, call one service."""

from celery import shared_task


@shared_task(name="loupe.health_ping")
def health_ping(token: str) -> str:
    """Trivial health task: records that a worker ran it (checked by the broker integration test)."""
    from labeling.services.health import health_record

    health_record(token=token)
    return token


# --- queue (issue 3) ----------------------------------------------------------------------------


@shared_task(name="loupe.queue_expire_leases")
def queue_expire_leases() -> int:
    """Mark leases that ran out as expired (slots are already free without it; this keeps states right)."""
    from labeling.services.queue import assignments_expire

    return assignments_expire()


@shared_task(name="loupe.queue_reconcile_project")
def queue_reconcile_project(project_id: int) -> dict:
    """Recompute one project's stored queue counters and log any drift."""
    from labeling.services.queue import counters_reconcile

    from dataclasses import asdict

    return asdict(counters_reconcile(project_id=project_id))


@shared_task(name="loupe.queue_reconcile_all")
def queue_reconcile_all() -> int:
    """Fan out one reconcile task per project (each is idempotent)."""
    from labeling.models import Project

    ids = list(Project.objects.order_by("pk").values_list("pk", flat=True))
    for project_id in ids:
        queue_reconcile_project.delay(project_id)
    return len(ids)
