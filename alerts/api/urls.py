from django.urls import path  # noqa: F401

from alerts.api import views_channels

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
]
