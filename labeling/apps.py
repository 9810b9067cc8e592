from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from . import schedules

        settings.CELERY_BEAT_SCHEDULE.update(schedules.BEAT_SCHEDULE)
        from . import receivers  # noqa: F401  (feedback-delay rollups follow ground truth)
        from .api import schema_auth  # noqa: F401  (the token scheme in the OpenAPI schema)
