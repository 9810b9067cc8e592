"""Delivering messages to channels: one Delivery per (channel, idempotency key), sent by Celery
after commit, retried with exponential backoff; the log keeps every attempt."""

from __future__ import annotations

import logging
from functools import partial

from django.db import IntegrityError, transaction

from alerts.models import Alert, Channel, Delivery

logger = logging.getLogger(__name__)


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


def _enqueue(delivery_id: int) -> None:
    from alerts.tasks import deliver

    try:
        deliver.delay(delivery_id)
    except Exception:  # the broker is down: the delivery sweep sends it later
        logger.exception("could not enqueue delivery %s", delivery_id)


__all__ = ["Alert", "Channel", "deliveries_create"]
