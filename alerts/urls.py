from django.urls import path  # noqa: F401

urlpatterns = [
    # channels page (views/channels.py)
    # rules, alerts, on-call pages (views/rules.py)
]
