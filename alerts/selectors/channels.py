"""Reading channels and their delivery log, permission-checked: channels are the managers' business
(another member gets Forbidden, an outsider NotFound, as labeling's access_project decides)."""

from __future__ import annotations

from django.db.models import OuterRef, Prefetch, Subquery

from alerts.models import Channel, ChannelKind, Delivery, DeliveryAttempt
from common.errors import NotFound
from labeling.selectors.access import MANAGER_ROLES, access_project

MAX_ID = 2**63 - 1


def access_channels(*, user, project_id):
    """The project if `user` manages it (NotFound / Forbidden otherwise)."""
    return access_project(user=user, project_id=project_id, roles=MANAGER_ROLES)


def access_channel(*, user, project_id, channel_id) -> Channel:
    """The channel `channel_id` of the project, for a manager of it; NotFound for any other id."""
    project = access_channels(user=user, project_id=project_id)
    try:
        channel_id = int(channel_id)
    except (TypeError, ValueError):
        raise NotFound("Channel not found.")
    channel = (
        _with_last_delivery(Channel.objects.filter(project=project, pk=channel_id).select_related("created_by")).first()
        if (0 < channel_id <= MAX_ID)
        else None
    )
    if channel is None:
        raise NotFound("Channel not found.")
    channel.project = project
    return channel


def _with_last_delivery(queryset):
    last = Delivery.objects.filter(channel=OuterRef("pk")).order_by("-created_at", "-pk")
    return queryset.annotate(
        last_delivery_id=Subquery(last.values("pk")[:1]),
        last_delivery_status=Subquery(last.values("status")[:1]),
        last_delivery_code=Subquery(last.values("last_status_code")[:1]),
        last_delivery_at=Subquery(last.values("created_at")[:1]),
    )


def channel_list(*, project):
    """The project's channels by name, each with its newest delivery's id, status, code and time."""
    return _with_last_delivery(Channel.objects.filter(project=project).select_related("created_by")).order_by(
        "name", "pk"
    )


def delivery_log(*, channel):
    """The channel's deliveries, newest first, each with its attempts (oldest first)."""
    return (
        Delivery.objects.filter(channel=channel)
        .order_by("-id")
        .prefetch_related(Prefetch("log", queryset=DeliveryAttempt.objects.order_by("at", "pk")))
    )


def delivery_get(*, channel, delivery_id: int) -> Delivery:
    delivery = delivery_log(channel=channel).filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound("Delivery not found.")
    return delivery


def channel_target(channel: Channel) -> str:
    """Where the channel sends, for people: a chat URL's tokens are not repeated."""
    if channel.kind == ChannelKind.EMAIL:
        targets = list(channel.emails or [])
        if channel.to_members:
            targets.append("the project's members")
        return ", ".join(targets)
    if channel.kind == ChannelKind.CHAT:
        scheme, _, rest = channel.url.partition("://")
        return f"{scheme}://…" if rest else channel.url
    return channel.url
