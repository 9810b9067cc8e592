"""Celery beat entries owned by the labeling app (merged into settings in AppConfig.ready)."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    # Quality runs and export builds whose worker died (heartbeat stopped) or whose message was lost,
    # and task messages the broker refused: every minute (labeling.services.work).
    "work-sweep": {"task": "loupe.work_sweep", "schedule": 60.0},
    # Feedback delay: refresh rollups and check each project's SLO (breach / recovery signals).
    "feedback-check": {"task": "loupe.feedback_check_all", "schedule": 15 * 60.0},
    # Feedback delay: recompute rollup days that drifted from the base tables.
    "feedback-reconcile": {"task": "loupe.feedback_reconcile_all", "schedule": crontab(hour=3, minute=17)},
    # Queue: mark expired leases every minute; recount stored counters nightly.
    "queue-expire-leases": {"task": "loupe.queue_expire_leases", "schedule": 60.0},
    "queue-reconcile-counters": {"task": "loupe.queue_reconcile_all", "schedule": crontab(hour=3, minute=47)},
    # Quality: prune old runs' per-item results (lost or dead runs: the work sweep above).
    "quality-results-prune": {"task": "loupe.quality_results_prune", "schedule": 300.0},
}

# API tokens: delete expired ones (a request only checks the token it presents).
BEAT_SCHEDULE["tokens-prune"] = {"task": "loupe.tokens_prune", "schedule": crontab(minute=23)}
