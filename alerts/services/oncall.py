"""The on-call rotation: members (project members, in turn order) hand over weekly at a weekday and
hour (UTC). Setting it restarts the turn: the first member is on call until the next hand-over."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from alerts.models import OnCallRotation
from common.errors import ValidationFailed
from labeling.models import Membership

WEEK = timedelta(days=7)


def _bad(field, message):
    return ValidationFailed(f"{field}: {message}", fields={field: [message]})


def _members_clean(project, members) -> list[int]:
    if not isinstance(members, list):
        raise _bad("members", "A list of usernames or user ids.")
    User = get_user_model()
    ids = []
    for m in members:
        if isinstance(m, bool) or not isinstance(m, (int, str)):
            raise _bad("members", "A list of usernames or user ids.")
        if isinstance(m, int) and not 0 < m < 2**63:
            raise _bad("members", f"{m} is not a member of this project.")
        user = User.objects.filter(**({"pk": m} if isinstance(m, int) else {"username": m})).first()
        if user is None or not (user.is_staff or Membership.objects.filter(project=project, user=user).exists()):
            raise _bad("members", f"{m} is not a member of this project.")
        if user.pk in ids:
            raise _bad("members", f"{m} is listed twice.")
        ids.append(user.pk)
    return ids


@transaction.atomic
def rotation_set(*, project, members, handover_weekday: int, handover_hour: int) -> OnCallRotation:
    for field, value, high in (("handover_weekday", handover_weekday, 6), ("handover_hour", handover_hour, 23)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise _bad(field, f"An integer from 0 to {high}.")
    ids = _members_clean(project, members)
    rotation, _ = OnCallRotation.objects.select_for_update().get_or_create(project=project)
    rotation.members = ids
    rotation.handover_weekday = handover_weekday
    rotation.handover_hour = handover_hour
    rotation.starts_at = timezone.now()
    rotation.save()
    return rotation


def rotation_of(project) -> OnCallRotation | None:
    return OnCallRotation.objects.filter(project=project).first()


def first_handover(rotation: OnCallRotation):
    """The hand-over at or before starts_at that begins the first member's turn (as on_call_at)."""
    first = rotation.starts_at.replace(hour=rotation.handover_hour, minute=0, second=0, microsecond=0)
    first -= timedelta(days=(first.weekday() - rotation.handover_weekday) % 7)
    if first > rotation.starts_at:
        first -= WEEK
    return first


def handovers_next(rotation: OnCallRotation, *, now=None, count: int = 4) -> list[tuple]:
    """The next `count` hand-overs after `now`: (when, user id taking over)."""
    if not rotation.members:
        return []
    now = now or timezone.now()
    first = first_handover(rotation)
    k = max(0, int((now - first) // WEEK)) + 1
    out = []
    for i in range(k, k + count):
        when = first + i * WEEK
        out.append((when, rotation.on_call_at(when)))
    return out


def on_call_summary(project, *, now=None) -> dict:
    """{members [{id, username}], handover_weekday, handover_hour, current {id, username} | None,
    handovers [{at, user {id, username}}]} for the API, the rules page and the triage line."""
    now = now or timezone.now()
    rotation = rotation_of(project)
    if rotation is None:
        return {"members": [], "handover_weekday": 0, "handover_hour": 9, "current": None, "handovers": []}
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=rotation.members)}

    def who(uid):
        u = users.get(uid)
        return None if u is None else {"id": u.pk, "username": u.username}

    return {
        "members": [who(uid) for uid in rotation.members if uid in users],
        "handover_weekday": rotation.handover_weekday,
        "handover_hour": rotation.handover_hour,
        "current": who(rotation.on_call_at(now)),
        "handovers": [{"at": at, "user": who(uid)} for at, uid in handovers_next(rotation, now=now)],
    }
