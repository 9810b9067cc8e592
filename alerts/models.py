"""On call: events as stored, the channels that reach people, alert rules, the alerts they raise with
what people did about them, deliveries with their log, and the on-call rotation."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from labeling.models import Project


class Event(models.Model):
    """Something that happened in a project (common.events): stored once, matched against rules."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=64)
    version = models.PositiveSmallIntegerField(default=1)
    subject = models.CharField(max_length=300)
    data = models.JSONField(default=dict)
    path = models.CharField(max_length=500, blank=True, default="")
    key = models.CharField(max_length=200)  # what it is about ("bug:12"): grouping, snoozing
    created_at = models.DateTimeField(default=timezone.now)
    routed_at = models.DateTimeField(null=True, blank=True)  # null: routing still to do (the sweep's list)

    class Meta:
        indexes = [
            models.Index(fields=["project", "type", "-created_at"]),
            models.Index(fields=["project", "key", "-created_at"]),
            models.Index(
                fields=["created_at"], condition=models.Q(routed_at__isnull=True), name="alerts_event_unrouted"
            ),
        ]


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat service (apprise URL)"


def new_secret() -> str:
    return secrets.token_hex(32)


class Channel(models.Model):
    """Where alerts go. A webhook gets the event's JSON signed with HMAC-SHA256 (`secret`); email goes
    to `emails` and, with `to_members`, the project's members; a chat channel is an apprise URL
    (slack://, msteams://, discord://, ...)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    url = models.CharField(max_length=1000, blank=True, default="")
    secret = models.CharField(max_length=128, default=new_secret)
    emails = models.JSONField(default=list, blank=True)
    to_members = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="alerts_channel_unique_name")]


class AlertRule(models.Model):
    """Which events raise alerts, under which conditions, to which channels and people.

    conditions: {"kind", "tag", "priority_max" ("p0".."p3"), "model_version", "min_occurrences",
    "window_minutes"} (all optional). digest_minutes > 0: at most one message per interval, listing
    what happened. adaptive: immediate only for alert keys whose action rate is above action_floor,
    the rest in the digest. action_stats: the rule's action rate over the last weeks as
    alerts.selectors.rules.rule_action_stats answers it, stored by the periodic alerts_actions_update
    task at action_stats_at (null until it first ran), so pages read it instead of computing it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=100)
    event_types = models.JSONField(default=list)
    conditions = models.JSONField(default=dict, blank=True)
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    to_on_call = models.BooleanField(default=False)
    digest_minutes = models.PositiveIntegerField(default=0)
    adaptive = models.BooleanField(default=False)
    action_floor = models.FloatField(default=0.3)
    muted_until = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    last_digest_at = models.DateTimeField(null=True, blank=True)
    action_stats = models.JSONField(null=True, blank=True)
    action_stats_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="alerts_rule_unique_name")]


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    SNOOZED = "snoozed", "Snoozed"


class AlertAction(models.TextChoices):
    NONE = "none", "Nothing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    TRIAGED = "triaged", "Triaged"
    ASSIGNED = "assigned", "Assigned"
    RESOLVED = "resolved", "Resolved"


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Alert(models.Model):
    """One event matched by one rule. `delivery`: immediate, digest, or suppressed (snoozed or muted:
    recorded, not sent). `action`: what people did after it (the first of acknowledged, triaged,
    assigned, resolved within the rule's window; none until then)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alerts")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="alerts")
    key = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    delivery = models.CharField(max_length=16, default="immediate")  # immediate | digest | suppressed
    token = models.CharField(max_length=64, default=new_token, unique=True)  # acknowledge link in messages
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=16, choices=AlertAction.choices, default=AlertAction.NONE)
    action_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list, blank=True)  # user ids it was addressed to (on call)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["project", "-created_at"]),
            models.Index(fields=["rule", "key", "-created_at"]),
        ]
        constraints = [models.UniqueConstraint(fields=["rule", "event"], name="alerts_alert_unique_rule_event")]


class Snooze(models.Model):
    """Alerts of a rule about one key are not sent until a time, or until N more occurrences (as
    Sentry's "ignore until"). Deleted when it ends."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="snoozes")
    key = models.CharField(max_length=200)
    until = models.DateTimeField(null=True, blank=True)
    occurrences_left = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "key"], name="alerts_snooze_unique")]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (will retry)"
    DEAD = "dead", "Gave up"


class Delivery(models.Model):
    """One message to one channel: an alert, a digest (several alerts) or a test. The idempotency key
    goes with every attempt so a receiver can drop duplicates (delivery is at least once)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    idempotency_key = models.CharField(max_length=100)
    body = models.JSONField(default=dict)
    alerts = models.ManyToManyField(Alert, blank=True, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "idempotency_key"], name="alerts_delivery_unique_key")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]


class DeliveryAttempt(models.Model):
    """The delivery log: every attempt with its answer."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.IntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    seconds = models.FloatField(default=0.0)


class OnCallRotation(models.Model):
    """Who is on call: `members` (user ids, in turn order) hand over weekly at `handover_weekday`
    (0 = Monday) and `handover_hour` (UTC), counting from `starts_at`."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="on_call")
    members = models.JSONField(default=list)
    handover_weekday = models.PositiveSmallIntegerField(default=0)
    handover_hour = models.PositiveSmallIntegerField(default=9)
    starts_at = models.DateTimeField(default=timezone.now)

    def on_call_at(self, when=None) -> int | None:
        """The user id on call at `when` (now by default); None without members."""
        if not self.members:
            return None
        when = when or timezone.now()
        first = self.starts_at.replace(hour=self.handover_hour, minute=0, second=0, microsecond=0)
        first -= timedelta(days=(first.weekday() - self.handover_weekday) % 7)
        if first > self.starts_at:
            first -= timedelta(days=7)
        weeks = max(0, int((when - first) // timedelta(days=7)))
        return self.members[weeks % len(self.members)]
