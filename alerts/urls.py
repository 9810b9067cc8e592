from django.urls import path  # noqa: F401

from alerts.views import channels
from alerts.views import rules as rules_pages

urlpatterns = [
    # channels page (views/channels.py)
    path("projects/<int:project_id>/channels", channels.channels_page, name="channels-page"),
    # rules, alerts, on-call pages (views/rules.py)
    path("projects/<int:project_id>/alert-rules", rules_pages.rules_page, name="alert-rules-page"),
    path("projects/<int:project_id>/alerts", rules_pages.alerts_page, name="alerts-page"),
    # the acknowledge link in messages: a page (one click), not an API route
    path("alerts/ack/<str:token>", rules_pages.alert_ack_page, name="alert-ack"),
]
