from django.urls import path  # noqa: F401

urlpatterns = [
    # channels (views_channels.py)
    # alert rules, alerts, on call (views_rules.py)
]
