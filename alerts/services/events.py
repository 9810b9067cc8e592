"""Storing events as they are emitted (common.events), and their stable JSON body."""

from __future__ import annotations

from django.conf import settings

from alerts.models import Event
from common.events import VERSION
from labeling.models import Project


def event_record(*, project_id: int, type: str, subject: str, data: dict, path: str = "", key: str = ""):
    """Store an event; None when its project is gone meanwhile."""
    if not Project.objects.filter(pk=project_id).exists():
        return None
    return Event.objects.create(
        project_id=project_id, type=type, version=VERSION, subject=subject[:300], data=data, path=path, key=key or type
    )


def event_body(event: Event) -> dict:
    """The versioned body every channel gets (webhooks verbatim)."""
    base = getattr(settings, "LOUPE_BASE_URL", "").rstrip("/")
    return {
        "type": event.type,
        "version": event.version,
        "id": event.pk,
        "project": event.project_id,
        "created_at": event.created_at.isoformat(),
        "subject": event.subject,
        "url": f"{base}{event.path}" if event.path else "",
        "key": event.key,
        "data": event.data,
    }
