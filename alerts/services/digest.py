"""Digests: a rule's alerts routed to the digest go out at most once per interval, in one message to
its channels listing them (idempotency key digest:<rule>:<period>, so a second run in the same
period sends nothing). A rule without an enabled channel keeps its alerts pending. Adaptive rules
without digest_minutes use DEFAULT_DIGEST_MINUTES."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertRule
from alerts.services.delivery import deliveries_create
from alerts.services.routing import acknowledge_url

DEFAULT_DIGEST_MINUTES = 60
PENDING_DAYS = 7  # older digest alerts are not sent any more (a rule without channels meanwhile)


def interval_minutes(rule: AlertRule) -> int:
    return rule.digest_minutes or DEFAULT_DIGEST_MINUTES


def digest_body(rule: AlertRule, alerts: list[Alert], period: int) -> dict:
    return {
        "type": "alert.digest",
        "version": 1,
        "project": rule.project_id,
        "rule": {"id": rule.pk, "name": rule.name},
        "period": period,
        "subject": f"{rule.name}: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}",
        "alerts": [
            {
                "id": a.pk,
                "type": a.event.type,
                "subject": a.event.subject,
                "key": a.key,
                "created_at": a.created_at.isoformat(),
                "acknowledge_url": acknowledge_url(a),
            }
            for a in alerts
        ],
    }


def pending_alerts(rule: AlertRule, *, now):
    """The rule's digest alerts of the last PENDING_DAYS not listed in one of its digests yet (read
    from the deliveries, so an alert committed while a digest was being sent waits for the next)."""
    return (
        Alert.objects.filter(rule=rule, delivery="digest", created_at__gt=now - timedelta(days=PENDING_DAYS))
        .exclude(deliveries__idempotency_key__startswith=f"digest:{rule.pk}:")
        .select_related("event")
        .order_by("created_at", "id")
    )


def digest_send(*, rule_id: int, now=None) -> bool:
    """Send the rule's pending digest alerts when its interval has passed; True when one was sent."""
    now = now or timezone.now()
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().filter(pk=rule_id).first()
        if rule is None:
            return False
        minutes = interval_minutes(rule)
        if rule.last_digest_at and now - rule.last_digest_at < timedelta(minutes=minutes):
            return False
        alerts = list(pending_alerts(rule, now=now))
        if not alerts or not rule.channels.filter(enabled=True).exists():
            return False
        period = int(now.timestamp() // (minutes * 60))
        deliveries_create(
            channels=rule.channels.all(),
            body=digest_body(rule, alerts, period),
            idempotency_key=f"digest:{rule.pk}:{period}",
            alerts=alerts,
        )
        rule.last_digest_at = now
        rule.save(update_fields=["last_digest_at"])
        return True


def digests_send(*, now=None) -> int:
    """Every rule with pending digest alerts whose interval has passed; returns how many were sent."""
    now = now or timezone.now()
    recent = Alert.objects.filter(delivery="digest", created_at__gt=now - timedelta(days=PENDING_DAYS))
    ids = recent.values_list("rule_id", flat=True).distinct()
    return sum(digest_send(rule_id=rid, now=now) for rid in sorted(set(ids)))
