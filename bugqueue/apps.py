from django.apps import AppConfig


class BugqueueConfig(AppConfig):
    name = "bugqueue"
    default_auto_field = "django.db.models.BigAutoField"
