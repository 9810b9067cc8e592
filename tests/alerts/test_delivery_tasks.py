"""The Celery side of delivery, tasks called in-process: deliver sends one delivery, the sweep picks
up a delivery whose message was lost, and a test message sent through the API after commit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Delivery, DeliveryStatus
from alerts.services.channels import channel_create
from alerts.tasks import deliver, deliveries_sweep
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory


def test_the_deliver_task_sends_one_delivery(db, user, project, receiver):
    channel = channel_create(project=project, actor=user, kind="webhook", name="ops", url=receiver.url)
    delivery = Delivery.objects.create(channel=channel, idempotency_key="k", body={"type": "alert.test"})
    deliver(delivery.pk)
    deliver(delivery.pk)  # idempotent: delivered once
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and len(receiver.requests) == 1


def test_the_sweep_task_sends_a_delivery_whose_message_was_lost(db, user, project, receiver, eager_celery):
    channel = channel_create(project=project, actor=user, kind="webhook", name="ops", url=receiver.url)
    lost = Delivery.objects.create(
        channel=channel, idempotency_key="lost", body={"type": "x"}, created_at=timezone.now() - timedelta(minutes=5)
    )
    fresh = Delivery.objects.create(channel=channel, idempotency_key="fresh", body={"type": "x"})
    assert deliveries_sweep() == 1
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.status == DeliveryStatus.DELIVERED and fresh.status == DeliveryStatus.PENDING
    assert receiver.by_delivery() == {"lost": 1}


@pytest.mark.django_db(transaction=True)
def test_a_test_message_is_sent_after_commit(receiver, eager_celery):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    c = client_for(manager)
    made = c.post(
        f"/api/projects/{project.pk}/channels", {"name": "ops", "kind": "webhook", "url": receiver.url}, format="json"
    ).json()
    res = c.post(f"/api/projects/{project.pk}/channels/{made['id']}/test")
    assert res.status_code == 202
    assert res.json()["status"] == "delivered" and res.json()["last_status_code"] == 200
    ((_, headers, _),) = receiver.requests
    assert headers["X-Loupe-Event"] == "alert.test"
