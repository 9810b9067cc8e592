"""Celery beat entries owned by the labeling app (merged into settings in AppConfig.ready)."""

BEAT_SCHEDULE: dict = {}
