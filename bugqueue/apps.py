from django.apps import AppConfig


class BugqueueConfig(AppConfig):
    name = "bugqueue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from common.events import event_emitted
        from labeling.signals import feedback_slo_changed, ground_truth_changed

        from . import receivers, schedules

        settings.CELERY_BEAT_SCHEDULE.update(schedules.BEAT_SCHEDULE)
        # Name the bug queue's enums in the OpenAPI schema (fields like "status" or "kind" exist in
        # other apps too); merged like the beat schedule, before drf-spectacular first reads it.
        settings.SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
            {
                "BugStatusEnum": "bugqueue.models.BugStatus",
                "BugKindEnum": "bugqueue.models.BugKind",
                "BugPriorityEnum": "bugqueue.models.Priority",
                "BugResolutionEnum": "bugqueue.models.Resolution",
            }
        )
        ground_truth_changed.connect(receivers.on_ground_truth_changed, dispatch_uid="bugqueue.ground_truth_changed")
        ground_truth_changed.connect(receivers.on_ground_truth_for_datasets, dispatch_uid="bugqueue.datasets_pending")
        feedback_slo_changed.connect(receivers.on_feedback_slo_changed, dispatch_uid="bugqueue.feedback_slo_changed")
        # Connected before alerts.apps connects its receiver (INSTALLED_APPS order), so the bug id
        # is in the event's data when the alerts app stores it.
        event_emitted.connect(receivers.on_event_emitted, dispatch_uid="bugqueue.data_quality_alert")
