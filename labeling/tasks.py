"""Thin Celery entry points: take ids, call one service."""

from celery import shared_task


@shared_task(name="loupe.health_ping")
def health_ping(token: str) -> str:
    """Trivial health task: records that a worker ran it (checked by the broker integration test)."""
    from labeling.services.health import health_record

    health_record(token=token)
    return token


@shared_task(name="loupe.quality_run", acks_late=True)
def quality_run_task(run_id: int) -> None:
    """Score a project with cleanlab (labeling.services.quality). Idempotent: a run that is no longer
    queued (already running, done or failed) is left alone, so a redelivered message does nothing."""
    from labeling.services.quality import quality_run_execute

    quality_run_execute(run_id=run_id)


@shared_task(name="loupe.quality_runs_recover")
def quality_runs_recover_task() -> dict:
    """Beat: re-send queued runs whose message was lost; fail runs whose worker died; drop the
    per-item results of old runs."""
    from labeling.services.quality import quality_results_prune, quality_runs_recover

    return {**quality_runs_recover(), "pruned": quality_results_prune()}
