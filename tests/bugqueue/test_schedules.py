def test_beat_schedule_is_merged():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "bugqueue.weekly_digests",
        "bugqueue.reconcile_occurrences",
        "bugqueue.file_failed_predictions_sweep",
    } <= tasks
