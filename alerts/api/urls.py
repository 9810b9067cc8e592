from django.urls import path  # noqa: F401

from alerts.api import views_channels, views_rules

urlpatterns = [
    # channels (views_channels.py)
    path("projects/<int:project_id>/channels", views_channels.ChannelListCreateApi.as_view(), name="api-channels"),
    path(
        "projects/<int:project_id>/channels/<int:channel_id>",
        views_channels.ChannelDetailApi.as_view(),
        name="api-channel",
    ),
    path(
        "projects/<int:project_id>/channels/<int:channel_id>/test",
        views_channels.ChannelTestApi.as_view(),
        name="api-channel-test",
    ),
    path(
        "projects/<int:project_id>/channels/<int:channel_id>/rotate-secret",
        views_channels.ChannelRotateSecretApi.as_view(),
        name="api-channel-rotate-secret",
    ),
    path(
        "projects/<int:project_id>/channels/<int:channel_id>/deliveries",
        views_channels.ChannelDeliveriesApi.as_view(),
        name="api-channel-deliveries",
    ),
    # alert rules, alerts, on call (views_rules.py)
    path("projects/<int:project_id>/alert-rules", views_rules.RuleListCreateApi.as_view(), name="api-alert-rules"),
    path(
        "projects/<int:project_id>/alert-rules/<int:rule_id>",
        views_rules.RuleDetailApi.as_view(),
        name="api-alert-rule",
    ),
    path(
        "projects/<int:project_id>/alert-rules/<int:rule_id>/mute",
        views_rules.RuleMuteApi.as_view(),
        name="api-alert-rule-mute",
    ),
    path(
        "projects/<int:project_id>/alert-rules/<int:rule_id>/unmute",
        views_rules.RuleUnmuteApi.as_view(),
        name="api-alert-rule-unmute",
    ),
    path("projects/<int:project_id>/alerts", views_rules.AlertListApi.as_view(), name="api-alerts"),
    path("projects/<int:project_id>/on-call", views_rules.OnCallApi.as_view(), name="api-on-call"),
    path("alerts/<int:alert_id>/acknowledge", views_rules.AlertAcknowledgeApi.as_view(), name="api-alert-acknowledge"),
    path("alerts/<int:alert_id>/snooze", views_rules.AlertSnoozeApi.as_view(), name="api-alert-snooze"),
]
