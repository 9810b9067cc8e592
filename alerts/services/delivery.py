"""Delivering messages to channels: one Delivery per (channel, idempotency key), sent by Celery
after commit, retried with exponential backoff; the log keeps every attempt.

One attempt at a time: a worker claims a due delivery with one conditional UPDATE that moves its
next_attempt_at a lease ahead (a second worker's UPDATE then matches nothing), sends outside any
transaction, and records the answer under the row's lock. A worker that dies mid-send leaves the
lease to expire and the sweep (deliveries_sweep, beat) sends again: delivery is at least once, and
the idempotency key (X-Loupe-Delivery) lets a receiver drop the duplicate.

A webhook gets the JSON body POSTed with `X-Loupe-Signature: sha256=<hex HMAC-SHA256 of
"{timestamp}.{raw body}" keyed by the channel's secret>` and `X-Loupe-Timestamp`; any 2xx is delivered.
Email goes through Django's mail backend, chat through apprise.

A channel counts its failed deliveries in a row (a delivery counts once, at its first failed attempt;
any delivered message resets the count); at CHANNEL_FAILURE_LIMIT it is disabled and a
channel.disabled event is emitted. A disabled channel's unsent deliveries wait: they are sent when
a manager enables it again."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.models import Alert, Channel, ChannelKind, Delivery, DeliveryAttempt, DeliveryStatus
from common.events import emit

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
LEASE = timedelta(seconds=60)  # longer than any one attempt can take
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
CHANNEL_FAILURE_LIMIT = 5
LOST_AFTER = timedelta(minutes=1)  # a pending delivery this old lost its message
SWEEP_BATCH = 500


def deliveries_create(*, channels, body: dict, idempotency_key: str, alerts=()) -> list[Delivery]:
    """A delivery of `body` to each enabled channel (an existing one with the same key is reused:
    creating twice sends once). Sent after commit by alerts.tasks.deliver."""
    made = []
    for channel in channels:
        if not channel.enabled:
            continue
        try:
            with transaction.atomic():
                delivery = Delivery.objects.create(channel=channel, idempotency_key=idempotency_key, body=body)
        except IntegrityError:
            continue
        if alerts:
            delivery.alerts.set(alerts)
        made.append(delivery)
        transaction.on_commit(partial(_enqueue, delivery.pk))
    return made


def _enqueue(delivery_id: int, countdown: float | None = None) -> None:
    from alerts.tasks import deliver

    try:
        if countdown:
            deliver.apply_async((delivery_id,), countdown=countdown)
        else:
            deliver.delay(delivery_id)
    except Exception:  # the broker is down: the delivery sweep sends it later
        logger.exception("could not enqueue delivery %s", delivery_id)


# --- one attempt ------------------------------------------------------------------------------


def _due(now) -> Q:
    """Due, on the delivery's own columns (so that an UPDATE re-checks them on the row it waited for)."""
    return Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def _claim(delivery_id: int, now) -> bool:
    """Take the next attempt of the delivery if it is due, its channel enabled and nobody holds it:
    one UPDATE on the row alone, which a concurrent claim waits for and then finds not due."""
    if not Delivery.objects.filter(_due(now), pk=delivery_id, channel__enabled=True).exists():
        return False
    return Delivery.objects.filter(_due(now), pk=delivery_id).update(next_attempt_at=now + LEASE) == 1


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""
    seconds: float = 0.0


def delivery_attempt(delivery_id: int) -> Delivery | None:
    """Send the delivery once if it is due (pending, or failed and its retry time has come, on an
    enabled channel) and record the answer; None when there was nothing to do (delivered, dead, not
    due, or another worker holds it)."""
    now = timezone.now()
    if not _claim(delivery_id, now):
        return None
    delivery = Delivery.objects.select_related("channel", "channel__project").filter(pk=delivery_id).first()
    if delivery is None:
        return None  # its channel was deleted meanwhile
    started = time.monotonic()
    try:
        outcome = _send(delivery)
    except Exception as exc:  # any failure of the transport is a failed attempt, never a lost one
        logger.warning("delivery %s: %s", delivery_id, exc)
        outcome = Outcome(ok=False, error=_short(f"{type(exc).__name__}: {exc}"))
    outcome.seconds = round(time.monotonic() - started, 3)
    return delivery_record(delivery_id=delivery_id, outcome=outcome)


def backoff_seconds(attempts: int) -> float:
    """The wait before the next attempt after `attempts` failed ones: 30 s doubling, ±20 % jitter, at most 1 h."""
    base = BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return min(BACKOFF_CAP_SECONDS, base * random.uniform(0.8, 1.2))


@transaction.atomic
def delivery_record(*, delivery_id: int, outcome: Outcome) -> Delivery | None:
    """Log the attempt and move the delivery on: delivered, failed with its next attempt scheduled,
    or dead after MAX_ATTEMPTS; keep the channel's failure count (and disable it at the limit).
    None when the channel was deleted meanwhile."""
    delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
    channel = delivery and Channel.objects.select_for_update().filter(pk=delivery.channel_id).first()
    if channel is None:
        return None
    now = timezone.now()
    DeliveryAttempt.objects.create(
        delivery=delivery,
        at=now,
        status_code=outcome.status_code,
        error=_short(outcome.error),
        seconds=outcome.seconds,
    )
    if delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD):
        return delivery  # another worker settled it while this one held an expired lease: logged only
    first_failure = delivery.status == DeliveryStatus.PENDING
    delivery.attempts = F("attempts") + 1
    delivery.last_status_code = outcome.status_code
    delivery.last_error = _short(outcome.error)
    if outcome.ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.DELIVERED, now, None
    delivery.save(
        update_fields=["attempts", "last_status_code", "last_error", "status", "delivered_at", "next_attempt_at"]
    )
    delivery.refresh_from_db(fields=["attempts"])

    if outcome.ok:
        if channel.consecutive_failures:
            Channel.objects.filter(pk=channel.pk).update(consecutive_failures=0)
        return delivery

    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.DEAD, None
    else:
        wait = backoff_seconds(delivery.attempts)
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, now + timedelta(seconds=wait)
        transaction.on_commit(partial(_enqueue, delivery.pk, wait))
    delivery.save(update_fields=["status", "next_attempt_at"])

    if first_failure:
        Channel.objects.filter(pk=channel.pk).update(consecutive_failures=F("consecutive_failures") + 1)
        channel.refresh_from_db(fields=["consecutive_failures"])
        if channel.enabled and channel.consecutive_failures >= CHANNEL_FAILURE_LIMIT:
            _channel_disable(channel, last_error=delivery.last_error or f"HTTP {outcome.status_code}")
    return delivery


def _channel_disable(channel: Channel, *, last_error: str) -> None:
    failures = channel.consecutive_failures
    channel.enabled = False
    channel.disabled_reason = _short(f"Disabled after {failures} failed deliveries in a row (last: {last_error})", 300)
    channel.save(update_fields=["enabled", "disabled_reason"])
    emit(
        project_id=channel.project_id,
        type="channel.disabled",
        subject=f"Channel {channel.name} was disabled after {failures} failed deliveries",
        data={"channel_id": channel.pk, "name": channel.name, "failures": failures, "last_error": last_error},
        path=f"/projects/{channel.project_id}/channels",
        key=f"channel:{channel.pk}",
    )


def _short(text: str, limit: int = 500) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the transports ---------------------------------------------------------------------------


def raw_body(body: dict) -> bytes:
    """The exact bytes a webhook receives (and the signature covers)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def signature(*, secret: str, timestamp: int, raw: bytes) -> str:
    """The X-Loupe-Signature value: sha256=<hex HMAC-SHA256 of b"{timestamp}." + raw, keyed by the secret>."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def _send(delivery: Delivery) -> Outcome:
    kind = delivery.channel.kind
    if kind == ChannelKind.WEBHOOK:
        return _send_webhook(delivery)
    if kind == ChannelKind.EMAIL:
        return _send_email(delivery)
    if kind == ChannelKind.CHAT:
        return _send_chat(delivery)
    return Outcome(ok=False, error=f"unknown channel kind {kind!r}")


def _send_webhook(delivery: Delivery) -> Outcome:
    import requests

    channel = delivery.channel
    raw = raw_body(delivery.body)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Loupe-Webhook/1",
        "X-Loupe-Signature": signature(secret=channel.secret, timestamp=timestamp, raw=raw),
        "X-Loupe-Timestamp": str(timestamp),
        "X-Loupe-Delivery": delivery.idempotency_key,
        "X-Loupe-Event": str(delivery.body.get("type", "")),
    }
    try:
        # Redirects are not followed: the signed payload goes to the URL a manager entered, nowhere else.
        response = requests.post(channel.url, data=raw, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        return Outcome(ok=False, error=_short(f"{type(exc).__name__}: {exc}"))
    if 200 <= response.status_code < 300:
        return Outcome(ok=True, status_code=response.status_code)
    snippet = (response.text or "").strip().replace("\n", " ")[:200]
    return Outcome(ok=False, status_code=response.status_code, error=f"HTTP {response.status_code} {snippet}".strip())


def message_text(body: dict) -> tuple[str, str]:
    """(subject, readable text) of a message body: the subject, the link, then every data field."""
    subject = str(body.get("subject") or body.get("type") or "Loupe message")
    lines = [subject, ""]
    if body.get("url"):
        lines += [f"Open: {body['url']}", ""]
    meta = [(k, body[k]) for k in ("type", "created_at", "key") if body.get(k) not in (None, "")]
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    rest = {k: v for k, v in body.items() if k not in {"subject", "url", "data", "id", "version", "project"}}
    rest = {k: v for k, v in rest.items() if k not in dict(meta)}
    for key, value in [*data.items(), *rest.items()]:
        if isinstance(value, list) and value and all(isinstance(v, dict) and v.get("subject") for v in value):
            # a list of messages (a digest's events): one line each, with its link
            lines += ["", f"{key}:"]
            lines += [f"- {v['subject']}" + (f" ({v['url']})" if v.get("url") else "") for v in value]
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        lines.append(f"{key}: {shown}")
    if meta:
        lines += ["", " · ".join(f"{k}: {v}" for k, v in meta)]
    return subject, "\n".join(lines).strip() + "\n"


def email_recipients(channel: Channel) -> list[str]:
    from labeling.models import Membership

    found = list(channel.emails or [])
    if channel.to_members:
        found += (
            Membership.objects.filter(project_id=channel.project_id, user__is_active=True)
            .exclude(user__email="")
            .order_by("user__email")
            .values_list("user__email", flat=True)
        )
    seen, out = set(), []
    for address in found:
        if address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def _send_email(delivery: Delivery) -> Outcome:
    from django.core.mail import get_connection, send_mail

    recipients = email_recipients(delivery.channel)
    if not recipients:
        return Outcome(ok=False, error="No recipients: the channel has no addresses and no member has an email.")
    subject, text = message_text(delivery.body)
    project = delivery.channel.project.name
    connection = get_connection(timeout=TIMEOUT_SECONDS)
    send_mail(
        f"[Loupe] {project}: {subject}"[:250],
        text,
        settings.DEFAULT_FROM_EMAIL,
        recipients,
        connection=connection,
    )
    return Outcome(ok=True)


def _send_chat(delivery: Delivery) -> Outcome:
    import apprise

    client = apprise.Apprise()
    if not client.add(delivery.channel.url):
        return Outcome(ok=False, error="apprise no longer accepts this channel's URL.")
    subject, text = message_text(delivery.body)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as logs:
        sent = client.notify(title=subject, body=text)
        captured = logs.getvalue().strip()
    if sent:
        return Outcome(ok=True)
    return Outcome(ok=False, error=_short("apprise could not notify" + (f": {captured}" if captured else ".")))


# --- the sweep --------------------------------------------------------------------------------


def deliveries_due(*, now=None, limit: int = SWEEP_BATCH) -> list[int]:
    """Deliveries whose message may be lost: pending for over a minute, or failed and due again."""
    now = now or timezone.now()
    stale = Q(status=DeliveryStatus.PENDING, next_attempt_at__isnull=True, created_at__lte=now - LOST_AFTER)
    due = Q(next_attempt_at__lte=now, status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED])
    return list(
        Delivery.objects.filter(stale | due, channel__enabled=True)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def deliveries_sweep(*, now=None) -> int:
    """Enqueue every delivery whose message was lost (the attempt's claim keeps each send single)."""
    ids = deliveries_due(now=now)
    for delivery_id in ids:
        _enqueue(delivery_id)
    return len(ids)


__all__ = ["Alert", "Channel", "deliveries_create", "delivery_attempt", "deliveries_sweep"]
