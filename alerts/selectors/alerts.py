"""Reading alerts: permission-checked access, the project's list with filters, an alert by its
acknowledge token, the action rate of a rule's past alerts (adaptive routing), and what happened to
the bug an alert is about (for learning which alerts people act on; alerts may read bugqueue,
bugqueue never reads alerts)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from alerts.models import Alert, AlertAction, AlertStatus
from common.errors import NotFound, ValidationFailed
from labeling.selectors.access import ANY_ROLE, access_project

ACTION_WINDOW = timedelta(days=7)  # an alert nobody acted on within this is counted as ignored
MIN_HISTORY = 5  # past decided alerts needed before adaptive routing trusts a rate
MAX_ID = 2**63 - 1


def access_alert(*, user, alert_id, roles=ANY_ROLE) -> Alert:
    try:
        alert_id = int(alert_id)
    except (TypeError, ValueError):
        raise NotFound("Alert not found.")
    alert = (
        Alert.objects.select_related("rule", "event").filter(pk=alert_id).first() if 0 < alert_id <= MAX_ID else None
    )
    if alert is None:
        raise NotFound("Alert not found.")
    try:
        alert.project = access_project(user=user, project_id=alert.project_id, roles=roles)
    except NotFound:
        raise NotFound("Alert not found.")
    return alert


def alert_by_token(*, token: str) -> Alert:
    alert = (
        Alert.objects.select_related("rule", "event", "project").filter(token=token).first()
        if isinstance(token, str) and 0 < len(token) <= 64
        else None
    )
    if alert is None:
        raise NotFound("Alert not found.")
    return alert


def alert_list(*, project, status: str | None = None, rule_id=None, limit: int = 200):
    qs = Alert.objects.filter(project=project).select_related("rule", "event", "acknowledged_by")
    if status:
        if status not in AlertStatus.values:
            raise ValidationFailed(
                f"status must be one of {', '.join(AlertStatus.values)}.", fields={"status": ["Invalid choice."]}
            )
        qs = qs.filter(status=status)
    if rule_id not in (None, ""):
        try:
            rule_id = int(rule_id)
            if not 0 < rule_id <= MAX_ID:
                raise ValueError
        except (TypeError, ValueError):
            raise ValidationFailed("rule must be a rule id.", fields={"rule": ["A rule id."]})
        qs = qs.filter(rule_id=rule_id)
    return qs.order_by("-created_at", "-id")[:limit]


def decided(qs, *, now=None):
    """Alerts whose outcome is known: acted on, or ignored for the whole action window."""
    now = now or timezone.now()
    from django.db.models import Q

    return qs.filter(Q(created_at__lte=now - ACTION_WINDOW) | ~Q(action=AlertAction.NONE))


def past_action_rate(*, rule, key: str, event_type: str, before) -> float | None:
    """The share of the rule's decided past alerts that were acted on, for this key when it has at
    least MIN_HISTORY of them, else for this event type; None without enough history."""
    base = Alert.objects.filter(rule=rule, created_at__lt=before)
    for qs in (base.filter(key=key), base.filter(event__type=event_type)):
        done = decided(qs, now=before)
        total = done.count()
        if total >= MIN_HISTORY:
            acted = done.exclude(action=AlertAction.NONE).count()
            return acted / total
    return None


def bug_id_of(key: str) -> int | None:
    prefix, _, rest = key.partition(":")
    if prefix != "bug" or not rest.isdigit():
        return None
    return int(rest)


def bug_action_after(*, bug_id: int, since, until) -> tuple[str, object] | None:
    """The first thing people did to the bug in [since, until]: (action, when), or None. A status
    change to triaged / in progress counts as triaged, to resolved / won't fix / duplicate as
    resolved; a new assignee as assigned. Changes by nobody (the system) do not count."""
    from bugqueue.models import BugEvent

    rows = (
        BugEvent.objects.filter(
            bug_id=bug_id, created_at__gte=since, created_at__lte=until, field__in=("status", "assignee")
        )
        .exclude(actor=None)
        .order_by("created_at", "id")
    )
    for row in rows:
        if row.field == "assignee" and row.to_value:
            return AlertAction.ASSIGNED, row.created_at
        if row.field == "status" and row.to_value in ("triaged", "in_progress"):
            return AlertAction.TRIAGED, row.created_at
        if row.field == "status" and row.to_value in ("resolved", "wont_fix", "duplicate"):
            return AlertAction.RESOLVED, row.created_at
    return None


def alerts_awaiting_action(*, now=None):
    """Alerts about a bug with no action yet, still inside their action window."""
    now = now or timezone.now()
    return Alert.objects.filter(
        action=AlertAction.NONE, key__startswith="bug:", created_at__gt=now - ACTION_WINDOW
    ).order_by("id")
