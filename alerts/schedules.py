"""Celery beat entries of on call (merged into settings in AlertsConfig.ready): deliveries whose
message was lost, digests (each rule's own interval decides), learning what people did after
alerts (then storing each rule's action rate), and events whose routing message was lost."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    # Deliveries whose message was lost: pending for over a minute, or failed and due again.
    "alerts-deliveries-sweep": {"task": "alerts.deliveries_sweep", "schedule": crontab(minute="*")},
    "alerts-digests-send": {"task": "alerts.digests_send", "schedule": crontab(minute="*")},
    "alerts-actions-update": {"task": "alerts.actions_update", "schedule": crontab(minute="*/15")},
    "alerts-events-route-missed": {"task": "alerts.events_route_missed", "schedule": crontab(minute="*/5")},
}
