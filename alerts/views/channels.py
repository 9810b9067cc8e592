"""Channels page (managers): the project's channels with their state and last delivery, a form per
kind to add one, editing, enabling, deleting, rotating the secret, a test message and a channel's
delivery log. Plain forms post here and call the services; the page's script sends tests through
the JSON API and shows their outcome without a reload."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from alerts.models import ChannelKind
from alerts.selectors.channels import access_channel, channel_list, channel_target, delivery_log
from alerts.services.channels import (
    channel_create,
    channel_delete,
    channel_rotate_secret,
    channel_test,
    channel_update,
)
from common.errors import DomainError, NotFound, ValidationFailed
from labeling.selectors.access import MANAGER_ROLES
from labeling.views.projects import page_project

LOG_SIZE = 25
ACTIONS = ("create", "update", "delete", "rotate", "test")


def _emails(raw: str) -> list[str]:
    return [e for e in raw.replace(",", "\n").replace(";", "\n").split() if e]


def _where(action: str, post) -> str:
    """Which form a refusal belongs to (shown there with the input kept); "" for the page itself."""
    if action == "create" and post.get("kind") in ChannelKind.values:
        return f"create-{post['kind']}"
    if action == "update":
        return f"edit-{post.get('channel', '')}"
    return ""


def _render(request, project, *, status=200, log_channel=None, **extra):
    channels = list(channel_list(project=project))
    for c in channels:
        c.target = channel_target(c)
    if log_channel is None and request.GET.get("log"):
        try:
            log_channel = access_channel(user=request.user, project_id=project.pk, channel_id=request.GET["log"])
        except NotFound:
            log_channel = None
    context = {
        "project": project,
        "tab": "alerts",
        "channels": channels,
        "kinds": ChannelKind.choices,
        "log_channel": log_channel,
        "log": list(delivery_log(channel=log_channel)[:LOG_SIZE]) if log_channel else [],
        **extra,
    }
    return render(request, "alerts/channels.html", context, status=status)


@login_required
def channels_page(request, project_id):
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    if request.method != "POST":
        return _render(request, project)
    action = request.POST.get("action", "")
    post = request.POST
    try:
        if action not in ACTIONS:
            raise ValidationFailed("Unknown action.", fields={"action": [f"One of {', '.join(ACTIONS)}."]})
        if action == "create":
            channel = channel_create(
                project=project,
                actor=request.user,
                kind=post.get("kind", ""),
                name=post.get("name", ""),
                url=post.get("url", ""),
                emails=_emails(post.get("emails", "")),
                to_members=post.get("to_members") == "on",
            )
            messages.success(request, f"Added the {channel.get_kind_display().lower()} channel {channel.name}.")
            return _render(request, project, status=201, secret_for=channel)
        channel = access_channel(user=request.user, project_id=project.pk, channel_id=post.get("channel", ""))
        if action == "update":
            changes = {"name": post.get("name", ""), "enabled": post.get("enabled") == "on"}
            if channel.kind == ChannelKind.EMAIL:
                changes |= {"emails": _emails(post.get("emails", "")), "to_members": post.get("to_members") == "on"}
            else:
                changes["url"] = post.get("url", "")
            channel_update(channel=channel, actor=request.user, **changes)
            messages.success(request, f"Saved {changes['name'].strip()}.")
        elif action == "delete":
            channel_delete(channel=channel)
            messages.success(request, f"Deleted {channel.name}.")
            return redirect(request.path)
        elif action == "rotate":
            rotated = channel_rotate_secret(channel=channel)
            messages.success(request, f"New secret for {channel.name}: the old one no longer signs.")
            return _render(request, project, secret_for=rotated)
        else:
            channel_test(channel=channel, actor=request.user)
            messages.success(request, f"Test message to {channel.name} queued: its outcome shows in the log.")
        return redirect(f"{request.path}?log={channel.pk}#log")
    except NotFound:
        messages.error(request, "That channel no longer exists.")
        return redirect(request.path)
    except DomainError as exc:
        return _render(
            request,
            project,
            status=exc.status,
            form_error={
                "where": _where(action, post),
                "message": exc.message,
                "fields": exc.fields or {},
            },
            posted=post,
        )
