"""Celery beat entries owned by on call (merged into settings in AlertsConfig.ready)."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    # Deliveries whose message was lost: pending for over a minute, or failed and due again.
    "alerts-deliveries-sweep": {"task": "alerts.deliveries_sweep", "schedule": crontab(minute="*")},
}
