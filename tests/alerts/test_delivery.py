"""Delivering to a real HTTP receiver on 127.0.0.1: the signature a receiver can check, retries with
backoff until delivered (attempts called directly, never slept for), dead after the last attempt,
a channel disabled after failed deliveries in a row (with its channel.disabled event), email through
Django's outbox, chat through apprise, the sweep, and one send per attempt under concurrent workers."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus, Event
from alerts.services import delivery as delivery_service
from alerts.services.channels import channel_create, channel_update
from alerts.services.delivery import (
    CHANNEL_FAILURE_LIMIT,
    MAX_ATTEMPTS,
    deliveries_create,
    deliveries_due,
    deliveries_sweep,
    delivery_attempt,
)
from alerts.services.events import event_body, event_record
from labeling.models import Role
from tests.alerts.conftest import Receiver
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def webhook(project, user, url, name="ops hook"):
    return channel_create(project=project, actor=user, kind="webhook", name=name, url=url)


def message(project, *, subject="Bug #12 regressed", key="k1"):
    event = event_record(
        project_id=project.pk,
        type="bug.regressed",
        subject=subject,
        data={"bug_id": 12, "title": "wrong label", "tags": ["billing"]},
        path="/bugs/12",
        key="bug:12",
    )
    return event_body(event), key


def deliver_one(channel, *, key="k1"):
    body, key = message(channel.project, key=key)
    (delivery,) = deliveries_create(channels=[channel], body=body, idempotency_key=key)
    return delivery


def make_due(delivery):
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def verify(secret: str, headers: dict, raw: bytes) -> bool:
    """What a receiver does: HMAC-SHA256 of "{timestamp}.{raw body}" with the shared secret."""
    expected = hmac.new(secret.encode(), headers["X-Loupe-Timestamp"].encode() + b"." + raw, hashlib.sha256)
    return hmac.compare_digest(f"sha256={expected.hexdigest()}", headers["X-Loupe-Signature"])


def test_a_webhook_gets_the_signed_json_body_with_its_headers(user, project, receiver):
    channel = webhook(project, user, receiver.url)
    delivery = deliver_one(channel, key="alert:7")
    assert delivery.status == DeliveryStatus.PENDING

    done = delivery_attempt(delivery.pk)

    assert done.status == DeliveryStatus.DELIVERED and done.attempts == 1 and done.last_status_code == 200
    assert done.delivered_at is not None and done.next_attempt_at is None
    ((path, headers, raw),) = receiver.requests
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    assert verify(Channel.objects.get(pk=channel.pk).secret, headers, raw)
    assert not verify("another secret", headers, raw)
    assert not verify(channel.secret, headers, raw + b" ")
    assert abs(int(headers["X-Loupe-Timestamp"]) - timezone.now().timestamp()) < 60
    assert headers["X-Loupe-Delivery"] == "alert:7" and headers["X-Loupe-Event"] == "bug.regressed"
    body = json.loads(raw)
    assert body == delivery.body and body["subject"] == "Bug #12 regressed" and body["data"]["bug_id"] == 12
    assert list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("status_code", flat=True)) == [200]
    assert delivery_attempt(delivery.pk) is None  # delivered: nothing more to send
    assert len(receiver.requests) == 1


def test_failures_are_retried_with_backoff_until_delivered(user, project, django_capture_on_commit_callbacks):
    receiver = Receiver(fail_first=3)
    try:
        channel = webhook(project, user, receiver.url)
        delivery = deliver_one(channel)
        waits = []
        for n in range(1, 4):
            with django_capture_on_commit_callbacks() as callbacks:
                failed = delivery_attempt(delivery.pk)
            assert failed.status == DeliveryStatus.FAILED and failed.attempts == n and failed.last_status_code == 500
            assert "receiver says no" in failed.last_error
            wait = (failed.next_attempt_at - timezone.now()).total_seconds()
            base = 30 * 2 ** (n - 1)
            assert 0.8 * base - 2 <= wait <= 1.2 * base
            # the retry goes to Celery with the same countdown, after commit
            ((func, args),) = [(c.func, c.args) for c in callbacks]
            assert func is delivery_service._enqueue and args[0] == delivery.pk and abs(args[1] - wait) < 2
            waits.append(wait)
            assert delivery_attempt(delivery.pk) is None  # not due yet: nothing is sent early
            assert len(receiver.requests) == n
            make_due(delivery)

        done = delivery_attempt(delivery.pk)
        assert done.status == DeliveryStatus.DELIVERED and done.attempts == 4 and done.last_status_code == 200
        log = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("at", "pk"))
        assert [a.status_code for a in log] == [500, 500, 500, 200]
        assert all(a.error for a in log[:3]) and log[3].error == ""
        assert receiver.by_delivery() == {"k1": 4}  # one key: the receiver can drop the duplicates
        assert waits[0] < waits[1] < waits[2]
        assert Channel.objects.get(pk=channel.pk).consecutive_failures == 0  # delivered: the count resets
    finally:
        receiver.close()


def test_backoff_doubles_and_is_capped_at_an_hour():
    for attempts in range(1, 12):
        wait = delivery_service.backoff_seconds(attempts)
        base = 30 * 2 ** (attempts - 1)
        assert min(3600, 0.8 * base) <= wait <= min(3600, 1.2 * base)
    assert delivery_service.backoff_seconds(20) == 3600


def test_a_delivery_is_dead_after_the_last_attempt(user, project):
    receiver = Receiver(fail_first=100, fail_status=503)
    try:
        delivery = deliver_one(webhook(project, user, receiver.url))
        for _ in range(MAX_ATTEMPTS):
            last = delivery_attempt(delivery.pk)
            make_due(delivery)
        assert last.status == DeliveryStatus.DEAD and last.attempts == MAX_ATTEMPTS and last.next_attempt_at is None
        assert delivery_attempt(delivery.pk) is None
        assert len(receiver.requests) == MAX_ATTEMPTS
        codes = set(DeliveryAttempt.objects.filter(delivery=delivery).values_list("status_code", flat=True))
        assert codes == {503}
        assert delivery_service.deliveries_due(now=timezone.now() + timedelta(days=1)) == []
    finally:
        receiver.close()


def test_an_unreachable_url_is_a_failed_attempt_with_the_error(user, project, receiver):
    url = receiver.url
    receiver.close()  # nothing listens there any more
    delivery = deliver_one(webhook(project, user, url))
    failed = delivery_attempt(delivery.pk)
    assert failed.status == DeliveryStatus.FAILED and failed.last_status_code is None
    assert "ConnectionError" in failed.last_error
    assert DeliveryAttempt.objects.get(delivery=delivery).error == failed.last_error


def test_five_failed_deliveries_in_a_row_disable_the_channel_and_emit_channel_disabled(
    user, project, django_capture_on_commit_callbacks
):
    receiver = Receiver(fail_first=1000)
    try:
        channel = webhook(project, user, receiver.url)
        deliveries = []
        for n in range(1, CHANNEL_FAILURE_LIMIT + 1):
            delivery = deliver_one(channel, key=f"k{n}")
            deliveries.append(delivery)
            with django_capture_on_commit_callbacks(execute=True):
                delivery_attempt(delivery.pk)
            channel.refresh_from_db()
            assert channel.consecutive_failures == n
            if n < CHANNEL_FAILURE_LIMIT:
                assert channel.enabled
                # a retry of a delivery that already failed does not count again
                make_due(delivery)
                delivery_attempt(delivery.pk)
                channel.refresh_from_db()
                assert channel.consecutive_failures == n

        assert not channel.enabled
        assert "5 failed deliveries" in channel.disabled_reason and "HTTP 500" in channel.disabled_reason
        (event,) = Event.objects.filter(project=project, type="channel.disabled")
        assert event.data["channel_id"] == channel.pk and event.data["failures"] == CHANNEL_FAILURE_LIMIT
        assert event.data["name"] == "ops hook" and "HTTP 500" in event.data["last_error"]
        assert event.key == f"channel:{channel.pk}"

        # disabled: no new delivery, and due retries wait
        assert deliveries_create(channels=[channel], body={"type": "x"}, idempotency_key="k9") == []
        sent = len(receiver.requests)
        for d in deliveries:
            make_due(d)
            assert delivery_attempt(d.pk) is None
        assert len(receiver.requests) == sent
        assert deliveries_due() == []

        # enabled again by a manager: the count is clear and the waiting deliveries go out
        receiver.fail_first = 0
        channel_update(channel=channel, actor=user, enabled=True)
        channel.refresh_from_db()
        assert channel.enabled and channel.consecutive_failures == 0 and channel.disabled_reason == ""
        assert sorted(deliveries_due()) == sorted(d.pk for d in deliveries)
        assert all(delivery_attempt(d.pk).status == DeliveryStatus.DELIVERED for d in deliveries)
    finally:
        receiver.close()


def test_a_success_resets_the_count_of_failures_in_a_row(user, project):
    receiver = Receiver(fail_first=3)
    try:
        channel = webhook(project, user, receiver.url)
        for n in range(3):
            delivery_attempt(deliver_one(channel, key=f"f{n}").pk)
        channel.refresh_from_db()
        assert channel.consecutive_failures == 3
        assert delivery_attempt(deliver_one(channel, key="ok").pk).status == DeliveryStatus.DELIVERED
        channel.refresh_from_db()
        assert channel.consecutive_failures == 0 and channel.enabled
    finally:
        receiver.close()


def test_email_goes_to_the_addresses_and_the_members_with_a_readable_body(user, project, mailoutbox):
    user.email = "lead@example.com"
    user.save()
    add_member(project, UserFactory(email="ann@example.com"), Role.ANNOTATOR)
    add_member(project, UserFactory(email=""), Role.REVIEWER)  # no address: not mailed
    channel = channel_create(
        project=project, actor=user, kind="email", name="mail", emails=["oncall@example.com"], to_members=True
    )
    delivery = deliver_one(channel)
    assert delivery_attempt(delivery.pk).status == DeliveryStatus.DELIVERED
    (mail,) = mailoutbox
    assert sorted(mail.to) == ["ann@example.com", "lead@example.com", "oncall@example.com"]
    assert "Bug #12 regressed" in mail.subject and project.name in mail.subject
    assert "Open: " in mail.body and "/bugs/12" in mail.body
    assert "bug_id: 12" in mail.body and "title: wrong label" in mail.body and 'tags: ["billing"]' in mail.body


def test_email_without_anyone_to_mail_is_a_failed_attempt(user, project, mailoutbox):
    channel = channel_create(project=project, actor=user, kind="email", name="mail", to_members=True)
    user.email = ""
    user.save()
    failed = delivery_attempt(deliver_one(channel).pk)
    assert failed.status == DeliveryStatus.FAILED and "No recipients" in failed.last_error
    assert mailoutbox == []


def test_chat_goes_through_apprise_to_a_json_url(user, project, receiver):
    port = receiver.server.server_address[1]
    channel = channel_create(project=project, actor=user, kind="chat", name="chat", url=f"json://127.0.0.1:{port}/chat")
    done = delivery_attempt(deliver_one(channel).pk)
    assert done.status == DeliveryStatus.DELIVERED
    ((path, _, raw),) = receiver.requests
    posted = json.loads(raw)
    assert path == "/chat" and posted["title"] == "Bug #12 regressed"
    assert "bug_id: 12" in posted["message"] and "/bugs/12" in posted["message"]


def test_chat_that_apprise_cannot_send_is_a_failed_attempt(user, project):
    receiver = Receiver(fail_first=10)
    try:
        port = receiver.server.server_address[1]
        channel = channel_create(project=project, actor=user, kind="chat", name="chat", url=f"json://127.0.0.1:{port}/")
        failed = delivery_attempt(deliver_one(channel).pk)
        assert failed.status == DeliveryStatus.FAILED and failed.last_error.startswith("apprise could not notify")
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


def test_the_sweep_sends_what_was_lost_and_nothing_else(user, project, monkeypatch):
    channel = webhook(project, user, "http://127.0.0.1:9/never")
    other = webhook(project, user, "http://127.0.0.1:9/off", name="off")
    now = timezone.now()
    made = {}
    for name, fields in {
        "fresh": {},
        "lost": {"created_at": now - timedelta(minutes=2)},
        "failed_due": {"status": DeliveryStatus.FAILED, "attempts": 1, "next_attempt_at": now - timedelta(seconds=5)},
        "failed_later": {"status": DeliveryStatus.FAILED, "attempts": 1, "next_attempt_at": now + timedelta(minutes=5)},
        "held": {"next_attempt_at": now + timedelta(seconds=30), "created_at": now - timedelta(minutes=2)},
        "lease_over": {"next_attempt_at": now - timedelta(seconds=1), "created_at": now - timedelta(minutes=3)},
        "delivered": {"status": DeliveryStatus.DELIVERED, "created_at": now - timedelta(minutes=2)},
        "dead": {"status": DeliveryStatus.DEAD, "created_at": now - timedelta(minutes=2)},
    }.items():
        made[name] = Delivery.objects.create(channel=channel, idempotency_key=name, **fields).pk
    Delivery.objects.create(channel=other, idempotency_key="x", created_at=now - timedelta(minutes=2))
    Channel.objects.filter(pk=other.pk).update(enabled=False)

    enqueued = []
    monkeypatch.setattr(delivery_service, "_enqueue", lambda pk, countdown=None: enqueued.append(pk))
    assert deliveries_sweep(now=now) == 3
    assert sorted(enqueued) == sorted(made[k] for k in ("lost", "failed_due", "lease_over"))


def test_the_sweep_task_is_on_the_beat_schedule(settings):
    assert any(e["task"] == "alerts.deliveries_sweep" for e in settings.CELERY_BEAT_SCHEDULE.values())


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_the_same_attempt_at_once(postgres_tx):
    receiver = Receiver()
    receiver.gate = threading.Event()
    try:
        user = UserFactory()
        project = ProjectFactory(creator=user)
        delivery = deliver_one(webhook(project, user, receiver.url))
        results = {}

        def work(name):
            try:
                results[name] = delivery_attempt(delivery.pk)
            finally:
                connection.close()

        first = threading.Thread(target=work, args=("first",))
        first.start()
        assert receiver.arrived.wait(10)  # the first worker is mid-send, holding the attempt
        second = threading.Thread(target=work, args=("second",))
        second.start()
        second.join(10)
        assert results["second"] is None
        receiver.gate.set()
        first.join(10)
        assert results["first"].status == DeliveryStatus.DELIVERED
        assert receiver.by_delivery() == {"k1": 1}
    finally:
        receiver.close()


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_a_due_delivery_let_one_through(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    delivery = deliver_one(webhook(project, user, "http://127.0.0.1:9/x"))
    barrier = threading.Barrier(8)
    wins = []

    def claim():
        try:
            barrier.wait(10)
            wins.append(delivery_service._claim(delivery.pk, timezone.now()))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(wins) == [False] * 7 + [True]


def test_a_channel_deleted_mid_send_ends_the_attempt_quietly(user, project, receiver, monkeypatch):
    from alerts.services.channels import channel_delete

    channel = webhook(project, user, receiver.url)
    delivery = deliver_one(channel)
    send = delivery_service._send

    def send_then_delete(d):
        outcome = send(d)
        channel_delete(channel=channel)
        return outcome

    monkeypatch.setattr(delivery_service, "_send", send_then_delete)
    assert delivery_attempt(delivery.pk) is None
    assert len(receiver.requests) == 1 and not Delivery.objects.exists()


def test_a_digest_body_reads_as_one_line_per_event():
    subject, text = delivery_service.message_text(
        {
            "type": "alert.digest",
            "subject": "3 alerts in the last hour",
            "url": "https://loupe.example/projects/1/alerts",
            "events": [
                {"subject": "Bug #1 regressed", "url": "https://loupe.example/bugs/1"},
                {"subject": "SLO breached"},
            ],
        }
    )
    assert subject == "3 alerts in the last hour"
    assert "- Bug #1 regressed (https://loupe.example/bugs/1)\n- SLO breached" in text
    assert "Open: https://loupe.example/projects/1/alerts" in text and "type: alert.digest" in text
