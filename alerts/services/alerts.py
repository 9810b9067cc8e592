"""What people do with alerts: acknowledge, snooze (the rule's alerts about the alert's key, until a
time or for N more occurrences), and the learned action of each alert (acknowledged here; triaged,
assigned or resolved when its bug changed within the action window; none after it)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertAction, AlertStatus, Snooze
from alerts.selectors.alerts import ACTION_WINDOW, alerts_awaiting_action, bug_action_after, bug_id_of
from alerts.services.rules import _when
from common.errors import ValidationFailed

MAX_SNOOZE_OCCURRENCES = 100_000


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user=None) -> Alert:
    """Acknowledged (once: a second acknowledgement changes nothing). It counts as an action."""
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.status == AlertStatus.ACKNOWLEDGED:
        return alert
    now = timezone.now()
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by = user if user is not None and user.is_authenticated else None
    fields = ["status", "acknowledged_at", "acknowledged_by"]
    if alert.action == AlertAction.NONE:
        alert.action, alert.action_at = AlertAction.ACKNOWLEDGED, now
        fields += ["action", "action_at"]
    alert.save(update_fields=fields)
    return alert


@transaction.atomic
def alert_snooze(*, alert: Alert, user=None, until=None, occurrences=None) -> Snooze:
    """Snooze the alert's rule for its key: until a future time, or for the next N occurrences
    (exactly one of the two). Replaces an earlier snooze of the same rule and key."""
    if (until is None) == (occurrences is None):
        raise ValidationFailed(
            "Give either until or occurrences.", fields={"until": ["Either this."], "occurrences": ["Or this."]}
        )
    values = {"until": None, "occurrences_left": None}
    if until is not None:
        when = _when(until, "until")
        if when <= timezone.now():
            raise ValidationFailed("until: Must be in the future.", fields={"until": ["Must be in the future."]})
        values["until"] = when
    else:
        if (
            isinstance(occurrences, bool)
            or not isinstance(occurrences, int)
            or not 1 <= occurrences <= MAX_SNOOZE_OCCURRENCES
        ):
            raise ValidationFailed(
                f"occurrences: An integer from 1 to {MAX_SNOOZE_OCCURRENCES}.",
                fields={"occurrences": [f"An integer from 1 to {MAX_SNOOZE_OCCURRENCES}."]},
            )
        values["occurrences_left"] = occurrences
    by = user if user is not None and user.is_authenticated else None
    snooze, _ = Snooze.objects.update_or_create(
        rule_id=alert.rule_id, key=alert.key, defaults={**values, "created_by": by}
    )
    Alert.objects.filter(pk=alert.pk).exclude(status=AlertStatus.ACKNOWLEDGED).update(status=AlertStatus.SNOOZED)
    return snooze


def alerts_actions_update(*, now=None) -> int:
    """Learn the action of alerts about a bug from the bug's history since the alert; returns how many
    got one. Alerts older than the action window keep `none` (ignored)."""
    now = now or timezone.now()
    learned = 0
    for alert in alerts_awaiting_action(now=now).iterator():
        bug_id = bug_id_of(alert.key)
        if bug_id is None:
            continue
        found = bug_action_after(bug_id=bug_id, since=alert.created_at, until=alert.created_at + ACTION_WINDOW)
        if found is None:
            continue
        action, at = found
        learned += Alert.objects.filter(pk=alert.pk, action=AlertAction.NONE).update(action=action, action_at=at)
    return learned
