"""Routing events to rules: each condition, occurrences in a window, idempotency, mute, snoozes,
digests, adaptive suppression and the on-call recipient. Messages are asserted as Delivery rows."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertAction, AlertRule, Channel, Delivery, Event, OnCallRotation, Snooze
from alerts.services.digest import digests_send
from alerts.services.routing import event_route
from common.events import emit
from tests.labeling.factories import add_member

pytestmark = pytest.mark.django_db

BUG = {"bug_id": 7, "title": "t", "kind": "failed_prediction", "priority": "p1", "model_version": "v2", "tags": ["ocr"]}


@pytest.fixture
def channel(project):
    return Channel.objects.create(project=project, name="hook", kind="webhook", url="http://127.0.0.1:9/h")


def rule_for(project, channel, **kw):
    kw.setdefault("name", f"rule {AlertRule.objects.count()}")
    kw.setdefault("event_types", ["bug.created", "bug.regressed", "bug.occurrences"])
    rule = AlertRule.objects.create(project=project, **kw)
    rule.channels.set([channel])
    return rule


def event(project, type="bug.regressed", data=None, key="bug:7", at=None):
    return Event.objects.create(
        project=project,
        type=type,
        subject="Bug 7 regressed",
        data=BUG if data is None else data,
        key=key,
        created_at=at or timezone.now(),
    )


def route(ev):
    return event_route(event_id=ev.pk)


def test_a_matching_event_raises_an_alert_sent_at_once(project, channel):
    rule = rule_for(project, channel)
    ev = event(project)
    [alert] = route(ev)
    assert (alert.rule, alert.key, alert.delivery) == (rule, "bug:7", "immediate")
    [d] = Delivery.objects.all()
    assert d.idempotency_key == f"alert:{alert.pk}" and d.channel == channel
    assert list(d.alerts.all()) == [alert]
    assert d.body["type"] == "bug.regressed" and d.body["data"] == BUG
    assert d.body["alert"]["id"] == alert.pk and d.body["alert"]["rule"] == rule.name
    assert d.body["alert"]["acknowledge_url"].endswith(f"/alerts/ack/{alert.token}")


def test_routing_twice_makes_one_alert(project, channel):
    rule_for(project, channel)
    ev = event(project)
    assert len(route(ev)) == 1
    assert route(ev) == []
    assert Alert.objects.count() == 1 and Delivery.objects.count() == 1


def test_other_types_disabled_rules_and_other_projects_do_not_match(project, channel, user):
    from tests.labeling.factories import ProjectFactory

    rule_for(project, channel, event_types=["slo.breached"])
    rule_for(project, channel, enabled=False)
    other = ProjectFactory(creator=user)
    rule_for(other, Channel.objects.create(project=other, name="h", kind="webhook"))
    assert route(event(project)) == []


@pytest.mark.parametrize(
    "conditions, matches",
    [
        ({"kind": "failed_prediction"}, True),
        ({"kind": "user_report"}, False),
        ({"tag": "ocr"}, True),
        ({"tag": "layout"}, False),
        ({"priority_max": "p1"}, True),
        ({"priority_max": "p2"}, True),
        ({"priority_max": "p0"}, False),
        ({"model_version": "v2"}, True),
        ({"model_version": "v1"}, False),
        ({"kind": "failed_prediction", "tag": "ocr", "priority_max": "p1", "model_version": "v2"}, True),
        ({"kind": "failed_prediction", "tag": "layout"}, False),
    ],
)
def test_each_condition(project, channel, conditions, matches):
    rule_for(project, channel, conditions=conditions)
    assert len(route(event(project))) == (1 if matches else 0)


def test_priority_condition_needs_a_priority(project, channel):
    rule_for(project, channel, conditions={"priority_max": "p3"})
    assert route(event(project, type="slo.breached", data={"quantile": 0.9}, key="slo")) == []


def test_min_occurrences_fires_once_when_the_count_crosses_and_again_after_the_window(project, channel):
    rule = rule_for(project, channel, conditions={"min_occurrences": 3, "window_minutes": 60})
    t0 = timezone.now() - timedelta(hours=5)
    fired = []
    for minutes in (0, 10, 20, 30, 40):  # 3rd at 20 crosses; 4th and 5th inside the window: quiet
        fired.append(len(route(event(project, type="bug.occurrences", at=t0 + timedelta(minutes=minutes)))))
    assert fired == [0, 0, 1, 0, 0]
    # another key counts on its own
    assert route(event(project, type="bug.occurrences", key="bug:8", at=t0 + timedelta(minutes=41))) == []
    # after the window has passed since the alert, three new occurrences fire again
    later = [len(route(event(project, type="bug.occurrences", at=t0 + timedelta(minutes=m)))) for m in (200, 210, 220)]
    assert later == [0, 0, 1]
    assert Alert.objects.filter(rule=rule).count() == 2


def test_min_occurrences_counts_the_occurrences_a_report_adds(project, channel):
    rule_for(project, channel, conditions={"min_occurrences": 5, "window_minutes": 60})
    t0 = timezone.now() - timedelta(minutes=30)
    created = event(project, type="bug.created", data={**BUG, "occurrences": 2}, at=t0)
    assert route(created) == []  # 2 so far
    report = event(
        project, type="bug.occurrences", data={**BUG, "occurrences": 5, "new": 3}, at=t0 + timedelta(minutes=1)
    )
    assert len(route(report)) == 1  # 2 + 3 reach 5 with one report


def test_a_muted_rule_records_but_does_not_send(project, channel):
    rule_for(project, channel, muted_until=timezone.now() + timedelta(hours=1))
    [alert] = route(event(project))
    assert alert.delivery == "suppressed"
    assert not Delivery.objects.exists()


def test_a_mute_that_ended_sends_again(project, channel):
    rule_for(project, channel, muted_until=timezone.now() - timedelta(minutes=1))
    [alert] = route(event(project))
    assert alert.delivery == "immediate" and Delivery.objects.count() == 1


def test_snooze_until_a_time(project, channel):
    rule = rule_for(project, channel)
    Snooze.objects.create(rule=rule, key="bug:7", until=timezone.now() + timedelta(hours=1))
    assert route(event(project))[0].delivery == "suppressed"
    assert route(event(project, key="bug:8"))[0].delivery == "immediate"  # another key is not snoozed
    Snooze.objects.filter(rule=rule).update(until=timezone.now() - timedelta(seconds=1))
    assert route(event(project))[0].delivery == "immediate"
    assert not Snooze.objects.exists()  # an ended snooze is deleted


def test_snooze_for_n_occurrences(project, channel):
    rule = rule_for(project, channel)
    Snooze.objects.create(rule=rule, key="bug:7", occurrences_left=2)
    deliveries = [route(event(project))[0].delivery for _ in range(4)]
    assert deliveries == ["suppressed", "suppressed", "immediate", "immediate"]
    assert not Snooze.objects.exists()


def test_digest_sends_one_message_per_interval_listing_its_alerts(project, channel):
    rule = rule_for(project, channel, digest_minutes=30)
    alerts = [route(event(project, key=f"bug:{i}"))[0] for i in range(3)]
    assert {a.delivery for a in alerts} == {"digest"}
    assert not Delivery.objects.exists()
    now = timezone.now() + timedelta(seconds=1)
    assert digests_send(now=now) == 1
    [d] = Delivery.objects.all()
    period = int(now.timestamp() // 1800)
    assert d.idempotency_key == f"digest:{rule.pk}:{period}"
    assert [a["id"] for a in d.body["alerts"]] == [a.pk for a in alerts]
    assert set(d.alerts.all()) == set(alerts)
    # more alerts within the same interval wait for the next one
    late = route(event(project, key="bug:9"))[0]
    assert digests_send(now=now + timedelta(minutes=10)) == 0
    assert Delivery.objects.count() == 1
    assert digests_send(now=now + timedelta(minutes=31)) == 1
    second = Delivery.objects.exclude(pk=d.pk).get()
    assert [a["id"] for a in second.body["alerts"]] == [late.pk]
    assert digests_send(now=now + timedelta(minutes=70)) == 0  # nothing pending: no empty digest


def test_adaptive_sends_keys_people_ignore_to_the_digest(project, channel):
    rule = rule_for(project, channel, adaptive=True, action_floor=0.3)
    old = timezone.now() - timedelta(days=10)
    for _ in range(6):  # bug:7: six past alerts, nobody acted (decided: older than the action window)
        past = event(project, key="bug:7", at=old)
        Alert.objects.create(project=project, rule=rule, event=past, key="bug:7", created_at=old)
    for i in range(6):  # bug:8: people acted on most
        past = event(project, key="bug:8", at=old)
        Alert.objects.create(
            project=project,
            rule=rule,
            event=past,
            key="bug:8",
            created_at=old,
            action=AlertAction.TRIAGED if i < 4 else AlertAction.NONE,
        )
    assert route(event(project, key="bug:7"))[0].delivery == "digest"
    assert route(event(project, key="bug:8"))[0].delivery == "immediate"
    # a new key with no history of its own falls back to the event type's rate (5 of 12 acted: above 0.3)
    assert route(event(project, key="bug:9"))[0].delivery == "immediate"


def test_adaptive_needs_five_past_alerts(project, channel):
    rule = rule_for(project, channel, adaptive=True, action_floor=0.9)
    old = timezone.now() - timedelta(days=10)
    for _ in range(4):
        Alert.objects.create(project=project, rule=rule, event=event(project, at=old), key="bug:7", created_at=old)
    assert route(event(project))[0].delivery == "immediate"


def test_to_on_call_addresses_the_person_on_call(project, channel, user):
    other = add_member(project)
    OnCallRotation.objects.create(project=project, members=[other.pk, user.pk])
    rule_for(project, channel, to_on_call=True)
    [alert] = route(event(project))
    assert alert.recipients == [other.pk]
    [d] = Delivery.objects.all()
    assert d.body["to"] == {"id": other.pk, "username": other.username, "email": other.email}


def test_an_emitted_event_is_routed(project, channel, django_capture_on_commit_callbacks, eager_celery):
    rule_for(project, channel)
    with django_capture_on_commit_callbacks(execute=True):
        emit(project_id=project.pk, type="bug.regressed", subject="Bug 7 regressed", data=BUG, key="bug:7")
    [alert] = Alert.objects.all()
    assert alert.event.type == "bug.regressed" and alert.key == "bug:7"
    assert Delivery.objects.filter(idempotency_key=f"alert:{alert.pk}").count() == 1


def test_the_sweep_routes_events_whose_message_was_lost(project, channel):
    from alerts.services.routing import events_route_missed

    rule_for(project, channel)
    lost = event(project, at=timezone.now() - timedelta(minutes=2))
    fresh = event(project, key="bug:9")  # its message may still be on its way
    assert events_route_missed() == 1
    assert Alert.objects.filter(event=lost).count() == 1 and not Alert.objects.filter(event=fresh).exists()
    lost.refresh_from_db()
    assert lost.routed_at is not None
    assert events_route_missed() == 0  # routed once
    route(fresh)
    fresh.refresh_from_db()
    assert fresh.routed_at is not None
