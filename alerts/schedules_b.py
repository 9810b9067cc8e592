"""Celery beat entries of alert rules (merged into settings in AlertsConfig.ready): digests every
minute (each rule's own interval decides), and learning what people did after alerts."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    "alerts-digests-send": {"task": "alerts.digests_send", "schedule": crontab(minute="*")},
    "alerts-actions-update": {"task": "alerts.actions_update", "schedule": crontab(minute="*/15")},
    "alerts-events-route-missed": {"task": "alerts.events_route_missed", "schedule": crontab(minute="*/5")},
}
