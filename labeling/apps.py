from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from . import schedules

        settings.CELERY_BEAT_SCHEDULE.update(schedules.BEAT_SCHEDULE)
        # receivers: feedback-delay rollups follow ground truth; tasks: registered, so that services
        # can send them by name (labeling.services.work.enqueue) without importing this module.
        from . import receivers, tasks  # noqa: F401
        from .api import schema_auth  # noqa: F401  (the token scheme in the OpenAPI schema)
