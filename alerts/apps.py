from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from alerts import receivers, schedules
        from common.events import event_emitted

        event_emitted.connect(receivers.on_event, dispatch_uid="alerts.on_event")

        settings.CELERY_BEAT_SCHEDULE.update(schedules.BEAT_SCHEDULE)
        # Name the channel enums in the OpenAPI schema ("kind" and "status" exist in other apps too).
        settings.SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
            {"ChannelKindEnum": "alerts.models.ChannelKind", "DeliveryStatusEnum": "alerts.models.DeliveryStatus"}
        )
