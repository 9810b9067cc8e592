"""Celery beat entries owned by the labeling app (merged into settings in AppConfig.ready)."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {}

# queue (issue 3): mark expired leases every minute; recount stored counters nightly.
BEAT_SCHEDULE["queue-expire-leases"] = {"task": "loupe.queue_expire_leases", "schedule": 60.0}
BEAT_SCHEDULE["queue-reconcile-counters"] = {"task": "loupe.queue_reconcile_all", "schedule": crontab(hour=3, minute=17)}
