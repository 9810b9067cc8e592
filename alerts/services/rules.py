"""Writing alert rules: create, update (validated against common.events.EVENT_TYPES and the known
conditions; an unknown key is a 400), delete, mute and unmute; and storing each rule's action rate
(computed by the periodic task, read by the rules page)."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import AlertRule, Channel
from alerts.selectors.rules import rule_action_stats
from common.errors import Conflict, ValidationFailed
from common.events import EVENT_TYPES

PRIORITIES = ("p0", "p1", "p2", "p3")
CONDITION_KEYS = ("kind", "tag", "priority_max", "model_version", "min_occurrences", "window_minutes")
DEFAULT_WINDOW_MINUTES = 60
MAX_WINDOW_MINUTES = 7 * 24 * 60
FIELDS = (
    "name",
    "event_types",
    "conditions",
    "channels",
    "to_on_call",
    "digest_minutes",
    "adaptive",
    "action_floor",
    "enabled",
    "muted_until",
)


def _bad(field: str, message: str):
    return ValidationFailed(f"{field}: {message}", fields={field: [message]})


def conditions_clean(conditions) -> dict:
    """The conditions as stored: known keys only, each of its type; empty strings and nulls dropped."""
    if conditions is None:
        return {}
    if not isinstance(conditions, dict):
        raise _bad("conditions", "Must be an object.")
    unknown = sorted(set(conditions) - set(CONDITION_KEYS))
    if unknown:
        raise ValidationFailed(
            f"Unknown conditions: {', '.join(unknown)}.",
            fields={"conditions": [f"Unknown condition {k!r}; known: {', '.join(CONDITION_KEYS)}." for k in unknown]},
        )
    out = {}
    for key in ("kind", "tag", "model_version"):
        value = conditions.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > 128:
            raise _bad("conditions", f"{key} must be a string of at most 128 characters.")
        out[key] = value
    priority = conditions.get("priority_max")
    if priority not in (None, ""):
        if priority not in PRIORITIES:
            raise _bad("conditions", f"priority_max must be one of {', '.join(PRIORITIES)}.")
        out["priority_max"] = priority
    for key, low, high in (("min_occurrences", 1, 1_000_000), ("window_minutes", 1, MAX_WINDOW_MINUTES)):
        value = conditions.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _bad("conditions", f"{key} must be an integer from {low} to {high}.")
        out[key] = value
    if "window_minutes" in out and "min_occurrences" not in out:
        raise _bad("conditions", "window_minutes goes with min_occurrences.")
    return out


def _event_types_clean(types) -> list[str]:
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise _bad("event_types", "A non-empty list of event types.")
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise _bad("event_types", f"Unknown event types: {', '.join(unknown)}.")
    return sorted(set(types))


def _channels_clean(project, ids) -> list[Channel]:
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise _bad("channels", "A list of channel ids.")
    found = list(Channel.objects.filter(project=project, pk__in=ids))
    missing = sorted(set(ids) - {c.pk for c in found})
    if missing:
        raise _bad("channels", f"Not channels of this project: {', '.join(map(str, missing))}.")
    return found


def _values_clean(project, values: dict) -> tuple[dict, list[Channel] | None]:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValidationFailed(
            f"Unknown fields: {', '.join(unknown)}.", fields={k: ["Unknown field."] for k in unknown}
        )
    out, channels = {}, None
    if "name" in values:
        name = values["name"]
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
            raise _bad("name", "1 to 100 characters.")
        out["name"] = name.strip()
    if "event_types" in values:
        out["event_types"] = _event_types_clean(values["event_types"])
    if "conditions" in values:
        out["conditions"] = conditions_clean(values["conditions"])
    if "channels" in values:
        channels = _channels_clean(project, values["channels"])
    for key in ("to_on_call", "adaptive", "enabled"):
        if key in values:
            if not isinstance(values[key], bool):
                raise _bad(key, "Must be true or false.")
            out[key] = values[key]
    if "digest_minutes" in values:
        v = values["digest_minutes"]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 7 * 24 * 60:
            raise _bad("digest_minutes", "An integer from 0 (send at once) to 10080.")
        out["digest_minutes"] = v
    if "action_floor" in values:
        v = values["action_floor"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise _bad("action_floor", "A number from 0 to 1.")
        out["action_floor"] = float(v)
    if "muted_until" in values:
        out["muted_until"] = _when(values["muted_until"], "muted_until", allow_null=True)
    return out, channels


def _when(value, field: str, *, allow_null=False) -> datetime | None:
    if value is None and allow_null:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(field, "An ISO 8601 date-time.")
    else:
        raise _bad(field, "An ISO 8601 date-time.")
    if timezone.is_naive(parsed):
        raise _bad(field, "Give a time zone (e.g. 2026-12-01T09:00:00Z).")
    return parsed


def _save(rule: AlertRule) -> None:
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError:
        raise Conflict("A rule with this name exists in the project.", fields={"name": ["Already used."]})


@transaction.atomic
def rule_create(*, project, user, values: dict) -> AlertRule:
    for required in ("name", "event_types"):
        if required not in values:
            raise _bad(required, "This field is required.")
    clean, channels = _values_clean(project, values)
    rule = AlertRule(project=project, created_by=user if user and user.is_authenticated else None, **clean)
    _save(rule)
    if channels is not None:
        rule.channels.set(channels)
    # A new rule has no alerts yet: its action rate is known at once, without waiting for the task.
    now = timezone.now()
    rule.action_stats, rule.action_stats_at = rule_action_stats(rule=rule, now=now), now
    rule.save(update_fields=["action_stats", "action_stats_at"])
    return rule


@transaction.atomic
def rule_update(*, rule: AlertRule, values: dict) -> AlertRule:
    clean, channels = _values_clean(rule.project, values)
    for key, value in clean.items():
        setattr(rule, key, value)
    _save(rule)
    if channels is not None:
        rule.channels.set(channels)
    return rule


def rule_delete(*, rule: AlertRule) -> None:
    rule.delete()


def rule_mute(*, rule: AlertRule, until) -> AlertRule:
    """Muted: its alerts are recorded but not sent until `until` (a future time)."""
    when = _when(until, "until")
    if when <= timezone.now():
        raise _bad("until", "Must be in the future.")
    rule.muted_until = when
    rule.save(update_fields=["muted_until"])
    return rule


def rule_unmute(*, rule: AlertRule) -> AlertRule:
    rule.muted_until = None
    rule.save(update_fields=["muted_until"])
    return rule


def rules_action_stats_store(*, now=None) -> int:
    """Compute every rule's action rate (the default span of weeks) and store it on the rule with the
    time it was computed; returns how many rules were stored. One rule at a time, each its own
    short write: a rule deleted meanwhile is skipped."""
    now = now or timezone.now()
    stored = 0
    for rule in AlertRule.objects.order_by("pk").iterator():
        stats = rule_action_stats(rule=rule, now=now)
        stored += AlertRule.objects.filter(pk=rule.pk).update(action_stats=stats, action_stats_at=now)
    return stored
