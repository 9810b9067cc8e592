"""Matching events against alert rules. For each enabled rule of the event's project whose types and
conditions match, one Alert (once per rule and event, however often routing runs), then its delivery:

- suppressed: the rule is muted, or a Snooze on (rule, key) is active (until a time, or for N more
  occurrences, counted down here); recorded, not sent;
- digest: the rule sends digests (digest_minutes > 0), or it is adaptive and people acted on fewer
  than action_floor of its past alerts for this key (else this event type), with at least 5 decided;
  alerts.services.digest sends them;
- immediate: one message to the rule's channels (alerts.services.delivery.deliveries_create).

Conditions read the event's data: kind, tag (in data.tags), priority_max (data.priority at least as
urgent: p0 < p1 < ...), model_version, and min_occurrences within window_minutes: the occurrences the
events about the same key of types bug.created / bug.occurrences (and this one) in the window stand
for (a report's new occurrences, a new bug's first ones); the rule fires once
when the count reaches N and not again for that key until the window has passed since its alert.

On call (to_on_call): alert.recipients = [the on-call user's id], and the body gets
"to": {"id", "username", "email"} so an email channel also writes to that person."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.models import Alert, AlertRule, Event, OnCallRotation, Snooze
from alerts.selectors.alerts import past_action_rate
from alerts.services.delivery import deliveries_create
from alerts.services.events import event_body
from alerts.services.rules import DEFAULT_WINDOW_MINUTES, PRIORITIES

COUNTED_TYPES = ("bug.created", "bug.occurrences")


def _occurrences(type_: str, data: dict) -> int:
    """Occurrences an event stands for: a report's new ones, a new bug's first ones, else one."""
    field = {"bug.occurrences": "new", "bug.created": "occurrences"}.get(type_)
    value = (data or {}).get(field) if field else None
    return int(value) if isinstance(value, int) and value > 0 else 1


def _priority_rank(value) -> int | None:
    return PRIORITIES.index(value) if value in PRIORITIES else None


def conditions_match(rule: AlertRule, event: Event) -> bool:
    c, data = rule.conditions or {}, event.data or {}
    if "kind" in c and data.get("kind") != c["kind"]:
        return False
    if "tag" in c and c["tag"] not in (data.get("tags") or []):
        return False
    if "model_version" in c and data.get("model_version") != c["model_version"]:
        return False
    if "priority_max" in c:
        rank = _priority_rank(data.get("priority"))
        if rank is None or rank > _priority_rank(c["priority_max"]):
            return False
    if "min_occurrences" in c:
        window = timedelta(minutes=c.get("window_minutes", DEFAULT_WINDOW_MINUTES))
        since = event.created_at - window
        rows = (
            Event.objects.filter(
                project_id=event.project_id, key=event.key, created_at__gt=since, created_at__lte=event.created_at
            )
            .filter(Q(type__in=COUNTED_TYPES) | Q(pk=event.pk))
            .values_list("type", "data")
        )
        count = sum(_occurrences(t, d) for t, d in rows)
        if count < c["min_occurrences"]:
            return False
        if Alert.objects.filter(rule=rule, key=event.key, event__created_at__gt=since).exclude(event=event).exists():
            return False
    return True


def _snoozed(rule: AlertRule, key: str, now) -> bool:
    """An active snooze suppresses (and counts down its occurrences); an ended one is deleted."""
    snooze = Snooze.objects.select_for_update().filter(rule=rule, key=key).first()
    if snooze is None:
        return False
    if snooze.until is not None and snooze.until > now:
        return True
    if snooze.occurrences_left:
        Snooze.objects.filter(pk=snooze.pk).update(occurrences_left=F("occurrences_left") - 1)
        return True
    snooze.delete()
    return False


def _delivery_mode(rule: AlertRule, event: Event, now) -> str:
    if rule.muted_until and rule.muted_until > now:
        return "suppressed"
    if _snoozed(rule, event.key, now):
        return "suppressed"
    if rule.digest_minutes > 0:
        return "digest"
    if rule.adaptive:
        rate = past_action_rate(rule=rule, key=event.key, event_type=event.type, before=now)
        if rate is not None and rate < rule.action_floor:
            return "digest"
    return "immediate"


def acknowledge_url(alert: Alert) -> str:
    base = getattr(settings, "LOUPE_BASE_URL", "").rstrip("/")
    return f"{base}/alerts/ack/{alert.token}"


def _on_call_user(project_id: int, now):
    rotation = OnCallRotation.objects.filter(project_id=project_id).first()
    uid = rotation.on_call_at(now) if rotation else None
    return get_user_model().objects.filter(pk=uid).first() if uid else None


def alert_body(alert: Alert, *, to=None) -> dict:
    body = event_body(alert.event)
    body["alert"] = {"id": alert.pk, "rule": alert.rule.name, "acknowledge_url": acknowledge_url(alert)}
    if to is not None:
        body["to"] = {"id": to.pk, "username": to.username, "email": to.email}
    return body


def alert_send(alert: Alert, *, to=None) -> None:
    deliveries_create(
        channels=alert.rule.channels.all(),
        body=alert_body(alert, to=to),
        idempotency_key=f"alert:{alert.pk}",
        alerts=[alert],
    )


def event_route(*, event_id: int) -> list[Alert]:
    """The alerts this event raised now (none when it was routed before)."""
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        return []
    made = []
    rules = AlertRule.objects.filter(project_id=event.project_id, enabled=True).order_by("id")
    for rule in rules:
        if event.type not in rule.event_types:
            continue
        with transaction.atomic():
            # One router at a time per rule: the occurrence count and the snooze countdown stay exact.
            rule = AlertRule.objects.select_for_update().get(pk=rule.pk)
            if Alert.objects.filter(rule=rule, event=event).exists() or not conditions_match(rule, event):
                continue
            now = timezone.now()
            mode = _delivery_mode(rule, event, now)
            to = _on_call_user(event.project_id, now) if rule.to_on_call else None
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        project_id=event.project_id,
                        rule=rule,
                        event=event,
                        key=event.key,
                        delivery=mode,
                        recipients=[to.pk] if to else [],
                    )
            except IntegrityError:  # routed meanwhile by another worker
                continue
            if mode == "immediate":
                alert_send(alert, to=to)
            made.append(alert)
    Event.objects.filter(pk=event.pk, routed_at__isnull=True).update(routed_at=timezone.now())
    return made


def events_route_missed(*, older_than_seconds: int = 60, limit: int = 500) -> int:
    """Route the events whose routing message was lost (a broker outage at emit time, a worker killed
    mid-routing): stored more than `older_than_seconds` ago and never marked routed. Routing is
    idempotent per (rule, event), so an event routed twice raises its alerts once."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        Event.objects.filter(routed_at__isnull=True, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for event_id in ids:
        event_route(event_id=event_id)
    return len(ids)
