"""Every stored row a request may write, to check that a refused request wrote nothing."""

from django.apps import apps
from django.contrib.auth import get_user_model

APPS = ("labeling", "bugqueue")  # API tokens are labeling.ApiToken rows


def snapshot() -> dict:
    """{model label: its rows in key order}; meant for the small worlds of API tests."""
    models = [m for label in APPS for m in apps.get_app_config(label).get_models()]
    models.append(get_user_model())
    return {m._meta.label: [tuple(map(_plain, r)) for r in m.objects.order_by("pk").values_list()] for m in models}


def _plain(value):
    return bytes(value) if isinstance(value, memoryview) else value
