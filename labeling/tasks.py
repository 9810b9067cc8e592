"""Thin Celery entry points: take ids, call one service."""

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(name="loupe.health_ping")
def health_ping(token: str) -> str:
    """Trivial health task: records that a worker ran it (checked by the broker integration test)."""
    from labeling.services.health import health_record

    health_record(token=token)
    return token


@shared_task(name="loupe.export_build", autoretry_for=(OperationalError, InterfaceError), retry_backoff=True,
             max_retries=3)
def export_build(export_id: int) -> None:
    """Write one export's snapshot file (idempotent: a finished export is left as it is)."""
    from labeling.services.export import export_file_build

    export_file_build(export_id=export_id)


@shared_task(name="loupe.export_sweep")
def export_sweep() -> int:
    """Re-enqueue exports whose build message was lost or whose worker died (the database is the record)."""
    from labeling.services.export import export_stale_ids

    ids = export_stale_ids()
    for export_id in ids:
        export_build.delay(export_id)
    return len(ids)
