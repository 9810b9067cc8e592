"""Celery beat entries owned by the labeling app (merged into settings in AppConfig.ready)."""

BEAT_SCHEDULE: dict = {}
BEAT_SCHEDULE["loupe-export-sweep"] = {"task": "loupe.export_sweep", "schedule": 600.0}  # export (#8)
