"""Thin Celery entry points: take ids, call one service."""

from celery import shared_task


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
