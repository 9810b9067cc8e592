"""Background work of on call: routing events to rules, delivering messages with backoff, digests."""

from celery import shared_task


@shared_task(acks_late=True)
def route_event(event_id: int) -> None:
    from alerts.services.routing import event_route

    event_route(event_id=event_id)


@shared_task(acks_late=True)
def deliver(delivery_id: int) -> None:
    from alerts.services.delivery import delivery_attempt

    delivery_attempt(delivery_id=delivery_id)


@shared_task(name="alerts.digests_send")
def digests_send() -> int:
    from alerts.services.digest import digests_send as send

    return send()


@shared_task(name="alerts.actions_update")
def alerts_actions_update() -> int:
    """Beat: learn what people did after alerts, then store each rule's action rate from it."""
    from alerts.services.alerts import alerts_actions_update as update
    from alerts.services.rules import rules_action_stats_store

    learned = update()
    rules_action_stats_store()
    return learned


@shared_task(name="alerts.events_route_missed")
def events_route_missed() -> int:
    from alerts.services.routing import events_route_missed as sweep

    return sweep()


@shared_task(name="alerts.deliveries_sweep")
def deliveries_sweep() -> int:
    """Beat: enqueue deliveries whose message was lost (pending over a minute, failed and due)."""
    from alerts.services.delivery import deliveries_sweep as sweep

    return sweep()
