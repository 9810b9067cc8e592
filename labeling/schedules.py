"""Celery beat entries owned by the labeling app (merged into settings in AppConfig.ready)."""

BEAT_SCHEDULE: dict = {}
BEAT_SCHEDULE["quality-runs-recover"] = {"task": "loupe.quality_runs_recover", "schedule": 300.0}
