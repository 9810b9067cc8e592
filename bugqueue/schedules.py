"""Celery beat entries owned by the bug queue (merged into settings in BugqueueConfig.ready)."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    "bugqueue-weekly-digests": {
        "task": "bugqueue.weekly_digests",
        "schedule": crontab(minute=0, hour=7, day_of_week="mon"),  # UTC: the ISO week that just ended
    },
    "bugqueue-reconcile-occurrences": {
        "task": "bugqueue.reconcile_occurrences",
        "schedule": crontab(minute=30, hour=3),
    },
    # Datasets: absorb passes that are due (items of resolved bugs that got their label), and ready
    # items whose pass message was lost.
    "bugqueue-datasets-absorb-sweep": {"task": "bugqueue.datasets_absorb_sweep", "schedule": crontab(minute="*/5")},
    "bugqueue-unsnooze-due": {"task": "bugqueue.unsnooze_due", "schedule": crontab(minute="*/5")},
    "bugqueue-file-failed-predictions-sweep": {
        "task": "bugqueue.file_failed_predictions_sweep",
        "schedule": crontab(minute="*/10"),
    },
}
