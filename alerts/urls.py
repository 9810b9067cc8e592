from django.urls import path  # noqa: F401

from alerts.views import channels

urlpatterns = [
    # channels page (views/channels.py)
    path("projects/<int:project_id>/channels", channels.channels_page, name="channels-page"),
    # rules, alerts, on-call pages (views/rules.py)
]
