"""Thin Celery entry points: take ids, call one service."""

from celery import shared_task


@shared_task(name="loupe.health_ping")
def health_ping(token: str) -> str:
    """Trivial health task: records that a worker ran it (checked by the broker integration test)."""
    from labeling.services.health import health_record

    health_record(token=token)
    return token
