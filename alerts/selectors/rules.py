"""Reading alert rules: permission-checked access, the project's rules, and each rule's action rate
(the share of its alerts people acted on) with a suggested change for a rule people mostly ignore.

The suggestion: for each decided alert of the last weeks, count the events about its key (types
bug.created / bug.occurrences, and the alert's own event) in the rule's window before it (60 minutes
without one). Among the counts seen above the rule's current min_occurrences, the suggested
min_occurrences is the smallest threshold that keeps more than half of the acted-on alerts (count >=
threshold) and drops more than half of the ignored ones (count < threshold). When no threshold does
both, a digest is suggested instead."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.utils import timezone

from alerts.models import Alert, AlertAction, AlertRule, Event
from alerts.selectors.alerts import MAX_ID, decided
from common.errors import NotFound
from labeling.selectors.access import ANY_ROLE, access_project

FLAG_BELOW = 0.2  # a rule acted on less often than this is flagged
MIN_FLAG_SAMPLE = 5  # decided alerts needed before a rule is judged
DEFAULT_WEEKS = 4
COUNTED_TYPES = ("bug.created", "bug.occurrences")
SUGGESTED_DIGEST_MINUTES = 60


def access_rule(*, user, project_id, rule_id, roles=ANY_ROLE) -> AlertRule:
    project = access_project(user=user, project_id=project_id, roles=roles)
    try:
        rule_id = int(rule_id)
    except (TypeError, ValueError):
        raise NotFound("Alert rule not found.")
    rule = AlertRule.objects.filter(project=project, pk=rule_id).first() if 0 < rule_id <= MAX_ID else None
    if rule is None:
        raise NotFound("Alert rule not found.")
    rule.project = project
    return rule


def rule_list(*, project):
    return AlertRule.objects.filter(project=project).prefetch_related("channels").order_by("name", "id")


def _key_kind(key: str) -> str:
    return key.partition(":")[0] or key


def occurrences_before(alert: Alert, window_minutes: int) -> int:
    """Events about the alert's key in the window ending at its event (the event itself included)."""
    end = alert.event.created_at
    return (
        Event.objects.filter(
            project_id=alert.project_id,
            key=alert.key,
            created_at__gt=end - timedelta(minutes=window_minutes),
            created_at__lte=end,
            type__in=COUNTED_TYPES,
        )
        .exclude(pk=alert.event_id)
        .count()
        + 1
    )


def suggest(rule: AlertRule, rows: list[tuple[bool, int]]) -> dict:
    """rows: (acted, occurrences) per decided alert. See the module docstring."""
    current = rule.conditions.get("min_occurrences", 1)
    acted = [n for a, n in rows if a]
    ignored = [n for a, n in rows if not a]
    for threshold in sorted({n for _, n in rows if n > current}):
        kept = sum(n >= threshold for n in acted) / len(acted) if acted else 0.0
        dropped = sum(n < threshold for n in ignored) / len(ignored) if ignored else 1.0
        if kept > 0.5 and dropped > 0.5:
            return {
                "change": "min_occurrences",
                "min_occurrences": threshold,
                "window_minutes": rule.conditions.get("window_minutes", 60),
                "keeps_acted": round(kept, 3),
                "drops_ignored": round(dropped, 3),
                "text": f"Alert only from {threshold} occurrences: would have kept {kept:.0%} of the alerts "
                f"people acted on and dropped {dropped:.0%} of the ignored ones.",
            }
    return {
        "change": "digest",
        "digest_minutes": SUGGESTED_DIGEST_MINUTES,
        "text": f"People rarely act on these alerts: send them in a digest every {SUGGESTED_DIGEST_MINUTES} minutes.",
    }


def rule_action_stats(*, rule: AlertRule, weeks: int = DEFAULT_WEEKS, now=None) -> dict:
    """{alerts, acted, action_rate, by_type, by_key_kind, flagged, suggestion} over the last `weeks`
    (alerts still inside their action window with no action yet are left out: undecided)."""
    now = now or timezone.now()
    qs = decided(
        Alert.objects.filter(rule=rule, created_at__gte=now - timedelta(weeks=weeks)).select_related("event"),
        now=now,
    )
    alerts = list(qs)
    total = len(alerts)
    acted = sum(a.action != AlertAction.NONE for a in alerts)
    groups = {"by_type": defaultdict(lambda: [0, 0]), "by_key_kind": defaultdict(lambda: [0, 0])}
    for a in alerts:
        for name, value in (("by_type", a.event.type), ("by_key_kind", _key_kind(a.key))):
            groups[name][value][0] += 1
            groups[name][value][1] += a.action != AlertAction.NONE
    rate = acted / total if total else None
    flagged = bool(total >= MIN_FLAG_SAMPLE and rate is not None and rate < FLAG_BELOW)
    suggestion = None
    if flagged:
        window = rule.conditions.get("window_minutes", 60)
        suggestion = suggest(rule, [(a.action != AlertAction.NONE, occurrences_before(a, window)) for a in alerts])
    return {
        "weeks": weeks,
        "alerts": total,
        "acted": acted,
        "action_rate": None if rate is None else round(rate, 4),
        "by_type": {
            k: {"alerts": n, "acted": m, "action_rate": round(m / n, 4)} for k, (n, m) in groups["by_type"].items()
        },
        "by_key_kind": {
            k: {"alerts": n, "acted": m, "action_rate": round(m / n, 4)} for k, (n, m) in groups["by_key_kind"].items()
        },
        "flagged": flagged,
        "suggestion": suggestion,
    }
