"""The receiver of common.events: stores each event and hands it to routing (a Celery task, after
commit). A broker outage is logged and the event stays stored; the routing sweep picks it up."""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def on_event(sender, project_id, type, subject, data, path, key, **kwargs):
    from alerts.services.events import event_record
    from alerts.tasks import route_event

    event = event_record(project_id=project_id, type=type, subject=subject, data=data, path=path, key=key)
    if event is None:
        return

    def send():
        try:
            route_event.delay(event.pk)
        except Exception:  # the broker is down: the sweep routes it later
            logger.exception("could not enqueue routing of event %s", event.pk)

    transaction.on_commit(send)
